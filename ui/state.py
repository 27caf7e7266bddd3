"""Process-wide resources (the model, searchers) and per-session state of the dashboard."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from clip_search import config
from clip_search.errors import ModelLoadError
from clip_search.library import Film, Library
from clip_search.model import ClipEncoder


@dataclass
class ModelState:
    """The loaded encoder, or the sentence saying why it could not be loaded."""

    model_id: str
    encoder: ClipEncoder | None
    error: str | None


@st.cache_resource(show_spinner="Loading CLIP (once per process)…")
def _load(model_id: str) -> ModelState:
    from clip_search.model import load_encoder

    try:
        return ModelState(model_id, load_encoder(model_id), None)
    except ModelLoadError as e:  # cached too, so a missing model is not retried on every click
        return ModelState(model_id, None, str(e))


@st.cache_resource(show_spinner="Building a random-weights CLIP from the shared config…")
def random_demo_model() -> str:
    """A ViT-B/32-shaped CLIP with random weights (UI demo offline; its rankings mean nothing)."""
    from clip_search.model import build_random_clip

    target = config.PROJECT_DIR / ".cache" / "clip-random-demo"
    if not (target / "config.json").is_file():
        build_random_clip(target, layers=4, width=256)
    return str(target)


def model() -> ModelState:
    """The model chosen for this session (default: $FRAMESEARCH_MODEL or the hub id)."""
    model_id = st.session_state.setdefault("model_id", config.model_id())
    return _load(model_id)


def library() -> Library:
    """The library folder ($FRAMESEARCH_LIBRARY or ./library)."""
    return Library(config.library_dir())


@st.cache_resource(max_entries=4)
def _searcher(key: tuple) -> object:
    from clip_search.search import Searcher

    return Searcher([Film(path) for path in key[0]])


def searcher(films: list[Film]):
    """A Searcher kept between reruns for this exact set of film versions."""
    key = (tuple(f.dir for f in films), tuple(f.manifest.completed_at for f in films))
    return _searcher(key)

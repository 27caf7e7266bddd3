"""Process-wide resources (the model, engines) and per-session state of the dashboard."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import streamlit as st

import clip_search.config as config
from clip_search.encoders import DualEncoder
from clip_search.encoders.random import build_random_clip
from clip_search.errors import ModelLoadError
from clip_search.store.library import Library
from clip_search.store.writer import open_library
from engines import Encoders, Engine, ModelEngine, available, default_engine, lacking, make_engine
from engines import model_engines as pick
from tagging.tag_store import database_stamp

RANDOM_DEMO_DIR = config.PROJECT_DIR / ".cache" / "clip-random-demo"  # the offline demo's random CLIP


@dataclass
class ModelState:
    """The loaded encoder, or the sentence saying why it could not be loaded."""

    model_id: str
    encoder: DualEncoder | None
    error: str | None


@st.cache_resource
def encoders() -> Encoders:
    """The models loaded in this process, shared by every session: thread-safe, a few resident,
    the least recently used dropped (``engines.Encoders``)."""
    return Encoders()


@st.cache_resource(show_spinner="Loading the model (once per process)…")
def _load(model_id: str) -> ModelState:
    try:
        return ModelState(model_id, encoders()(model_id), None)
    except ModelLoadError as e:  # cached too, so a missing model is not retried on every click
        return ModelState(model_id, None, str(e))


@st.cache_resource(show_spinner="Building a random-weights CLIP from the shared config…")
def random_demo_model() -> str:
    """A ViT-B/32-shaped CLIP with random weights (UI demo offline; its rankings mean nothing)."""
    target = RANDOM_DEMO_DIR
    if not (target / "config.json").is_file():
        build_random_clip(target, layers=4, width=256)
    return str(target)


def _default_model(lib: Library) -> str:
    """$FRAMESEARCH_MODEL, else the library's default model (the one most films have), else the hub
    default."""
    if os.environ.get("FRAMESEARCH_MODEL"):
        return config.model_id()
    return lib.default_model()


def model() -> ModelState:
    """The model chosen for this session (see :func:`_default_model`). When the default hub model
    cannot be had (no network) and the user chose none, the random-weights demo CLIP stands in by
    itself, and ``st.session_state["model_note"]`` says why (the sidebar shows it in one banner)."""
    model_id = st.session_state.setdefault("model_id", _default_model(library()))
    ms = _load(model_id)
    if ms.encoder is None and model_id == config.DEFAULT_MODEL and not os.environ.get("FRAMESEARCH_MODEL"):
        fallback = _load(random_demo_model())
        if fallback.encoder is not None:
            st.session_state["model_id"] = fallback.model_id
            st.session_state["model_note"] = f"The hub model could not be loaded ({ms.error.split(' (')[0]})."
            return fallback
    return ms


def random_model_notice(ms: ModelState) -> str | None:
    """When the random-weights demo CLIP stands in: the sentence saying so, and why (kept across
    reruns: the reason is the default model's load error, remembered by the process)."""
    if ms.encoder is None or ms.model_id != str(RANDOM_DEMO_DIR):
        return None
    reason = st.session_state.get("model_note") or ""
    if not reason and not os.environ.get("FRAMESEARCH_MODEL"):
        failed = _load(config.DEFAULT_MODEL)
        reason = f"The hub model could not be loaded ({failed.error.split(' (')[0]})." if failed.error else ""
    return (
        f"{reason} Using a random-weights CLIP: the interface works, but rankings are meaningless. "
        "Set FRAMESEARCH_MODEL to a saved model folder (or connect to the internet) for real results."
    ).strip()


@dataclass
class ModelLoad:
    """A model being loaded in the background (``future``: None once loaded, its error if not)."""

    future: Future
    started: float

    def done(self) -> bool:
        return self.future.done()

    def error(self) -> BaseException | None:
        return self.future.exception() if self.future.done() else None


class ModelLoads:
    """Models that *Add a model* loads in the background, shared by every session: a load takes
    its time (50 s for a hub model the hub cannot provide) without holding the page, and a name
    asked for again finds its load running, or its outcome."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="add-model")
        self._lock = threading.Lock()
        self._loads: dict[str, ModelLoad] = {}

    def start(self, name: str) -> ModelLoad:
        """The load of ``name``: the running or finished one, or one started now."""
        with self._lock:
            if name not in self._loads:
                self._loads[name] = ModelLoad(self._pool.submit(self._warm, encoders(), name), time.time())
            return self._loads[name]

    @staticmethod
    def _warm(models: Encoders, name: str) -> None:
        """Load ``name`` into the shared models (ready for every session); nothing is held here."""
        models(name)

    def forget(self, name: str) -> None:
        """Drop a finished load (its error), so the next ``start`` tries again."""
        with self._lock:
            if name in self._loads and self._loads[name].done():
                del self._loads[name]


@st.cache_resource
def model_loads() -> ModelLoads:
    return ModelLoads()


def library(model_id: str | None = None) -> Library:
    """The library folder ($FRAMESEARCH_LIBRARY or ./library), seen with the session's model
    (``model_id``: the edge's choice, see ``Library``)."""
    return open_library(config.library_dir(), model_id)


@st.cache_resource(max_entries=16)
def _engine(root: str, model_id: str, name: str, weight: float) -> Engine:
    """Engines are thread-safe (their caches are locked LRUs), so sessions share them."""
    return make_engine(name, Library(root, model_id), encoders(), weight, default=_default_engine(root, model_id))


@st.cache_resource(max_entries=4)
def _default_engine(root: str, model_id: str) -> ModelEngine:
    return default_engine(model_id, encoders())


@st.cache_data(max_entries=16, show_spinner=False)
def _engine_names(root: str, model: str | None, films: tuple, tags_stamp: tuple) -> list[str]:
    lib = Library(root, model)
    return available(lib, [f for f in (lib.get(key[0]) for key in films) if f])


@st.cache_data(max_entries=16, show_spinner=False)
def _lacking(root: str, model: str | None, films: tuple, tags_stamp: tuple) -> dict[str, list[str]]:
    lib = Library(root, model)
    return lacking(lib, [f for f in (lib.get(key[0]) for key in films) if f])


def _state_key(lib: Library, films: list) -> tuple[str, str | None, tuple, tuple]:
    """Film versions and the tag store's state: what the engines on offer depend on."""
    films_key = tuple((f.id, f.version, tuple(f.models)) for f in films)
    return str(lib.root), lib.model, films_key, database_stamp(lib)


def engine_names(lib: Library, films: list) -> list[str]:
    """The engines these films can be searched with, worked out once per film versions and tag
    store state (not on every rerun: it reads every film's subtitles and the tag database)."""
    return _engine_names(*_state_key(lib, films))


def lacking_engines(lib: Library, films: list) -> dict[str, list[str]]:
    """Engines left out because some of ``films`` lack what they need, with those films (cached alike)."""
    return _lacking(*_state_key(lib, films))


def engine(name: str, lib: Library, ms: ModelState, weight: float = 0.5) -> Engine:
    """An engine kept across reruns (its query vectors, searchers and tag indexes are caches keyed
    by film versions inside it, so a re-indexed or newly tagged film is never served stale)."""
    return _engine(str(lib.root), ms.model_id, name, weight)


def model_engines(lib: Library, ms: ModelState, names: list[str]) -> list[ModelEngine]:
    """The engines among ``names`` that draw a Timeline row (a model per frame, pooled per shot)."""
    return pick([engine(n, lib, ms) for n in names])

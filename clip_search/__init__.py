"""Frame Search Lab engine: video -> frames -> vectors -> on-disk library -> scores -> hits and moments.

Usable without Streamlit, as a library or through ``python -m clip_search``. Four names, the way
openai/CLIP exposes three::

    import clip_search
    library = clip_search.Library("library")
    model = clip_search.load("openai/clip-vit-base-patch32")   # or a local folder
    clip_search.index("film.mp4", library, model)
    hits = clip_search.find(library, model, "a ship at sea")
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

# The model's OpenMP threads share the cores with the decoder. After each parallel region libgomp
# spins 300 000 times by default before it sleeps, burning the core the decoder needs; a short
# spin made indexing 12 % faster on 2 cores (bench_index.py). Read when torch loads libgomp, so
# it is set before any torch import; a value the user set wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from clip_search.errors import FrameSearchError, ModelLoadError, VideoError

if TYPE_CHECKING:
    from clip_search.encoders import DualEncoder
    from clip_search.search.scoring import Hit
    from clip_search.store.library import Film, Library

__all__ = ["FrameSearchError", "Library", "ModelLoadError", "VideoError", "find", "index", "load"]


def __getattr__(name: str):
    if name == "Library":  # read when asked: importing the package stays as light as its errors
        from clip_search.store.library import Library  # the package's import stays as light as its errors

        return Library
    raise AttributeError(f"module 'clip_search' has no attribute {name!r}")


def load(model: str | None = None, device: str | None = None, precision: str | None = None) -> DualEncoder:
    """A dual text-image encoder by name (hub id, open_clip name or local folder); torch loads now."""
    from clip_search.encoders import load_encoder  # torch: only when a model is asked for

    return load_encoder(model, device, precision)


def index(path: str | os.PathLike, library: Library, model: DualEncoder) -> Film:
    """Index one film (1 frame per second) into ``library`` with ``model``; reused when already indexed."""
    from clip_search.indexing.indexer import index_film  # the decoder and encoder threads: only when indexing

    return index_film(path, library, model).film


def find(library: Library, model: DualEncoder, text: str, top_k: int = 10) -> list[Hit]:
    """The ``top_k`` frames of the library's films that match ``text``, best first, with their moments
    (named ``find``: ``clip_search.search`` is the package that scores and ranks)."""
    from clip_search.search.scoring import Searcher, build_query  # the package's import stays light

    films = library.films(model.model_id)
    return Searcher(films, library).search(build_query(model, text), top_k=top_k)

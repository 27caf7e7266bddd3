"""Engines: the core layer every search goes through. Each way of searching scores the same sampled
frames behind one protocol (``engines.base.Engine``), so Search, Timeline, Compare and Evaluate
treat models, taggers, dialogue and their fusion alike:

  clip            the library's default model (see ``Library.default_model``)
  <model>         any other model films have vectors of, named as a model is named: a hub id,
                  open_clip:hf-hub:ORG/REPO, open_clip:ARCH/PRETRAINED or a local folder
  tags:<service>  BM25 + semantic search over a tagger's stored tags (offline, azure, rekognition)
  dialogue        subtitles (or on-screen text) matched to the query
  clip+dialogue   the default model and dialogue, min-max scaled, w x model + (1 - w) x dialogue

This module is the registry: the only code that turns an engine's name into an engine, or says
which engines can run on a set of films. Models load lazily through ``Encoders``, a bounded,
thread-safe cache (a few resident, least recently used evicted)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from clip_search.errors import FrameSearchError, ModelLoadError
from clip_search.library import Film, Library
from engines.base import Engine, EngineUnavailable, Evidence, Explanation, LockedLRU, Query, as_query
from engines.dialogue import DialogueEngine
from engines.fused import FUSION_WEIGHT, FusedEngine
from engines.model import EXPLAIN_CROPS, ModelEngine
from engines.result import Result
from engines.tags import TagEngine
from tagging.taggers import SERVICES

__all__ = [
    "EXPLAIN_CROPS",
    "FUSION_WEIGHT",
    "DialogueEngine",
    "Encoders",
    "Engine",
    "EngineUnavailable",
    "Evidence",
    "Explanation",
    "FusedEngine",
    "ModelEngine",
    "Query",
    "Result",
    "TagEngine",
    "as_query",
    "available",
    "engine_names",
    "make_engine",
    "parse_engine",
]

DEFAULT = "clip"
FUSED = "clip+dialogue"
RESIDENT_MODELS = 3  # loaded models kept at once (each holds its weights in memory)


class Encoders:
    """Loaded models by name: loaded on first use, at most ``capacity`` resident (the least
    recently used is dropped), one load at a time per model; safe to share between sessions."""

    def __init__(
        self,
        capacity: int = RESIDENT_MODELS,
        device: str | None = None,
        precision: str | None = None,
        loader: Callable | None = None,
    ) -> None:
        self.device, self.precision = device, precision
        self._loader = loader
        self._loaded = LockedLRU(capacity)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def __call__(self, model: str):
        """The loaded model (ModelLoadError, one sentence, when it cannot be loaded)."""
        found = self._loaded.peek(model)
        if found is not None:
            return found
        with self._guard:
            lock = self._locks.setdefault(model, threading.Lock())
        with lock:  # two sessions asking for one model load it once
            found = self._loaded.peek(model)
            if found is None:
                if self._loader is None:
                    from clip_search.encoders import load_encoder

                    self._loader = load_encoder
                found = self._loader(model, self.device, self.precision)
                self._loaded.put(model, found)
            return found

    def add(self, encoder) -> None:
        """Keep an already loaded model (the CLI's --model, a test's encoder)."""
        self._loaded.put(encoder.model_id, encoder)

    def resident(self) -> int:
        return len(self._loaded)


def _is_model(name: str) -> bool:
    if name in (DEFAULT, FUSED, "dialogue") or name.startswith("tags:"):
        return False
    from clip_search.encoders import resolve

    try:
        resolve(name)
        return True
    except ModelLoadError:
        return False


def parse_engine(name: str) -> str:
    """``name`` if it names an engine (a fixed name, or any model name), else ValueError naming them."""
    name = name.strip()
    if name in engine_names() or _is_model(name):
        return name
    raise ValueError(f"unknown engine {name!r} (choose from {', '.join(engine_names())}, or a model name)")


def engine_names(library: Library | None = None, films: Sequence[Film] | None = None) -> list[str]:
    """The fixed engine names, and with a library every other model its films have vectors of."""
    names = [DEFAULT, *[f"tags:{s}" for s in SERVICES], "dialogue", FUSED]
    if library is None:
        return names
    return [*_model_names(library, library.films() if films is None else films), *names[1:]]


def _model_names(library: Library, films: Sequence[Film]) -> list[str]:
    """``clip`` (the default model), then every other model ``films`` have vectors of."""
    films = list(films)
    default = library.default_model(films or None)
    return [DEFAULT, *[m for m in library.models(films) if m != default]]


def available(library: Library, films: Sequence[Film]) -> list[str]:
    """The engines that can run on ``films``: the default model, every other model some of them
    have, each service that has tagged all of them, and dialogue when there is any."""
    from tagging.tag_store import tagged_services

    names = _model_names(library, films)
    services = set(SERVICES)
    for f in films:
        services &= set(tagged_services(library, f))
    names += [f"tags:{s}" for s in SERVICES if s in services]
    if any(f.dialogue().cues for f in films) or "offline" in services:
        names += ["dialogue", FUSED]
    return names


def lacking(library: Library, films: Sequence[Film]) -> dict[str, list[str]]:
    """Engines that some of ``films`` can run but not all, each with the names of the films that
    lack what it needs (a tagging service's tags): what the engine list leaves out, said."""
    from tagging.tag_store import tagged_services

    tagged = {f.name: set(tagged_services(library, f)) for f in films}
    out = {}
    for s in SERVICES:
        lack = sorted(name for name, services in tagged.items() if s not in services)
        if lack and len(lack) < len(tagged):
            out[f"tags:{s}"] = lack
    return out


def make_engine(
    name: str,
    library: Library,
    encoders=None,
    fusion_weight: float = FUSION_WEIGHT,
    default: ModelEngine | None = None,
) -> Engine:
    """The engine called ``name``. ``encoders``: an ``Encoders`` cache, or one loaded model (then
    ``clip`` is that model). ``default``: a kept engine of the default model to reuse. ValueError
    for a name that is no engine."""
    name = parse_engine(name)
    if name.startswith("tags:"):
        return TagEngine(library, name.split(":", 1)[1])
    if name == "dialogue":
        return DialogueEngine(library)
    single = encoders is not None and hasattr(encoders, "encode_text")
    cache = encoders if isinstance(encoders, Encoders) else Encoders()
    if single:
        cache.add(encoders)
    if name in (DEFAULT, FUSED):
        seen = default or ModelEngine(encoders.model_id if single else library.default_model(), cache, name=DEFAULT)
        return seen if name == DEFAULT else FusedEngine(FUSED, seen, DialogueEngine(library), fusion_weight)
    from clip_search import config

    return ModelEngine(config.model_id(name), cache)


def priced_without_calls(library: Library) -> list[Engine]:
    """The paid taggers, whose cost per film-hour comes from the price table alone: shown beside
    the others even before their credentials are set or a frame is tagged."""
    from tagging.pricing import price_table

    table = price_table(library.root)
    paid = [s for s in SERVICES if table.get(s, {}).get("calls_per_frame")]
    return [TagEngine(library, s) for s in paid]


def model_engines(engines: Sequence[Engine]) -> list[Engine]:
    """The engines of ``engines`` that read a model's vectors, one per model (Timeline rows)."""
    seen: dict[str, Engine] = {}
    for e in engines:
        if isinstance(e, ModelEngine) and e.model not in seen:
            seen[e.model] = e
    return list(seen.values())


def unavailable_reason(engine: Engine, films: Sequence[Film]) -> str | None:
    """Why ``engine`` cannot run on ``films`` (one line), or None when it can."""
    try:
        engine.check(films)
    except FrameSearchError as e:
        return str(e)
    return None

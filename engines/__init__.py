"""Engines: the core layer every search goes through. Each way of searching scores the same sampled
frames behind one protocol (``engines.base.Engine``) and answers with one ``Result``, so Search,
Timeline, Compare and Evaluate treat models, taggers, dialogue and their fusion alike:

  clip            the library's default model (an alias this registry owns)
  <model>         any other model films have vectors of, named as a model is named: a hub id,
                  open_clip:hf-hub:ORG/REPO, open_clip:ARCH/PRETRAINED or a local folder
  tags:<service>  BM25 + semantic search over a tagging service's stored tags
  cloud:<service> a cloud embedding service's vectors of the frames (titan, nova, marengo, gemini, azure)
  dialogue        subtitles (or on-screen text) matched to the query
  clip+dialogue   the default model and dialogue, min-max scaled, w x model + (1 - w) x dialogue
  random          chance: the baseline evaluation measures every engine against
  <plugin>        an engine a lab installed (entry point ``framesearch.engines``)

This module is the registry, declared as data (``FIXED``, ``FAMILIES``, the plugins): the only code
that turns an engine's name into an engine, or says which engines can run on a set of films. What
an engine can do is read from its flags (``moments``, ``evidence``, ``needs_credentials``,
``baseline``), never from its name. Models load lazily through ``Encoders``, a bounded,
thread-safe cache (a few resident, least recently used evicted)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from clip_search.encoders import load_encoder, resolve
from clip_search.errors import FrameSearchError, ModelLoadError
from clip_search.plugins import plugins
from clip_search.store.library import Film, Library
from engines.base import Engine, EngineUnavailable, Evidence, Explanation, LockedLRU, Query, as_query
from engines.chance import ChanceEngine
from engines.cloud import CloudEngine
from engines.dialogue import DialogueEngine
from engines.fused import FUSION_WEIGHT, FusedEngine, Fusion
from engines.model import EXPLAIN_CROPS, ModelEngine
from engines.pooled import POOLED, PooledEngine
from engines.result import MomentHit, Result
from engines.tags import TAGS, TagEngine
from tagging.embedders import CLOUD, embedding_service
from tagging.pricing import price_table
from tagging.tag_store import tagged_services
from tagging.taggers import local_service, services

__all__ = [
    "DEFAULT",
    "EXPLAIN_CROPS",
    "FUSED",
    "FUSION_WEIGHT",
    "DialogueEngine",
    "Encoders",
    "Engine",
    "EngineUnavailable",
    "Evidence",
    "Explanation",
    "FusedEngine",
    "Fusion",
    "ModelEngine",
    "MomentHit",
    "PooledEngine",
    "Query",
    "Result",
    "TagEngine",
    "as_query",
    "available",
    "chance",
    "default_engine",
    "engine_names",
    "make_engine",
    "parse_engine",
    "split_names",
]

DEFAULT = "clip"  # the alias of the library's default model
FUSE = "fuse("  # fuse(a, b, c): reciprocal rank fusion of any engines; fuse(a, b; minmax[=w1,w2]): a blend
FUSED = "clip+dialogue"  # the default model and dialogue, fused
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
                    self._loader = load_encoder
                found = self._loader(model, self.device, self.precision)
                self._loaded.put(model, found)
            return found

    def add(self, encoder) -> None:
        """Keep an already loaded model (the CLI's --model, a test's encoder)."""
        self._loaded.put(encoder.model_id, encoder)

    def resident(self) -> int:
        return len(self._loaded)


class _Making:
    """What making engines needs: the library, the models' cache, the fusion weight, and the engine
    of the default model (made once, shared by ``clip`` and ``clip+dialogue``)."""

    def __init__(self, library: Library, encoders, fusion_weight: float, default: ModelEngine | None) -> None:
        single = encoders is not None and hasattr(encoders, "encode_text")  # one loaded model
        self.cache = encoders if isinstance(encoders, Encoders) else Encoders()
        if single:
            self.cache.add(encoders)
        self.library, self.weight, self._default = library, fusion_weight, default
        self._model = encoders.model_id if single else None

    def default(self) -> ModelEngine:
        if self._default is None:
            self._default = ModelEngine(self._model or self.library.default_model(), self.cache, name=DEFAULT)
        return self._default


# The engines with fixed names, and the families named by a prefix, as data: name -> how one is made.
FIXED: dict[str, Callable[[_Making], Engine]] = {
    DEFAULT: lambda m: m.default(),
    DialogueEngine.name: lambda m: DialogueEngine(m.library),
    FUSED: lambda m: FusedEngine(FUSED, m.default(), DialogueEngine(m.library), m.weight),
    ChanceEngine.name: lambda m: ChanceEngine(),
}
FAMILIES: dict[str, Callable[[_Making, str], Engine]] = {
    TAGS: lambda m, service: TagEngine(m.library, service),
    FUSE: lambda m, spec: _fusion(m, spec),
    POOLED: lambda m, inner: _pooled(m, inner),
    CLOUD: lambda m, service: CloudEngine(m.library, f"{CLOUD}{service}"),
}
SEARCHABLE = (DEFAULT, DialogueEngine.name, FUSED)  # fixed engines a user searches with (chance is a baseline)


def _plugins() -> dict[str, type]:
    """Engines other packages installed (``framesearch.engines``): each an Engine class made from the
    library; a plugin cannot take a name of ours."""
    return {n: cls for n, cls in plugins("framesearch.engines").items() if n not in FIXED and not n.startswith(TAGS)}


def _model(name: str) -> str | None:
    """The model ``name`` names, resolved once (None when it names no model)."""
    try:
        return resolve(name).name
    except ModelLoadError:
        return None


def parse_engine(name: str) -> str:
    """``name`` if it names an engine (a fixed name, a family's member, a fusion of engines, a plugin,
    or any model name), else ValueError naming them."""
    name = name.strip()
    if name.startswith(POOLED):
        inner = parse_engine(name[len(POOLED) :])
        if inner.startswith((TAGS, FUSE, POOLED)) or inner in (DialogueEngine.name, FUSED, ChanceEngine.name):
            raise ValueError(f"{name}: only a model's vectors can be pooled")
        return name
    if name.startswith(CLOUD):
        embedding_service(name)  # ValueError naming the services
        return name
    if name.startswith(FUSE):
        parts, method, weights = _fusion_spec(name[len(FUSE) :])
        Fusion(name, [ChanceEngine()] * len(parts), method, weights)  # the method and weights are valid
        for p in parts:
            parse_engine(p)
        return name
    if name in engine_names() or name in FIXED or name in _plugins() or _model(name):
        return name
    raise ValueError(f"unknown engine {name!r} (choose from {', '.join(engine_names())}, or a model name)")


def engine_names(library: Library | None = None, films: Sequence[Film] | None = None) -> list[str]:
    """The engines a user can search with, and with a library every other model its films have vectors of."""
    names = [DEFAULT, *[f"{TAGS}{s}" for s in services()], *SEARCHABLE[1:], *_plugins()]
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
    have, each service that has tagged all of them, dialogue when there is any, and each plugin
    engine that can search them."""
    names = _model_names(library, films)
    names.append(f"{POOLED}{DEFAULT}")  # what the default model sees over a shot, beside per frame
    tagged = set(services())
    for f in films:
        tagged &= set(tagged_services(library, f))
    names += [f"{TAGS}{s}" for s in services() if s in tagged]
    if any(f.dialogue().cues for f in films) or local_service() in tagged:  # on-screen text is dialogue too
        names += list(SEARCHABLE[1:])
        if local_service() in tagged:  # what is seen, the free tags and what is said, ranks fused
            names.append(f"{FUSE}{DEFAULT}, {TAGS}{local_service()}, {DialogueEngine.name})")
    making = _Making(library, None, FUSION_WEIGHT, None)
    for name, cls in _plugins().items():
        if unavailable_reason(_plugin(cls, making), films) is None:
            names.append(name)
    return names


def lacking(library: Library, films: Sequence[Film]) -> dict[str, list[str]]:
    """Engines that some of ``films`` can run but not all, each with the names of the films that
    lack what it needs (a tagging service's tags): what the engine list leaves out, said."""
    tagged = {f.name: set(tagged_services(library, f)) for f in films}
    out = {}
    for s in services():
        lack = sorted(name for name, done in tagged.items() if s not in done)
        if lack and len(lack) < len(tagged):
            out[f"{TAGS}{s}"] = lack
    return out


def service_of(name: str) -> str | None:
    """The tagging service a tag engine's name reads (None for any other engine)."""
    return name[len(TAGS) :] if name.startswith(TAGS) else None


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
    name = name.strip()
    making = _Making(library, encoders, fusion_weight, default)
    if name in FIXED:
        return FIXED[name](making)
    for prefix, make in FAMILIES.items():
        if name.startswith(prefix):
            return make(making, name[len(prefix) :])
    found = _plugins().get(name)
    if found is not None:
        return _plugin(found, making)
    model = _model(name)
    if model is None:
        parse_engine(name)  # raises, naming the engines
    return ModelEngine(model, making.cache)


def split_names(text: str) -> list[str]:
    """Engine names separated by commas, a comma inside a fusion's parentheses not separating."""
    names, depth, start = [], 0, 0
    for i, ch in enumerate(text + ","):
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            names.append(text[start:i].strip())
            start = i + 1
    return [n for n in names if n]


def _fusion_spec(spec: str) -> tuple[list[str], str, list[float]]:
    """'a, b, c)' -> ([a, b, c], 'rrf', []); 'a, b; minmax=0.7,0.3)' -> ([a, b], 'minmax', [0.7, 0.3]).
    Parts are split at top-level commas, so a part may itself be a fusion."""
    if not spec.endswith(")"):
        raise ValueError(f"a fusion is written fuse(a, b, ...), not fuse({spec}")
    body, _, options = spec[:-1].partition(";")
    parts = split_names(body)
    method, _, weights = options.strip().partition("=")
    try:
        values = [float(w) for w in weights.split(",") if w.strip()]
    except ValueError:
        raise ValueError(f"fusion weights are numbers, not {weights!r}") from None
    return parts, method.strip() or "rrf", values


def _fusion(making: _Making, spec: str) -> Engine:
    parts, method, weights = _fusion_spec(spec)
    name = f"{FUSE}{spec}"
    made = [make_engine(p, making.library, making.cache, making.weight, making.default()) for p in parts]
    return Fusion(name, made, method, weights)


def _pooled(making: _Making, inner: str) -> Engine:
    """pooled:<engine>: that model engine's frame vectors averaged per shot."""
    engine = make_engine(inner, making.library, making.cache, making.weight, making.default())
    if not isinstance(engine, ModelEngine):
        raise ValueError(f"{POOLED}{inner}: only a model's vectors can be pooled, and {inner} is no model")
    return PooledEngine(f"{POOLED}{inner}", engine)


def _plugin(cls: type, making: _Making) -> Engine:
    return cls(making.library)


def default_engine(model: str, encoders) -> ModelEngine:
    """The engine ``clip`` names when the front end chose its model (a session's model, ``--model``):
    kept by the caller and passed to ``make_engine`` as ``default``, so ``clip`` and ``clip+dialogue``
    share its caches."""
    return ModelEngine(model, encoders, name=DEFAULT)


def chance() -> Engine:
    """The chance baseline every evaluation measures engines against."""
    return ChanceEngine()


def priced_without_calls(library: Library) -> list[Engine]:
    """The paid taggers, whose cost per film-hour comes from the price table alone: shown beside
    the others even before their credentials are set or a frame is tagged."""
    table = price_table(library.root)
    paid = [s for s in services() if table.get(s, {}).get("calls_per_frame")]
    return [TagEngine(library, s) for s in paid]


def model_engines(engines: Sequence[Engine]) -> list[Engine]:
    """The engines of ``engines`` that draw a Timeline row of a model's vectors (``timeline_row``):
    one per model and kind (a model per frame, and pooled per shot)."""
    seen: dict[tuple, Engine] = {}
    for e in engines:
        if e.timeline_row and (type(e), e.model) not in seen:
            seen[(type(e), e.model)] = e
    return list(seen.values())


def unavailable_reason(engine: Engine, films: Sequence[Film]) -> str | None:
    """Why ``engine`` cannot run on ``films`` (one line), or None when it can."""
    try:
        engine.check(films)
    except FrameSearchError as e:
        return str(e)
    return None

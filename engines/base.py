"""The engine protocol: every way of searching (a model's vectors, a tagger's tags, dialogue, a
fusion) scores the same sampled frames, explains a frame, says what it costs, and ranks like
CLIP search does. Nothing here branches on an engine's name: the registry (``engines``) is the one
place that turns names into engines."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from clip_search.errors import FrameSearchError
from clip_search.search.moments import Moment, propose
from clip_search.search.scoring import DEFAULT_GAP, Hit, hit_maker, top_frames
from clip_search.store.library import Film, in_order
from engines.cost import CostContext, EngineCost
from engines.result import Chooser, Evidence, Explanation, Query, Result, as_query


class EngineUnavailable(FrameSearchError):
    """An engine that cannot run on these films (no tags, no dialogue, no model, no vectors)."""


class Engine:
    """The protocol: ``usable``, ``scores``, ``explain``, ``cost``; ``run`` ranks like CLIP search and
    returns the one ``Result`` every view and the evaluation read.

    ``text_only``: only the query's text is used (no image, no negative); ``score_label`` names
    what the scores are (cosine, or a 0..1 match score); ``model``: the model whose vectors the
    engine reads, if any (the Timeline draws a row per model)."""

    name: str = ""
    logit_scale: float | None = 100.0  # for the softmax column; None: each film's model's own
    text_only = True
    score_label = "score"
    model: str | None = None
    description = ""
    # Capabilities, as flags (code asks these, never an engine's name):
    evidence_in_listing = False  # a hit list shows each hit's evidence (a tagger's matched tags)
    evidence: tuple[str, ...] = ()  # the kinds of evidence its explanations give
    moments = True  # its hits carry moments: the frames around each hit that score high too
    needs_credentials = False  # it calls a paid service, whose credentials must be set
    baseline = False  # chance: the floor evaluation measures engines against, not a way to search
    model_scores = False  # its scores are a model's own similarities (its probability applies to them)
    timeline_row = False  # it draws a Timeline row of a model's vectors (``timeline(film, query)``)
    row_on_request = False  # ... only when it is the engine searched with (a variant of a model's row)

    def said(self, film: Film):
        """The dialogue this engine reads for ``film`` (None: it reads none)."""
        return None

    def usable(self, films: Sequence[Film]) -> list[Film]:
        """The films this engine can score; raises EngineUnavailable (with the fix) when none."""
        return list(films)

    def check(self, films: Sequence[Film]) -> None:
        """Raise EngineUnavailable unless this engine can run on ``films`` as a set."""
        self.usable(films)

    def scores(self, film: Film, query: str | Query) -> np.ndarray:
        """Score of every sampled frame of ``film`` (aligned with ``film.times``)."""
        raise NotImplementedError

    def explain(self, film: Film, frame: int, query: str | Query, crops: bool = False) -> Explanation:
        """The evidence that made ``frame`` score as it did (``crops``: where in the frame, for an
        engine that can tell)."""
        raise NotImplementedError

    def notices(self, query: str | Query) -> list[str]:
        """What the user should know about how this engine read the query (e.g. it was cut short)."""
        return []

    def label(self, query: str | Query) -> str:
        """The query as this engine uses it (a text-only engine ignores image and negative)."""
        return as_query(query).used(self.text_only).label()

    def cost(self, films: Sequence[Film], ctx: CostContext) -> EngineCost:
        """What this engine costs per film-hour of ``films`` (None: not measured yet)."""
        return EngineCost(self.name, 0.0, "no per-frame work")

    def scores_of(self, films: Sequence[Film], query: str | Query) -> list[np.ndarray]:
        """Every film's frame scores for one search over ``films`` (an engine that scales its scores
        over the films searched overrides this)."""
        return [self.scores(f, query) for f in films]

    def scored(self, films: Sequence[Film], query: str | Query) -> tuple[list[Film], list[np.ndarray]]:
        """The films of ``films`` this engine can search, and each one's frame scores for one search
        over them: what ``search`` ranks, and what tie-aware evaluation ranks in many tie orders."""
        query = as_query(query).used(self.text_only)
        if not query.text.strip() and query.image is None:
            raise FrameSearchError("The query is empty.")
        films = self.usable(films)
        return films, self.scores_of(films, query)

    def run(
        self,
        films: Sequence[Film],
        query: str | Query,
        top_k: int = 10,
        gap: float = DEFAULT_GAP,
    ) -> Result:
        """The one search path: every view and the evaluation read this result. The top ``top_k``
        frames, best first, no two of a film within ``gap`` seconds, ties earlier frame first."""
        query = as_query(query).used(self.text_only)
        films, per_film = self.scored(in_order(films), query)
        return self.result_of(films, per_film, query, top_k, gap)

    def result_of(self, films: list[Film], per_film: list[np.ndarray], query: Query, top_k: int, gap: float) -> Result:
        """The result this engine serves from every frame's scores over ``films`` (what ``run`` computed,
        or those scores restricted to a time range)."""
        hit = self._labelled(films, query, hit_maker(films, per_film, self.logit_scale))
        choose = self.chooser(films, per_film, query, top_k, gap)
        return Result(self, query, films, choose(None), hit, choose, per_film, top_k=top_k, gap=gap)

    def chooser(
        self, films: Sequence[Film], per_film: list[np.ndarray], query: Query, top_k: int, gap: float
    ) -> Chooser:
        """How this engine picks the frames it serves from one search's scores, ties ordered by the
        generator given (None: earlier frame first): the best, ``gap`` apart. An engine that serves
        one hit per line of dialogue, say, overrides this."""
        return lambda rng, draws=None: top_frames(films, per_film, top_k, gap, rng, draws)

    def proposals(self, film: Film, scores: np.ndarray, query: Query) -> list[Moment]:
        """This engine's moments of one film, from its frame scores (best first): the score curve cut
        watershed-like and de-duplicated (``moments.propose``). Dialogue proposes its lines instead."""
        return propose(film.times, scores, film.manifest.duration, film.shots())

    def hit_label(self, film: Film, frame: int, query: Query) -> str | None:
        """What a hit is, in words, where the engine knows (the line of dialogue)."""
        return None

    def _labelled(self, films: Sequence[Film], query: Query, make) -> Callable[[int, int, float], Hit]:
        def hit(f: int, i: int, score: float) -> Hit:
            h = make(f, i, score)
            h.label = self.hit_label(films[f], i, query)
            return h

        return hit

    def search(self, films: Sequence[Film], query: str | Query, top_k: int = 10, gap: float = DEFAULT_GAP) -> list[Hit]:
        """The hits of ``run``."""
        return self.run(films, query, top_k, gap).hits

    def _explanation(
        self, film: Film, frame: int, query: Query, evidence: list[Evidence], note=None, score: float | None = None
    ) -> Explanation:
        """The explanation of one frame; ``score`` when the caller already scored the film."""
        score = float(self.scores(film, query)[frame]) if score is None else score
        return Explanation(self.name, film.name, frame, float(film.times[frame]), score, evidence, note)


class LockedLRU:
    """A small least-recently-used map that concurrent sessions may share (every access locked)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key, make: Callable[[], object]):
        """The value under ``key``, made (outside the lock) and kept when missing."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        self.put(key, value)
        return value

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def peek(self, key):
        """The value under ``key`` or None, marking it recently used."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None


def minmax(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """The arrays scaled to 0..1 by their joint minimum and maximum (all zeros when flat)."""
    every = [a for a in arrays if len(a)]
    lo = min((float(a.min()) for a in every), default=0.0)
    hi = max((float(a.max()) for a in every), default=0.0)
    return [(a - lo) / (hi - lo) if hi > lo else np.zeros_like(a) for a in arrays]

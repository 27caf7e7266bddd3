"""A query, and one engine's answer to it over a set of films: what Search lists, what the score strips,
Compare and Timeline draw, and what Evaluate scores. Made once per search (``Engine.run``), so the
views and the evaluation read the same hits instead of asking the engine again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from clip_search.search.scoring import DEFAULT_NEGATIVE_WEIGHT

if TYPE_CHECKING:  # annotations only
    from clip_search.search.scoring import Hit
    from clip_search.store.library import Film

Pick = tuple[int, int, float]  # (index into the films searched, frame, score)


class Chooser(Protocol):
    """An engine's selection over one search's scores: its picks, ties ordered by ``rng`` (None:
    earlier frame first); with ``draws``, that many selections, each in its own tie order."""

    def __call__(self, rng: np.random.Generator | None, draws: int | None = None) -> list: ...


@dataclass
class MomentHit:
    """One ranked moment: a stretch of a film, its score (its best frame's) and when it peaks."""

    film: str
    film_id: str
    source: str
    start: float
    end: float
    score: float
    peak: float

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, film: Film, moment) -> MomentHit:
        """A moment of ``film`` (a ``moments.Moment``) as a ranked hit, its times and score rounded as hits' are."""
        return cls(
            film.name,
            film.id,
            film.manifest.source,
            round(moment.start, 3),
            round(moment.end, 3),
            round(moment.peak_score, 6),
            round(moment.peak_time, 3),
        )

    def window(self) -> list[float]:
        """[start, end, score]: a predicted window as the moment-retrieval benchmarks submit it."""
        return [self.start, self.end, self.score]


@dataclass(frozen=True, eq=False)
class Query:
    """What the user asked: text, and for a model engine also an image and a description to push
    away from."""

    text: str = ""
    negative: str = ""
    negative_weight: float = DEFAULT_NEGATIVE_WEIGHT
    image: np.ndarray | None = None

    def label(self) -> str:
        return self.text or "[image]"

    def used(self, text_only: bool) -> Query:
        """The parts of this query an engine uses (a text-only engine ignores image and negative)."""
        return Query(self.text) if text_only else self


def as_query(query: str | Query) -> Query:
    return query if isinstance(query, Query) else Query(text=query)


@dataclass
class Evidence:
    """One reason a frame matched: a tag, caption, OCR line or subtitle cue, or a model's measure."""

    kind: str
    text: str
    confidence: float | None = None
    start: float | None = None
    end: float | None = None


@dataclass
class Explanation:
    """Why ``frame`` of ``film`` scored ``score`` for a query, by one engine."""

    engine: str
    film: str
    frame: int
    time: float
    score: float
    evidence: list[Evidence] = field(default_factory=list)
    note: str | None = None
    grid: list[dict] = field(default_factory=list)  # a model: crops of the frame, {"box": [l, t, r, b], "score"}
    frame_size: tuple[int, int] | None = None  # (width, height) the boxes refer to

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(eq=False)
class Result:
    """The hits of one search, best first, with what produced them.

    ``films``: the films the engine searched (those it can score); ``picks``: the chosen frames;
    ``per_film``: every frame's score over ``films`` when the search computed them (None when an
    archive index gave the candidates; ``scores`` computes them on demand). ``choose(rng, draws)`` is
    the engine's own selection over the same scores, ties ordered by ``rng``: what tie-aware evaluation
    redraws (``orders``). Hits and explanations are built only when read."""

    engine: Any  # the engines.base.Engine that ran (it builds its results, so it is not imported here)
    query: Query
    films: list[Film]
    picks: list[Pick]
    make_hit: Callable[[int, int, float], Hit]
    choose: Chooser
    per_film: list[np.ndarray] | None = None
    top_k: int = 10
    gap: float = 2.0
    _explained: dict = field(default_factory=dict, repr=False)
    _scored: dict = field(default_factory=dict, repr=False)

    @cached_property
    def hits(self) -> list[Hit]:
        return [self.hit(n) for n in range(len(self.picks))]

    def hit(self, n: int) -> Hit:
        """The ``n``-th hit (its moment and standing computed now)."""
        return self.make_hit(*self.picks[n])

    @cached_property
    def notices(self) -> list[str]:
        """What the user should know about how the engine read the query (it was cut short, say)."""
        return self.engine.notices(self.query)

    @cached_property
    def label(self) -> str:
        """The query as the engine used it."""
        return self.engine.label(self.query)

    def scores(self, film: Film) -> np.ndarray | None:
        """Every frame's score of ``film`` on this search's scale (None: the engine cannot score it)."""
        searched = next((n for n, f in enumerate(self.films) if f.id == film.id), None)
        if searched is None:
            return None
        if self.per_film is not None:
            return self.per_film[searched]
        if film.id not in self._scored:  # archive search: this film alone (no patches there, so no footing)
            self._scored[film.id] = self.engine.scores_of([self.films[searched]], self.query)[0]
        return self._scored[film.id]

    def explain(self, film: Film, frame: int, crops: bool = False) -> Explanation:
        """Why ``frame`` of ``film`` scored as it did, its score the one this search gave it."""
        key = (film.id, frame, crops)
        if key not in self._explained:
            why = self.engine.explain(film, frame, self.query, crops=crops)
            scores = self.scores(film)
            if scores is not None:
                why.score = float(scores[frame])
            self._explained[key] = why
        return self._explained[key]

    def moments(self, k: int = 10) -> list[MomentHit]:
        """The ``k`` best moments over the films searched, best first: each film's own proposals from
        its scores on this search's scale (``Engine.proposals``), ranked together. An archive search
        proposes moments in the films its hits are in (scoring every film would defeat the index)."""
        films = self.films
        if self.per_film is None:
            hit_films = {h.film_id for h in self.hits}
            films = [f for f in films if f.id in hit_films]
        out = []
        for film in films:
            out += [MomentHit.of(film, m) for m in self.engine.proposals(film, self.scores(film), self.query)]
        out.sort(key=lambda m: (-m.score, m.film_id, m.start))
        return out[:k]

    def tied(self, depth: int) -> bool:
        """Whether equal scores reach into the top ``depth`` frames (the order among them is then arbitrary)."""
        if self.per_film is None:  # archive search: only the candidates' scores are known
            scores = [p[2] for p in self.picks]
            return len(set(scores)) < len(scores)
        flat = np.concatenate(self.per_film) if self.per_film else np.zeros(0, np.float32)
        low = self.picks[-1][2] if len(self.picks) == depth else -np.inf
        top = flat[flat >= np.float32(low)] if np.isfinite(low) else flat
        top = top[np.isfinite(top)]
        return len(np.unique(top)) < len(top)

    def orders(self, rng: np.random.Generator, draws: int) -> list[list[Pick]]:
        """The engine's picks in ``draws`` random orders of the tied scores, drawn together."""
        return self.choose(rng, draws)

    def redrawn(self, rng: np.random.Generator) -> Result:
        """The same search with the order among tied scores drawn from ``rng``."""
        return Result(
            self.engine,
            self.query,
            self.films,
            self.choose(rng),
            self.make_hit,
            self.choose,
            self.per_film,
            self.top_k,
            self.gap,
        )

    def between(self, after: float | None = None, before: float | None = None) -> Result:
        """The same search served only from frames between ``after`` and ``before`` seconds (either
        may be None): hits, strips and moments all come from inside the range."""
        if after is None and before is None:
            return self
        lo = -np.inf if after is None else after
        hi = np.inf if before is None else before
        per_film = [
            np.where((f.times >= lo) & (f.times <= hi), self.scores(f), np.nan).astype(np.float32) for f in self.films
        ]
        return self.engine.result_of(self.films, per_film, self.query, self.top_k, self.gap)

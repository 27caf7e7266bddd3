"""One engine's answer to one query over a set of films: what Search lists, what the score strips,
Compare and Timeline draw, and what Evaluate scores. Made once per search (``Engine.run``), so the
views and the evaluation read the same hits instead of asking the engine again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: an engine builds its results
    from clip_search.library import Film
    from clip_search.search import Hit
    from engines.base import Engine, Explanation, Query

Pick = tuple[int, int, float]  # (index into the films searched, frame, score)


@dataclass(eq=False)
class Result:
    """The hits of one search, best first, with what produced them.

    ``films``: the films the engine searched (those it can score); ``picks``: the chosen frames;
    ``per_film``: every frame's score over ``films`` when the search computed them (None when an
    archive index gave the candidates; ``scores`` computes them on demand). ``choose(rng)`` is the
    engine's own selection over the same scores, ties ordered by ``rng``: what tie-aware evaluation
    redraws. Hits and explanations are built only when read."""

    engine: Engine
    query: Query
    films: list[Film]
    picks: list[Pick]
    make_hit: Callable[[int, int, float], Hit]
    choose: Callable[[np.random.Generator | None], list[Pick]]
    per_film: list[np.ndarray] | None = None
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

    def redrawn(self, rng: np.random.Generator) -> Result:
        """The same search with the order among tied scores drawn from ``rng``."""
        return Result(self.engine, self.query, self.films, self.choose(rng), self.make_hit, self.choose, self.per_film)

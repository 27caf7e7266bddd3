"""Chance as an engine-like baseline: what a ranking is worth when it knows nothing. Evaluation
measures every engine against it (its expected metrics come from many random rankings, see
``comparisons.statistics``); as an engine it scores each frame at random, reproducibly per query."""

from __future__ import annotations

import hashlib

import numpy as np

from clip_search.store.library import Film
from engines.base import Engine, Explanation, Query, as_query
from engines.cost import CostContext, EngineCost


class ChanceEngine(Engine):
    """Every frame scores a uniform random number, drawn from the query and the film alone."""

    name = "random"
    description = "chance: a random ranking (the floor every engine is measured against)"
    baseline = True
    moments = False

    def scores(self, film: Film, query: str | Query) -> np.ndarray:
        seed = hashlib.sha256(f"{film.id}\n{as_query(query).text}".encode()).digest()[:8]
        return np.random.default_rng(int.from_bytes(seed, "little")).random(len(film.times)).astype(np.float32)

    def explain(self, film: Film, frame: int, query: str | Query, crops: bool = False) -> Explanation:
        return self._explanation(film, frame, as_query(query), [], "a random score: chance knows nothing of the frame")

    def cost(self, films, ctx: CostContext) -> EngineCost:
        return EngineCost(self.name, 0.0, "no per-frame work")

"""A model and dialogue, fused: each min-max scaled over the films searched, mixed by a weight."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clip_search.store.library import Film
from engines.base import Engine, Explanation, Query, as_query, minmax
from engines.cost import CostContext, EngineCost
from engines.dialogue import DialogueEngine
from engines.model import ModelEngine

FUSION_WEIGHT = 0.5  # the model's share (the dashboard and CLI let users change it)


class FusedEngine(Engine):
    """``weight`` x the model + (1 - ``weight``) x dialogue, each scaled to 0..1 over the films searched."""

    def __init__(self, name: str, seen: ModelEngine, said: DialogueEngine, weight: float = FUSION_WEIGHT) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"the fusion weight must be between 0 and 1, not {weight}")
        self.name, self.seen, self.dialogue_engine, self.weight = name, seen, said, weight
        self.evidence = (*seen.evidence, *said.evidence)
        self.model = seen.model
        self.description = f"{name}: what is seen and what is said, blended"

    def said(self, film: Film):
        return self.dialogue_engine.said(film)

    def usable(self, films: Sequence[Film]) -> list[Film]:
        return self.seen.usable(films)

    def scores_of(self, films: Sequence[Film], query: str | Query) -> list[np.ndarray]:
        """Fused scores of each film, each engine scaled to 0..1 over all of ``films`` together: frames of
        different films then compare (scaled film by film, every film's best frame would tie at the top)."""
        query = Query(as_query(query).text)
        seen = minmax([self.seen.scores(f, query) for f in films])
        said = minmax([self.dialogue_engine.scores(f, query) for f in films])
        return [(self.weight * a + (1 - self.weight) * b).astype(np.float32) for a, b in zip(seen, said, strict=True)]

    def scores(self, film: Film, query: str | Query) -> np.ndarray:
        return self.scores_of([film], query)[0]

    def explain(self, film: Film, frame: int, query: str | Query, crops: bool = False) -> Explanation:
        query = Query(as_query(query).text)
        parts = [self.seen.explain(film, frame, query), self.dialogue_engine.explain(film, frame, query)]
        evidence = [e for p in parts for e in p.evidence]
        note = (
            f"{self.weight:.2f} x {self.seen.name} + {1 - self.weight:.2f} x dialogue, each scaled to 0..1 over the "
            "films searched (here: this film)"
        )
        return self._explanation(film, frame, query, evidence, note)

    def cost(self, films: Sequence[Film], ctx: CostContext) -> EngineCost:
        base = self.seen.cost(films, ctx)
        if base.usd_per_film_hour is None:
            return EngineCost(self.name, None, base.basis)
        basis = f"{self.seen.name}'s indexing (dialogue adds nothing per frame)"
        return EngineCost(self.name, base.usd_per_film_hour, basis)

"""Any engines, fused into one: reciprocal rank fusion by default (it needs no common score scale),
or a weighted blend of the parts' scores, each min-max scaled over the films searched.

``clip+dialogue`` is the blend of the default model and dialogue; ``fuse(a, b, c)`` in the registry
is RRF of any engines it can make (``fuse(a, b; minmax)`` or ``fuse(a, b; minmax=0.7,0.3)`` blends).
A fusion is an engine everywhere: it searches the films every part can search, explains a frame by
its parts' evidence, and costs the sum of its parts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clip_search.store.library import Film
from engines.base import Engine, EngineUnavailable, Explanation, Query, as_query, minmax
from engines.cost import CostContext, EngineCost

FUSION_WEIGHT = 0.5  # the model's share in clip+dialogue (the dashboard and CLI let users change it)
RRF_K = 60  # reciprocal rank fusion's constant (Cormack, Clarke and Buettcher 2009)
METHODS = ("rrf", "minmax")


def rrf(per_engine: list[list[np.ndarray]], k: int = RRF_K) -> list[np.ndarray]:
    """Each frame's sum over engines of 1 / (k + its rank among all frames of all films searched),
    rank 1 the best; equal scores share their average rank, a NaN score adds nothing."""
    from scipy.stats import rankdata  # SciPy loads only when statistics are computed

    sizes = [len(s) for s in per_engine[0]]
    total = np.zeros(sum(sizes))
    for films in per_engine:
        flat = np.concatenate(films).astype(np.float64) if films else np.zeros(0)
        finite = np.isfinite(flat)
        ranks = np.full(len(flat), np.inf)
        ranks[finite] = rankdata(-flat[finite], method="average")
        total += 1.0 / (k + ranks)
    return [a.astype(np.float32) for a in np.split(total, np.cumsum(sizes)[:-1])]


class Fusion(Engine):
    """``parts`` fused by ``method``: ``rrf`` (weights unused), or ``minmax`` with ``weights``."""

    def __init__(self, name: str, parts: Sequence[Engine], method: str = "rrf", weights: Sequence[float] = ()) -> None:
        if len(parts) < 2:
            raise ValueError(f"{name}: a fusion needs at least two engines")
        if method not in METHODS:
            raise ValueError(f"{name}: the fusion method is one of {', '.join(METHODS)}, not {method!r}")
        weights = list(weights) or [1.0 / len(parts)] * len(parts)
        if len(weights) != len(parts) or any(not 0.0 <= w <= 1.0 for w in weights):
            raise ValueError(f"{name}: give one weight from 0 to 1 per engine, not {weights}")
        self.name, self.parts, self.method, self.weights = name, list(parts), method, weights
        self.text_only = all(p.text_only for p in parts)
        self.evidence = tuple(dict.fromkeys(e for p in parts for e in p.evidence))
        self.needs_credentials = any(p.needs_credentials for p in parts)
        self.model = next((p.model for p in parts if p.model), None)
        self.score_label = "fused rank score" if method == "rrf" else "blended score"
        self.description = f"{name}: " + (" + ".join(p.name for p in parts)) + f" ({method})"

    def said(self, film: Film):
        return next((d for d in (p.said(film) for p in self.parts) if d is not None), None)

    def usable(self, films: Sequence[Film]) -> list[Film]:
        """The films every part can search."""
        ids = None
        for p in self.parts:
            have = {f.id for f in p.usable(films)}
            ids = have if ids is None else ids & have
        ok = [f for f in films if f.id in ids]
        if not ok:
            raise EngineUnavailable(f"{self.name}: no film that every one of its engines can search")
        return ok

    def check(self, films: Sequence[Film]) -> None:
        for p in self.parts:
            p.check(films)

    def scores_of(self, films: Sequence[Film], query: str | Query) -> list[np.ndarray]:
        """The fused scores of each film, over all of ``films`` together (ranks and scales are of the
        whole search: frames of different films then compare)."""
        query = as_query(query)
        per_engine = [p.scores_of(films, query.used(p.text_only)) for p in self.parts]
        if self.method == "rrf":
            return rrf(per_engine)
        scaled = [minmax(s) for s in per_engine]
        return [
            sum(w * part[i] for w, part in zip(self.weights, scaled, strict=True)).astype(np.float32)
            for i in range(len(films))
        ]

    def scores(self, film: Film, query: str | Query) -> np.ndarray:
        return self.scores_of([film], query)[0]

    def explain(self, film: Film, frame: int, query: str | Query, crops: bool = False) -> Explanation:
        query = as_query(query)
        parts = [p.explain(film, frame, query.used(p.text_only)) for p in self.parts]
        evidence = [e for p in parts for e in p.evidence]
        if self.method == "rrf":
            note = f"reciprocal rank fusion (k = {RRF_K}) of {', '.join(p.name for p in self.parts)}"
        else:
            shares = " + ".join(f"{w:.2f} x {p.name}" for w, p in zip(self.weights, self.parts, strict=True))
            note = f"{shares}, each scaled to 0..1 over the films searched (here: this film)"
        return self._explanation(film, frame, query, evidence, note)

    def cost(self, films: Sequence[Film], ctx: CostContext) -> EngineCost:
        """The sum of the parts' costs (not measured while any part's is not)."""
        costs = [p.cost(films, ctx) for p in self.parts]
        if any(c.usd_per_film_hour is None for c in costs):
            missing = next(c for c in costs if c.usd_per_film_hour is None)
            return EngineCost(self.name, None, missing.basis)
        basis = "; ".join(f"{c.engine} ${c.usd_per_film_hour:.4f}: {c.basis}" for c in costs)
        queries = sum(c.usd_per_1000_queries for c in costs)
        return EngineCost(
            self.name, sum(c.usd_per_film_hour for c in costs), f"the sum of its parts ({basis})", queries
        )


class FusedEngine(Fusion):
    """``weight`` x a model + (1 - ``weight``) x dialogue, each min-max scaled (``clip+dialogue``)."""

    def __init__(self, name: str, seen: Engine, said: Engine, weight: float = FUSION_WEIGHT) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"the fusion weight must be between 0 and 1, not {weight}")
        super().__init__(name, [seen, said], "minmax", [weight, 1 - weight])
        self.seen, self.dialogue_engine, self.weight = seen, said, weight
        self.text_only = True  # the blend reads the query's text: an image or a negative is the model's alone
        self.description = f"{name}: what is seen and what is said, blended"

    def usable(self, films: Sequence[Film]) -> list[Film]:
        return self.seen.usable(films)  # a film without dialogue is still searched by what is seen

    def check(self, films: Sequence[Film]) -> None:
        self.seen.check(films)

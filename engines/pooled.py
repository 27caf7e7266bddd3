"""Pooled frames: a parameter-free clip baseline (CLIP4Clip's mean pooling, reported zero-shot on
MSR-VTT). Any image model's frame vectors are averaged per shot (per ``WINDOW`` seconds where a film
has no shots yet), and every frame scores as its shot: what a model sees over a shot, not in one
frame. Offered beside per-frame search, so the two compare on the same frames and queries."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clip_search.search.moments import propose
from clip_search.search.scoring import Timeline, probabilities
from clip_search.store.library import Film
from engines.base import Engine, Evidence, Explanation, LockedLRU, Query, as_query
from engines.cost import CostContext, EngineCost
from engines.model import ModelEngine

POOLED = "pooled:"  # pooled:<model engine>, e.g. pooled:clip
WINDOW = 8.0  # seconds pooled together in a film without shots
POOLED_FILMS = 32  # films whose pooled vectors an engine keeps


def groups(film: Film) -> np.ndarray:
    """Each sampled frame's group: the shot it is in, or its ``WINDOW``-second window."""
    shots = film.shots()
    if shots is None:
        return (np.asarray(film.times) // WINDOW).astype(np.int64)
    return np.clip(np.searchsorted(shots[:, 0], film.times, side="right") - 1, 0, len(shots) - 1)


def pooled(embeddings: np.ndarray, group: np.ndarray) -> np.ndarray:
    """The unit mean vector of each frame's group, one row per frame."""
    ids, where = np.unique(group, return_inverse=True)
    sums = np.zeros((len(ids), embeddings.shape[1]), np.float64)
    np.add.at(sums, where, np.asarray(embeddings, np.float64))
    sums /= np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return sums[where].astype(np.float32)


class PooledEngine(Engine):
    """A model's frame vectors mean-pooled per shot; the query is the model's own query vector."""

    text_only = False
    score_label = "cosine (shot mean)"
    logit_scale = None
    evidence = ("cosine",)
    timeline_row = True
    row_on_request = True

    def __init__(self, name: str, inner: ModelEngine) -> None:
        self.name, self.inner, self.model = name, inner, inner.model
        self.description = f"{name}: {inner.model}'s frames averaged per shot"
        self._pooled = LockedLRU(POOLED_FILMS)

    def usable(self, films: Sequence[Film]) -> list[Film]:
        return self.inner.usable(films)

    def check(self, films: Sequence[Film]) -> None:
        self.inner.check(films)

    def notices(self, query: str | Query) -> list[str]:
        return self.inner.notices(query)

    def label(self, query: str | Query) -> str:
        return self.inner.label(query)

    def _vectors(self, film: Film) -> np.ndarray:
        film = film.view(self.model)
        key = (film.version, None if film.shots() is None else film.shots().tobytes())
        return self._pooled.get_or_make(key, lambda: pooled(film.embeddings, groups(film)))

    def scores(self, film: Film, query: str | Query) -> np.ndarray:
        return np.asarray(self._vectors(film) @ self.inner.vector(query).vector, np.float32)

    def timeline(self, film: Film, query: str | Query) -> Timeline:
        """Every frame's pooled score, the model's probability of it, and the moments (a Timeline row)."""
        film = film.view(self.model)
        s = self.scores(film, query)
        return Timeline(
            film, film.times, s, probabilities(film, s), propose(film.times, s, film.manifest.duration, film.shots())
        )

    def explain(self, film: Film, frame: int, query: str | Query, crops: bool = False) -> Explanation:
        query = as_query(query)
        group = groups(film)
        n = int(np.sum(group == group[frame]))
        score = float(self.scores(film, query)[frame])
        what = "shot" if film.shots() is not None else f"{WINDOW:g}-second window"
        evidence = [
            Evidence("cosine", f"cosine {score:.4f} between the query and the mean of this {what}'s {n} frames")
        ]
        return self._explanation(film, frame, query, evidence, score=score)

    def cost(self, films: Sequence[Film], ctx: CostContext) -> EngineCost:
        base = self.inner.cost(films, ctx)
        basis = f"{base.basis} (pooling adds nothing per frame)"
        return EngineCost(self.name, base.usd_per_film_hour, basis, base.usd_per_1000_queries)

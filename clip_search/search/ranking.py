"""Ranking frames: the best ``top_k``, best first, no two of one film closer than ``gap`` seconds.

One walk for every way frames are scored: exact search over every frame, the archive index's
re-scored candidates, the exact truth its calibration measures against, and evaluation's rankings.
A film here is anything with ``times`` (its frames' presentation times, ascending)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

DEFAULT_GAP = 2.0  # seconds: two hits of one film at least this far apart
LEADING = 64  # entries walked first, per hit asked for (at least MIN_LEADING)
MIN_LEADING = 2048


def distinct_top(
    films: Sequence,
    score: np.ndarray,
    where: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    top_k: int,
    gap: float = DEFAULT_GAP,
    rng: np.random.Generator | None = None,
) -> list[tuple[int, int, float]]:
    """(film index, frame, score) of the best ``top_k`` finite entries of ``score``, best first, none
    within ``gap`` seconds of a better one of its film; ``where(positions)`` says which (film index,
    frame) those entries are. Equal scores keep the entries' order, or a random one from ``rng``.

    Only the leading entries are walked: every entry scoring at least the m-th best (all ties with
    it included, so they are a prefix of the ranking whatever its tie order, and the walk picks
    from them what it would pick from all), m growing until ``top_k`` are found."""
    total = len(score)
    finite = np.isfinite(score)
    valid = int(finite.sum())
    if valid == 0 or top_k <= 0:
        return []
    if valid < total:  # a NaN score (a damaged vector) is never a hit
        score = np.where(finite, score, -np.inf)
    m = min(valid, max(top_k * LEADING, MIN_LEADING))
    while True:
        if m < valid:  # the m-th best score is finite, so entries scoring -inf are never walked
            cand = np.flatnonzero(score >= np.partition(score, total - m)[total - m])
        else:
            cand = np.flatnonzero(finite)
        film_idx, local = where(cand)
        chosen = _greedy(films, film_idx, local, score[cand].astype(np.float32), top_k, gap, rng)
        if len(chosen) == top_k or m >= valid:
            return chosen
        m = min(valid, m * 4)


def at(film_idx: np.ndarray, local: np.ndarray) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``where`` for entries listed with their film index and frame (candidates, say)."""
    return lambda positions: (film_idx[positions], local[positions])


def _greedy(
    films: Sequence,
    film_idx: np.ndarray,
    local: np.ndarray,
    score: np.ndarray,
    top_k: int,
    gap: float,
    rng: np.random.Generator | None = None,
) -> list[tuple[int, int, float]]:
    """The best candidates, best first, skipping any within ``gap`` seconds of a better one of its film.

    Equal scores keep the candidates' order (earlier film, earlier frame), or a random order drawn
    from ``rng`` (what tie-aware evaluation averages over)."""
    order = np.argsort(-score, kind="stable") if rng is None else np.lexsort((rng.random(len(score)), -score))
    film_of = np.asarray(film_idx)[order]
    local_of = np.asarray(local)[order]
    time_of = np.empty(len(order), np.float64)
    by_film = np.argsort(film_of, kind="stable")
    cuts = np.flatnonzero(np.diff(film_of[by_film])) + 1
    for group in np.split(by_film, cuts) if len(by_film) else []:  # each film's times read once
        time_of[group] = np.asarray(films[int(film_of[group[0]])].times)[local_of[group]]
    # Greedy in score order, vectorised: take the best frame still open, close every candidate of
    # its film within ``gap`` of it, repeat (the same choice as walking the candidates one by one).
    open_ = np.ones(len(order), bool)
    chosen: list[tuple[int, int, float]] = []
    start = 0
    while len(chosen) < top_k:
        rest = np.flatnonzero(open_[start:])
        if not len(rest):
            break
        j = start + int(rest[0])
        chosen.append((int(film_of[j]), int(local_of[j]), float(score[order[j]])))
        open_ &= ~((film_of == film_of[j]) & (np.abs(time_of - time_of[j]) < gap))
        start = j + 1
    return chosen

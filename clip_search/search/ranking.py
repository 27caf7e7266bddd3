"""Ranking frames: the best ``top_k``, best first, no two of one film closer than ``gap`` seconds.

One walk for every way frames are scored: exact search over every frame, the archive index's
re-scored candidates, the exact truth its calibration measures against, and evaluation's rankings.
A film here is anything with ``times`` (its frames' presentation times, ascending)."""

from __future__ import annotations

import bisect
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
    draws: int | None = None,
) -> list:
    """(film index, frame, score) of the best ``top_k`` finite entries of ``score``, best first, none
    within ``gap`` seconds of a better one of its film; ``where(positions)`` says which (film index,
    frame) those entries are. Equal scores keep the entries' order, or a random one from ``rng``;
    with ``draws``, a list of that many such rankings, each in its own random order of the ties
    (what tie-aware evaluation averages over), walked together.

    Only the leading entries are walked: every entry scoring at least the m-th best (all ties with
    it included, so they are a prefix of the ranking whatever its tie order, and the walk picks
    from them what it would pick from all), m growing until ``top_k`` are found."""
    total = len(score)
    finite = np.isfinite(score)
    valid = int(finite.sum())
    if valid == 0 or top_k <= 0:
        return [] if draws is None else [[] for _ in range(draws)]
    if valid < total:  # a NaN score (a damaged vector) is never a hit
        score = np.where(finite, score, -np.inf)
    m = min(valid, max(top_k * LEADING, MIN_LEADING))
    out: list[list] = [[] for _ in range(draws or 0)]
    todo = np.arange(draws or 0)
    while True:
        if m < valid:  # the m-th best score is finite, so entries scoring -inf are never walked
            cand = np.flatnonzero(score >= np.partition(score, total - m)[total - m])
        else:
            cand = np.flatnonzero(finite)
        film_idx, local = where(cand)
        if draws is None:
            chosen = _greedy(films, film_idx, local, score[cand], top_k, gap, rng)
            if len(chosen) == top_k or m >= valid:
                return chosen
        else:
            rows = _greedy(films, film_idx, local, score[cand], top_k, gap, rng, len(todo))
            for r, chosen in zip(todo, rows, strict=True):
                out[r] = chosen
            todo = np.array([r for r in todo if len(out[r]) < top_k], np.int64)
            if not len(todo) or m >= valid:
                return out
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
    draws: int | None = None,
) -> list:
    """The best candidates, best first, skipping any within ``gap`` seconds of a better one of its film.

    Equal scores keep the candidates' order (earlier film, earlier frame), or a random order drawn
    from ``rng`` (what tie-aware evaluation averages over); with ``draws``, a list of that many
    rankings, each in its own random order of the ties, walked together in lockstep (``walk_rows``)."""
    score = np.asarray(score, np.float32)
    film_idx, local = np.asarray(film_idx), np.asarray(local)
    if draws is None:
        order = np.argsort(-score, kind="stable") if rng is None else np.lexsort((rng.random(len(score)), -score))
        picks = walk(films, film_idx[order], local[order], top_k, gap)
        return [(f, i, float(score[order[j]])) for j, f, i in picks]
    group = np.unique(-score, return_inverse=True)[1].reshape(-1)  # 0: the best score; ties share a group
    order = np.argsort(group + rng.random((draws, len(score))), axis=1, kind="stable")  # random within a group
    times = np.empty(len(score))
    for f in np.unique(film_idx):
        mine = film_idx == f
        times[mine] = np.asarray(films[f].times)[local[mine]]
    cols, _ = walk_rows(film_idx, times, order, top_k, gap)
    taken = np.take_along_axis(order, np.maximum(cols, 0), 1)
    f_of, i_of, s_of = film_idx.tolist(), local.tolist(), score.tolist()  # Python numbers, looked up fast
    return [
        [(f_of[e], i_of[e], s_of[e]) for e, c in zip(row, picked, strict=True) if c >= 0]
        for row, picked in zip(taken.tolist(), cols.tolist(), strict=True)
    ]


def walk(
    films: Sequence, film_of: np.ndarray, local_of: np.ndarray, top_k: int, gap: float
) -> list[tuple[int, int, int]]:
    """(position, film index, frame) of the first ``top_k`` entries of a ranking (entries in rank
    order) that are not within ``gap`` seconds of an earlier one taken from their film: the greedy
    choice, walked one entry at a time and stopping once ``top_k`` are taken (a handful of entries
    past ``top_k``, however many were ranked)."""
    taken: dict[int, list[float]] = {}  # each film's taken times, sorted: the nearest two are checked
    times: dict[int, np.ndarray] = {}  # only the films the walk reaches (an archive search ranks hundreds)
    chosen: list[tuple[int, int, int]] = []
    for j, (f, i) in enumerate(zip(film_of.tolist(), local_of.tolist(), strict=True)):
        if f not in times:
            times[f] = np.asarray(films[f].times)
        t = float(times[f][i])
        near = taken.setdefault(f, [])
        at = bisect.bisect_left(near, t)
        if (at < len(near) and near[at] - t < gap) or (at > 0 and t - near[at - 1] < gap):
            continue
        near.insert(at, t)
        chosen.append((j, f, i))
        if len(chosen) == top_k:
            break
    return chosen


def walk_rows(
    film_of: np.ndarray, time_of: np.ndarray, order: np.ndarray, top_k: int, gap: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`walk` of many rankings at once, in lockstep: ``order`` (rankings, entries) holds each
    ranking's entries in rank order, ``film_of`` and ``time_of`` say each entry's film and time.

    Returns (rankings, ``top_k``) columns of ``order`` taken (-1: fewer were taken) and how many each
    ranking took; a ranking is walked exactly as ``walk`` walks it."""
    rows, width = order.shape
    film, time = film_of[order], time_of[order]
    taken_film = np.full((rows, top_k), -1, np.int64)  # no film is -1: an empty slot never clashes
    taken_time = np.zeros((rows, top_k))
    cols = np.full((rows, top_k), -1, np.int64)
    count = np.zeros(rows, np.int64)
    for j in range(width):
        live = count < top_k
        if not live.any():
            break
        f, t = film[:, j], time[:, j]
        clash = ((taken_film == f[:, None]) & (np.abs(taken_time - t[:, None]) < gap)).any(axis=1)
        ok = np.flatnonzero(live & ~clash)
        slot = count[ok]
        taken_film[ok, slot], taken_time[ok, slot], cols[ok, slot] = f[ok], t[ok], j
        count[ok] += 1
    return cols, count

"""Retrieval metrics of one ranked list of hits against a query's relevant intervals (a leaf module:
evaluation, chance and robustness all score rankings with these definitions).

A hit is a returned frame time (with its film and moment); a tolerance TOL widens each interval:
- a hit is *relevant* if it lies within [start - TOL, end + TOL] of a relevant interval of its film;
- Hit@k = 1 if any of the top k hits is relevant;
- Recall@k = share of the query's intervals that hold at least one of the top k hits;
- MRR = 1 / rank of the first relevant hit (0 if none in the ranked list);
- AP = (1/R) * sum over the intervals, in the order the ranking first covers them, of the precision
  at the rank i that covers it (hits among the top i that covered a new interval, over i), R = number
  of intervals. One hit inside two intervals covers both at one precision, so AP <= 1 always;
- R1@IoU0.5 = 1 if the top hit's moment [start, end] overlaps a relevant interval with IoU >= 0.5.

On the engine's ranked *moments* (``Result.moments``, at most 10), as moment retrieval is scored
(``benchmark_metrics``, QVHighlights' definitions; a moment matches only intervals of its own film):
- MR-R1@0.5 / MR-R1@0.7 = 1 if the top moment's IoU with the interval it overlaps most reaches 0.5 / 0.7;
- MR-mAP = detection-style AP of the ranked moments, averaged over IoU 0.5:0.05:0.95.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clip_search.search.moments import iou as iou  # one IoU for moments, metrics and benchmarks
from comparisons.benchmark_metrics import per_query, placed_per_query

DEFAULT_KS = (1, 5, 10)
DEFAULT_TOLERANCE = 1.0
PROPORTIONS = ("hit@", "r1@", "mr-r1@")  # metrics whose per-query value is 0 or 1 (a share over queries)
MOMENT_METRICS = ("mr-r1@0.5", "mr-r1@0.7", "mr-map")  # scored on the engine's ranked moments

# A relevant interval: (start, end) in the film searched, or (film id, start, end) when a search
# spans several films.
Interval = tuple[float, float] | tuple[str, float, float]


@dataclass(frozen=True)
class RankedHit:
    """What metrics need of a hit: its time, score, moment and film (its id; "" for the one film searched)."""

    time: float
    score: float
    start: float
    end: float
    film: str = ""


def span(interval: Interval) -> tuple[float, float]:
    """The (start, end) of an interval, whichever film it names."""
    return (interval[-2], interval[-1])


def of_film(film: str, interval: Interval) -> bool:
    """Whether ``interval`` lies in ``film`` (an interval without a film lies in the one film searched)."""
    return len(interval) == 2 or interval[0] == film


def covers(t: float, film: str, interval: Interval, tol: float) -> bool:
    """Whether a hit at ``t`` of ``film`` lies in ``interval`` widened by ``tol``."""
    start, end = span(interval)
    return of_film(film, interval) and start - tol <= t <= end + tol


def is_relevant(t: float, intervals: Sequence[Interval], tol: float = DEFAULT_TOLERANCE, film: str = "") -> bool:
    """Whether a hit at time ``t`` of ``film`` lies in one of the relevant intervals, widened by ``tol``."""
    return any(covers(t, film, iv, tol) for iv in intervals)


def moment_hit(moment: tuple[float, float], film: str, intervals: Sequence[Interval]) -> float:
    """R1@IoU0.5 of a top moment: 1.0 when it overlaps a relevant interval of its film with IoU >= 0.5."""
    return float(any(of_film(film, iv) and iou(moment, span(iv)) >= 0.5 for iv in intervals))


def query_metrics(
    hits: Sequence[RankedHit],
    intervals: Sequence[Interval],
    ks: Sequence[int] = DEFAULT_KS,
    tol: float = DEFAULT_TOLERANCE,
) -> dict[str, float] | None:
    """All metrics of one query from its ranked hits; None when it has no relevant interval."""
    if not intervals:
        return None
    hit_covers = [{j for j, iv in enumerate(intervals) if covers(h.time, h.film, iv, tol)} for h in hits]
    out: dict[str, float] = {}
    for k in ks:
        top = hit_covers[:k]
        out[f"hit@{k}"] = float(any(top))
        out[f"recall@{k}"] = len(set().union(*top)) / len(intervals)
    first = next((i for i, c in enumerate(hit_covers) if c), None)
    out["mrr"] = 1.0 / (first + 1) if first is not None else 0.0
    covered: set[int] = set()
    useful = 0  # hits so far that covered an interval not covered before
    ap = 0.0
    for i, cov in enumerate(hit_covers, start=1):
        new = cov - covered
        if new:
            covered |= new
            useful += 1
            ap += len(new) * useful / i  # each newly covered interval at this rank's precision
    out["ap"] = ap / len(intervals)
    out["r1@iou0.5"] = moment_hit((hits[0].start, hits[0].end), hits[0].film, intervals) if hits else 0.0
    return out


def rankings_metrics(
    times: np.ndarray,
    films: np.ndarray,
    taken: np.ndarray,
    intervals: Sequence[Interval],
    ks: Sequence[int] = DEFAULT_KS,
    tol: float = DEFAULT_TOLERANCE,
) -> dict[str, np.ndarray]:
    """:func:`query_metrics` of many rankings of one query at once, one per row (chance's random
    rankings, a tied ranking's drawn orders), R1@IoU aside (it needs the top hit's moment).

    ``times`` and ``films`` (hit time, film id) are (rankings, hits); ``taken`` marks the hits each
    ranking has (a shorter ranking is padded). The same definitions as ``query_metrics``, as arrays."""
    times = np.asarray(times, float)
    if times.shape[1] == 0:  # no ranking has a hit: one empty slot each, so every value is 0
        times, films, taken = (
            np.zeros((len(times), 1)),
            np.full((len(times), 1), "", object),
            np.zeros((len(times), 1), bool),
        )
    cover = np.zeros((*times.shape, len(intervals)), bool)  # (ranking, hit, interval)
    for j, iv in enumerate(intervals):
        start, end = span(iv)
        cover[..., j] = taken & (times >= start - tol) & (times <= end + tol)
        if len(iv) == 3:
            cover[..., j] &= films == iv[0]
    out: dict[str, np.ndarray] = {}
    for k in ks:
        top = cover[:, :k].any(axis=1)  # (ranking, interval): covered within the top k
        out[f"hit@{k}"] = top.any(axis=1).astype(float)
        out[f"recall@{k}"] = top.sum(axis=1) / len(intervals)
    relevant = cover.any(axis=2)
    ranks = np.arange(1, times.shape[1] + 1)
    out["mrr"] = np.where(relevant.any(axis=1), 1.0 / (relevant.argmax(axis=1) + 1), 0.0)
    before = np.zeros_like(cover)
    before[:, 1:] = np.logical_or.accumulate(cover, axis=1)[:, :-1]
    new = (cover & ~before).sum(axis=2)  # intervals first covered at each rank
    useful = np.cumsum(new > 0, axis=1)  # hits so far that covered a new interval
    out["ap"] = (new * useful / ranks).sum(axis=1) / len(intervals)
    return out


MOMENT_KEYS = {"mr-r1@0.5": "MR-full-R1@0.5", "mr-r1@0.7": "MR-full-R1@0.7", "mr-map": "MR-full-mAP"}


def moment_metrics(moments: Sequence[Sequence], intervals: Sequence[Interval]) -> dict[str, float]:
    """MR-R1@0.5, MR-R1@0.7 and MR-mAP of ranked moments [film id, start, end, score] (best first)
    against a query's intervals; an interval without a film is of the one film searched."""
    films = {m[0] for m in moments}
    only = next(iter(films)) if len(films) == 1 else ""
    gt = [list(iv) if len(iv) == 3 else [only, *iv] for iv in intervals]
    v = per_query("qvhighlights", [list(m) for m in moments], gt, films=True)
    return {ours: v[theirs] for ours, theirs in MOMENT_KEYS.items()}


def placed_moment_metrics(
    films: np.ndarray, spans: np.ndarray, scores: Sequence[float], intervals: Sequence[Interval]
) -> dict[str, np.ndarray]:
    """:func:`moment_metrics` of many placements of the same ranked moments at once, one per row:
    ``films`` (placements, moments) their film ids, ``spans`` (placements, moments, 2); at least one moment."""
    films = np.asarray(films, object)
    only = np.where((films == films[:, :1]).all(axis=1), films[:, 0], "")  # each placement's one film, if any
    gt_films = np.stack([np.full(len(films), iv[0], object) if len(iv) == 3 else only for iv in intervals], axis=1)
    v = placed_per_query("qvhighlights", spans, scores, [span(iv) for iv in intervals], films, gt_films)
    return {ours: v[theirs] for ours, theirs in MOMENT_KEYS.items()}


def mean_metrics(per_query: Sequence[dict[str, float] | None]) -> dict[str, float]:
    """Means over the queries that have an answer (mAP is the mean of AP)."""
    answered = [m for m in per_query if m is not None]
    if not answered:
        return {}
    keys = answered[0].keys()
    means = {k: float(np.mean([m[k] for m in answered])) for k in keys}
    means["map"] = means.pop("ap")
    return means


def metric_names(ks: Sequence[int]) -> list[str]:
    """Column order for tables and charts."""
    return [*(f"hit@{k}" for k in ks), *(f"recall@{k}" for k in ks), "mrr", "map", "r1@iou0.5", *MOMENT_METRICS]


def per_query_key(metric: str) -> str:
    """The per-query key of a mean's name (mAP is the mean of per-query AP)."""
    return "ap" if metric == "map" else metric


def is_proportion(metric: str) -> bool:
    """Hit@k and R1@IoU: a share of queries (each 0 or 1), whose interval is a binomial one."""
    return metric.startswith(PROPORTIONS)

"""Moments: runs of adjacent sampled frames that score high for a query.

A frame counts as part of a moment while its score stays above a threshold halfway between
the film's typical (median) score and the peak, so a moment's extent adapts to how sharply a
query stands out, whatever the model's score range."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Moment:
    """A stretch of film: start and end times (s), and where and how high it peaks."""

    start: float
    end: float
    peak_time: float
    peak_score: float

    def to_dict(self) -> dict:
        return asdict(self)


def frame_end(times: np.ndarray, i: int, duration: float | None = None) -> float:
    """When sampled frame ``i`` stops being the current one: the next frame's time (or film end)."""
    if i + 1 < len(times):
        return float(times[i + 1])
    step = float(times[-1] - times[-2]) if len(times) > 1 else 1.0
    end = float(times[i]) + step
    return min(end, duration) if duration and duration > times[i] else end


def threshold_for(scores: np.ndarray, peak: float, rel: float = 0.5, median: float | None = None) -> float:
    """Halfway (``rel``) between the median score (pass it if already known) and ``peak``."""
    if median is None:
        median = float(np.median(scores)) if len(scores) else peak
    return peak - rel * (peak - median)


def moment_around(
    times: np.ndarray,
    scores: np.ndarray,
    i: int,
    duration: float | None = None,
    rel: float = 0.5,
    median: float | None = None,
) -> Moment:
    """The moment containing frame ``i``: extend left and right while scores stay above threshold."""
    peak = float(scores[i])
    thr = threshold_for(scores, peak, rel, median)
    lo = i
    while lo > 0 and scores[lo - 1] >= thr:
        lo -= 1
    hi = i
    while hi + 1 < len(scores) and scores[hi + 1] >= thr:
        hi += 1
    return Moment(float(times[lo]), frame_end(times, hi, duration), float(times[i]), peak)


def find_moments(
    times: np.ndarray,
    scores: np.ndarray,
    duration: float | None = None,
    threshold: float | None = None,
    limit: int = 20,
) -> list[Moment]:
    """All runs above ``threshold`` (default: halfway between median and max), best peak first."""
    if len(scores) == 0:
        return []
    thr = threshold_for(scores, float(np.max(scores))) if threshold is None else threshold
    above = np.concatenate([[False], scores >= thr, [False]])
    edges = np.flatnonzero(above[1:] != above[:-1])
    out = []
    for lo, hi in zip(edges[::2], edges[1::2] - 1, strict=True):
        j = lo + int(np.argmax(scores[lo : hi + 1]))
        out.append(Moment(float(times[lo]), frame_end(times, int(hi), duration), float(times[j]), float(scores[j])))
    out.sort(key=lambda m: -m.peak_score)
    return out[:limit]

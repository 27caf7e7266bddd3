"""Moments: runs of adjacent sampled frames that score high for a query.

A frame counts as part of a moment while its score stays above a threshold halfway between
the film's typical (median) score and the peak, so a moment's extent adapts to how sharply a
query stands out, whatever the model's score range."""

from __future__ import annotations

from collections.abc import Callable
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


SMOOTH = 3  # frames in the moving average the proposals read (a single noisy frame does not split a moment)
LEVELS = (0.25, 0.5, 0.75)  # thresholds between a film's median and peak: coarse to tight moments
NMS_IOU = 0.5  # a proposal overlapping a better one of its film this much is the same moment


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Temporal intersection over union of two [start, end] spans."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def smoothed(scores: np.ndarray, width: int = SMOOTH) -> np.ndarray:
    """A centred moving average (edges averaged over the frames they have); NaN counts as the minimum."""
    s = np.where(np.isfinite(scores), scores, np.nanmin(scores) if np.isfinite(scores).any() else 0.0)
    if width <= 1 or len(s) < 2:
        return s.astype(np.float64)
    kernel = np.ones(width)
    return np.convolve(s, kernel, "same") / np.convolve(np.ones(len(s)), kernel, "same")


def propose(
    times: np.ndarray,
    scores: np.ndarray,
    duration: float | None = None,
    shots: np.ndarray | None = None,
    limit: int = 50,
) -> list[Moment]:
    """Ranked moments of one film from its per-frame scores, watershed-like: the smoothed score curve
    cut at several levels between its median and its peak (each run above a level is a candidate,
    split at shot boundaries where the film has them), scored by its best raw frame, then
    de-duplicated by temporal non-maximum suppression. Best first."""
    if len(scores) == 0 or not np.isfinite(scores).any():
        return []
    raw = np.where(np.isfinite(scores), scores, -np.inf)
    curve = smoothed(scores)
    median, peak = float(np.median(curve)), float(np.max(curve))
    cuts = np.zeros(len(times), bool)  # True where a new shot starts
    if shots is not None and len(shots):
        starts = np.asarray(shots, float).reshape(-1, 2)[1:, 0]
        cuts[np.clip(np.searchsorted(times, starts), 0, len(times) - 1)] = True
    found: list[
        Moment
    ] = []  # coarse levels first: of two moments with one peak, the one trimmed at the lower level wins
    for level in LEVELS:
        thr = peak - (1 - level) * (peak - median) if peak > median else peak
        above = curve >= thr
        lo = None
        for i in range(len(times) + 1):
            inside = i < len(times) and above[i] and not (lo is not None and cuts[i])
            if inside and lo is None:
                lo = i
            elif not inside and lo is not None:
                found += _run(times, raw, lo, i - 1, thr, duration)
                lo = i if i < len(times) and above[i] else None  # a shot cut inside a run starts the next
    return nms(found, limit=limit)


def _run(times: np.ndarray, raw: np.ndarray, lo: int, hi: int, thr: float, duration: float | None) -> list[Moment]:
    """The moment of frames ``lo``..``hi`` (a run of the smoothed curve), its edges trimmed to the
    frames whose own score reaches ``thr`` (smoothing finds the run; the frames say where it ends)."""
    while lo < hi and raw[lo] < thr:
        lo += 1
    while hi > lo and raw[hi] < thr:
        hi -= 1
    j = lo + int(np.argmax(raw[lo : hi + 1]))
    return [Moment(float(times[lo]), frame_end(times, hi, duration), float(times[j]), float(raw[j]))]


def nms(
    moments: list, threshold: float = NMS_IOU, limit: int | None = None, score: Callable = lambda m: m.peak_score
) -> list:
    """Temporal non-maximum suppression: best ``score`` first (a moment's peak), dropping any moment
    (anything with ``start`` and ``end``) that overlaps a kept one by ``threshold`` IoU or more."""
    kept: list = []
    for m in sorted(moments, key=lambda m: -score(m)):  # stable: equal scores keep the order given
        if all(iou((m.start, m.end), (k.start, k.end)) < threshold for k in kept):
            kept.append(m)
            if limit is not None and len(kept) == limit:
                break
    return kept

"""Moment retrieval scored as the public benchmarks' own evaluators score it.

QVHighlights (``moment_detr/standalone_eval/eval.py``): per query, at most ``MAX_WINDOWS`` predicted
windows; ``MR-full-R1@t``: the top window's IoU with the ground-truth window it overlaps most is at
least ``t``; ``MR-full-mAP@t``: detection-style average precision of the ranked windows against the
query's windows (each ground-truth window matched once, best score first, VOC-interpolated), averaged
over queries; ``MR-full-mAP``: that mean over IoU 0.5:0.05:0.95. Percentages, as its tables print.

Charades-STA (the 2D-TAN / Moment-DETR convention): ``R1@t`` the top window's IoU with the one
ground-truth window is at least ``t`` (0.3, 0.5, 0.7); ``mIoU`` the mean of that IoU.

Every figure is a mean of per-query values (``per_query``), so intervals and paired tests treat them
as every other metric."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

QVH_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.5:0.05:0.95
MAX_WINDOWS = 10  # predicted windows a query may submit (QVHighlights' max_pred_windows)
QVH_METRICS = ("MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mAP@0.5", "MR-full-mAP@0.75", "MR-full-mAP")
CHARADES_THRESHOLDS = (0.3, 0.5, 0.7)
CHARADES_METRICS = ("R1@0.3", "R1@0.5", "R1@0.7", "mIoU")
METRICS = {"qvhighlights": QVH_METRICS, "charades": CHARADES_METRICS}

Window = Sequence[float]  # [start, end] or [start, end, score]


def iou_matrix(pred, gt, pred_films=None, gt_films=None) -> np.ndarray:
    """Temporal IoU of every predicted window (rows) with every ground-truth window (columns); with
    films given, windows of different films do not overlap."""
    pred, gt = np.asarray(pred, float).reshape(-1, 2), np.asarray(gt, float).reshape(-1, 2)
    inter = np.clip(
        np.minimum(pred[:, None, 1], gt[None, :, 1]) - np.maximum(pred[:, None, 0], gt[None, :, 0]), 0, None
    )
    union = (pred[:, 1] - pred[:, 0])[:, None] + (gt[:, 1] - gt[:, 0])[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    if pred_films is not None and gt_films is not None:
        iou[np.asarray(pred_films, object)[:, None] != np.asarray(gt_films, object)[None, :]] = 0.0
    return iou


def _spans(windows: Sequence, films: bool) -> tuple[np.ndarray, list | None]:
    """[start, end] of each window, and their films when windows carry one first."""
    if films:
        return np.array([w[1:3] for w in windows], float), [w[0] for w in windows]
    return np.array([w[:2] for w in windows], float), None


def _interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the precision envelope (Pascal VOC's every-point interpolation)."""
    p = np.concatenate([[0.0], precision, [0.0]])
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1]) + 1
    return float(np.sum((r[steps] - r[steps - 1]) * p[steps]))


def average_precision(
    pred: Sequence[Window], gt: Sequence[Window], thresholds: Sequence[float], films: bool = False
) -> np.ndarray:
    """One query's detection AP at each IoU threshold: predictions in score order (stable), each
    matched to the best-overlapping ground-truth window not yet taken at that threshold. ``films``:
    windows carry their film first ([film, start, end(, score)])."""
    out = np.zeros(len(thresholds))
    if not pred or not gt:
        return out
    pred = sorted(pred, key=lambda w: -w[-1])  # stable: equal scores keep the submitted order
    p, pf = _spans(pred, films)
    g, gf = _spans(gt, films)
    ious = iou_matrix(p, g, pf, gf)
    if len(gt) == 1:  # one window to find: AP is the precision where it is first found, 1 / rank
        found = ious[:, 0][:, None] >= np.asarray(thresholds, float)[None, :]
        first = np.argmax(found, axis=0)
        return np.where(found.any(axis=0), 1.0 / (first + 1), 0.0)
    best = [np.argsort(-row, kind="stable") for row in ious]  # each prediction's windows, best overlap first
    for t, thr in enumerate(thresholds):
        taken = np.zeros(len(gt), bool)
        tp = np.zeros(len(pred))
        for i, row in enumerate(ious):
            for j in best[i]:
                if row[j] < thr:
                    break
                if not taken[j]:
                    taken[j], tp[i] = True, 1.0
                    break
        hits = np.cumsum(tp)
        out[t] = _interpolated_ap(hits / np.arange(1, len(pred) + 1), hits / len(gt))
    return out


def top_iou(pred: Sequence[Window], gt: Sequence[Window], films: bool = False) -> float:
    """The top window's IoU with the ground-truth window it overlaps most (0 with no prediction)."""
    if not pred or not gt:
        return 0.0
    p, pf = _spans(pred[:1], films)
    g, gf = _spans(gt, films)
    return float(iou_matrix(p, g, pf, gf).max())


def per_query(benchmark: str, pred: Sequence[Window], gt: Sequence[Window], films: bool = False) -> dict[str, float]:
    """One query's values of the benchmark's metrics (0/1 or a fraction each, before the percent).
    ``pred``: [start, end, score] best first (with ``films``: [film, start, end, score])."""
    pred = list(pred)[:MAX_WINDOWS] if benchmark == "qvhighlights" else list(pred)
    iou = top_iou(pred, gt, films)
    if benchmark == "charades":
        return {**{f"R1@{t}": float(iou >= t) for t in CHARADES_THRESHOLDS}, "mIoU": iou}
    ap = average_precision(pred, gt, QVH_THRESHOLDS, films)
    return {
        "MR-full-R1@0.5": float(iou >= 0.5),
        "MR-full-R1@0.7": float(iou >= 0.7),
        **{f"MR-full-mAP@{t}": float(a) for t, a in zip(QVH_THRESHOLDS, ap, strict=True)},
        "MR-full-mAP": float(ap.mean()),
    }


def placed_per_query(
    benchmark: str,
    spans: np.ndarray,
    scores: Sequence[float],
    gt: Sequence[Window],
    films: np.ndarray | None = None,
    gt_films: Sequence | None = None,
) -> dict[str, np.ndarray]:
    """``per_query`` of many placements of the same ranked windows at once, one per row: what chance
    scores when an engine's windows (their lengths, order and scores) land at random.

    ``spans`` is (placements, windows, 2) [start, end]; ``films`` (placements, windows) their films,
    with ``gt_films`` those of ``gt``'s windows (or, per placement, (placements, gt)). Each row's
    values equal ``per_query`` of that row."""
    spans = np.asarray(spans, float).reshape(len(spans), -1, 2)
    scores = np.asarray(scores, float)
    if benchmark == "qvhighlights":
        spans, scores = spans[:, :MAX_WINDOWS], scores[:MAX_WINDOWS]
        films = None if films is None else np.asarray(films, object)[:, :MAX_WINDOWS]
    rows, n = spans.shape[:2]
    g = np.asarray([w[:2] for w in gt], float).reshape(-1, 2)
    if n == 0 or len(g) == 0:
        return {k: np.zeros(rows) for k in per_query(benchmark, [], gt)}
    inter = np.clip(np.minimum(spans[..., 1:2], g[:, 1]) - np.maximum(spans[..., 0:1], g[:, 0]), 0, None)
    union = (spans[..., 1:2] - spans[..., 0:1]) + (g[:, 1] - g[:, 0]) - inter
    ious = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)  # (placements, windows, gt)
    if films is not None and gt_films is not None:
        gf = np.asarray(gt_films, object)
        ious[np.asarray(films, object)[..., None] != (gf[:, None, :] if gf.ndim == 2 else gf)] = 0.0
    top = ious[:, 0].max(axis=1)  # the top window is the first submitted
    if benchmark == "charades":
        return {**{f"R1@{t}": (top >= t).astype(float) for t in CHARADES_THRESHOLDS}, "mIoU": top}
    ious = ious[:, np.argsort(-scores, kind="stable")]  # AP ranks by score, as average_precision does
    thr = np.asarray(QVH_THRESHOLDS)
    if len(g) == 1:  # as in average_precision: 1 / the rank where the one window is first found
        found = ious[:, :, 0, None] >= thr  # (placements, windows, thresholds)
        ap = np.where(found.any(axis=1), 1.0 / (found.argmax(axis=1) + 1), 0.0)
    else:  # each window takes the best-overlapping ground truth not yet taken, windows in rank order
        taken = np.zeros((rows, len(thr), len(g)), bool)
        tp = np.zeros((rows, len(thr), n))
        for i in range(n):
            row = ious[:, i, None, :]
            free = (row >= thr[:, None]) & ~taken
            best = np.where(free, row, -1.0).argmax(axis=2)  # ties: the lower index, as a stable sort
            got = free.any(axis=2)
            tp[..., i] = got
            r, t = np.nonzero(got)
            taken[r, t, best[r, t]] = True
        hits = np.cumsum(tp, axis=2)
        ap = _interpolated_ap_rows(hits / np.arange(1, n + 1), hits / len(g))
    return {
        "MR-full-R1@0.5": (top >= 0.5).astype(float),
        "MR-full-R1@0.7": (top >= 0.7).astype(float),
        **{f"MR-full-mAP@{t}": ap[:, k] for k, t in enumerate(QVH_THRESHOLDS)},
        "MR-full-mAP": ap.mean(axis=1),
    }


def _interpolated_ap_rows(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """``_interpolated_ap`` along the last axis (a step where recall does not change adds nothing)."""
    pad = [(0, 0)] * (precision.ndim - 1)
    p = np.pad(precision, [*pad, (1, 1)])
    r = np.concatenate([np.zeros((*recall.shape[:-1], 1)), recall, np.ones((*recall.shape[:-1], 1))], axis=-1)
    p = np.maximum.accumulate(p[..., ::-1], axis=-1)[..., ::-1]
    return np.sum((r[..., 1:] - r[..., :-1]) * p[..., 1:], axis=-1)


def means(benchmark: str, values: Sequence[dict[str, float]]) -> dict[str, float]:
    """The benchmark's figures: per-query values averaged, in percent rounded as its evaluator
    prints them (mIoU too is a percentage here)."""
    names = METRICS[benchmark]
    if not values:
        return {n: 0.0 for n in names}
    out = {n: float(f"{100 * np.mean([v[n] for v in values]):.2f}") for n in names}
    if benchmark == "qvhighlights":  # as its evaluator averages: over queries per IoU, then over IoUs
        per_iou = [np.mean([v[f"MR-full-mAP@{t}"] for v in values]) for t in QVH_THRESHOLDS]
        out["MR-full-mAP"] = float(f"{100 * np.mean(per_iou):.2f}")
    return out

"""The public moment-retrieval benchmarks: both annotation formats read, every engine's moments scored
as the benchmarks' own evaluators score them, and the predictions written so the official
evaluator scores the very same windows. An independent implementation of the official
definitions (written here loop by loop after moment_detr's standalone_eval) checks our figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

import clip_search.config as config
from comparisons.benchmark_metrics import means, per_query
from comparisons.benchmarks import detect, load
from comparisons.cli import main

QVH = config.PROJECT_DIR / "data" / "qvhighlights_example.jsonl"
CHARADES = config.PROJECT_DIR / "data" / "charades_example.txt"


# -- an independent implementation of the official definitions ------------------------------------


def _iou(a, b) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def _voc_ap(precision: list[float], recall: list[float]) -> float:
    mprec, mrec = [0.0, *precision, 0.0], [0.0, *recall, 1.0]
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    return sum((mrec[i] - mrec[i - 1]) * mprec[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])


def _detection_ap(gts, preds, thr) -> float:
    preds = sorted(preds, key=lambda p: -p[2])
    locked = [False] * len(gts)
    tp, fp = [], []
    for p in preds:
        ious = [_iou(p, g) for g in gts]
        matched = False
        for j in sorted(range(len(gts)), key=lambda j: -ious[j]):
            if ious[j] < thr:
                break
            if locked[j]:
                continue
            locked[j], matched = True, True
            break
        tp.append(1.0 if matched else 0.0)
        fp.append(0.0 if matched else 1.0)
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    return _voc_ap(list(ctp / (ctp + cfp)), list(ctp / len(gts)))


def official_qvhighlights(submission: list[dict], ground_truth: list[dict]) -> dict[str, float]:
    """MR-full-* as moment_detr's standalone_eval computes them (at most 10 windows a query)."""
    thds = [round(0.5 + 0.05 * i, 2) for i in range(10)]
    gt = {d["qid"]: d["relevant_windows"] for d in ground_truth}
    aps = np.array(
        [[_detection_ap(gt[d["qid"]], d["pred_relevant_windows"][:10], t) for t in thds] for d in submission]
    )
    r1 = {}
    for t in (0.5, 0.7):
        hits = []
        for d in submission:
            top = d["pred_relevant_windows"][0][:2]
            best = max(gt[d["qid"]], key=lambda g: _iou(top, g))  # the GT window the top one overlaps most
            hits.append(_iou(top, best) >= t)
        r1[t] = float(f"{100 * np.mean(hits):.2f}")
    mean_ap = aps.mean(0)
    return {
        "MR-full-R1@0.5": r1[0.5],
        "MR-full-R1@0.7": r1[0.7],
        "MR-full-mAP@0.5": float(f"{100 * mean_ap[0]:.2f}"),
        "MR-full-mAP@0.75": float(f"{100 * mean_ap[5]:.2f}"),
        "MR-full-mAP": float(f"{100 * mean_ap.mean():.2f}"),
    }


# -- tests ------------------------------------------------------------------------------------------


def test_both_formats_are_recognised_from_their_content_and_bad_lines_named(tmp_path):
    qvh, charades = load(QVH), load(CHARADES)
    assert qvh.name == "qvhighlights" and len(qvh.queries) == 24 and qvh.queries[0].windows == [(0.0, 1.5)]
    assert charades.name == "charades" and charades.queries[0].vid == "big-buck-bunny-30s"
    assert detect("film,query,start,end\n") is None  # a CSV query set stays a CSV query set
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"qid": 1, "query": "x", "vid": "v", "relevant_windows": [[5, 2]]}\n')
    with pytest.raises(ValueError, match="line 1: window end 2.0 is before its start 5.0"):
        load(bad)
    bad.write_text("v 1.0 2.0##fine\nnot a line\n")
    with pytest.raises(ValueError, match="line 2: not 'VID start end##sentence'"):
        load(bad)


def test_our_qvhighlights_figures_equal_the_official_definitions_on_a_predictions_file():
    rng = np.random.default_rng(7)
    gt, submission = [], []
    for qid in range(60):  # varied: several GT windows, overlapping predictions, ties in score
        windows = sorted([[float(s), float(s + rng.integers(2, 30))] for s in rng.integers(0, 120, rng.integers(1, 4))])
        preds = [
            [float(s), float(s + rng.integers(1, 40)), float(rng.choice([0.9, 0.5, 0.5, 0.2]))]
            for s in rng.integers(0, 140, 12)
        ]
        preds.sort(key=lambda p: -p[2])
        gt.append({"qid": qid, "relevant_windows": windows})
        submission.append({"qid": qid, "pred_relevant_windows": preds})
    ours = means(
        "qvhighlights",
        [
            per_query("qvhighlights", s["pred_relevant_windows"], g["relevant_windows"])
            for s, g in zip(submission, gt, strict=True)
        ],
    )
    assert ours == official_qvhighlights(submission, gt)
    assert 0 < ours["MR-full-mAP"] < ours["MR-full-mAP@0.5"]  # a real spread: the check could fail


@pytest.mark.slow
def test_evaluate_reads_qvhighlights_scores_each_engine_and_writes_submissions_the_evaluator_agrees_with(
    indexed_library, tmp_path, capsys
):
    out, preds = tmp_path / "qvh.json", tmp_path / "predictions"
    args = ["evaluate", str(QVH), "--library", str(indexed_library.root), "--engines", "clip,dialogue"]
    assert main([*args, "--predictions", str(preds), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "MR-full-R1@0.5" in printed and "MR-full-mAP@0.75" in printed and "chance" in printed
    result = json.loads(out.read_text())
    gt = [json.loads(line) for line in QVH.read_text().splitlines()]
    for engine in ("clip", "dialogue"):
        submission = [json.loads(line) for line in (preds / f"{engine}.jsonl").read_text().splitlines()]
        assert [s["qid"] for s in submission] == [g["qid"] for g in gt]  # every query, in file order
        assert all(len(s["pred_relevant_windows"]) <= 10 for s in submission)
        assert all(set(s) == {"qid", "query", "vid", "pred_relevant_windows"} for s in submission)
        reported = next(e for e in result["engines"] if e["engine"] == engine)
        assert reported["metrics"] == official_qvhighlights(submission, gt)  # the official figures, to the digit
        assert all(lo <= reported["metrics"][m] <= hi for m, (lo, hi) in reported["ci"].items())
        assert set(reported["chance"]) == set(reported["metrics"])


@pytest.mark.slow
def test_evaluate_reads_charades_sta_and_reports_r1_and_miou(indexed_library, tmp_path, capsys):
    out = tmp_path / "charades.json"
    args = ["evaluate", str(CHARADES), "--library", str(indexed_library.root), "--engines", "clip", "--json", str(out)]
    assert main(args) == 0
    (clip,) = [e for e in json.loads(out.read_text())["engines"] if e["engine"] == "clip"]
    assert set(clip["metrics"]) == {"R1@0.3", "R1@0.5", "R1@0.7", "mIoU"}
    assert clip["metrics"]["R1@0.3"] >= clip["metrics"]["R1@0.5"] >= clip["metrics"]["R1@0.7"]
    rows = [r for r in json.loads(out.read_text())["queries"] if r["engine"] == "clip"]
    miou = np.mean([r["metrics"]["mIoU"] for r in rows])
    assert clip["metrics"]["mIoU"] == float(f"{100 * miou:.2f}")


@pytest.mark.slow
def test_csv_query_sets_score_moments_beside_frames_with_chance(indexed_library, tmp_path):
    from clip_search.store.library import Library
    from comparisons.evaluate import evaluate, load_query_set
    from engines import make_engine

    queries = tmp_path / "q.csv"
    queries.write_text(
        "film,query,start,end\npopeye_p1,that's not a bad joke,21.6,23.6\npopeye_p3,help me Popeye,0,20\n"
    )
    lib = Library(indexed_library.root)
    result = evaluate(lib, load_query_set(queries), [make_engine("dialogue", lib)], ks=(1,))
    (row,) = [r for r in result.table() if r["engine"] == "dialogue"]
    for metric in ("mr-r1@0.5", "mr-r1@0.7", "mr-map"):
        assert 0.0 <= row[metric] <= 1.0 and f"{metric}_chance" in row and f"{metric}_ci_low" in row
    listed = [r for r in result.rows if r["engine"] == "dialogue"]
    assert all(1 <= len(r["moments"]) <= 10 for r in listed)  # each query's ranked moments, to recheck
    assert row["mr-map"] == pytest.approx(np.mean([r["metrics"]["mr-map"] for r in listed]))

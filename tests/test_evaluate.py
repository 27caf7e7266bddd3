"""Evaluation metrics against hand-computed values, and the evaluate CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from comparisons.cli import main
from comparisons.evaluate import load_query_set, recompute
from comparisons.metrics import RankedHit, iou, mean_metrics, query_metrics
from engines.base import Engine
from tests.conftest import QUERY_SET


def hits(*times, moment=None):
    return [RankedHit(t, 1.0 - i * 0.1, *(moment or (t - 0.5, t + 0.5))) for i, t in enumerate(times)]


def test_metrics_by_hand():
    intervals = [(10.0, 12.0), (30.0, 31.0)]
    m = query_metrics(hits(50, 11, 30.5, 11.5), intervals, ks=(1, 5), tol=0.0)
    assert m["hit@1"] == 0 and m["hit@5"] == 1
    assert m["recall@1"] == 0 and m["recall@5"] == 1
    assert m["mrr"] == 0.5
    # rank 2 covers the first interval (1/2), rank 3 the second (2/3); rank 4 adds nothing
    assert m["ap"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m["r1@iou0.5"] == 0


def test_recall_counts_intervals_not_hits():
    m = query_metrics(hits(10.5, 11, 11.5), [(10, 12), (30, 31)], ks=(3,), tol=0.0)
    assert m["hit@3"] == 1 and m["recall@3"] == 0.5 and m["ap"] == pytest.approx(0.5)


def test_tolerance_and_moment_iou():
    assert query_metrics(hits(12.8), [(10, 12)], ks=(1,), tol=1.0)["hit@1"] == 1
    assert query_metrics(hits(12.8), [(10, 12)], ks=(1,), tol=0.5)["hit@1"] == 0
    assert iou((10, 12.5), (10, 12)) == pytest.approx(0.8)
    top = [RankedHit(11, 0.9, 10, 12.5)]
    assert query_metrics(top, [(10, 12)], ks=(1,))["r1@iou0.5"] == 1
    assert query_metrics([RankedHit(11, 0.9, 5, 20)], [(10, 12)], ks=(1,))["r1@iou0.5"] == 0  # IoU 2/15


def test_ties_keep_the_returned_order():
    tied = [RankedHit(50, 0.5, 49, 51), RankedHit(11, 0.5, 10, 12)]
    assert query_metrics(tied, [(10, 12)], ks=(1,))["mrr"] == 0.5


def test_average_precision_never_exceeds_one_when_a_hit_lies_in_two_intervals():
    # intervals closer than twice the tolerance: the first hit lies in both
    m = query_metrics(hits(12.5, 40), [(10, 12), (13, 15)], ks=(1,), tol=1.0)
    assert m["ap"] == pytest.approx(1.0) and m["recall@1"] == 1.0
    # one hit in both, then a miss, then a third interval found at rank 3: precision there is 2/3
    m = query_metrics(hits(12.5, 40, 30), [(10, 12), (13, 15), (30, 31)], ks=(1,), tol=1.0)
    assert m["ap"] == pytest.approx((1 + 1 + 2 / 3) / 3)
    for times in ([12.5], [12.5, 14, 30.5], [11, 12.5, 14]):
        assert query_metrics(hits(*times), [(10, 12), (13, 15), (30, 31)], ks=(1,), tol=1.0)["ap"] <= 1.0


class TiedEngine(Engine):
    """Stands for a tag or dialogue engine whose frames all get one score (nothing matched): it
    serves its scores through the same ``Engine.run`` path the real engines do."""

    name = "tied"

    def __init__(self, value: float | None = None) -> None:
        self.value = value

    def scores(self, film, query):
        if self.value is None:  # distinct scores, best first: no ties
            return np.linspace(1, 0, len(film.times), dtype=np.float32)
        return np.full(len(film.times), self.value, np.float32)


def test_ties_are_scored_over_random_orders_not_earlier_frame_first(indexed_library):
    from comparisons.evaluate import Task, rank_query

    film = indexed_library.find_one("big-buck-bunny-30s")
    n = len(film.times)
    rng = np.random.default_rng(0)
    for where in ((0.0, 0.0), (float(film.times[-1]),) * 2):  # the first frame, and the last
        task = Task(film.name, "anything", [film], [where])
        r = rank_query(TiedEngine(0.0), task, (1,), 0.0, 2.0, 10, rng)
        assert r.ties > 1 and r.metrics["hit@1"] == pytest.approx(1 / n, abs=0.02)  # any frame may come first
        assert r.hits[0].time == 0.0  # the listed order is still earlier frame first
    untied = rank_query(TiedEngine(), Task(film.name, "anything", [film], [(0.0, 0.0)]), (1,), 0.0, 2.0, 10, rng)
    assert untied.ties == 1 and untied.metrics["hit@1"] == 1.0  # one order only: scored as listed


def test_r1_chance_places_the_engines_own_moment_at_random():
    from comparisons.statistics import Searched, moment_chance

    film = [Searched("", np.arange(100, dtype=float), 100.0)]
    # a 10 s moment centred on its hit matches [10, 20] with IoU >= 0.5 when the hit is in 11.67..18.33
    assert moment_chance(film, [(10.0, 20.0)], 5.0, 5.0) == pytest.approx(7 / 100)
    assert moment_chance(film, [(10.0, 20.0)], 0.0, 1.0) == 0.0  # 1 s moments almost never reach IoU 0.5
    two = [Searched("a", np.arange(100, dtype=float), 100.0), Searched("b", np.arange(100, dtype=float), 100.0)]
    assert moment_chance(two, [("b", 10.0, 20.0)], 5.0, 5.0) == pytest.approx(7 / 200)


def test_engine_against_chance_is_tested_against_the_simulated_null():
    from comparisons.statistics import compare_all, null_p

    rng = np.random.default_rng(0)
    null = (rng.random((1000, 30)) < 0.1).astype(float)  # a random ranking hits 10 % of the time
    assert null_p([1.0] * 30, null) == pytest.approx(1 / 1001)  # far above every draw: the smallest p
    assert null_p([0.1] * 30, null) > 0.5  # at chance
    engine = [{"hit@1": v} for v in [1.0] * 6 + [0.0] * 24]  # 0.2 against chance 0.1
    chance = [{"hit@1": 0.1} for _ in range(30)]
    (c,) = compare_all({"e": engine, "random": chance}, "hit@1", {"e": null}, chance="random")
    assert c.p == pytest.approx(null_p([m["hit@1"] for m in engine], null))
    assert c.mean_b == pytest.approx(null.mean())


def test_rare_proportions_get_exact_intervals():
    from comparisons.statistics import interval, proportion_ci

    low, high = proportion_ci([1.0] + [0.0] * 59)  # 1 of 60
    assert low == pytest.approx(0.0004, abs=0.0001) and high == pytest.approx(0.089, abs=0.001)
    assert proportion_ci([0.0] * 60)[0] == 0.0 and proportion_ci([1.0] * 60)[1] == 1.0
    assert interval("hit@5", [1.0] + [0.0] * 59) == (low, high)
    assert interval("mrr", [1.0] + [0.0] * 59)[0] == 0.0  # MRR is no proportion: bootstrap


def test_a_film_reference_matching_several_films_is_refused(indexed_library, tmp_path):
    from clip_search.errors import FrameSearchError
    from comparisons.evaluate import evaluate
    from engines import make_engine

    rows = tmp_path / "q.csv"
    rows.write_text("film,query,start,end\npopeye,help me Popeye,0,20\n")
    with pytest.raises(FrameSearchError, match="'popeye' matches several films: popeye_p1.*popeye_p4"):
        evaluate(indexed_library, load_query_set(rows), [make_engine("dialogue", indexed_library)])


def test_query_set_paraphrases_translations_and_large_cells(tmp_path):
    rows = tmp_path / "q.csv"
    big = "x" * 200_000  # beyond the csv module's default field limit
    rows.write_text(
        "film,query,start,end,paraphrases,translations\n"
        "a,a red car,1,2,a crimson automobile|a red vehicle,une voiture rouge\n"
        "a,a red car,5,6,a red vehicle,\n"
        f"a,{big},1,2,,\n"
    )
    q = load_query_set(rows)
    assert q[0].paraphrases == ["a crimson automobile", "a red vehicle"] and q[0].translations == ["une voiture rouge"]
    assert q[0].intervals == [(1.0, 2.0), (5.0, 6.0)] and q[1].query == big
    example = load_query_set(QUERY_SET)
    assert sum(1 for x in example if x.paraphrases) >= 20 and sum(1 for x in example if x.translations) >= 10


def test_queries_without_an_answer_are_left_out_of_means():
    assert query_metrics(hits(3), [], ks=(1,)) is None
    a = query_metrics(hits(11), [(10, 12)], ks=(1,))
    b = query_metrics(hits(50), [(10, 12)], ks=(1,))
    means = mean_metrics([a, None, b])
    assert means["hit@1"] == 0.5 and means["mrr"] == 0.5 and means["map"] == 0.5


def test_example_query_set_is_rich_enough():
    queries = load_query_set(QUERY_SET)
    assert len(queries) >= 30
    assert {q.film for q in queries} >= {"big-buck-bunny-30s", "popeye_p1", "tears-of-steel-battle-clip-medium"}
    assert any(len(q.intervals) > 1 for q in queries) and any(not q.intervals for q in queries)


def test_bad_query_set_rows_are_named(tmp_path):
    bad = tmp_path / "q.csv"
    bad.write_text("film,query,start,end\nx,a dog,5,2\n")
    with pytest.raises(ValueError, match="line 2: end 2.0 is before start 5.0"):
        load_query_set(bad)


@pytest.mark.slow
def test_evaluate_cli_end_to_end(indexed_library, tmp_path, capsys):
    out = tmp_path / "eval.json"
    table = tmp_path / "eval.csv"
    code = main(
        ["evaluate", str(QUERY_SET), "--library", str(indexed_library.root), "--json", str(out), "--csv", str(table)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    by_engine = {e["engine"]: e for e in result["engines"]}
    assert set(by_engine) == {"clip", "tags:offline", "dialogue", "clip+dialogue", "random"}  # random: chance
    assert by_engine["tags:offline"]["status"] == "skipped" and "not tagged" in by_engine["tags:offline"]["reason"]
    assert "tags:offline" in printed and "skipped" in printed
    for name in ("clip", "dialogue", "clip+dialogue"):
        assert by_engine[name]["status"] == "ok"
        assert 0.0 <= by_engine[name]["map"] <= 1.0 and by_engine[name]["queries"] >= 30
    # anyone can recompute the numbers from the per-query ranked hits
    from comparisons.evaluate import EngineResult, Evaluation

    ev = Evaluation(
        tuple(result["ks"]), result["tolerance"], [EngineResult(e, "ok") for e in by_engine], result["queries"]
    )
    again = recompute(ev)  # over the queries whose ranking had no ties: their listed order is the only one
    assert set(again) >= {"clip"}
    for name, means in again.items():
        untied = [r["metrics"] for r in result["queries"] if r["engine"] == name and r["ties"] == 1]
        for metric, value in means.items():
            assert mean_metrics(untied)[metric] == pytest.approx(value)
    assert all(r["ties"] == 1 for r in result["queries"] if r["engine"] == "clip")  # cosines do not tie
    assert table.read_text().splitlines()[0].startswith("engine,status,reason,queries,no_answer,hit@1")


def test_chance_is_the_expected_value_under_random_ranking():
    from comparisons.statistics import chance_metrics

    times = np.arange(100, dtype=float)
    film = [("", times, 100.0)]
    rng = np.random.default_rng(0)
    half = chance_metrics(film, [(0.0, 49.0)], (1, 5), 0.0, 2.0, 10, rng, draws=400)
    assert half["hit@1"] == pytest.approx(0.5, abs=0.08)  # half of the frames are relevant
    assert half["hit@5"] == pytest.approx(1 - 0.5**5, abs=0.06)  # de-dup barely changes independent picks
    one = chance_metrics(film, [(10.0, 10.0)], (1,), 0.0, 2.0, 10, rng, draws=400)
    assert one["hit@1"] == pytest.approx(0.01, abs=0.02)
    assert chance_metrics(film, [], (1,), 0.0, 2.0, 10, rng) is None
    # searching three films, the answer in one: a quarter of the frames of one film of three is relevant
    films = [("a", times, 100.0), ("b", times, 100.0), ("c", times, 100.0)]
    wide = chance_metrics(films, [("b", 0.0, 24.0)], (1,), 0.0, 2.0, 10, rng, draws=600)
    assert wide["hit@1"] == pytest.approx(25 / 300, abs=0.03)


def test_a_hit_in_another_film_is_wrong_when_the_search_spans_films():
    answer = [("film-b", 10.0, 12.0)]
    elsewhere = [RankedHit(11, 0.9, 10, 12, "film-a"), RankedHit(11, 0.8, 10, 12, "film-b")]
    m = query_metrics(elsewhere, answer, ks=(1, 2), tol=0.0)
    assert m["hit@1"] == 0 and m["hit@2"] == 1 and m["mrr"] == 0.5 and m["r1@iou0.5"] == 0
    assert query_metrics(elsewhere[1:], answer, ks=(1,))["r1@iou0.5"] == 1


def test_intervals_and_paired_tests_say_what_the_data_supports():
    from comparisons.statistics import bootstrap_ci, compare_all

    rng = np.random.default_rng(1)
    good = [{"mrr": float(v)} for v in rng.uniform(0.6, 1.0, 40)]
    bad = [{"mrr": float(v)} for v in rng.uniform(0.0, 0.4, 40)]
    lo, hi = bootstrap_ci([m["mrr"] for m in good])
    assert lo < np.mean([m["mrr"] for m in good]) < hi and hi - lo < 0.1
    (c,) = compare_all({"clip+dialogue": good, "clip": bad}, "mrr")
    assert c.significant and c.sentence().startswith("clip+dialogue beats clip on MRR")
    noisy = [{"mrr": m["mrr"] + float(e)} for m, e in zip(good, rng.normal(0, 0.01, 40), strict=True)]
    (same,) = compare_all({"a": good, "b": noisy}, "mrr")
    assert not same.significant and "no significant difference" in same.sentence()


def test_every_evaluation_carries_chance_intervals_and_comparisons(indexed_library, tmp_path, capsys):
    out, table = tmp_path / "eval.json", tmp_path / "eval.csv"
    args = ["evaluate", str(QUERY_SET), "--library", str(indexed_library.root), "--engines", "dialogue,clip+dialogue"]
    code = main([*args, "--json", str(out), "--csv", str(table)])
    printed = capsys.readouterr().out
    assert code == 0
    result = json.loads(out.read_text())
    engines = {e["engine"]: e for e in result["engines"]}
    assert set(engines) == {"dialogue", "clip+dialogue", "random"}
    for name in ("dialogue", "clip+dialogue"):
        e = engines[name]
        assert e["mrr_ci_low"] <= e["mrr"] <= e["mrr_ci_high"]
        assert e["r1@iou0.5_chance"] < 0.05  # each engine's own chance of R1@IoU
    assert "mrr_ci_low" not in engines["random"]  # chance is an expectation, not a sample: no interval
    assert engines["random"]["r1@iou0.5"] is None
    assert result["scope"] == "library" and "each query searched all films of the set" in printed
    assert engines["random"]["hit@1"] < 0.05  # 8 films searched at once: chance is low
    assert {(c["a"], c["b"]) for c in result["comparisons"]} >= {("dialogue", "random")}
    assert "random = chance" in printed and ("beats" in printed or "no significant difference" in printed)
    assert "mrr_ci_low" in table.read_text().splitlines()[0]
    costs = result["costs"]  # quality per dollar: cloud estimates even without credentials
    assert costs["tags:azure"]["usd_per_film_hour"] == pytest.approx(3600 * 5 / 1000, rel=0.05)  # 1 fps, 5 tx
    assert costs["tags:rekognition"]["usd_per_film_hour"] == pytest.approx(3600 * 3 / 1000, rel=0.05)
    assert costs["clip+dialogue"]["usd_per_film_hour"] > 0 and "indexing" in costs["clip+dialogue"]["basis"]
    assert costs["dialogue"]["usd_per_film_hour"] == 0 and "quality per dollar" in printed


def test_scope_film_searches_each_querys_own_film_where_chance_is_high(indexed_library, tmp_path):
    out = tmp_path / "eval.json"
    args = ["evaluate", str(QUERY_SET), "--library", str(indexed_library.root), "--engines", "dialogue"]
    assert main([*args, "--scope", "film", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    chance = next(e for e in result["engines"] if e["engine"] == "random")
    assert result["scope"] == "film" and 0.1 < chance["hit@1"] < 0.5  # short films, 1 s tolerance
    rows = [r for r in result["queries"] if r["engine"] == "dialogue" and r["hits"]]
    assert all({h["film"] for h in r["hits"]} == {indexed_library.find_one(r["film"]).id} for r in rows)


def test_in_library_scope_one_query_text_is_one_query_answered_in_any_of_its_films(indexed_library, tmp_path):
    from comparisons.evaluate import evaluate
    from engines import make_engine

    rows = tmp_path / "q.csv"
    rows.write_text(
        "film,query,start,end\n"
        "popeye_p1,that's not a bad joke,21.6,23.6\n"
        "popeye_p2,that's not a bad joke,50,52\n"
        "popeye_p4,a car driving on a highway,,\n"
    )
    result = evaluate(indexed_library, load_query_set(rows), [make_engine("dialogue", indexed_library)], ks=(1,))
    (row,) = [r for r in result.rows if r["engine"] == "dialogue" and r["metrics"] is not None]
    ids = {indexed_library.find_one(n).id for n in ("popeye_p1", "popeye_p2")}
    assert row["film"] == "popeye_p1 + popeye_p2" and {iv[0] for iv in row["intervals"]} == ids
    assert row["metrics"]["hit@1"] == 1 and row["hits"][0]["film"] == indexed_library.find_one("popeye_p1").id
    dialogue = next(e for e in result.engines if e.engine == "dialogue")
    assert dialogue.queries == 1 and dialogue.no_answer == 1


def test_queries_cut_to_the_models_token_limit_are_named(indexed_library, tiny_clip_dir, tmp_path, monkeypatch):
    from comparisons.evaluate import evaluate, load_query_set
    from engines import make_engine

    monkeypatch.setenv("FRAMESEARCH_MODEL", str(tiny_clip_dir))
    rows = tmp_path / "q.csv"
    long = "a rabbit in a meadow " * 10_000  # a 200 000-character cell
    rows.write_text(f"film,query,start,end\nbig-buck-bunny-30s,{long},10,20\nbig-buck-bunny-30s,a bird,1,3\n")
    result = evaluate(indexed_library, load_query_set(rows), [make_engine("clip", indexed_library)])
    cut = [w for w in result.warnings if "token limit" in w]
    assert len(cut) == 1 and "'a rabbit in a meadow a rabbit in a meado…'" in cut[0] and "a bird" not in cut[0]
    assert "\n" not in cut[0] and len(cut[0]) < 300


def test_the_verdict_says_who_beats_whom_and_who_is_within_chance():
    from comparisons.statistics import Comparison, verdict

    tested = [
        Comparison("dialogue", "clip", "mrr", 0.52, 0.31, 0.001, 0.004, 63),
        Comparison("dialogue", "random", "mrr", 0.52, 0.10, 0.0001, 0.0004, 63),
        Comparison("clip", "random", "mrr", 0.31, 0.10, 0.001, 0.003, 63),
        Comparison("tags:azure", "random", "mrr", 0.12, 0.10, 0.4, 0.8, 63),
        Comparison("tags:azure", "clip", "mrr", 0.12, 0.31, 0.02, 0.06, 63),
    ]
    assert verdict(tested, "random") == "On MRR: dialogue beats clip (p = 0.004); tags:azure is within chance."
    assert verdict(tested[1:3], "random") == "On MRR: no engine beats another significantly; every engine beats chance."

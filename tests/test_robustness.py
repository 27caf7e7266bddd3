"""Robustness to how people type: seeded perturbations, and each engine's drop with a paired test."""

from __future__ import annotations

import json

import numpy as np

from comparisons.cli import main
from comparisons.robustness import case_and_punctuation, perturbations, typos, word_order


def test_typos_edit_the_share_of_letters_asked_for_and_repeat_with_the_seed():
    text = "a purple bird standing on a branch"
    once = typos(text, 0.10, np.random.default_rng(3))
    assert once == typos(text, 0.10, np.random.default_rng(3))  # seeded: the same typos every run
    assert once != text
    heavy = [typos(text, 0.30, np.random.default_rng(s)) for s in range(20)]
    light = [typos(text, 0.05, np.random.default_rng(s)) for s in range(20)]

    def edits(a: str, b: str) -> int:  # Levenshtein distance
        row = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            prev, row[0] = row[0], i
            for j, cb in enumerate(b, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
        return row[-1]

    assert np.mean([edits(text, h) for h in heavy]) > 2 * np.mean([edits(text, x) for x in light]) >= 2
    assert typos("!!", 0.5, np.random.default_rng(0)) == "!!"  # nothing to misspell


def test_case_punctuation_and_word_order_change_the_text_but_not_its_words():
    rng = np.random.default_rng(0)
    text = "that's not a bad joke"
    for _ in range(5):
        cased = case_and_punctuation(text, rng)
        assert cased != text and cased.lower().rstrip("?!").split() == ["thats", "not", "a", "bad", "joke"]
        swapped = word_order(text, rng)
        assert swapped != text and sorted(swapped.split()) == sorted(text.split())
    assert word_order("Popeye", rng) is None  # one word: nothing to reorder, the query is left out


def test_every_perturbation_the_issue_names_is_run():
    names = [p.name for p in perturbations()]
    assert names[:3] == ["typos 5%", "typos 10%", "typos 20%"]
    assert {"case & punctuation", "word order", "paraphrase", "translation"} <= set(names)


def test_evaluate_robustness_reports_each_engines_drop_with_a_paired_test(indexed_library, tmp_path, capsys):
    queries = tmp_path / "q.csv"
    queries.write_text(
        "film,query,start,end,paraphrases,translations\n"
        "popeye_p1,that's not a bad joke,21.6,23.6,that joke isn't bad at all,ce n'est pas une mauvaise blague\n"
        "popeye_p3,help me Popeye,0,20,Popeye please help me,aide-moi Popeye\n"
        "popeye_p3,abandon ship and lower the lifeboats,37,42,leave the ship and put the boats down,\n"
        "popeye_p4,let me down you big overgrown canary,0,12,put me down you huge bird,\n"
    )
    out = tmp_path / "eval.json"
    code = main(
        [
            "evaluate",
            str(queries),
            "--library",
            str(indexed_library.root),
            "--engines",
            "dialogue",
            "--robustness",
            "--json",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    rows = {r["perturbation"]: r for r in json.loads(out.read_text())["robustness"]}
    assert {"typos 20%", "case & punctuation", "word order", "paraphrase", "translation"} <= set(rows)
    for r in rows.values():
        assert r["engine"] == "dialogue" and 0 <= r["p_holm"] <= 1 and r["p"] <= r["p_holm"]
        assert r["drop"] == r["clean"] - r["perturbed"] and " → " in r["example"]
    assert rows["paraphrase"]["queries"] == 4 and rows["translation"]["queries"] == 2  # only where given
    clean = next(e for e in json.loads(out.read_text())["engines"] if e["engine"] == "dialogue")
    assert rows["typos 5%"]["clean"] == clean["mrr"]  # clean = the evaluation's own numbers
    assert "most damaging to CLIP text encoders" in " ".join(printed.split()) and "robustness: MRR" in printed
    assert max(len(line) for line in printed.splitlines()) <= 100  # fits a terminal


def test_every_engine_is_asked_the_same_perturbed_queries(indexed_library, encoder, tmp_path):
    from comparisons.evaluate import evaluate, load_query_set
    from comparisons.robustness import robustness
    from engines import make_engine

    queries = tmp_path / "q.csv"
    queries.write_text(
        "film,query,start,end\n"
        "popeye_p1,that's not a bad joke,21.6,23.6\n"
        "popeye_p3,help me Popeye,0,20\n"
        "popeye_p4,let me down you big overgrown canary,0,12\n"
    )
    labelled = load_query_set(queries)
    # dialogue ties on every cue (tie orders are drawn), clip does not: both must see the same typos
    engines = [make_engine("dialogue", indexed_library), make_engine("clip", indexed_library, encoder)]
    result = evaluate(indexed_library, labelled, engines, ks=(1,))
    asked: dict[str, list[str]] = {}
    for engine in engines:  # the real engines, recording what they are asked through their one search path
        real = engine.run

        def recording(films, query, *args, real=real, name=engine.name):
            asked.setdefault(name, []).append(query if isinstance(query, str) else query.text)
            return real(films, query, *args)

        engine.run = recording
    drops = robustness(indexed_library, labelled, engines, result)
    assert {d.engine for d in drops} == {"dialogue", "clip"}
    assert asked["dialogue"] == asked["clip"] and len(asked["clip"]) >= 12

"""What Evaluate scores is exactly what Search serves: for every engine, the hits an evaluation lists
for a query (``queries[].hits`` in its JSON) are the hits ``search`` returns for the same query,
films, engine and k, through the command lines a user runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clip_search.cli import main as engine_cli
from clip_search.indexing.indexer import IndexOptions, index_film
from clip_search.store.library import Library
from clip_search.video.decode import SamplingSettings
from comparisons.cli import main as compare
from engines import available
from tagging.run import tag_film
from tagging.taggers import make_tagger
from tests.conftest import POPEYE1, text_video

KEYS = ("time", "score", "start", "end")  # and the film: its id, "film" in the evaluation, "film_id" in search


@pytest.fixture(scope="module")
def tagged_library(tmp_path_factory, encoder):
    """Two films, both tagged offline: Popeye with its subtitles (dialogue serves one hit per line)
    and a film whose only dialogue is its on-screen text."""
    tmp = tmp_path_factory.mktemp("agree")
    lib = Library(tmp / "lib")
    films = [
        index_film(POPEYE1, lib, encoder, IndexOptions(SamplingSettings(fps=0.5))).film,
        index_film(text_video(tmp / "captions.mp4"), lib, encoder).film,
    ]
    tagger = make_tagger("offline")
    for f in films:
        assert not tag_film(lib, f, tagger).errors
    return lib


def _query_set(path, films) -> None:
    rows = ["film,query,start,end"]
    for text in ("HELLO WORLD", "a cartoon sailor", "frame search", "Olive Oyl", "dancing"):
        rows += [f"{films[0].name},{text},2,4", f"{films[1].name},{text},5,7"]
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.slow
@pytest.mark.parametrize("scope", ["library", "film"])
def test_evaluation_lists_exactly_the_hits_search_serves_for_every_engine(tagged_library, tmp_path, capsys, scope):
    lib = tagged_library
    films = lib.films()
    engines = available(lib, films)
    assert {"clip", "tags:offline", "dialogue", "clip+dialogue"} <= set(engines)
    queries, out = tmp_path / "q.csv", tmp_path / "eval.json"
    _query_set(queries, list(reversed(films)))  # listed in another order than the library's: order must not matter
    args = ["evaluate", str(queries), "--library", str(lib.root), "--engines", ",".join(engines), "--json", str(out)]
    assert compare([*args, "--scope", scope]) == 0
    evaluation = json.loads(out.read_text())
    capsys.readouterr()
    depth = max(max(evaluation["ks"]), 10)
    compared = 0
    for row in evaluation["queries"]:
        if row["engine"] == "random":
            continue
        searched = [f for f in films if scope == "library" or f.name == row["film"]]
        refs = [x for f in searched for x in ("--film", f.id)]
        argv = ["search", row["query"], "--engine", row["engine"], "--top-k", str(depth), "--json"]
        assert compare([*argv, *refs, "--library", str(lib.root)]) == 0
        served = json.loads(capsys.readouterr().out)
        listed = [(h["film"], *(h[k] for k in KEYS)) for h in row["hits"]]
        assert listed == [(h["film_id"], *(h[k] for k in KEYS)) for h in served], f"{row['engine']} on {row['query']!r}"
        if row["engine"] == "clip":  # the engine CLI's own search serves the same frames
            own = ["search", row["query"], "--top-k", str(depth), "--json", *refs, "--library", str(lib.root)]
            assert engine_cli(own) == 0
            assert listed == [(h["film_id"], *(h[k] for k in KEYS)) for h in json.loads(capsys.readouterr().out)]
        compared += 1
    assert compared == len(engines) * (5 if scope == "library" else 10)
    per_engine = {r["engine"]: r for r in evaluation["queries"] if r["engine"] != "random"}
    assert per_engine["dialogue"]["hits"], "dialogue served nothing to compare"


def test_ties_are_drawn_only_among_equal_scores_and_through_the_engines_own_choice(tagged_library):
    """Dialogue gives the frames of one line equal scores and serves one hit per line: every tie
    order evaluation draws is a choice dialogue itself could serve, never two frames of one line."""
    from engines import make_engine

    lib = tagged_library
    engine = make_engine("dialogue", lib)
    result = engine.run(lib.films(), "HELLO WORLD", top_k=10)
    assert result.tied(10)
    rng = np.random.default_rng(0)
    cues = {}
    for _ in range(20):
        drawn = result.redrawn(rng)
        assert drawn.picks[0][2] == result.picks[0][2]  # the best score is served first in every order
        lines = []  # the line each hit shows, as its explanation names it (a line may be sung twice)
        for h in drawn.hits:
            cue = drawn.explain(lib.get(h.film_id), h.frame).evidence
            if cue:
                lines.append((h.film_id, cue[0].start, cue[0].end))
        assert len(lines) == len(set(lines))  # one hit per line of dialogue, whatever the tie order
        cues.setdefault(tuple((p[0], p[1]) for p in drawn.picks[:1]), 0)
    assert len(cues) > 1  # the order among the tied frames really is drawn


def test_reciprocal_rank_fusion_is_the_documented_sum():
    from engines.fused import RRF_K, rrf

    a = [np.array([0.9, 0.1, 0.5], np.float32)]  # ranks 1, 3, 2
    b = [np.array([0.2, 0.8, np.nan], np.float32)]  # ranks 2, 1, none
    (fused,) = rrf([a, b])
    expected = [1 / (RRF_K + 1) + 1 / (RRF_K + 2), 1 / (RRF_K + 3) + 1 / (RRF_K + 1), 1 / (RRF_K + 2)]
    assert np.allclose(fused, expected)
    (tied,) = rrf([[np.array([0.5, 0.5, 0.1], np.float32)], [np.array([0.1, 0.2, 0.3], np.float32)]])
    assert tied[0] == pytest.approx(1 / (RRF_K + 1.5) + 1 / (RRF_K + 3))  # equal scores share their rank


FUSED3 = "fuse(clip, tags:offline, dialogue)"


@pytest.mark.slow
def test_a_fusion_of_three_engines_is_offered_searched_and_evaluated_against_its_parts(tagged_library, tmp_path):
    from comparisons.evaluate import evaluate, load_query_set
    from engines import make_engine
    from engines.fused import rrf

    lib = tagged_library
    assert FUSED3 in available(lib, lib.films())  # offered wherever engines are listed
    fused = make_engine(FUSED3, lib)
    assert [p.name for p in fused.parts] == ["clip", "tags:offline", "dialogue"] and fused.method == "rrf"
    films = lib.films()
    result = fused.run(films, "HELLO WORLD", 3)
    parts_scores = [p.scores_of(result.films, "HELLO WORLD") for p in fused.parts]
    for film, expected in zip(result.films, rrf(parts_scores), strict=True):
        assert np.allclose(result.scores(film), expected)  # each frame: the sum of 1 / (60 + its rank) per part
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    blend = make_engine("fuse(clip, dialogue; minmax=0.2,0.8)", lib)
    assert blend.method == "minmax" and blend.weights == [0.2, 0.8]
    with pytest.raises(ValueError, match="one weight"):
        make_engine("fuse(clip, dialogue; minmax=0.2)", lib)
    queries = tmp_path / "q.csv"
    _query_set(queries, lib.films())
    parts = [make_engine(n, lib) for n in ("clip", "tags:offline", "dialogue")]
    result = evaluate(lib, load_query_set(queries), [*parts, fused], ks=(1, 5))
    ok = {e.engine: e for e in result.engines}
    assert ok[FUSED3].status == "ok" and ok[FUSED3].queries == 5  # five texts, each over both films
    tested = {frozenset((c["a"], c["b"])) for c in result.comparisons}
    assert all(frozenset((FUSED3, p.name)) in tested for p in parts)  # paired tests against each part
    cost = result.costs[FUSED3]
    assert cost["usd_per_film_hour"] is None or "tags:offline" in cost["basis"]  # the sum of its parts


@pytest.mark.slow
def test_the_dashboard_searches_and_compares_with_the_fusion(tagged_library, monkeypatch, tiny_clip_dir):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import assert_no_error
    from tests.test_dashboard import APP

    monkeypatch.setenv("FRAMESEARCH_LIBRARY", str(tagged_library.root))
    monkeypatch.setenv("FRAMESEARCH_MODEL", str(tiny_clip_dir))
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert FUSED3 in at.selectbox(key="search-engine").options
    at.selectbox(key="search-engine").select(FUSED3).run()
    at.text_input(key="query").input("HELLO WORLD").run()
    assert_no_error(at)
    assert any(m.value.startswith("**") and "hits" in m.value for m in at.markdown)
    at.session_state["tab"] = "Compare engines"
    at.run()
    assert_no_error(at)
    assert any(FUSED3 in m.value for m in at.markdown)  # a column of its own beside its parts

"""What Evaluate scores is exactly what Search serves: for every engine, the hits an evaluation lists
for a query (``queries[].hits`` in its JSON) are the hits ``search`` returns for the same query,
films, engine and k, through the command lines a user runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

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

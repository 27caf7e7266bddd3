"""Temporal queries on vectors built so that the right answer is known: a 2-minute film whose frames
are noise except where "a dog" (10-14 s and 80-84 s), "a cat" (30-33 s) and "a bird" (100-103 s)
are seen, searched through the real engine path with a stand-in text encoder."""

from __future__ import annotations

import numpy as np
import pytest

from clip_search.encoders.base import TextEncoding
from clip_search.store.library import Library, Manifest
from clip_search.store.writer import import_vectors
from engines import ModelEngine, Query
from engines.temporal import When, search

DIM = 16
SEEN = {"a dog": [(10, 15), (80, 85)], "a cat": [(30, 34)], "a bird": [(100, 104)]}


class _Texts:
    """Stands for the model of these synthetic vectors: its text encoder maps each phrase to the
    direction its frames were built on (no real model made them)."""

    model_id, max_tokens = "synthetic", 77

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def encode_text(self, texts):
        return TextEncoding(np.stack([self.vectors[t] for t in texts]), [False] * len(texts), list(texts))


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    rng = np.random.default_rng(0)
    axes = {name: np.eye(DIM)[i] for i, name in enumerate([*SEEN, "a horse", "background"])}
    emb = axes["background"] + rng.normal(size=(120, DIM)) * 0.05  # the rest of the film: a scene of its own
    for name, spans in SEEN.items():
        for a, b in spans:
            emb[a:b] = axes[name] + rng.normal(size=(b - a, DIM)) * 0.05
    emb[80:85] += 0.3 * axes["a horse"]  # the second dog is seen with a horse
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    lib = Library(tmp_path_factory.mktemp("temporal") / "lib")
    import_vectors(lib, Manifest.imported("known", "synthetic", 120.0), emb, np.arange(120.0))
    return lib.films(), ModelEngine("synthetic", _Texts(axes))


def _spans(moments):
    return [(m.start, m.end) for m in moments]


def test_then_finds_a_followed_by_b_within_the_window(known):
    films, engine = known
    found = search(engine, films, "a dog", When(then=("a cat",), within=30), top_k=5).moments
    assert len(found) == 1 and found[0].start == 10.0 and found[0].end == 34.0  # the dog, then the cat
    assert search(engine, films, "a dog", When(then=("a cat",), within=10)).moments == []  # 15 s apart
    three = search(engine, films, "a dog", When(then=("a cat", "a dog", "a bird"), within=50)).moments
    assert _spans(three) == [(10.0, 104.0)]  # dog, cat, the second dog, then the bird
    assert search(engine, films, "a cat", When(then=("a dog",), within=60)).moments[0].start == 30.0


def test_after_and_before_keep_only_hits_inside_the_range(known):
    films, engine = known
    late = search(engine, films, "a dog", When(after=60.0), top_k=3).result
    assert all(h.time >= 60 for h in late.hits) and 80 <= late.hits[0].time < 85
    early = search(engine, films, "a dog", When(before=60.0), top_k=3).result
    assert all(h.time <= 60 for h in early.hits) and 10 <= early.hits[0].time < 15
    assert all(m.end <= 61 for m in early.moments(5))  # moments too come from inside the range
    with pytest.raises(ValueError, match="is not after"):
        When(after=50.0, before=40.0)


def test_all_returns_every_occurrence_and_nothing_when_there_is_none(known):
    films, engine = known
    every = search(engine, films, "a dog", When(every=True))
    assert sorted(_spans(every.moments)) == [(10.0, 15.0), (80.0, 85.0)]
    assert "median + 3.5 MAD" in every.notes[0] and "known" in every.notes[0]  # the threshold, said
    assert search(engine, films, "a bird", When(every=True)).moments[0].start == 100.0
    noise = search(engine, films, "a horse", When(every=True, before=70.0))  # the horse is only at 80-84
    assert noise.moments == []


def test_the_negative_query_works_with_temporal_options(known):
    films, engine = known
    plain = search(engine, films, "a dog", When(every=True)).moments
    pushed = search(engine, films, Query("a dog", negative="a horse", negative_weight=1.0), When(every=True)).moments
    assert plain[0].score == pytest.approx(max(m.score for m in plain))
    assert _spans(pushed)[0] == (10.0, 15.0)  # the dog without the horse ranks first once the horse is pushed away
    assert pushed[0].score > next(m.score for m in pushed if m.start == 80.0)


def test_both_command_lines_take_the_temporal_options(indexed_library, capsys):
    import json

    from clip_search.cli import main as engine_cli
    from comparisons.cli import main as compare_cli

    lib = ["--library", str(indexed_library.root), "--film", "popeye_p1", "--json"]
    assert engine_cli(["search", "a ship at sea", *lib, "--after", "0:30", "--top-k", "5"]) == 0
    assert all(h["time"] >= 30 for h in json.loads(capsys.readouterr().out))
    assert compare_cli(["search", "Popeye", "--engine", "dialogue", *lib, "--then", "sailor", "--within", "60"]) == 0
    chained = json.loads(capsys.readouterr().out)
    assert all(m["engine"] == "dialogue" and m["start"] < m["end"] for m in chained)
    assert compare_cli(["search", "Popeye", "--engine", "dialogue", *lib, "--all"]) == 0
    captured = capsys.readouterr()
    assert "every occurrence" in captured.err and "popeye_p1" in captured.err  # the threshold used, said
    assert compare_cli(["search", "x", *lib, "--after", "1:30", "--before", "0:20"]) == 2
    assert "is not after" in capsys.readouterr().err
    assert compare_cli(["search", "x", *lib, "--after", "soon"]) == 2
    assert "must be a time" in capsys.readouterr().err

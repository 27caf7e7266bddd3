"""Shots: found once at indexing from the frames already decoded (their thumbnails), kept with the
film, listed by `films --json`, found for films indexed before shots existed without encoding
again, and where a moment may not run across."""

from __future__ import annotations

import json

import numpy as np

from clip_search.store.library import Library
from framesearch import app
from tests.conftest import level_frame, write_video


def _three_shots(path):
    """9 s at 8 fps: dark 0-3 s, bright 3-6 s, dark again 6-9 s (two hard cuts)."""
    frames = [level_frame(20 if i < 24 or i >= 48 else 230) for i in range(72)]
    return write_video(path, frames, rate=8)


def test_indexing_finds_the_shots_and_films_json_lists_them(tmp_path, encoder, capsys):
    from clip_search.cli import main

    lib = Library(tmp_path / "lib")
    report = app.index(lib, [_three_shots(tmp_path / "cuts.mp4")], [encoder.model_id], load=lambda m: encoder)
    assert len(report.films) == 1
    shots = Library(lib.root).films()[0].shots()
    assert shots is not None and shots[0, 0] == 0.0 and shots[-1, 1] >= 8.9
    assert np.allclose(shots[:, 0], [0.0, 3.0, 6.0], atol=1.01)  # the two cuts, to the sampled second
    assert np.all(shots[1:, 0] == shots[:-1, 1])  # they cover the film, end to start
    assert main(["films", "--library", str(lib.root), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["shots"] == [[round(a, 3), round(b, 3)] for a, b in shots]


def test_a_film_indexed_before_shots_gets_them_without_being_encoded_again(tmp_path, encoder):
    lib = Library(tmp_path / "lib")
    path = _three_shots(tmp_path / "cuts.mp4")
    (film,) = app.index(lib, [path], [encoder.model_id], load=lambda m: encoder).films
    (film.dir / "shots.npz").unlink()  # as a film indexed before this version
    assert Library(lib.root).films()[0].shots() is None
    vectors = film.vectors().dir / "embeddings.npy"
    before = vectors.stat().st_mtime_ns

    def no_model(model):
        raise AssertionError("no model is needed to find shots")

    report = app.index(lib, [path], [encoder.model_id], load=no_model)
    assert report.items[0].result.reused and vectors.stat().st_mtime_ns == before
    assert Library(lib.root).films()[0].shots() is not None


def test_moments_are_not_cut_across_a_shot(tmp_path, encoder):
    from engines import make_engine

    lib = Library(tmp_path / "lib")
    app.index(lib, [_three_shots(tmp_path / "cuts.mp4")], [encoder.model_id], load=lambda m: encoder)
    film = Library(lib.root).films()[0]
    cuts = film.shots()[1:, 0]
    for m in make_engine("clip", lib, encoder).run([film], "a bright screen", 5).moments(10):
        assert not any(m.start < c < m.end for c in cuts)


def test_pooled_frames_score_each_frame_as_its_shots_mean_vector(tmp_path, encoder):
    """pooled:clip, CLIP4Clip's parameter-free mean pooling: one score per shot, the cosine of the
    query with the unit mean of the shot's frame vectors."""
    from engines import make_engine

    lib = Library(tmp_path / "lib")
    app.index(lib, [_three_shots(tmp_path / "cuts.mp4")], [encoder.model_id], load=lambda m: encoder)
    film = Library(lib.root).films()[0]
    pooled = make_engine("pooled:clip", lib, encoder)
    scores = pooled.scores(film, "a bright screen")
    q = make_engine("clip", lib, encoder).vector("a bright screen").vector
    for start, end in film.shots():
        inside = (film.times >= start) & (film.times < end)
        mean = np.asarray(film.embeddings)[inside].mean(axis=0)
        assert np.allclose(scores[inside], float(mean @ q / np.linalg.norm(mean)), atol=1e-5)
    why = pooled.explain(film, 0, "a bright screen")
    assert "mean of this shot's" in why.evidence[0].text and why.score == scores[0]
    assert pooled.run([film], "a bright screen", 3).hits  # an engine like any other

"""Search: exact cosine ordering, temporal de-duplication, moments, negative and image queries."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from clip_search.cli import main
from clip_search.search.moments import Moment, find_moments, moment_around
from clip_search.search.ranking import at, distinct_top
from clip_search.search.scoring import Searcher, build_query, frame_scores, softmax_over_frames, timeline
from clip_search.video.decode import SamplingSettings, iter_frames


def test_hits_are_best_first_with_exact_cosines(indexed_library, encoder):
    films = indexed_library.films()
    q = build_query(encoder, "a soldier in a ruined lab")
    hits = Searcher(films).search(q, top_k=8, gap=0.0)
    by_id = {f.id: f for f in films}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for h in hits:
        film = by_id[h.film_id]
        assert h.score == pytest.approx(float(film.embeddings[h.frame] @ q.vector), abs=1e-5)
        assert h.time == pytest.approx(film.times[h.frame], abs=1e-3)
    all_scores = np.concatenate([frame_scores(f, q.vector) for f in films])
    assert hits[0].score == pytest.approx(all_scores.max(), abs=1e-5)


def test_no_two_hits_of_a_film_closer_than_the_gap(indexed_library, encoder):
    q = build_query(encoder, "a ship at sea")
    hits = Searcher(indexed_library.films()).search(q, top_k=15, gap=5.0)
    assert len(hits) == 15
    for a in hits:
        for b in hits:
            if a is not b and a.film_id == b.film_id:
                assert abs(a.time - b.time) >= 5.0


def test_image_query_finds_its_own_frame(indexed_library, encoder, tmp_path):
    film = indexed_library.find("tears-of-steel-battle-clip-medium")[0]
    frame = list(iter_frames(film.manifest.source, SamplingSettings()))[23]
    Image.fromarray(frame.image).save(tmp_path / "still.png")
    q = build_query(encoder, image=tmp_path / "still.png")
    top = Searcher([film]).search(q, top_k=1)[0]
    assert top.time == pytest.approx(23.0) and top.score > 0.999


def test_negative_query_ranks_by_cos_q_minus_w_cos_neg(indexed_library, encoder):
    film = indexed_library.films()[0]
    q = build_query(encoder, "a meadow", negative="a black title card", negative_weight=0.7)
    pos, neg = encoder.encode_text(["a meadow", "a black title card"]).vectors
    expected = film.embeddings @ pos - 0.7 * (film.embeddings @ neg)
    hits = Searcher([film]).search(q, top_k=5, gap=0.0)
    assert [h.frame for h in hits] == list(np.argsort(-expected)[:5])


def test_empty_query_is_refused_and_long_query_gets_a_notice(encoder, tmp_path):
    with pytest.raises(ValueError, match="Type a query"):
        build_query(encoder, "   ")
    with pytest.raises(ValueError, match="notes.txt: not an image"):
        (tmp_path / "notes.txt").write_text("not a picture")
        build_query(encoder, image=tmp_path / "notes.txt")
    q = build_query(encoder, "a wide shot of a girl practising ballet " * 20)
    assert q.notices and "77 tokens" in q.notices[0]


def test_softmax_over_frames_is_a_distribution_in_score_order():
    s = np.array([0.2, 0.3, 0.25, 0.1], np.float32)
    p = softmax_over_frames(s, 100.0)
    assert p.sum() == pytest.approx(1.0)
    assert list(np.argsort(-p)) == list(np.argsort(-s))
    assert p[1] / p[0] == pytest.approx(np.exp(100 * 0.1), rel=1e-4)


def test_moments_group_adjacent_high_frames():
    times = np.arange(10, dtype=float)
    scores = np.array([0.1, 0.1, 0.3, 0.5, 0.45, 0.1, 0.1, 0.4, 0.1, 0.1])
    # median 0.1; threshold for the 0.5 peak = 0.3 -> frames 2..4, ending when frame 5 starts
    assert moment_around(times, scores, 3) == Moment(2.0, 5.0, 3.0, 0.5)
    ms = find_moments(times, scores, duration=10.0)
    assert ms == [Moment(2.0, 5.0, 3.0, 0.5), Moment(7.0, 8.0, 7.0, 0.4)]
    # the last frame's moment ends at the film's end
    assert moment_around(times, np.r_[scores[:-1], 0.9], 9, duration=9.5).end == 9.5


def test_hit_carries_its_moment(indexed_library, encoder):
    q = build_query(encoder, "a bird on a branch")
    for h in Searcher(indexed_library.films()).search(q, top_k=5):
        assert h.start <= h.time < h.end
        assert h.moment_peak == pytest.approx(h.score, abs=1e-5)


def test_timeline_scores_every_frame(indexed_library, encoder):
    film = indexed_library.films()[0]
    tl = timeline(film, build_query(encoder, "a rabbit"))
    assert len(tl.scores) == len(tl.times) == film.manifest.frames
    assert tl.softmax.sum() == pytest.approx(1.0, abs=1e-5)
    assert tl.moments and tl.moments[0].peak_score == pytest.approx(tl.scores.max())


def test_cli_search_json_and_films_and_export(indexed_library, tmp_path, capsys):
    lib = str(indexed_library.root)
    assert main(["search", "a ship at sea", "--library", lib, "--top-k", "4", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 4
    for h in hits:
        assert {"film", "time", "score", "start", "end"} <= set(h)
        assert h["start"] <= h["time"] <= h["end"]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)

    assert main(["search", "a ship", "--library", lib, "--film", "popeye_p1", "--json"]) == 0
    assert {h["film"] for h in json.loads(capsys.readouterr().out)} == {"popeye_p1"}

    assert main(["films", "--library", lib, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(f["name"] for f in listed) == sorted(f.name for f in indexed_library.films())

    out = tmp_path / "bunny.npz"
    assert main(["export", "big-buck-bunny-30s", "--library", lib, "-o", str(out)]) == 0
    data = np.load(out)
    assert data["embeddings"].dtype == np.float32 and data["embeddings"].shape[0] == 30
    assert np.allclose(np.linalg.norm(data["embeddings"], axis=1), 1, atol=1e-5)
    assert data["times"].tolist() == [float(i) for i in range(30)]


def test_cli_search_errors_are_one_line(indexed_library, tmp_path, capsys):
    assert main(["search", "x", "--library", str(tmp_path / "empty")]) == 2
    assert "has no indexed films" in capsys.readouterr().err
    assert main(["search", "x", "--library", str(indexed_library.root), "--film", "casablanca"]) == 2
    assert "No indexed film matches 'casablanca'" in capsys.readouterr().err
    assert main(["search", "", "--library", str(indexed_library.root)]) == 2
    assert "Give a QUERY" in capsys.readouterr().err


def test_a_patch_mode_film_takes_about_its_share_of_hits_beside_one_without(tmp_path, encoder):
    """Random weights: no film is more relevant than another, so each should take about its share
    of the hits. The best of a frame and its crops runs higher by construction; on one footing
    (a rank-preserving map onto the patch film's own frame-only scores) that advantage is gone."""
    import shutil

    from clip_search.indexing.indexer import IndexOptions, index_film
    from clip_search.store.library import Library
    from clip_search.video.decode import SamplingSettings
    from clip_search.video.patches import PatchSettings
    from tests.conftest import BUNNY

    lib = Library(tmp_path / "lib")
    plain_src, patch_src = tmp_path / "plain.mp4", tmp_path / "patched.mp4"
    shutil.copy(BUNNY, plain_src)
    shutil.copy(BUNNY, patch_src)
    with open(patch_src, "ab") as f:  # other bytes (a film is its content), the same frames
        f.write(b"\0" * 64)
    plain = index_film(plain_src, lib, encoder, IndexOptions(SamplingSettings(fps=1.0))).film
    patched = index_film(patch_src, lib, encoder, IndexOptions(SamplingSettings(fps=0.9), PatchSettings())).film
    films = [plain, patched]
    share = patched.manifest.frames / (plain.manifest.frames + patched.manifest.frames)
    queries = ["a rabbit", "a tree", "the sky", "a bird", "grass", "a flower", "water", "a butterfly", "a cave", "dusk"]
    taken = total = 0
    for text in queries:
        hits = Searcher(films, lib, exact=True).search(build_query(encoder, text), top_k=10, gap=0)
        taken += sum(h.film_id == patched.id for h in hits)
        total += len(hits)
    assert abs(taken / total - share) < 0.25, (taken, total, share)
    alone = Searcher([patched], lib, exact=True).search(build_query(encoder, "a rabbit"), top_k=3, gap=0)
    q = build_query(encoder, "a rabbit").vector
    best = np.maximum(
        np.asarray(patched.embeddings) @ q,
        (np.asarray(patched.patch_embeddings) @ q).reshape(-1, patched.manifest.patches_per_frame).max(axis=1),
    )
    assert alone[0].score == pytest.approx(float(best.max()), abs=1e-5)  # alone, a patch film keeps best-of


def test_ranking_walks_only_the_leading_frames_and_picks_what_walking_all_would():
    """Every search ranks through ``distinct_top``, which walks only the best-scoring entries (ties
    included) while they hold enough distinct moments: its hits must be those of walking every
    entry one by one in score order, ties kept in entry order, a NaN never a hit."""

    class Reel:  # what ranking reads of a film: its frame times
        def __init__(self, n):
            self.times = np.arange(n, dtype=np.float64) * 0.5

    def walk_all(films, film_idx, local, score, top_k, gap):
        chosen = []
        finite = [j for j in range(len(score)) if np.isfinite(score[j])]
        for j in sorted(finite, key=lambda j: -score[j]):  # sorted() is stable
            t = films[film_idx[j]].times[local[j]]
            if all(f != film_idx[j] or abs(films[f].times[r] - t) >= gap for f, r, _ in chosen):
                chosen.append((int(film_idx[j]), int(local[j]), float(score[j])))
            if len(chosen) == top_k:
                break
        return chosen

    rng = np.random.default_rng(5)
    films = [Reel(4000) for _ in range(3)]
    film_idx, local = rng.integers(3, size=6000), rng.integers(4000, size=6000)
    ties = np.round(rng.random(6000), 2).astype(np.float32)  # many equal scores
    ties[::97] = np.nan
    # the best 5 000 entries all lie in the first second of one film: one hit closes them all,
    # so the walk must reach past its first leading entries to find ten
    crowded = rng.random(6000).astype(np.float32)
    film_idx_c, local_c = film_idx.copy(), local.copy()
    top = np.argsort(-crowded)[:5000]
    film_idx_c[top], local_c[top] = 0, rng.integers(2, size=5000)
    for f, r, s in ((film_idx, local, ties), (film_idx_c, local_c, crowded)):
        for top_k in (1, 10, 32):
            got = distinct_top(films, s, at(f, r), top_k, 2.0)
            assert got == walk_all(films, f, r, s, top_k, 2.0) and len(got) == top_k


def test_the_public_api_indexes_and_searches_in_four_names(tmp_path, tiny_clip_dir):
    """openai/CLIP's shape: a few public names, a model loaded by name, then index and search."""
    import clip_search
    from tests.conftest import text_video

    assert set(clip_search.__all__) >= {"Library", "load", "index", "find"}
    model = clip_search.load(str(tiny_clip_dir), "cpu", "fp32")
    library = clip_search.Library(tmp_path / "lib")
    film = clip_search.index(text_video(tmp_path / "captions.mp4"), library, model)
    hits = clip_search.find(library, model, "hello world", top_k=3)
    assert len(hits) == 3 and {h.film_id for h in hits} == {film.id}
    assert hits[0].score >= hits[1].score >= hits[2].score


def test_moments_are_proposed_from_the_score_curve_cut_at_shots_and_deduplicated():
    from clip_search.search.moments import iou, propose

    times = np.arange(40, dtype=float)
    scores = np.full(40, 0.1)
    scores[5:10] = [0.3, 0.6, 0.9, 0.6, 0.3]  # a strong bump peaking at 7 s
    scores[25:31] = 0.5  # a weaker, flat one from 25 to 30 s
    found = propose(times, scores, duration=40.0)
    assert found[0].peak_time == 7.0 and found[0].peak_score == pytest.approx(0.9)
    assert any(m.start <= 25.0 and m.end >= 31.0 and m.peak_score == pytest.approx(0.5) for m in found)
    assert all(iou((a.start, a.end), (b.start, b.end)) < 0.5 for i, a in enumerate(found) for b in found[i + 1 :])
    assert [m.peak_score for m in found] == sorted((m.peak_score for m in found), reverse=True)
    cut = propose(times, scores, duration=40.0, shots=np.array([[0.0, 28.0], [28.0, 40.0]]))
    assert not any(m.start < 28.0 < m.end for m in cut)  # no moment runs across the shot cut at 28 s
    assert propose(times, np.full(40, np.nan)) == []


def test_every_engine_answers_with_ranked_moments_and_dialogue_with_its_lines(indexed_library, encoder):
    from engines import make_engine

    films = [indexed_library.find_one("popeye_p1")]
    for name in ("clip", "dialogue", "clip+dialogue"):
        moments = make_engine(name, indexed_library, encoder).run(films, "I'm Popeye the sailor man", 5).moments(5)
        assert 0 < len(moments) <= 5, name
        assert [m.score for m in moments] == sorted((m.score for m in moments), reverse=True)
        assert all(0 <= m.start <= m.peak <= m.end <= films[0].manifest.duration + 1 for m in moments), name
    cues = films[0].dialogue().cues
    lines = make_engine("dialogue", indexed_library).run(films, "I'm Popeye the sailor man", 5).moments(5)
    assert all(any((c.start, c.end) == (m.start, m.end) for c in cues) for m in lines)  # a moment is a line


def test_both_command_lines_list_moments(indexed_library, capsys):
    import json

    from clip_search.cli import main as engine_cli
    from comparisons.cli import main as compare_cli

    lib = ["--library", str(indexed_library.root), "--film", "popeye_p1", "--top-k", "3", "--json", "--moments"]
    assert engine_cli(["search", "a ship at sea", *lib]) == 0
    seen = json.loads(capsys.readouterr().out)
    assert compare_cli(["search", "a ship at sea", *lib]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert len(seen) == 3 and [(m["start"], m["end"]) for m in seen] == [(m["start"], m["end"]) for m in compared]
    assert all(m["start"] < m["end"] and m["film"] == "popeye_p1" for m in seen)

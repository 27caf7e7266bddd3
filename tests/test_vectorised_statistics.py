"""Evaluation's statistics computed as arrays (chance draws, tie orders, random placements of moments)
give what their one-at-a-time definitions give: each vectorised path is checked against the scalar
definition it replaces, on random cases with ties, several films, padding and empty rankings."""

from __future__ import annotations

import numpy as np
import pytest

from clip_search.search.ranking import walk, walk_rows
from comparisons.benchmark_metrics import per_query, placed_per_query
from comparisons.metrics import RankedHit, moment_metrics, placed_moment_metrics, query_metrics, rankings_metrics
from comparisons.statistics import Searched, chance_draws


class _Frames:
    def __init__(self, times: np.ndarray) -> None:
        self.times = times


def _case(rng: np.random.Generator, films: int):
    """Films of random lengths and frame steps, and one to three intervals (with films when several)."""
    searched = []
    for k in range(films):
        m, step = int(rng.integers(0, 200)), float(rng.choice([0.5, 1.0, 2.0]))
        searched.append(Searched(f"f{k}" if films > 1 else "", np.arange(m) * step + rng.random() * 0.3, m * step))
    intervals = []
    for _ in range(int(rng.integers(1, 4))):
        a = float(rng.uniform(0, 150))
        b = a + float(rng.uniform(0, 20))
        intervals.append((searched[int(rng.integers(films))].id, a, b) if films > 1 else (a, b))
    return searched, intervals


def test_many_rankings_score_as_each_one_alone():
    rng = np.random.default_rng(1)
    for _ in range(40):
        searched, intervals = _case(rng, int(rng.integers(1, 4)))
        rows, width = 30, int(rng.integers(0, 12))
        times = np.round(rng.uniform(0, 160, (rows, width)), 3)
        films = np.array([s.id for s in searched], object)[rng.integers(len(searched), size=(rows, width))]
        taken = np.arange(width) < rng.integers(0, width + 1, size=(rows, 1))  # rankings of any length
        ks, tol = (1, 5, 10), float(rng.choice([0.0, 1.0]))
        batch = rankings_metrics(times, films, taken, intervals, ks, tol)
        for r in range(rows):
            hits = [RankedHit(times[r, c], 0.0, 0.0, 0.0, films[r, c]) for c in range(width) if taken[r, c]]
            alone = query_metrics(hits, intervals, ks, tol)
            for key in batch:
                assert batch[key][r] == pytest.approx(alone[key], abs=1e-12), key


def test_rankings_walked_together_take_what_each_walk_takes():
    rng = np.random.default_rng(2)
    for _ in range(30):
        n, films = int(rng.integers(1, 300)), int(rng.integers(1, 4))
        film_of = rng.integers(films, size=n)
        time_of = rng.uniform(0, 60, n)
        frames = [_Frames(np.where(film_of == f, time_of, np.nan)) for f in range(films)]
        order = np.argsort(rng.random((20, n)), axis=1)
        top_k, gap = int(rng.integers(1, 15)), float(rng.choice([0.0, 2.0, 10.0]))
        cols, count = walk_rows(film_of, time_of, order, top_k, gap)
        for r in range(20):
            alone = walk(frames, film_of[order[r]], np.arange(n)[order[r]], top_k, gap)
            assert [j for j, _, _ in alone] == [c for c in cols[r] if c >= 0]
            assert count[r] == len(alone)


def test_chance_draws_are_the_one_at_a_time_draws_from_the_same_numbers():
    """The reference is the definition: each draw is random scores ranked by the gap walk over the
    whole ranking, scored by ``query_metrics``; the vectorised draws read the same random numbers."""
    rng = np.random.default_rng(3)
    for case in range(25):
        searched, intervals = _case(rng, int(rng.integers(1, 4)))
        depth, gap = int(rng.choice([5, 10, 20])), float(rng.choice([0.0, 2.0, 5.0]))
        got = chance_draws(searched, intervals, (1, 5, 10), 1.0, gap, depth, np.random.default_rng(case), draws=120)
        draw = np.random.default_rng(case)
        frames = [_Frames(s.times) for s in searched]
        film_of = np.concatenate([np.full(len(s.times), k) for k, s in enumerate(searched)]).astype(int)
        local = np.concatenate([np.arange(len(s.times)) for s in searched]).astype(int)
        for d in range(120):
            order = np.argsort(-draw.random(len(film_of)), kind="stable")
            picks = walk(frames, film_of[order], local[order], depth, gap)
            hits = [RankedHit(float(searched[f].times[i]), 0.0, 0.0, 0.0, searched[f].id) for _, f, i in picks]
            for key, value in query_metrics(hits, intervals, (1, 5, 10), 1.0).items():
                if key != "r1@iou0.5":  # a random ranking's moments are not scored (see moment_chance)
                    assert got[key][d] == pytest.approx(value, abs=1e-12), (case, d, key)


def test_random_placements_of_windows_score_as_the_benchmark_evaluator_scores_each():
    rng = np.random.default_rng(4)
    for _ in range(120):
        bench = str(rng.choice(["qvhighlights", "charades"]))
        n, g = int(rng.integers(0, 13)), int(rng.integers(1, 5)) if bench == "qvhighlights" else 1
        gt = [[a, a + float(rng.choice([0.0, rng.uniform(0, 20)]))] for a in rng.uniform(0, 50, g)]
        scores = np.round(rng.random(n), 1)  # equal scores: the evaluator keeps the submitted order
        starts = rng.uniform(0, 60, (40, n))
        spans = np.stack([starts, starts + rng.choice([0.0, 1.0, 5.0, 20.0], (40, n))], axis=-1)
        batch = placed_per_query(bench, spans, scores, gt)
        for r in range(40):
            alone = per_query(bench, [[*spans[r, m], scores[m]] for m in range(n)], gt)
            for key, value in alone.items():
                assert batch[key][r] == pytest.approx(value, abs=1e-12), (bench, key)


def test_placed_moments_in_several_films_score_as_moment_metrics():
    rng = np.random.default_rng(5)
    for _ in range(60):
        n = int(rng.integers(1, 11))
        films = np.array(["a", "b", "c"], object)[rng.integers(int(rng.integers(1, 4)), size=(30, n))]
        starts = rng.uniform(0, 40, (30, n))
        spans = np.stack([starts, starts + rng.uniform(0, 15, (30, n))], axis=-1)
        scores = list(np.sort(rng.random(n))[::-1])
        intervals = [("b", 5.0, 15.0), ("a", 20.0, 24.0)] if rng.random() < 0.5 else [(5.0, 15.0)]
        batch = placed_moment_metrics(films, spans, scores, intervals)
        for r in range(30):
            alone = moment_metrics([[films[r, m], *spans[r, m], scores[m]] for m in range(n)], intervals)
            for key, value in alone.items():
                assert batch[key][r] == pytest.approx(value, abs=1e-12), key


def test_tie_orders_drawn_together_follow_the_one_at_a_time_distribution():
    """Frames with equal scores: each of them comes first equally often whether the orders are drawn
    one at a time (``redrawn``) or together (``orders``), and a ranking without ties never changes."""
    from clip_search.search.scoring import top_frames

    times = np.arange(40, dtype=float)
    films = [_Frames(times)]
    tied = [np.where(times % 10 == 0, 0.9, 0.1).astype(np.float32)]  # frames 0, 10, 20, 30 tie at the top
    rows = top_frames(films, tied, 3, 2.0, np.random.default_rng(0), draws=4000)
    first = np.bincount([r[0][1] for r in rows], minlength=40)[[0, 10, 20, 30]] / 4000
    assert first == pytest.approx([0.25] * 4, abs=0.03)
    assert all({p[1] for p in r} <= {0, 10, 20, 30} for r in rows)  # the top 3 are always tied frames
    one = [top_frames(films, tied, 3, 2.0, np.random.default_rng(k))[0][1] for k in range(800)]
    assert np.bincount(one, minlength=40)[[0, 10, 20, 30]] / 800 == pytest.approx([0.25] * 4, abs=0.06)
    plain = [np.linspace(1, 0, 40).astype(np.float32)]
    listed = top_frames(films, plain, 5, 2.0)
    assert all(r == listed for r in top_frames(films, plain, 5, 2.0, np.random.default_rng(1), draws=50))

"""Honest numbers for an evaluation: what chance scores, how sure a mean is, whether two engines differ.

- Chance: the expected value of every metric when the frames searched (the query's film, or all
  films of the set) are ranked at random with the same de-duplication (gap) as the engines,
  estimated per query from ``DRAWS`` seeded draws (stable to two decimals on the example set).
- Uncertainty: a 95 % bootstrap confidence interval of each mean over queries (scipy.stats.bootstrap,
  percentile method, 2 000 resamples, seeded).
- Differences: a paired randomisation test over queries (scipy.stats.permutation_test with paired
  sign flips, as IR evaluation tools such as ranx do), two-sided, with Holm's correction across
  the pairs compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from clip_search.moments import moment_around

DRAWS = 1000
CONFIDENCE = 0.95
ALPHA = 0.05


def chance_metrics(
    films: Sequence[tuple[str, np.ndarray, float]],
    intervals: Sequence[tuple],
    ks: Sequence[int],
    tol: float,
    gap: float,
    depth: int,
    rng: np.random.Generator,
    draws: int = DRAWS,
) -> dict[str, float] | None:
    """Expected metrics of one query when the frames of the searched ``films`` ((id, times, duration)
    each; id "" for a one-film search) are ranked uniformly at random, with the engines' gap per film.

    A uniform ranking is a random order of the frames, so each draw walks a random order only as far
    as it needs for ``depth`` distinct hits; the top hit's moment comes from random scores of its film
    with that frame on top (what a random engine's scores would give)."""
    from comparisons.evaluate import RankedHit, query_metrics

    if not intervals:
        return None
    starts = np.concatenate([[0], np.cumsum([len(times) for _, times, _ in films])]).astype(np.int64)
    n = int(starts[-1])
    prefix = min(n, max(64 * depth, 1024))  # enough of the order for depth hits unless the films are tiny
    total: dict[str, float] = {}
    for _ in range(draws):
        order = rng.permutation(n) if n <= prefix else rng.choice(n, size=prefix, replace=False)
        which = np.searchsorted(starts, order, side="right") - 1
        hits: list[RankedHit] = []
        taken: dict[int, list[float]] = {}
        for rank, (j, f) in enumerate(zip(order.tolist(), which.tolist(), strict=True)):
            film_id, times, duration = films[f]
            i = j - int(starts[f])
            t = float(times[i])
            if any(abs(t - u) < gap for u in taken.get(f, ())):
                continue
            taken.setdefault(f, []).append(t)
            score = 1.0 - rank / n  # the draw's order is the ranking
            if not hits:  # only the top hit's moment enters a metric (R1@IoU)
                scores = rng.random(len(times))
                scores[i] = 1.0
                m = moment_around(times, scores, i, duration)
                hits.append(RankedHit(t, score, m.start, m.end, film_id))
            else:
                hits.append(RankedHit(t, score, t, t, film_id))
            if len(hits) == depth:
                break
        for key, value in query_metrics(hits, intervals, ks, tol).items():
            total[key] = total.get(key, 0.0) + value
    return {key: value / draws for key, value in total.items()}


def bootstrap_ci(values: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap confidence interval of the mean of per-query values."""
    from scipy.stats import bootstrap

    x = np.asarray(values, float)
    if len(x) < 2 or np.ptp(x) == 0:
        return float(x.mean()) if len(x) else 0.0, float(x.mean()) if len(x) else 0.0
    res = bootstrap(
        (x,), np.mean, confidence_level=CONFIDENCE, n_resamples=2000, method="percentile", random_state=seed
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_p(a: Sequence[float], b: Sequence[float], seed: int = 0) -> float:
    """Two-sided p-value of a paired randomisation test that mean(a - b) = 0 (same queries)."""
    from scipy.stats import permutation_test

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or np.all(a == b):
        return 1.0
    res = permutation_test(
        (a, b),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=9999,
        alternative="two-sided",
        random_state=seed,
    )
    return float(res.pvalue)


@dataclass(frozen=True)
class Comparison:
    """Engine ``a`` against engine ``b`` on one metric, over the queries both answered."""

    a: str
    b: str
    metric: str
    mean_a: float
    mean_b: float
    p: float
    p_holm: float
    queries: int

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA

    def sentence(self) -> str:
        """'clip+dialogue beats clip on mrr (0.52 vs 0.31, p = 0.003)' or 'no significant difference'."""
        label = self.metric.upper() if self.metric in ("mrr", "map") else self.metric
        tail = f"p = {self.p_holm:.3g} (Holm), {self.queries} queries"
        if not self.significant:
            nums = f"{self.mean_a:.2f} vs {self.mean_b:.2f}"
            return f"{self.a} vs {self.b} on {label}: no significant difference ({nums}, {tail})"
        (winner, w), (loser, lo) = sorted([(self.a, self.mean_a), (self.b, self.mean_b)], key=lambda x: -x[1])
        return f"{winner} beats {loser} on {label} ({w:.2f} vs {lo:.2f}, {tail})"

    def to_dict(self) -> dict:
        return {**asdict(self), "significant": self.significant, "sentence": self.sentence()}


def compare_all(per_query: dict[str, list[dict | None]], metric: str) -> list[Comparison]:
    """Every pair of engines on ``metric`` (per-query values, None = no answer), Holm-corrected."""
    key = "ap" if metric == "map" else metric
    names = list(per_query)
    raw = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            pairs = [(x[key], y[key]) for x, y in zip(per_query[a], per_query[b], strict=True) if x and y]
            if len(pairs) < 2:
                continue
            xa, xb = zip(*pairs, strict=True)
            raw.append((a, b, float(np.mean(xa)), float(np.mean(xb)), paired_p(xa, xb), len(pairs)))
    order = np.argsort([r[4] for r in raw])
    holm = np.empty(len(raw))
    running = 0.0
    for rank, j in enumerate(order):
        running = max(running, min(1.0, (len(raw) - rank) * raw[j][4]))
        holm[j] = running
    return [Comparison(a, b, metric, ma, mb, p, float(h), n) for (a, b, ma, mb, p, n), h in zip(raw, holm, strict=True)]

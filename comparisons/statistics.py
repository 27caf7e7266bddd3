"""Honest numbers for an evaluation: what chance scores, how sure a mean is, whether two engines differ.

- Chance: the expected value of every ranking metric when the frames searched (the query's film, or
  all films of the set) are ranked at random with the same de-duplication (gap) as the engines,
  estimated per query from ``DRAWS`` seeded draws (stable to two decimals on the example set). A
  random ranking has no ties, so it needs no tie rule. Chance of R1@IoU0.5 depends on how long an
  engine's moments are, so it is worked out per engine: the engine's own top moment placed at every
  frame searched in turn (exact, no draws).
- Uncertainty: a 95 % interval of each mean over queries: Clopper–Pearson (exact binomial) for the
  proportions Hit@k and R1@IoU, so a rare 1/60 is not shown as [0, 0.05]; the percentile bootstrap
  (scipy.stats.bootstrap, 2 000 resamples, seeded) for Recall@k, MRR and mAP.
- Differences: two engines are compared by a paired randomisation test over queries
  (scipy.stats.permutation_test with paired sign flips, as IR evaluation tools such as ranx do).
  An engine against chance is tested against the simulated null itself: the mean a random ranking
  reaches on the same queries, draw by draw. Both two-sided, Holm-corrected across all pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from clip_search.search.ranking import walk_rows
from comparisons.metrics import (
    is_proportion,
    moment_metrics,
    of_film,
    per_query_key,
    placed_moment_metrics,
    rankings_metrics,
    span,
)

DRAWS = 1000
CONFIDENCE = 0.95
ALPHA = 0.05
MOMENT = "r1@iou0.5"  # the one metric whose chance is each engine's own


@dataclass(frozen=True)
class Searched:
    """One film as chance sees it: its id ("" for a one-film search), frame times and duration."""

    id: str
    times: np.ndarray
    duration: float


def chance_draws(
    films: Sequence[Searched | tuple],
    intervals: Sequence[tuple],
    ks: Sequence[int],
    tol: float,
    gap: float,
    depth: int,
    rng: np.random.Generator,
    draws: int = DRAWS,
) -> dict[str, np.ndarray] | None:
    """Each ranking metric of one query in ``draws`` uniformly random rankings of the frames of the
    searched ``films`` (each ranked with the engines' gap and depth); None without an answer.

    A uniform ranking is random scores, ranked exactly as an engine's scores are (``top_frames``).
    The draws are ranked and scored together as arrays (``walk_rows``, ``rankings_metrics``), in
    blocks of ``DRAW_BLOCK`` scores, from the same random numbers one draw at a time would use."""
    if not intervals:
        return None
    films = [f if isinstance(f, Searched) else Searched(*f) for f in films]
    sizes = [len(f.times) for f in films]
    n = sum(sizes)
    film_of = np.repeat(np.arange(len(films)), sizes)
    time_of = np.concatenate([np.asarray(f.times, float) for f in films]) if n else np.zeros(0)
    # entry n stands for a slot a ranking left empty (fewer frames than ``depth``): no film, no time
    ids = np.array([f.id for f in films] + [""], dtype=object)[np.append(film_of, len(films))]
    padded_times = np.append(time_of, np.nan)
    lead = min(n, max(4 * depth, 64))  # the ranking's head, where the walk almost always ends
    out: dict[str, list[np.ndarray]] = {}
    block = max(1, DRAW_BLOCK // max(n, 1))
    for lo in range(0, draws, block):
        score = rng.random((min(block, draws - lo), n))  # row by row: the numbers of one draw after another
        pos = _random_tops(film_of, time_of, score, lead, depth, gap)
        taken = pos >= 0
        pos = np.where(taken, pos, n)
        for key, value in rankings_metrics(padded_times[pos], ids[pos], taken, intervals, ks, tol).items():
            out.setdefault(key, []).append(value)
    return {key: np.concatenate(v) for key, v in out.items()}


DRAW_BLOCK = 4_000_000  # random scores drawn at once (32 MB): a block of draws, fewer for large searches


def _random_tops(film_of, time_of, score: np.ndarray, lead: int, depth: int, gap: float) -> np.ndarray:
    """(draws, ``depth``) positions ``top_frames`` takes for each row of random ``score`` (-1: none),
    sorting only each row's head (its ``lead`` best entries), four times longer for the rows whose
    walk needs more of it, up to the whole row."""
    rows, n = score.shape
    pos = np.full((rows, depth), -1, np.int64)
    todo = np.arange(rows)
    while len(todo) and n:
        part = score[todo]
        head = (
            np.argpartition(-part, lead - 1, axis=1)[:, :lead]
            if lead < n
            else np.broadcast_to(np.arange(n), part.shape)
        )
        order = np.take_along_axis(head, np.argsort(-np.take_along_axis(part, head, 1), axis=1, kind="stable"), 1)
        cols, count = walk_rows(film_of, time_of, order, depth, gap)
        pos[todo] = np.where(cols >= 0, np.take_along_axis(order, np.maximum(cols, 0), 1), -1)
        if lead >= n:
            break
        todo, lead = todo[count < depth], min(n, lead * 4)
    return pos


def chance_metrics(
    films: Sequence[Searched | tuple],
    intervals: Sequence[tuple],
    ks: Sequence[int],
    tol: float,
    gap: float,
    depth: int,
    rng: np.random.Generator,
    draws: int = DRAWS,
) -> dict[str, float] | None:
    """Expected ranking metrics of one query under random ranking (the means of :func:`chance_draws`)."""
    d = chance_draws(films, intervals, ks, tol, gap, depth, rng, draws)
    return None if d is None else {key: float(v.mean()) for key, v in d.items()}


def moment_chance(films: Sequence[Searched], intervals: Sequence[tuple], before: float, after: float) -> float:
    """Chance R1@IoU0.5 of an engine whose top moment spans ``before`` s before its hit and ``after`` s
    after it: that moment placed at a uniformly random frame of the films searched (clipped to its
    film), exactly, over every frame."""
    hits, n = 0.0, 0
    for f in films:
        t = np.asarray(f.times, float)
        n += len(t)
        start = np.clip(t - before, 0.0, None)
        end = np.minimum(t + after, max(f.duration, float(t[-1]) if len(t) else 0.0))
        good = np.zeros(len(t), bool)
        for iv in intervals:
            if not of_film(f.id, iv):
                continue
            a, b = span(iv)
            inter = np.clip(np.minimum(end, b) - np.maximum(start, a), 0.0, None)
            union = np.maximum(end, b) - np.minimum(start, a)
            good |= np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0) >= 0.5
        hits += float(good.sum())
    return hits / n if n else 0.0


def proportion_ci(values: Sequence[float]) -> tuple[float, float]:
    """95 % Clopper–Pearson interval of a share of queries (per-query values in [0, 1]; a query's
    expected value over tie orders counts as that fraction of a success)."""
    from scipy.stats import beta  # SciPy loads only when statistics are computed

    x, n = float(np.sum(values)), len(values)
    if n == 0:
        return 0.0, 0.0
    a = (1 - CONFIDENCE) / 2
    low = 0.0 if x <= 0 else float(beta.ppf(a, x, n - x + 1))
    high = 1.0 if x >= n else float(beta.ppf(1 - a, x + 1, n - x))
    return low, high


def interval(metric: str, values: Sequence[float]) -> tuple[float, float]:
    """The 95 % interval of a mean over queries: exact binomial for proportions, bootstrap otherwise."""
    return proportion_ci(values) if is_proportion(metric) else bootstrap_ci(values)


def bootstrap_ci(values: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap confidence interval of the mean of per-query values."""
    from scipy.stats import bootstrap  # SciPy loads only when statistics are computed

    x = np.asarray(values, float)
    if len(x) < 2 or np.ptp(x) == 0:
        return float(x.mean()) if len(x) else 0.0, float(x.mean()) if len(x) else 0.0
    res = bootstrap(
        (x,), np.mean, confidence_level=CONFIDENCE, n_resamples=2000, method="percentile", random_state=seed
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def null_p(observed: Sequence[float], null: np.ndarray) -> float:
    """Two-sided p-value of a mean over queries against its simulated null: ``null`` holds, per draw
    (rows), the per-query values (columns) of a random ranking of the same queries."""
    means = np.asarray(null, float).mean(axis=1)
    centre = float(means.mean())
    far = np.abs(means - centre) >= abs(float(np.mean(observed)) - centre) - 1e-12
    return float((1 + far.sum()) / (1 + len(means)))


def paired_p(a: Sequence[float], b: Sequence[float], seed: int = 0) -> float:
    """Two-sided p-value of a paired randomisation test that mean(a - b) = 0 (same queries)."""
    from scipy.stats import permutation_test  # SciPy loads only when statistics are computed

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


WINDOW_DRAWS = 50  # random placements of an engine's ranked moments per query, for the moment metrics' chance


def windows_chance(
    searched: Sequence[Searched], intervals: Sequence, moments: Sequence[Sequence], rng: np.random.Generator
) -> dict[str, float]:
    """Expected MR-R1 and MR-mAP of an engine's ranked moments placed at random: each keeps its length
    and rank, and lands in a film of the search (chosen in proportion to its length) at a uniform start."""
    if not moments:
        return moment_metrics([], intervals)
    lengths = np.array([m[2] - m[1] for m in moments])
    ids = np.array([s.id for s in searched], object)

    def score(films: np.ndarray, starts: np.ndarray) -> dict[str, np.ndarray]:
        spans = np.stack([starts, starts + lengths], axis=-1)
        return placed_moment_metrics(ids[films], spans, [m[3] for m in moments], intervals)

    return placed_chance([s.duration for s in searched], lengths, rng, WINDOW_DRAWS, score)


def placed_chance(
    durations: Sequence[float],
    lengths: np.ndarray,
    rng: np.random.Generator,
    draws: int,
    score: Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]],
) -> dict[str, float]:
    """The mean of ``score(films, starts)`` over ``draws`` random placements of windows of ``lengths``:
    each lands in a film (in proportion to its duration) at a uniform start that keeps it inside.
    The placements are drawn and scored together: ``films`` and ``starts`` are (draws, windows) and
    ``score`` gives each metric's value per draw."""
    durations = np.array([max(d, 1e-9) for d in durations])
    films = rng.choice(len(durations), size=(draws, len(lengths)), p=durations / durations.sum())
    starts = rng.random((draws, len(lengths))) * np.maximum(durations[films] - lengths, 0.0)
    return {k: float(np.mean(v)) for k, v in score(films, starts).items()}


def compare_all(
    per_query: dict[str, list[dict | None]],
    metric: str,
    null: dict[str, np.ndarray] | None = None,
    chance: str | None = None,
) -> list[Comparison]:
    """Every pair of engines on ``metric`` (per-query values, None = no answer), Holm-corrected.

    ``null[e]`` (draws x answered queries) is the simulated null of engine ``e``'s values: a pair of
    ``e`` and the ``chance`` baseline (its name) is tested against it rather than by sign flips
    against the mean."""
    key = per_query_key(metric)
    names = list(per_query)
    raw = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            engine = a if b == chance else b if a == chance else None
            if engine is not None and null and engine in null:  # the chance side is the null's own mean
                xs = [x[key] for x in per_query[engine] if x]
                if len(xs) < 2:
                    continue
                means = (float(np.mean(xs)), float(null[engine].mean()))
                ma, mb = means if engine == a else means[::-1]
                raw.append((a, b, ma, mb, null_p(xs, null[engine]), len(xs)))
                continue
            pairs = [(x[key], y[key]) for x, y in zip(per_query[a], per_query[b], strict=True) if x and y]
            if len(pairs) < 2:
                continue
            xa, xb = zip(*pairs, strict=True)
            raw.append((a, b, float(np.mean(xa)), float(np.mean(xb)), paired_p(xa, xb), len(pairs)))
    corrected = holm([r[4] for r in raw])
    return [Comparison(a, b, metric, ma, mb, p, h, n) for (a, b, ma, mb, p, n), h in zip(raw, corrected, strict=True)]


def holm(ps: Sequence[float]) -> list[float]:
    """Holm's step-down correction of p-values tested together (same order as given)."""
    out = [1.0] * len(ps)
    running = 0.0
    for rank, j in enumerate(np.argsort(ps)):
        running = max(running, min(1.0, (len(ps) - rank) * ps[j]))
        out[j] = running
    return out


def verdict(comparisons: Sequence[Comparison], chance: str | None = None) -> str:
    """The evaluation in one line: which engine beats which (Holm-corrected), and which engines do
    not beat chance, e.g. 'On MRR: dialogue beats clip (p = 0.004); tags:azure is within chance.'"""
    if not comparisons:
        return "Too few answered queries to compare the engines."
    metric = comparisons[0].metric
    label = metric.upper() if metric in ("mrr", "map") else metric
    wins, within = [], []
    for c in comparisons:
        if chance in (c.a, c.b):
            engine, mean, floor = (c.b, c.mean_b, c.mean_a) if c.a == chance else (c.a, c.mean_a, c.mean_b)
            if not (c.significant and mean > floor):
                within.append(engine)
        elif c.significant:
            (winner, _), (loser, _) = sorted([(c.a, c.mean_a), (c.b, c.mean_b)], key=lambda x: -x[1])
            wins.append(f"{winner} beats {loser} (p = {c.p_holm:.2g})")
    parts = wins or ["no engine beats another significantly"]
    if within:
        parts.append(f"{', '.join(within)} {'is' if len(within) == 1 else 'are'} within chance")
    else:
        parts.append("every engine beats chance")
    return f"On {label}: " + "; ".join(parts) + "."

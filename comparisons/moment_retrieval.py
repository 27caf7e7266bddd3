"""The moment-retrieval benchmarks run on the library's films: every engine's ranked moments for each
annotated query (the query's own video), scored with the benchmark's own metrics
(``benchmark_metrics``), beside chance, 95 % intervals and Holm-corrected paired tests, and written
in the QVHighlights submission format so the official evaluator can score the same windows."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from clip_search.errors import FrameSearchError
from clip_search.search.scoring import DEFAULT_GAP
from clip_search.store.library import Film, Library
from comparisons.benchmark_metrics import MAX_WINDOWS, METRICS, means, per_query, placed_per_query
from comparisons.benchmarks import Benchmark, BenchmarkQuery, submission_line
from comparisons.statistics import bootstrap_ci, compare_all, holm, placed_chance, proportion_ci, verdict
from engines import EngineUnavailable
from engines import chance as default_chance

NO_WINDOW = [0.0, 0.0, 0.0]
CHANCE_DRAWS = 50  # random placements of an engine's own windows per query, for its chance level
UNSAFE = re.compile(r"[^\w.+:-]+")  # characters of an engine's name a file name does not keep (a hub id's /)
HEADLINE = {"qvhighlights": "MR-full-mAP", "charades": "R1@0.5"}  # what the paired tests compare


@dataclass
class BenchmarkResult:
    """One engine's figures on a benchmark (percent), their intervals and chance, or why it was skipped."""

    engine: str
    status: str
    reason: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    chance: dict[str, float] = field(default_factory=dict)
    queries: int = 0


@dataclass
class BenchmarkEvaluation:
    """A benchmark run: per-engine figures, per-query predictions, paired tests and warnings."""

    benchmark: str
    engines: list[BenchmarkResult]
    rows: list[dict]  # qid, query, vid, engine, pred_relevant_windows, metrics
    comparisons: list[dict] = field(default_factory=list)
    verdict: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "benchmark": self.benchmark,
            "metrics": list(METRICS[self.benchmark]),
            "engines": [e.__dict__ for e in self.engines],
            "comparisons": self.comparisons,
            "verdict": self.verdict,
            "warnings": self.warnings,
            "chance": f"each engine's own windows placed at random in the video ({CHANCE_DRAWS} draws per query)",
            "queries": self.rows,
        }


def films_of(library: Library, bench: Benchmark) -> tuple[dict[str, Film], list[str]]:
    """Each annotated video -> the library film of that name; a video not in the library is one warning."""
    by_name = {f.name: f for f in library.films()}
    found, missing = {}, []
    for vid in dict.fromkeys(q.vid for q in bench.queries):
        film = by_name.get(vid) or by_name.get(Path(vid).stem)
        if film is None:
            missing.append(vid)
        else:
            found[vid] = film
    warnings = []
    if missing:
        n = sum(1 for q in bench.queries if q.vid in missing)
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        warnings.append(f"{n} quer{'y' if n == 1 else 'ies'} skipped: no film named {shown} in the library")
    return found, warnings


def videos_to_index(bench: Benchmark, library: Library, folder: Path) -> list[Path]:
    """The videos in ``folder`` the benchmark names (by file stem) that the library lacks."""
    have = {f.name for f in library.films()}
    wanted = {q.vid for q in bench.queries} - have
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.stem in wanted)


def evaluate_benchmark(
    library: Library,
    bench: Benchmark,
    engines: Sequence,
    gap: float = DEFAULT_GAP,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> BenchmarkEvaluation:
    """Every engine's moments for every annotated query, scored as the benchmark's evaluator scores them."""
    films, warnings = films_of(library, bench)
    queries = [q for q in bench.queries if q.vid in films and q.windows]
    if not queries:
        raise FrameSearchError("No query of the benchmark can be run: " + " ".join(warnings or ["none has a window."]))
    rng = np.random.default_rng(seed)
    results, rows, per_engine, chances = [], [], {}, {}
    for n, engine in enumerate(engines):
        try:
            engine.check(list({f.id: f for f in films.values()}.values()))
        except EngineUnavailable as e:
            results.append(BenchmarkResult(engine.name, "skipped", str(e)))
            continue
        values, chance = [], []
        for q in queries:
            film = films[q.vid]
            try:
                moments = engine.run([film], q.query, MAX_WINDOWS, gap).moments(MAX_WINDOWS)
            except EngineUnavailable:  # this video has nothing the engine reads (no dialogue): no windows
                moments = []
            # no moment: the empty window a submission still needs (it matches nothing, as none would)
            windows = [m.window() for m in moments] or [NO_WINDOW]
            v = per_query(bench.name, windows, q.windows)
            values.append(v)
            chance.append(_chance(bench.name, windows, q.windows, q.duration or film.manifest.duration, rng))
            rows.append(
                {"qid": q.qid, "query": q.query, "vid": q.vid, "engine": engine.name}
                | {"pred_relevant_windows": windows, "metrics": v}
            )
        results.append(_result(engine.name, bench.name, values, chance))
        per_engine[engine.name] = values
        chances[engine.name] = chance
        if progress:
            progress(n + 1, len(engines))
    baseline = default_chance()
    headline = HEADLINE[bench.name]
    tested = compare_all(per_engine, headline) if len(per_engine) > 1 else []
    for name, values in per_engine.items():  # each engine against its own chance level, query by query
        tested += compare_all({name: values, baseline.name: chances[name]}, headline)
    corrected = holm([c.p for c in tested])  # one family: every pair and every engine against chance
    tested = [replace(c, p_holm=h) for c, h in zip(tested, corrected, strict=True)]
    results.append(
        BenchmarkResult(
            baseline.name,
            "ok",
            "each engine's chance is on its own row",
            queries=len(queries),
        )
    )
    return BenchmarkEvaluation(
        bench.name, results, rows, [c.to_dict() for c in tested], verdict(tested, baseline.name), warnings
    )


def _chance(
    benchmark: str, windows: list[list[float]], gt: list, duration: float, rng: np.random.Generator
) -> dict[str, float]:
    """Expected values when the engine's own windows (their lengths and order) are placed at random."""
    if not windows:
        return per_query(benchmark, [], gt)  # nothing proposed: nothing to place, every value 0
    lengths = np.array([min(w[1] - w[0], duration) for w in windows])

    def score(films: np.ndarray, starts: np.ndarray) -> dict[str, np.ndarray]:
        return placed_per_query(benchmark, np.stack([starts, starts + lengths], -1), [w[2] for w in windows], gt)

    return placed_chance([duration], lengths, rng, CHANCE_DRAWS, score)


def _result(engine: str, benchmark: str, values: list[dict], chance: list[dict]) -> BenchmarkResult:
    """Means in percent, 95 % intervals (exact binomial for the R1 shares, bootstrap otherwise), chance."""
    ci = {}
    for k in METRICS[benchmark]:
        xs = [v[k] for v in values]
        low, high = proportion_ci(xs) if k.startswith(("MR-full-R1", "R1@")) else bootstrap_ci(xs)
        ci[k] = (round(100 * low, 2), round(100 * high, 2))
    return BenchmarkResult(engine, "ok", None, means(benchmark, values), ci, means(benchmark, chance), len(values))


def write_predictions(evaluation: BenchmarkEvaluation, bench: Benchmark, folder: Path) -> list[Path]:
    """One ``<engine>.jsonl`` per engine in the QVHighlights submission format, queries in file order."""
    folder.mkdir(parents=True, exist_ok=True)
    by_key = {(r["engine"], str(r["qid"])): r for r in evaluation.rows}
    written = []
    for e in evaluation.engines:
        if e.status != "ok" or not any(r["engine"] == e.engine for r in evaluation.rows):
            continue
        path = folder / (UNSAFE.sub("_", e.engine) + ".jsonl")
        lines = [
            submission_line(q, by_key[(e.engine, str(q.qid))]["pred_relevant_windows"])
            for q in bench.queries
            if (e.engine, str(q.qid)) in by_key
        ]
        path.write_text("\n".join(lines) + "\n")
        written.append(path)
    return written


def report_lines(evaluation: BenchmarkEvaluation) -> list[str]:
    """The figures as the benchmark's papers print them, each with its interval and chance."""
    names = METRICS[evaluation.benchmark]
    out = [f"{evaluation.benchmark} moment retrieval (percent; [95 % interval]; chance below each engine)"]
    out.append(f"{'engine':16s} {'queries':>7s} " + "".join(f"{n:>20s}" for n in names))
    for e in evaluation.engines:
        if e.status != "ok":
            out.append(f"{e.engine}: skipped: {e.reason}")
            continue
        if not e.metrics:
            out.append(f"{e.engine}: {e.reason}")
            continue
        cells = [f"{e.metrics[n]:6.2f} [{e.ci[n][0]:.1f},{e.ci[n][1]:.1f}]" for n in names]
        out.append(f"{e.engine:16s} {e.queries:7d} " + "".join(f"{c:>20s}" for c in cells))
        out.append(f"{'  chance':24s} " + "".join(f"{e.chance[n]:>20.2f}" for n in names))
    out += [c["sentence"] for c in evaluation.comparisons]
    if evaluation.verdict:
        out.append(evaluation.verdict)
    return out


def to_json(evaluation: BenchmarkEvaluation) -> str:
    return json.dumps(evaluation.to_dict(), indent=2)


__all__ = ["BenchmarkEvaluation", "BenchmarkQuery", "evaluate_benchmark", "report_lines", "write_predictions"]

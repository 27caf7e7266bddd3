"""Search quality on labelled queries: Hit@k, Recall@k, MRR, mAP and moment R1@IoU0.5 per engine.

Query set: CSV with columns ``film,query,start,end`` (seconds), one row per relevant interval;
several rows per query are allowed, and a row with empty start/end declares a query whose answer
is not in the film. ``film`` matches a film's name, id or path in the library.

Scope: ``film`` searches each query's own film; ``library`` searches all films of the set at once
(as the Search tab does by default), so a query's rows on several films are one query whose answer
lies in any of them, and a hit in another film is wrong. Chance is far lower in ``library`` scope.

Definitions (a hit is a returned frame time; tolerance TOL, default 1 s, absorbs the sampling step):
- a hit is *relevant* if it lies within [start - TOL, end + TOL] of a relevant interval of its film;
- Hit@k = 1 if any of the top k hits is relevant;
- Recall@k = share of the query's intervals that hold at least one of the top k hits;
- MRR = 1 / rank of the first relevant hit (0 if none in the ranked list);
- AP = (1/R) * sum over ranks i where hit i covers an interval not covered before of
  (intervals covered so far / i), R = number of intervals; mAP is its mean;
- R1@IoU0.5 = 1 if the top hit's moment [start, end] overlaps a relevant interval with IoU >= 0.5.
Hits are ranked as the engine returns them (ties keep the earlier frame first). Queries without a
relevant interval have no defined value and are left out of the means (counted as ``no_answer``).
Engines that cannot run (no credentials, not tagged, no dialogue) are reported as skipped, not 0.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clip_search.search import DEFAULT_GAP
from comparisons.costs import engine_costs
from comparisons.statistics import DRAWS, bootstrap_ci, chance_metrics, compare_all

DEFAULT_KS = (1, 5, 10)
DEFAULT_TOLERANCE = 1.0


@dataclass
class LabelledQuery:
    """One query on one film with its relevant intervals (empty: the answer is not in the film)."""

    film: str
    query: str
    intervals: list[tuple[float, float]] = field(default_factory=list)


SCOPES = {"library": "all films of the set", "film": "its own film"}  # scope -> what each query searches
DEFAULT_SCOPE = "library"

# A relevant interval: (start, end) in the film searched, or (film id, start, end) when a search
# spans several films.
Interval = tuple[float, float] | tuple[str, float, float]


@dataclass(frozen=True)
class RankedHit:
    """What metrics need of a hit: its time, score, moment and film (its id; "" for the one film searched)."""

    time: float
    score: float
    start: float
    end: float
    film: str = ""


def load_query_set(path: str | Path) -> list[LabelledQuery]:
    """Read the CSV; rows of the same (film, query) are merged. Raises ValueError naming the file,
    the line and what is wrong (not UTF-8, missing columns, bad times, no usable query)."""
    name = Path(path).name
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ValueError(f"{name} line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x}); save it as UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = {"film", "query", "start", "end"} - set(reader.fieldnames or [])
    if missing:
        raise ValueError(f"{name}: missing column(s) {', '.join(sorted(missing))}")
    queries: dict[tuple[str, str], LabelledQuery] = {}
    for line, row in enumerate(reader, start=2):
        film, query = (row["film"] or "").strip(), (row["query"] or "").strip()
        if not film or not query:
            raise ValueError(f"{name} line {line}: film and query are required")
        q = queries.setdefault((film, query), LabelledQuery(film, query))
        start, end = (row["start"] or "").strip(), (row["end"] or "").strip()
        if start or end:
            try:
                a, b = float(start), float(end)
            except ValueError:
                raise ValueError(f"{name} line {line}: start/end must be seconds") from None
            if not (math.isfinite(a) and math.isfinite(b)) or a < 0 or b < 0:
                raise ValueError(f"{name} line {line}: start/end must be finite seconds >= 0, not {start}, {end}")
            if b < a:
                raise ValueError(f"{name} line {line}: end {b} is before start {a}")
            q.intervals.append((a, b))
    if not queries:
        raise ValueError(f"{name}: holds no queries (a header and no rows)")
    if not any(q.intervals for q in queries.values()):
        raise ValueError(f"{name}: every query is marked as having no answer; metrics need at least one answer")
    return list(queries.values())


def _span(interval: Interval) -> tuple[float, float]:
    return (interval[-2], interval[-1])


def _of_film(film: str, interval: Interval) -> bool:
    return len(interval) == 2 or interval[0] == film


def _covers(t: float, film: str, interval: Interval, tol: float) -> bool:
    start, end = _span(interval)
    return _of_film(film, interval) and start - tol <= t <= end + tol


def is_relevant(t: float, intervals: Sequence[Interval], tol: float = DEFAULT_TOLERANCE, film: str = "") -> bool:
    """Whether a hit at time ``t`` of ``film`` lies in one of the relevant intervals, widened by ``tol``."""
    return any(_covers(t, film, iv, tol) for iv in intervals)


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Temporal intersection over union of two [start, end] intervals."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def query_metrics(
    hits: Sequence[RankedHit],
    intervals: Sequence[tuple[float, float]],
    ks: Sequence[int] = DEFAULT_KS,
    tol: float = DEFAULT_TOLERANCE,
) -> dict[str, float] | None:
    """All metrics of one query from its ranked hits; None when it has no relevant interval."""
    if not intervals:
        return None
    relevant = [is_relevant(h.time, intervals, tol, h.film) for h in hits]
    out: dict[str, float] = {}
    for k in ks:
        top = hits[:k]
        out[f"hit@{k}"] = float(any(relevant[:k]))
        out[f"recall@{k}"] = sum(any(_covers(h.time, h.film, iv, tol) for h in top) for iv in intervals) / len(
            intervals
        )
    first = next((i for i, r in enumerate(relevant) if r), None)
    out["mrr"] = 1.0 / (first + 1) if first is not None else 0.0
    covered: set[int] = set()
    ap = 0.0
    for i, h in enumerate(hits, start=1):
        new = {j for j, iv in enumerate(intervals) if j not in covered and _covers(h.time, h.film, iv, tol)}
        if new:
            covered |= new
            ap += len(new) * len(covered) / i  # each newly covered interval counts once
    out["ap"] = ap / len(intervals)
    top_moment = (hits[0].start, hits[0].end) if hits else None
    out["r1@iou0.5"] = float(
        top_moment is not None
        and any(_of_film(hits[0].film, iv) and iou(top_moment, _span(iv)) >= 0.5 for iv in intervals)
    )
    return out


def mean_metrics(per_query: Sequence[dict[str, float] | None]) -> dict[str, float]:
    """Means over the queries that have an answer (mAP is the mean of AP)."""
    answered = [m for m in per_query if m is not None]
    if not answered:
        return {}
    keys = answered[0].keys()
    means = {k: float(np.mean([m[k] for m in answered])) for k in keys}
    means["map"] = means.pop("ap")
    return means


def metric_names(ks: Sequence[int]) -> list[str]:
    """Column order for tables and charts."""
    return [*(f"hit@{k}" for k in ks), *(f"recall@{k}" for k in ks), "mrr", "map", "r1@iou0.5"]


@dataclass
class EngineResult:
    """One engine's numbers, or why it was skipped."""

    engine: str
    status: str  # "ok" or "skipped"
    reason: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    queries: int = 0  # queries in the means (those with an answer)
    no_answer: int = 0  # queries without an answer, left out of the means
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)  # 95 % bootstrap interval per metric
    notes: list[str] = field(default_factory=list)  # e.g. dialogue falling back to on-screen text, per film


@dataclass
class Evaluation:
    """Everything an evaluation produced: per-engine means and per-query ranked hits."""

    ks: tuple[int, ...]
    tolerance: float
    engines: list[EngineResult]
    rows: list[dict]  # film, query, intervals, engine, hits [{time, score, start, end}], metrics
    warnings: list[str] = field(default_factory=list)  # queries skipped, and why
    comparisons: list[dict] = field(default_factory=list)  # paired tests between engines (headline metric)
    headline: str = "mrr"
    costs: dict[str, dict] = field(default_factory=dict)  # engine -> usd_per_film_hour, basis
    scope: str = DEFAULT_SCOPE  # "library": each query searched all films of the set; "film": its own

    def table(self) -> list[dict]:
        """One row per engine: engine, status, and each metric (None when skipped)."""
        names = metric_names(self.ks)
        return [
            {
                "engine": e.engine,
                "status": e.status,
                "reason": e.reason,
                "queries": e.queries,
                "no_answer": e.no_answer,
                **{n: e.metrics.get(n) for n in names},
                **{f"{n}_ci_low": e.ci[n][0] for n in names if n in e.ci},
                **{f"{n}_ci_high": e.ci[n][1] for n in names if n in e.ci},
                "notes": "; ".join(e.notes),
            }
            for e in self.engines
        ]

    def to_dict(self) -> dict:
        return {
            "ks": list(self.ks),
            "tolerance": self.tolerance,
            "scope": self.scope,
            "engines": self.table(),
            "headline": self.headline,
            "comparisons": self.comparisons,
            "costs": self.costs,
            "warnings": self.warnings,
            "chance": f"engine 'random': expected metrics under random ranking, {DRAWS} seeded draws per query",
            "queries": self.rows,
        }


def resolve_films(library, queries: Sequence[LabelledQuery]) -> tuple[dict, list[str]]:
    """Each query-set film reference -> its library film; references that match no healthy film
    are left out with a warning naming them (the run goes on without their queries)."""
    from clip_search.errors import FrameSearchError

    films, warnings = {}, []
    for ref in dict.fromkeys(q.film for q in queries):
        try:
            films[ref] = library.find(ref)[0]
        except FrameSearchError as e:
            n = sum(1 for q in queries if q.film == ref)
            warnings.append(f"{n} quer{'y' if n == 1 else 'ies'} on '{ref}' skipped: {e}")
    return films, warnings


@dataclass
class _Task:
    """One query as it is run: the text, the films searched, where its answer lies, and its label."""

    label: str  # the film(s) the query is labelled on, for tables
    query: str
    search: list  # films searched
    intervals: list[Interval]


def _tasks(queries: Sequence[LabelledQuery], films: dict, scope: str) -> list[_Task]:
    """Film scope: each (film, query) searches its film. Library scope: each query text searches every
    film of the set, its answer being the union of its rows on all films."""
    if scope == "film":
        return [_Task(films[q.film].name, q.query, [films[q.film]], list(q.intervals)) for q in queries]
    every = list({f.id: f for f in films.values()}.values())
    grouped: dict[str, list[LabelledQuery]] = {}
    for q in queries:
        grouped.setdefault(q.query, []).append(q)
    tasks = []
    for text, rows in grouped.items():
        intervals: list[Interval] = [(films[q.film].id, a, b) for q in rows for a, b in q.intervals]
        names = dict.fromkeys(films[q.film].name for q in rows if q.intervals or not intervals)
        tasks.append(_Task(" + ".join(names), text, every, intervals))
    return tasks


def evaluate(
    library,
    queries: Sequence[LabelledQuery],
    engines: Sequence,
    ks: Sequence[int] = DEFAULT_KS,
    tol: float = DEFAULT_TOLERANCE,
    progress=None,
    headline: str = "mrr",
    gap: float = DEFAULT_GAP,
    machine_usd: float | None = None,
    scope: str = DEFAULT_SCOPE,
) -> Evaluation:
    """Run every engine on every labelled query (searching the query's film, or in ``library`` scope
    all films of the set) and score it; add the chance baseline (engine ``random``), 95 % confidence
    intervals and paired tests on ``headline``.

    Queries on films that are not in the library are skipped with a warning; an engine that cannot
    run on the films is reported as skipped. Raises FrameSearchError when no query is left."""
    from clip_search.errors import FrameSearchError
    from comparisons.engines import EngineUnavailable

    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    depth = max(max(ks), 10)
    by_engine: dict[str, list] = {}
    films, warnings = resolve_films(library, queries)
    queries = [q for q in queries if q.film in films]
    if not any(q.intervals for q in queries):
        raise FrameSearchError("No query of the set can be run: " + " ".join(warnings or ["no query has an answer."]))
    film_list = list({f.id: f for f in films.values()}.values())
    tasks = _tasks(queries, films, scope)
    results, rows = [], []

    def row(task: _Task, engine: str, ranked: list[RankedHit], m: dict | None) -> dict:
        hits = [r.__dict__ for r in ranked]
        return {
            "film": task.label,
            "query": task.query,
            "intervals": task.intervals,
            "engine": engine,
            "hits": hits,
            "metrics": m,
        }

    for n, engine in enumerate(engines):
        try:
            engine.check(film_list)
        except EngineUnavailable as e:
            results.append(EngineResult(engine.name, "skipped", str(e)))
            if progress:
                progress(n + 1, len(engines))
            continue
        per_query = []
        for task in tasks:
            try:
                hits = engine.search(task.search, task.query, top_k=depth, gap=gap)
            except EngineUnavailable:
                hits = []
            ranked = [RankedHit(h.time, h.score, h.start, h.end, h.film_id) for h in hits]
            m = query_metrics(ranked, task.intervals, ks, tol)
            per_query.append(m)
            rows.append(row(task, engine.name, ranked, m))
        if progress:
            progress(n + 1, len(engines))
        results.append(_result(engine.name, per_query, _fallback_notes(engine, films)))
        by_engine[engine.name] = per_query
    rng = np.random.default_rng(0)
    chance = []
    for task in tasks:
        searched = [(f.id, f.times, f.manifest.duration) for f in task.search]
        m = chance_metrics(searched, task.intervals, ks, tol, gap, depth, rng)
        chance.append(m)
        rows.append(row(task, "random", [], m))
    results.append(_result("random", chance, [f"expected values under random ranking ({DRAWS} draws per query)"]))
    by_engine["random"] = chance
    comparisons = [c.to_dict() for c in compare_all(by_engine, headline)]
    names = [r.engine for r in results]
    names += [n for n in ("tags:azure", "tags:rekognition") if n not in names]  # estimates need no credentials
    costs = {k: v.to_dict() for k, v in engine_costs(library, film_list, names, machine_usd).items()}
    return Evaluation(tuple(ks), tol, results, rows, warnings, comparisons, headline, costs, scope)


def _result(name: str, per_query: list[dict | None], notes: list[str]) -> EngineResult:
    answered = [m for m in per_query if m is not None]
    ci = {}
    for key in answered[0] if answered else []:
        ci["map" if key == "ap" else key] = bootstrap_ci([m[key] for m in answered])
    return EngineResult(
        name, "ok", None, mean_metrics(per_query), len(answered), len(per_query) - len(answered), ci, notes
    )


def _fallback_notes(engine, films: dict) -> list[str]:
    """Say per film when an engine used a fallback (dialogue from on-screen text, no dialogue)."""
    dialogue = getattr(engine, "dialogue", None)
    dialogue = getattr(dialogue, "dialogue", dialogue)  # the fused engine holds a dialogue engine
    if not callable(dialogue):
        return []
    notes = []
    for film in {f.id: f for f in films.values()}.values():
        d = dialogue(film)
        if not d.cues:
            notes.append(f"{film.name}: no subtitles or on-screen text (dialogue scores 0)")
        elif d.origin and "OCR" in d.origin:
            notes.append(f"{film.name}: no subtitles, used on-screen text (OCR) instead")
    return notes


def recompute(evaluation: Evaluation) -> dict[str, dict[str, float]]:
    """Means recomputed from the per-query ranked hits alone (anyone can check the numbers)."""
    by_engine: dict[str, list] = {}
    for row in evaluation.rows:
        if row["engine"] == "random":  # expectations over draws, not one ranking
            continue
        hits = [RankedHit(**h) for h in row["hits"]]
        by_engine.setdefault(row["engine"], []).append(
            query_metrics(hits, [tuple(iv) for iv in row["intervals"]], evaluation.ks, evaluation.tolerance)
        )
    return {e: mean_metrics(ms) for e, ms in by_engine.items()}


def write_csv(evaluation: Evaluation, path: str | Path) -> None:
    """Per-engine metrics table as CSV."""
    table = evaluation.table()
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0].keys()))
        w.writeheader()
        for row in table:
            w.writerow(
                {k: ("" if v is None or (isinstance(v, float) and math.isnan(v)) else v) for k, v in row.items()}
            )

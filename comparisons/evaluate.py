"""Search quality on labelled queries: Hit@k, Recall@k, MRR, mAP and moment R1@IoU0.5 per engine.

Query set: CSV with columns ``film,query,start,end`` (seconds), one row per relevant interval;
several rows per query are allowed, and a row with empty start/end declares a query whose answer
is not in the film. ``film`` matches a film's name, id or path in the library; a reference that
matches several films is refused, naming them. Optional columns ``paraphrases`` and
``translations`` (several separated by ``|``) give other ways to ask the same thing, for
:mod:`comparisons.robustness`.

Scope: ``film`` searches each query's own film; ``library`` searches all films of the set at once
(as the Search tab does by default), so a query's rows on several films are one query whose answer
lies in any of them, and a hit in another film is wrong. Chance is far lower in ``library`` scope.

The metrics are defined in :mod:`comparisons.metrics`. They are **tie-aware**: tag and dialogue
engines give many frames one score, and ranking equal frames earlier-first (as the Search tab
lists them) would favour the start of a film. A query whose ranking has ties within its top
frames is scored by the mean over random orders of the tied frames (seeded draws until the
standard error is below ``TIE_SE``, at most ``TIE_DRAWS``), as IR evaluation treats ties
(McSherry & Najork 2008); the same rule holds for every engine, and random rankings have no ties.
Queries without a relevant interval have no defined value and are left out of the means (counted
as ``no_answer``). Engines that cannot run (no credentials, not tagged, no dialogue) are reported as
skipped, not 0.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clip_search.errors import FrameSearchError
from clip_search.search.scoring import DEFAULT_GAP
from comparisons.costs import engine_costs
from comparisons.metrics import (
    DEFAULT_KS,
    DEFAULT_TOLERANCE,
    Interval,
    RankedHit,
    is_relevant,
    mean_metrics,
    metric_names,
    moment_hit,
    moment_metrics,
    per_query_key,
    query_metrics,
    rankings_metrics,
)
from comparisons.statistics import (
    DRAWS,
    MOMENT,
    Searched,
    chance_draws,
    compare_all,
    interval,
    moment_chance,
    verdict,
    windows_chance,
)
from engines import EngineUnavailable, priced_without_calls
from engines import chance as default_chance

__all__ = ["DEFAULT_KS", "DEFAULT_TOLERANCE", "RankedHit", "is_relevant", "mean_metrics", "metric_names"]

TIE_DRAWS = DRAWS  # at most this many tie orders per query
TIE_SE = 0.01  # ... drawn in batches until every metric's standard error is below this
TIE_BATCH = 100
MOMENTS = 10  # ranked moments a query is scored on (as QVHighlights scores at most 10 windows)
CSV_FIELD_LIMIT = 1 << 20  # a query-set cell may be this long (csv's default of 128 KiB is not a rule of ours)


@dataclass
class LabelledQuery:
    """One query on one film with its relevant intervals (empty: the answer is not in the film)."""

    film: str
    query: str
    intervals: list[tuple[float, float]] = field(default_factory=list)
    paraphrases: list[str] = field(default_factory=list)  # other wordings of the same query
    translations: list[str] = field(default_factory=list)  # the query in other languages


SCOPES = {"library": "all films of the set", "film": "its own film"}  # scope -> what each query searches
DEFAULT_SCOPE = "library"


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
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        rows = list(enumerate(reader, start=2))
    except csv.Error as e:
        raise ValueError(f"{name} line {reader.line_num}: not a readable CSV row ({e})") from None
    missing = {"film", "query", "start", "end"} - set(reader.fieldnames or [])
    if missing:
        raise ValueError(f"{name}: missing column(s) {', '.join(sorted(missing))}")
    queries: dict[tuple[str, str], LabelledQuery] = {}
    for line, row in rows:
        film, query = (row["film"] or "").strip(), (row["query"] or "").strip()
        if not film or not query:
            raise ValueError(f"{name} line {line}: film and query are required")
        q = queries.setdefault((film, query), LabelledQuery(film, query))
        for column, into in (("paraphrases", q.paraphrases), ("translations", q.translations)):
            into.extend(t for t in _alternatives(row.get(column)) if t not in into and t != query)
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


def _alternatives(cell: str | None) -> list[str]:
    """A paraphrases/translations cell: several wordings separated by '|'."""
    return [t.strip() for t in (cell or "").split("|") if t.strip()]


@dataclass
class EngineResult:
    """One engine's numbers, or why it was skipped."""

    engine: str
    status: str  # "ok" or "skipped"
    reason: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    queries: int = 0  # queries in the means (those with an answer)
    no_answer: int = 0  # queries without an answer, left out of the means
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)  # 95 % interval per metric
    notes: list[str] = field(default_factory=list)  # e.g. dialogue falling back to on-screen text, per film
    chance: dict[str, float] = field(default_factory=dict)  # what chance scores on each metric, for this engine
    tied: int = 0  # answered queries whose ranking had ties (scored as the mean over tie orders)
    baseline: bool = False  # chance itself: expectations over random rankings, not a sample of queries


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
    verdict: str = ""  # the comparisons in one line (``statistics.verdict``)

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
                **{f"{n}_chance": e.chance[n] for n in names if n in e.chance},
                "tied": e.tied,
                "baseline": e.baseline,
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
            "verdict": self.verdict,
            "comparisons": self.comparisons,
            "costs": self.costs,
            "warnings": self.warnings,
            "chance": f"the engine marked baseline: expected metrics under random ranking, {DRAWS} seeded draws "
            "per query; "
            "R1@IoU0.5 chance is each engine's own (<metric>_chance): its top moment placed at every frame",
            "ties": f"a query whose ranking has ties scores the mean over random tie orders (up to {TIE_DRAWS} draws; "
            "'ties' per row); its listed hits are one such order, equal scores earlier frame first",
            "queries": self.rows,
        }


def resolve_films(library, queries: Sequence[LabelledQuery]) -> tuple[dict, list[str]]:
    """Each query-set film reference -> its library film; references that match no healthy film
    are left out with a warning naming them (the run goes on without their queries). A reference
    that matches several films raises FrameSearchError naming them."""
    films, warnings = {}, []
    for ref in dict.fromkeys(q.film for q in queries):
        try:
            found = library.find(ref)
        except FrameSearchError as e:
            n = sum(1 for q in queries if q.film == ref)
            warnings.append(f"{n} quer{'y' if n == 1 else 'ies'} on '{ref}' skipped: {e}")
            continue
        if len(found) > 1:  # picking the first would grade the queries against a film nobody meant
            names = ", ".join(f"{f.name} ({f.id})" for f in found)
            raise FrameSearchError(f"The query set's film '{ref}' matches several films: {names}; name one of them.")
        films[ref] = found[0]
    return films, warnings


@dataclass
class Task:
    """One query as it is run: the text, the films searched, where its answer lies, and its label."""

    label: str  # the film(s) the query is labelled on, for tables
    query: str
    search: list  # films searched
    intervals: list[Interval]
    paraphrases: list[str] = field(default_factory=list)
    translations: list[str] = field(default_factory=list)

    def searched(self) -> list[Searched]:
        """The films searched, as chance sees them."""
        return [Searched(f.id, f.times, f.manifest.duration) for f in self.search]


def plan_tasks(queries: Sequence[LabelledQuery], films: dict, scope: str) -> list[Task]:
    """Film scope: each (film, query) searches its film. Library scope: each query text searches every
    film of the set, its answer being the union of its rows on all films."""
    if scope == "film":
        return [
            Task(films[q.film].name, q.query, [films[q.film]], list(q.intervals), q.paraphrases, q.translations)
            for q in queries
        ]
    every = list({f.id: f for f in films.values()}.values())
    grouped: dict[str, list[LabelledQuery]] = {}
    for q in queries:
        grouped.setdefault(q.query, []).append(q)
    tasks = []
    for text, rows in grouped.items():
        intervals: list[Interval] = [(films[q.film].id, a, b) for q in rows for a, b in q.intervals]
        names = dict.fromkeys(films[q.film].name for q in rows if q.intervals or not intervals)
        para = list(dict.fromkeys(t for q in rows for t in q.paraphrases))
        trans = list(dict.fromkeys(t for q in rows for t in q.translations))
        tasks.append(Task(" + ".join(names), text, every, intervals, para, trans))
    return tasks


@dataclass
class Ranked:
    """One engine's answer to one query: its hits as listed, its (tie-aware) metrics, the tie orders
    drawn, and its ranked moments ([film id, start, end, score], best first)."""

    hits: list[RankedHit]
    metrics: dict[str, float] | None
    ties: int = 1  # 1: the ranking had no ties among its top frames, so the listed order is the only one
    moments: list[list] = field(default_factory=list)


def rank_query(
    engine, task: Task, ks: Sequence[int], tol: float, gap: float, depth: int, rng: np.random.Generator, text=None
) -> Ranked:
    """Rank one query (``text``, default the task's) with ``engine`` exactly as Search serves it
    (``Engine.run``: the archive index, one hit per line of dialogue, ...) and score its hits, tie-aware:
    when equal scores reach into the top ``depth`` frames, the metrics are the mean over random
    orders of them, each order the engine's own choice from the same scores."""
    try:
        result = engine.run(task.search, task.query if text is None else text, depth, gap)
    except EngineUnavailable:
        return Ranked([], query_metrics([], task.intervals, ks, tol))
    listed = _ranked(result, len(result.picks))
    metrics = query_metrics(listed, task.intervals, ks, tol)
    moments = [[m.film_id, m.start, m.end, m.score] for m in result.moments(MOMENTS)]
    on_moments = moment_metrics(moments, task.intervals) if metrics is not None else {}
    if metrics is None or not result.tied(depth):
        return Ranked(listed, None if metrics is None else metrics | on_moments, moments=moments)
    values: dict[str, list[np.ndarray]] = {k: [] for k in metrics}
    drawn = 0
    while drawn < TIE_DRAWS:
        for key, v in _tie_orders(result, result.orders(rng, TIE_BATCH), task, ks, tol).items():
            values[key].append(v)
        drawn += TIE_BATCH
        if all(np.std(np.concatenate(v)) / math.sqrt(drawn) < TIE_SE for v in values.values()):
            break
    means = {k: float(np.mean(np.concatenate(v))) for k, v in values.items()}
    return Ranked(listed, means | on_moments, drawn, moments)  # moments have no tie order


def _tie_orders(result, orders: list[list], task: Task, ks: Sequence[int], tol: float) -> dict[str, np.ndarray]:
    """The metrics of one result's drawn tie orders (each a list of picks), scored together as
    arrays; R1@IoU from the top hit's moment, made once per frame that comes out on top."""
    width = max((len(o) for o in orders), default=0)
    times = np.full((len(orders), width), np.nan)
    films = np.full((len(orders), width), "", dtype=object)
    top: dict[tuple[int, int], float] = {}
    r1 = np.zeros(len(orders))
    for r, picks in enumerate(orders):
        for c, (f, i, _) in enumerate(picks):
            times[r, c], films[r, c] = round(float(result.films[f].times[i]), 3), result.films[f].id
        if picks:
            f, i, score = picks[0]
            if (f, i) not in top:
                h = result.make_hit(f, i, score)
                top[(f, i)] = moment_hit((h.start, h.end), h.film_id, task.intervals)
            r1[r] = top[(f, i)]
    out = rankings_metrics(times, films, ~np.isnan(times), task.intervals, ks, tol)
    out[MOMENT] = r1
    return out


def _ranked(result, moments: int) -> list[RankedHit]:
    """The result's hits as evaluation reads them; only the first ``moments`` carry their moment
    (only the top hit's enters a metric, R1@IoU), the rest are built without one."""
    out = []
    for n, (f, i, score) in enumerate(result.picks):
        if n < moments:
            h = result.hit(n) if moments < len(result.picks) else result.hits[n]
            out.append(RankedHit(h.time, h.score, h.start, h.end, h.film_id))
        else:
            film = result.films[f]
            t = round(float(film.times[i]), 3)
            out.append(RankedHit(t, round(score, 6), t, t, film.id))
    return out


class _Chance:
    """Chance on every query of a run: random rankings drawn once, shared by every engine; R1@IoU's
    chance from each engine's own top moments."""

    def __init__(self, tasks: list[Task], ks, tol: float, gap: float, depth: int, rng: np.random.Generator) -> None:
        self.tasks, self.rng = tasks, rng
        self.draws = [chance_draws(t.searched(), t.intervals, ks, tol, gap, depth, rng) for t in tasks]
        self.per_query = [None if d is None else {k: float(v.mean()) for k, v in d.items()} for d in self.draws]

    def moments(self, ranked: list[Ranked]) -> list[float | None]:
        """Per query, chance R1@IoU0.5 for an engine whose top moments are those of ``ranked``."""
        out: list[float | None] = []
        for task, r in zip(self.tasks, ranked, strict=True):
            if not task.intervals:
                out.append(None)
            elif not r.hits:
                out.append(0.0)
            else:
                top = r.hits[0]
                out.append(moment_chance(task.searched(), task.intervals, top.time - top.start, top.end - top.time))
        return out

    def null(self, metric: str, moments: list[float | None]) -> np.ndarray:
        """Draws x answered queries of ``metric`` under random ranking (R1: the engine's own chance)."""
        key = per_query_key(metric)
        if key == MOMENT:
            p = np.array([m for m in moments if m is not None])
            return (self.rng.random((DRAWS, len(p))) < p).astype(float)
        return np.stack([d[key] for d in self.draws if d is not None], axis=1)

    def means(self, moments: list[float | None], ranked: list[Ranked]) -> dict[str, float]:
        """Mean chance of every metric, R1@IoU's for the engine whose top moments gave ``moments``, and
        the moment metrics' for the engine whose ranked moments are ``ranked``'s (each placed at random)."""
        answered = [m for m in self.per_query if m is not None]
        out = mean_metrics(answered) if answered else {}
        mine = [m for m in moments if m is not None]
        if mine:
            out[MOMENT] = float(np.mean(mine))
        placed = [
            windows_chance(t.searched(), t.intervals, r.moments, self.rng)
            for t, r in zip(self.tasks, ranked, strict=True)
            if t.intervals
        ]
        if placed:
            out |= {k: float(np.mean([p[k] for p in placed])) for k in placed[0]}
        return out


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
    seed: int = 0,
    chance_engine=None,
) -> Evaluation:
    """Run every engine on every labelled query (searching the query's film, or in ``library`` scope
    all films of the set) and score it, tie-aware; add the chance baseline (engine ``random``, and
    per engine its R1@IoU chance), 95 % intervals and paired tests on ``headline``.

    Queries on films that are not in the library are skipped with a warning; an engine that cannot
    run on the films is reported as skipped. ``chance_engine``: the baseline (default the registry's).
    Raises FrameSearchError when no query is left."""
    baseline = chance_engine or default_chance()

    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    depth = max(max(ks), 10)
    films, warnings = resolve_films(library, queries)
    queries = [q for q in queries if q.film in films]
    if not any(q.intervals for q in queries):
        raise FrameSearchError("No query of the set can be run: " + " ".join(warnings or ["no query has an answer."]))
    film_list = list({f.id: f for f in films.values()}.values())
    tasks = plan_tasks(queries, films, scope)
    rng = np.random.default_rng(seed)
    chance = _Chance(tasks, ks, tol, gap, depth, rng)
    results, rows = [], []
    by_engine: dict[str, list] = {}
    nulls: dict[str, np.ndarray] = {}

    def row(task: Task, engine, r: Ranked) -> dict:
        return {
            "film": task.label,
            "query": task.query,
            "intervals": task.intervals,
            "engine": engine.name,
            "baseline": engine.baseline,
            "hits": [h.__dict__ for h in r.hits],
            "moments": r.moments,
            "metrics": r.metrics,
            "ties": r.ties,
        }

    for n, engine in enumerate(engines):
        try:
            engine.check(film_list)
        except EngineUnavailable as e:
            results.append(EngineResult(engine.name, "skipped", str(e)))
            if progress:
                progress(n + 1, len(engines))
            continue
        ranked = [rank_query(engine, task, ks, tol, gap, depth, rng) for task in tasks]
        warnings += _cut_queries(engine, tasks)
        rows += [row(task, engine, r) for task, r in zip(tasks, ranked, strict=True)]
        per_query = [r.metrics for r in ranked]
        moments = chance.moments(ranked)
        tied = sum(1 for r in ranked if r.metrics is not None and r.ties > 1)
        own = chance.means(moments, ranked)
        results.append(_result(engine.name, per_query, _fallback_notes(engine, films), own, tied))
        by_engine[engine.name] = per_query
        nulls[engine.name] = chance.null(headline, moments)
        if progress:
            progress(n + 1, len(engines))
    rows += [row(task, baseline, Ranked([], m)) for task, m in zip(tasks, chance.per_query, strict=True)]
    note = f"expected values under random ranking ({DRAWS} draws per query); R1@IoU0.5: see each engine's own chance"
    results.append(_result(baseline.name, chance.per_query, [note], tied=None))
    by_engine[baseline.name] = chance.per_query
    tested = compare_all(by_engine, headline, nulls, baseline.name)
    comparisons = [c.to_dict() for c in tested]

    priced = {e.name: e for e in engines}
    for e in priced_without_calls(library):  # estimates need no credentials
        priced.setdefault(e.name, e)
    priced[baseline.name] = baseline
    costs = {k: v.to_dict() for k, v in engine_costs(library, film_list, list(priced.values()), machine_usd).items()}
    return Evaluation(
        tuple(ks), tol, results, rows, warnings, comparisons, headline, costs, scope, verdict(tested, baseline.name)
    )


def _result(
    name: str, per_query: list[dict | None], notes: list[str], chance: dict | None = None, tied: int | None = 0
) -> EngineResult:
    """An engine's means and intervals; ``tied=None`` marks chance, an expectation over draws, not a
    sample of queries, which has no sampling interval."""
    answered = [m for m in per_query if m is not None]
    means = mean_metrics(per_query)
    ci = {} if tied is None else {m: interval(m, [q[per_query_key(m)] for q in answered]) for m in means}
    return EngineResult(
        name,
        "ok",
        None,
        means,
        len(answered),
        len(per_query) - len(answered),
        ci,
        notes,
        dict(chance or {}),
        tied or 0,
        baseline=tied is None,
    )


def _cut_queries(engine, tasks: list[Task]) -> list[str]:
    """One line per engine that read some queries only in part (longer than its token limit), naming
    them: scored on their beginning, said, as ``search`` says it."""
    cut = [q for q in dict.fromkeys(t.query for t in tasks) if engine.notices(q)]
    if not cut:
        return []
    names = ", ".join(repr(q[:40] + "…" if len(q) > 40 else q) for q in cut[:5]) + (", …" if len(cut) > 5 else "")
    what = "query was" if len(cut) == 1 else f"{len(cut)} queries were"
    return [f"{engine.name}: {what} longer than the model's token limit and scored on their beginning only: {names}"]


def _fallback_notes(engine, films: dict) -> list[str]:
    """Say per film when an engine used a fallback (dialogue from on-screen text, no dialogue)."""
    notes = []
    for film in {f.id: f for f in films.values()}.values():
        d = engine.said(film)
        if d is None:  # the engine reads no dialogue
            return []
        if not d.cues:
            notes.append(f"{film.name}: no subtitles or on-screen text (dialogue scores 0)")
        elif d.origin and "OCR" in d.origin:
            notes.append(f"{film.name}: no subtitles, used on-screen text (OCR) instead")
    return notes


def recompute(evaluation: Evaluation) -> dict[str, dict[str, float]]:
    """Per engine, the means recomputed from the listed ranked hits alone, over the queries whose
    ranking had no ties (for them the listed order is the only one; a tied query's value is the mean
    over tie orders, which its one listed order cannot give). Anyone can check these numbers."""
    by_engine: dict[str, list] = {}
    for row in evaluation.rows:
        if row.get("baseline") or row.get("ties", 1) > 1:  # expectations over draws, not one ranking
            continue
        hits = [RankedHit(**h) for h in row["hits"]]
        intervals = [tuple(iv) for iv in row["intervals"]]
        metrics = query_metrics(hits, intervals, evaluation.ks, evaluation.tolerance)
        if metrics is not None and "moments" in row:
            metrics |= moment_metrics(row["moments"], intervals)
        by_engine.setdefault(row["engine"], []).append(metrics)
    return {e: mean_metrics(ms) for e, ms in by_engine.items()}


def write_csv(evaluation: Evaluation, path: str | Path) -> None:
    """Per-engine metrics table as CSV."""
    table = evaluation.table()
    with open(path, "w", newline="") as f:
        columns = list(dict.fromkeys(k for row in table for k in row))  # a skipped engine has fewer columns
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for row in table:
            w.writerow(
                {k: ("" if v is None or (isinstance(v, float) and math.isnan(v)) else v) for k, v in row.items()}
            )

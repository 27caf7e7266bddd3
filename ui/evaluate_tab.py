"""Evaluate view: load or edit a labelled query set, run it, metrics per engine, and per query
its timeline with the relevant intervals shaded and each engine's scores."""

from __future__ import annotations

import io
import json

import pandas as pd
import streamlit as st

import clip_search.config as config
from clip_search.errors import FrameSearchError
from clip_search.store.library import Library
from clip_search.timecode import fmt_time
from comparisons.evaluate import (
    DEFAULT_KS,
    DEFAULT_TOLERANCE,
    SCOPES,
    evaluate,
    is_relevant,
    load_query_set,
    metric_names,
)
from comparisons.robustness import NOTE as ROBUSTNESS_NOTE
from comparisons.robustness import robustness, sentence
from engines import engine_names, priced_without_calls
from ui import library_panel, state
from ui.charts import TimelineRow, cost_figure, metrics_figure, timeline_figure
from ui.into_view import into_view
from ui.tabs import Tab
from ui.text import md
from ui.thumbs import show_thumbnail

EXAMPLE = config.data_dir() / "queries.csv"


def _missing_films(lib: Library, ms: state.ModelState) -> None:
    """The example set names sample films that are not indexed and offline-tagged: one button does both."""
    paths = library_panel.missing_examples(lib, EXAMPLE)
    if not paths or ms.encoder is None:
        return
    names = md(", ".join(p.stem for p in paths))
    st.warning(f"{len(paths)} film(s) of the example set are not indexed and tagged offline yet ({names}).")
    if st.button(f"Index and tag the {len(paths)} missing film(s)", key="eval-prepare"):
        if library_panel.prepare_examples(lib, ms, paths):
            st.rerun()


def _query_table() -> pd.DataFrame:
    upload = st.file_uploader(
        "Query set (CSV: film,query,start,end; optional paraphrases,translations)", type=["csv"], key="eval-upload"
    )
    source = io.BytesIO(upload.getvalue()) if upload is not None else EXAMPLE
    try:
        df = pd.read_csv(source, dtype={"film": str, "query": str})
    except (ValueError, OSError) as e:
        st.error(md(f"{getattr(upload, 'name', EXAMPLE.name)}: not a readable CSV ({e})."))
        df = pd.DataFrame(columns=["film", "query", "start", "end"])
    st.caption("Edit rows below (one row per relevant interval; empty start/end: the answer is not in the film).")
    return st.data_editor(df, num_rows="dynamic", key="eval-editor", height=220, width="stretch")


def evaluate_tab(lib: Library, ms: state.ModelState) -> None:
    """Query set editor, engine choice, run button, metric bars and per-query timelines."""
    table = _query_table()
    if st.session_state.get("eval-upload") is None:
        _missing_films(lib, ms)
    c1, c2, c3 = st.columns([4, 2, 1])
    offered = engine_names(lib)  # every model the library has is an engine beside the taggers
    paid = {e.name for e in priced_without_calls(lib)}  # paid taggers: chosen on purpose, not by default
    default = [n for n in offered if n not in paid]
    names = c1.multiselect("Engines", offered, default=default, key="eval-engines")
    ks = c2.multiselect("k", [1, 3, 5, 10, 20], default=list(DEFAULT_KS), key="eval-ks")
    tol = c3.number_input("Tolerance (s)", 0.0, 10.0, DEFAULT_TOLERANCE, 0.5, key="eval-tol")
    scope = st.radio(
        "Each query searches",
        list(SCOPES),
        format_func=SCOPES.get,
        horizontal=True,
        key="eval-scope",
        help="All films: as the Search tab does by default; a hit in another film is wrong and chance is low. "
        "Its own film: finds the moment within a known film; chance is high on short films.",
    )
    robust = st.checkbox(
        "Also measure robustness to how people type (typos, case and punctuation, word order, the set's "
        "paraphrases and translations)",
        key="eval-robust",
    )
    if st.button("Run evaluation", key="eval-run", disabled=not names or not ks or table.empty):
        st.session_state["eval-runs"] = st.session_state.get("eval-runs", 0) + 1  # its results come into view
        path = lib.root / "last-query-set.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False)
        try:
            queries = load_query_set(path)
            bar = st.progress(0.0, text="evaluating…")
            engines = [state.engine(n, lib, ms) for n in names]
            result = evaluate(
                lib,
                queries,
                engines,
                sorted(ks),
                tol,
                progress=lambda i, n: bar.progress(i / n, text=f"engine {i}/{n}"),
                scope=scope,
            )
            drops = None
            if robust:
                bar.progress(0.0, text="robustness…")
                drops = robustness(
                    lib, queries, engines, result, progress=lambda i, n: bar.progress(i / n, text=f"robustness {i}/{n}")
                )
            bar.empty()
            st.session_state.evaluation = result
            st.session_state.robustness = drops
            for w in result.warnings:
                st.warning(md(w))
        except (ValueError, OSError, FrameSearchError) as e:  # a bad row, no usable query: say which, keep the page
            st.error(md(e))
    result = st.session_state.get("evaluation")
    if result is None:
        return
    with st.container(key="eval-results"):  # brought to the top of the window after each Run: verdict, then chart
        _results(lib, ms, result)
    into_view("eval-results", str(st.session_state.get("eval-runs", 0)), block="start")


def _results(lib: Library, ms: state.ModelState, result) -> None:
    """The verdict, the metric bars with chance and intervals, the tests, the table and the rest."""
    cols = metric_names(result.ks)
    ok = [r for r in result.table() if r["status"] == "ok"]
    for r in result.table():
        if r["status"] != "ok":
            st.caption(md(f"{r['engine']} skipped: {r['reason']}"))
    if ok:
        chance = next((r for r in ok if r["baseline"]), None)
        engines = [r for r in ok if not r["baseline"]]
        if result.verdict:
            st.markdown(f"**Verdict.** {md(result.verdict)}")
        st.plotly_chart(metrics_figure(engines, cols, chance), key="eval-bars", width="stretch")
        for c in result.comparisons:  # against chance too: whether an engine beats random is a test, not a guess
            (st.success if c["significant"] else st.caption)(md(c["sentence"]))
        table = pd.DataFrame(ok)[["engine", "queries", *cols]].round(3)
        chance_r1 = [r.get("r1@iou0.5_chance") for r in ok]
        table.insert(len(table.columns), "r1@iou0.5 chance", [None if c is None else round(c, 3) for c in chance_r1])
        st.dataframe(table.style.format(na_rep="—", precision=3), hide_index=True, width="stretch")  # not "None"
        st.caption(
            f"Each query searched {SCOPES[result.scope]} · queries: those with an answer, used in each mean · "
            "tie-aware: a query whose top frames tie scores the mean over random tie orders · "
            "random: chance, the expected value under random ranking with the same spacing of hits; R1@IoU's "
            "chance is each engine's own (its top moment placed at random) · intervals: 95 %, Clopper–Pearson "
            "for hit@k and R1, bootstrap over queries otherwise"
        )
        _robustness(st.session_state.get("robustness"))
        for r in ok:
            if r["notes"] and not r["baseline"]:
                st.caption(md(f"{r['engine']}: {r['notes']}"))
        _export(result)
        _quality_per_dollar(result, engines, chance)
        _per_query(lib, result, [r["engine"] for r in engines], ms)


def _robustness(drops) -> None:
    """Each engine's drop on the headline metric under each perturbation, with its paired test."""
    if drops is None:
        return
    st.markdown("**Robustness to how people type**")
    if not drops:
        st.caption("No engine ran on at least two perturbed queries.")
        return
    rows = [
        {
            "engine": d.engine,
            "perturbation": d.perturbation,
            "queries": d.queries,
            f"{d.metric} clean": round(d.clean, 3),
            "perturbed": round(d.perturbed, 3),
            "drop": round(d.drop, 3),
            "p (Holm)": float(f"{d.p_holm:.3g}"),
            "example": d.example,
        }
        for d in drops
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="eval-robustness")
    for d in drops:
        if d.significant:
            st.success(md(sentence(d)))
    st.caption(ROBUSTNESS_NOTE)


def _quality_per_dollar(result, engines: list[dict], chance: dict | None) -> None:
    """The headline metric against cost per film-hour; every engine's cost and how it was worked out."""
    metric = result.headline
    baselines = {r["engine"] for r in result.table() if r["baseline"]}
    points = []
    for r in engines:
        cost = result.costs.get(r["engine"], {}).get("usd_per_film_hour")
        if cost is not None and r.get(metric) is not None:
            low, high = r.get(f"{metric}_ci_low", r[metric]), r.get(f"{metric}_ci_high", r[metric])
            points.append({"engine": r["engine"], "usd": cost, "value": r[metric], "low": low, "high": high})
    st.markdown(f"**Quality per dollar** ({metric} against cost per film-hour at the films' sampling)")
    if points:
        st.plotly_chart(cost_figure(points, metric, chance.get(metric) if chance else None), key="eval-cost")
    rows = [
        {
            "engine": name,
            "USD per film-hour": None if c["usd_per_film_hour"] is None else round(c["usd_per_film_hour"], 4),
            "USD per 1 000 queries": round(c.get("usd_per_1000_queries", 0.0), 4),
            "how": c["basis"],
        }
        for name, c in result.costs.items()
        if name not in baselines
    ]
    st.dataframe(pd.DataFrame(rows).style.format(na_rep="—", precision=4), hide_index=True, width="stretch")
    st.caption("Machine prices and service prices: tagging/prices.json (or <library>/prices.json); edit to yours.")


def _per_query(lib: Library, result, engines: list[str], ms: state.ModelState) -> None:
    """Every query with ✓/✗ per engine (sortable), then one query in detail: its timeline with the
    relevant intervals shaded, and each engine's top hits marked right or wrong."""
    names = {f.id: f.name for f in lib.films()}
    k = st.selectbox("Per query, at k", list(result.ks), index=len(result.ks) - 1, key="eval-drill-k")
    rows = {}
    for r in result.rows:
        if r["engine"] not in engines:
            continue
        key = (r["film"], r["query"])
        relevant = intervals_text(r["intervals"], names) or "(no answer)"
        entry = rows.setdefault(key, {"film": r["film"], "query": r["query"], "relevant": relevant})
        m = r["metrics"]
        entry[r["engine"]] = "" if m is None else ("✓" if m[f"hit@{k}"] else "✗")
        entry[f"{r['engine']} rank"] = first_relevant_rank(r, result.tolerance)
    st.markdown(f"**Per query** (✓: a relevant frame among the top {k}; rank: the first relevant hit)")
    st.dataframe(pd.DataFrame(list(rows.values())), hide_index=True, width="stretch", key="eval-drill")

    pairs = list(rows)
    label, query = st.selectbox("Query", pairs, format_func=lambda p: f"{p[0]} — {p[1]}", key="eval-query")
    mine = [r for r in result.rows if (r["film"], r["query"]) == (label, query) and r["engine"] in engines]
    intervals = [tuple(i) for i in mine[0]["intervals"]] if mine else []
    labelled = {f.name: f for f in _films_named(lib, label.split(" + "))}
    if not labelled:
        st.caption(f"{md(label)} is no longer in the library; its numbers above still stand.")
        return
    film = labelled[
        st.selectbox("Film", list(labelled), key="eval-film") if len(labelled) > 1 else next(iter(labelled))
    ]
    here = [iv[-2:] for iv in intervals if len(iv) == 2 or iv[0] == film.id]
    shown = st.multiselect("Timeline rows", engines, default=engines, key="eval-rows")
    timeline_rows = [TimelineRow(n, film.times, state.engine(n, lib, ms).scores(film, query)) for n in shown]
    if timeline_rows:
        st.plotly_chart(
            timeline_figure(timeline_rows, "score", film.manifest.duration, here),
            key="eval-timeline",
            width="stretch",
        )
    else:
        st.caption("Choose an engine above to plot its scores over this film.")
    shaded = md(intervals_text(here, names) or "none in this film")
    st.caption(f"{md(film.name)} · shaded: relevant intervals ({shaded}).")
    for r in mine:
        st.markdown(f"**{md(r['engine'])}** — top hits")
        cols = st.columns(5)
        for col, h in zip(cols, r["hits"][:5], strict=False):
            right = is_relevant(h["time"], intervals, result.tolerance, h["film"])
            shown = lib.get(h["film"]) or film
            show_thumbnail(shown.thumbnail(shown.nearest_frame(h["time"])), col)
            where = "" if shown.id == film.id else f"{md(shown.name)} "
            col.caption(f"{'✓' if right else '✗'} {where}{fmt_time(h['time'])} · {h['score']:.3f}")


def _films_named(lib: Library, names: list[str]) -> list:
    """The library's films of these names, leaving out any that are gone since the evaluation ran."""
    found = []
    for name in names:
        try:
            found.append(lib.find(name)[0])
        except FrameSearchError:
            continue
    return found


def intervals_text(intervals, names: dict[str, str] | None = None) -> str:
    """Relevant intervals as mm:ss–mm:ss (prefixed by the film's name when they name a film), comma-separated."""
    parts = []
    for iv in intervals:
        film = f"{(names or {}).get(iv[0], iv[0])} " if len(iv) == 3 else ""
        parts.append(f"{film}{fmt_time(iv[-2])[:-2]}–{fmt_time(iv[-1])[:-2]}")
    return ", ".join(parts)


def first_relevant_rank(row: dict, tolerance: float) -> int | None:
    """Rank of the first hit inside a relevant interval of its film (widened by the tolerance), or None."""
    for i, h in enumerate(row["hits"], start=1):
        if is_relevant(h["time"], [tuple(iv) for iv in row["intervals"]], tolerance, h.get("film", "")):
            return i
    return None


def _export(result) -> None:
    """The whole evaluation as JSON (every ranked hit, intervals, chance, tests, costs) and the table as CSV."""
    c1, c2 = st.columns(2)
    c1.download_button(
        "Download the whole evaluation (JSON)",
        json.dumps(result.to_dict(), indent=2),
        file_name="evaluation.json",
        mime="application/json",
        key="eval-json",
    )
    c2.download_button(
        "Download the table (CSV)",
        pd.DataFrame(result.table()).to_csv(index=False),
        file_name="evaluation.csv",
        mime="text/csv",
        key="eval-csv",
    )


TAB = Tab("Evaluate", lambda view: evaluate_tab(view.lib, view.ms))

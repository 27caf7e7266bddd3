"""Timeline view: one film's scores over time, a row per query and model; click a point to see that frame."""

from __future__ import annotations

import streamlit as st

from clip_search.store.library import Film, Library
from clip_search.timecode import fmt_time
from engines import ModelEngine
from ui import state
from ui.charts import TimelineRow, seconds_of, timeline_figure
from ui.into_view import into_view
from ui.search_tab import JUMP_MOMENTS, moment_picker, play, player, selected_points
from ui.tabs import Tab, View
from ui.text import engine_label, md
from ui.thumbs import show_frame
from ui.url_state import film_time

MAX_ROWS = 8
BANDS = 3  # top moments outlined per row
TOGGLES = {"tlsoft": "tl-softmax", "tlshared": "tl-shared"}  # URL key -> widget key (on when "1")


def timeline_tab(lib: Library, films: list[Film], models: list[ModelEngine], main_query: str) -> None:
    """Film chooser, extra query lines, cosine/probability and colour-scale choices, the clickable
    timeline (a row per query and model the film has) with a cursor at the picked time, and the
    picked frame."""
    if not films:
        return
    c1, c2, c3 = st.columns([3, 2, 2])
    by_name = {f.name: f for f in films}  # names, not objects: the choice survives reruns and links
    film = by_name[c1.selectbox("Film", list(by_name), key="tl-film")]
    playing = (st.session_state.get("play") or {}).get("film_id")
    if playing not in (None, film.id) and lib.get(playing) is None:
        player(lib)  # a shared link's ▶ of a film no longer here: said in one line
    softmax = c2.toggle(
        "Probability, not cosine",
        key="tl-softmax",
        help="CLIP: softmax over the film's frames with its logit scale; SigLIP: its sigmoid of each frame",
    )
    shared = c3.toggle(
        "Shared colour scale",
        key="tl-shared",
        help="On: one colour scale for all rows. Off: each row from its own min to max",
    )
    extra = st.text_area(
        "More queries for the timeline, one per line",
        key="tl-queries",
        height=80,
        placeholder="Each line is a row of its own, e.g. a giant bird",
    )
    lines = [q.strip() for q in [main_query, *extra.splitlines()] if q.strip()]
    if not lines:
        st.info("Type a query in the search box (or above) to see where it appears in the film.")
        return
    rows, scores, bands = [], {}, []
    models = [m for m in models if film.has(m.model)]
    if not models:
        st.info(f"{md(film.name)} has no vectors of these models yet; add a model to it in the sidebar.")
        return
    for line in dict.fromkeys(lines[:MAX_ROWS]):
        for engine in models:
            label = line if len(models) == 1 else f"{line} · {engine_label(engine)}"
            tl = engine.timeline(film, line)
            scores[label] = tl
            bands += [(len(rows), m.start, m.end) for m in engine.run([film], line, BANDS).moments(BANDS)]
            rows.append(TimelineRow(label, tl.times, tl.softmax if softmax else tl.scores))
    picks = st.session_state.setdefault("tl-pick", {})
    points = selected_points(st.session_state.get("timeline-chart"))  # the click that started this run
    if points:
        picks[film.id] = seconds_of(points[0]["x"])
    first = next(iter(scores.values()))  # its moments, best first, came with its timeline
    peaks = [(film, m.peak_time) for m in first.moments[:JUMP_MOMENTS]]
    jumped = moment_picker(peaks, f"tl-jump-{film.id}", points)
    if jumped is not None:
        picks[film.id] = jumped[1]
    t = picks.get(film.id)
    value = "probability" if softmax else "cosine"
    fig = timeline_figure(
        rows, value, film.manifest.duration, shared_scale=shared, cursor=t, shots=film.shots(), bands=bands
    )
    st.plotly_chart(
        fig,
        on_select="rerun",
        selection_mode="points",
        key="timeline-chart",
        width="stretch",
        config={"scrollZoom": True, "displaylogo": False, "showTips": False},  # no zoom toast over the help
    )
    scale = "one colour scale for all rows" if shared else "each row coloured from its own minimum to its maximum"
    marks = "outlined: each row's top moments" + (" · grey ticks: shot cuts" if film.shots() is not None else "")
    st.caption(
        f"{value}, {scale} · {marks} · click a square to see that frame · drag to zoom · double-click to zoom out"
    )
    if t is None:
        return
    i = film.nearest_frame(t)
    picked = st.container(key="tl-picked")  # brought into view after a pick (it sits below the chart)
    c1, c2 = picked.columns([2, 3])
    into_view("tl-picked", f"{film.id}@{film.times[i]:.3f}")
    playing = st.session_state.get("play") or {}
    if playing.get("film_id") == film.id:  # ▶ plays here, where it was clicked, in view
        with c1:
            player(lib)
    else:
        show_frame(film, i, c1)
    c2.markdown(f"### Frame at `{fmt_time(film.times[i])}`")
    lines = [f"- *{md(q)}*: cosine {tl.scores[i]:.4f}, probability {tl.softmax[i]:.4f}" for q, tl in scores.items()]
    c2.markdown("\n".join(lines))
    c2.button(f"▶ Play from {fmt_time(film.times[i])}", key="tl-play", on_click=play, args=(film.id, film.times[i]))


def _restore(params, film_ids: dict[str, str]) -> list[str]:
    """The link's extra queries, toggles and picked frame (its film becomes the Timeline's film)."""
    if params.get("tlq"):
        st.session_state["tl-queries"] = "\n".join(params.get_all("tlq"))
    for key, widget in TOGGLES.items():
        if params.get(key) == "1":
            st.session_state[widget] = True
    pick = film_time(params.get("pick", ""))
    names_by_id = {v: k for k, v in film_ids.items()}
    if pick and pick[0] in names_by_id:
        st.session_state["tl-pick"] = {pick[0]: pick[1]}
        st.session_state["tl-film"] = names_by_id[pick[0]]
    return []


def _publish(wanted: dict) -> None:
    state = st.session_state
    extra = [q.strip() for q in state.get("tl-queries", "").splitlines() if q.strip()]
    if extra:
        wanted["tlq"] = extra
    for key, widget in TOGGLES.items():
        if state.get(widget):
            wanted[key] = "1"
    picks = state.get("tl-pick") or {}
    film_id = (state.get("url-film-ids") or {}).get(state.get("tl-film"))
    if film_id in picks:  # the frame picked on this tab
        wanted["pick"] = f"{film_id}@{picks[film_id]:.3f}"


def _render(view: View) -> None:
    rows = [
        e
        for e in state.model_engines(view.lib, view.ms, view.engines)
        if not e.row_on_request or e.name == view.params["engine"]  # pooled rows when searching pooled
    ]
    timeline_tab(view.lib, view.films, rows, view.params["text"])


TAB = Tab("Timeline", _render, _restore, _publish)

"""Compare view: one query, one column per engine (every model the film has, each tagger that has
run, dialogue), a timeline row per engine; and the controls that run a tagger with its cost shown
first."""

from __future__ import annotations

import streamlit as st

from clip_search.errors import FrameSearchError
from clip_search.store.library import Film, Library
from clip_search.timecode import fmt_time
from engines import FUSION_WEIGHT, EngineUnavailable, Result
from tagging.pricing import estimate, price_table
from tagging.run import tag_film, work_left
from tagging.taggers import FatalTaggerError, default_service, make_tagger, service, services
from ui import state
from ui.charts import TimelineRow, timeline_figure
from ui.search_tab import play_button, player
from ui.tabs import Tab, View
from ui.text import engine_label, md
from ui.thumbs import evidence_line, show_thumbnail

TOP = 4


def tagging_panel(lib: Library, film: Film) -> None:
    """Run a tagger over one film: estimate first, progress while it runs, errors per frame."""
    c1, c2 = st.columns([2, 3])
    names = list(services())
    name = c1.selectbox("Tagging service", names, index=names.index(default_service()), key="tag-service")
    if service(name).note:
        c2.caption(md(service(name).note))
    try:
        tagger = make_tagger(name)
    except FatalTaggerError as e:  # no credentials yet: what it would cost first, then what to set
        frames = film.manifest.frames
        c2.markdown(f"**Estimate:** {estimate(name, frames, price_table(lib.root)).sentence()}")
        c2.warning(md(e))
        return
    for kind, line in st.session_state.pop("tag-result", []):  # the last run's outcome, kept over the rerun
        getattr(st, kind)(md(line))
    todo = work_left(lib, film, tagger)
    c2.markdown(f"**Estimate:** {estimate(name, todo.frames, price_table(lib.root), calls=todo.calls).sentence()}")
    if not todo.frames:
        c2.caption("Every frame of this film is tagged by this service (cached; nothing to pay).")
        return
    if st.button(f"Tag {md(film.name)} with {name}", key="run-tagging"):
        bar = st.progress(0.0, text="tagging…")
        try:
            run = tag_film(lib, film, tagger, progress=lambda d, n: bar.progress(d / n, text=f"{d}/{n} frames"))
        except FrameSearchError as e:  # read-only library, missing source
            bar.empty()
            st.error(md(e))
            return
        bar.empty()
        kind = "error" if run.fatal else "warning" if run.errors else "success"
        lines = [(kind, run.summary())] + [("caption", f"{fmt_time(t)}: {msg}") for t, msg in run.errors[:5]]
        st.session_state["tag-result"] = lines
        st.rerun()  # the panel again, from what is now stored: no Tag button and estimate for work done


def compare_tab(lib: Library, films: list[Film], ms: state.ModelState, query: str) -> None:
    """Side-by-side hits of every engine for the search box's query."""
    c1, c2 = st.columns([3, 2])
    by_name = {f.name: f for f in films}  # names, not objects: the choice survives reruns and links
    film = by_name[c1.selectbox("Film", list(by_name), key="cmp-film")]
    weight = c2.slider("CLIP's share in clip+dialogue", 0.0, 1.0, FUSION_WEIGHT, 0.05, key="cmp-weight")
    with st.expander("Tag this film with a service (cached per frame: never paid twice)"):
        tagging_panel(lib, film)
    if not query.strip():
        st.info("Type a query above to compare the engines on it.")
        return
    engines = [state.engine(n, lib, ms, weight) for n in state.engine_names(lib, [film])]
    found: dict[str, Result | Exception] = {}
    for engine in engines:
        try:
            found[engine.name] = engine.run([film], query, top_k=TOP)
        except (EngineUnavailable, FrameSearchError) as e:
            found[engine.name] = e
    by_moment: dict[float, set[str]] = {}  # frames several engines found: within 2 s of each other
    for name, result in found.items():
        for h in result.hits if isinstance(result, Result) else []:
            near = next((t for t in by_moment if abs(t - h.time) <= 2.0), h.time)
            by_moment.setdefault(near, set()).add(name)
    st.caption(
        "Scores are not comparable across engines: each model gives its own cosines (CLIP about −0.1 to 0.4), "
        "tag and dialogue engines give 0–1 match scores, clip+dialogue a 0–1 blend. Compare ranks and frames, "
        "not numbers."
    )
    playing = st.session_state.get("play") or {}
    if playing.get("film_id") == film.id:  # ▶ on a card plays here, above the columns, in this tab
        with st.columns([1, 1])[0]:  # half the width: the columns below stay on the first screen
            player(lib)
    cols = st.columns(max(len(engines), 2))  # one engine alone does not fill the page with one frame
    rows = []
    for col, engine in zip(cols, engines, strict=False):  # a spare column when one engine runs
        with col:
            st.markdown(f"**{md(engine_label(engine))}**")
            result = found[engine.name]
            if not isinstance(result, Result):
                st.caption(md(result))
                continue
            rows.append(TimelineRow(engine_label(engine), film.times, result.scores(film)))
            for i, h in enumerate(result.hits):
                with st.container(border=True):
                    show_thumbnail(film.thumbnail(h.frame))
                    also = next((names for t, names in by_moment.items() if abs(t - h.time) <= 2.0), set()) - {
                        engine.name
                    }
                    mark = f" · ★ also {', '.join(sorted(also))}" if also else ""
                    st.caption(f"`{fmt_time(h.time)}` · {h.score:.3f}{mark}")
                    why = result.explain(film, h.frame)
                    if why.evidence:
                        st.caption("; ".join(evidence_line(e) for e in why.evidence[:3]))
                    elif why.note:
                        st.caption(md(why.note))
                    play_button(h, f"cmp-play-{engine.name}-{i}")
    if rows:
        st.markdown("**Timeline, one row per engine** (each row coloured on its own scale)")
        st.plotly_chart(timeline_figure(rows, "score", film.manifest.duration), key="cmp-timeline", width="stretch")


def _restore(params, film_ids: dict[str, str]) -> list[str]:
    if params.get("cmp") in film_ids:
        st.session_state["cmp-film"] = params["cmp"]
    return []


def _publish(wanted: dict) -> None:
    state = st.session_state
    if state.get("cmp-film") and state.get("tab") == TAB.label:
        wanted["cmp"] = state["cmp-film"]


def _render(view: View) -> None:
    compare_tab(view.lib, view.films, view.ms, view.params["text"])


TAB = Tab("Compare engines", _render, _restore, _publish)

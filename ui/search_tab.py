"""Search view: the query, the result grid, moments, and the player."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image, UnidentifiedImageError

from clip_search.errors import FrameSearchError
from clip_search.search.moments import find_moments
from clip_search.search.scoring import DEFAULT_GAP, DEFAULT_NEGATIVE_WEIGHT
from clip_search.store.library import Film, Library
from clip_search.timecode import fmt_time, parse_time
from clip_search.video.proxy import ensure_window, playable, proxy_in_background
from engines import Query, Result, service_of
from engines.temporal import DEFAULT_WITHIN, When
from engines.temporal import search as temporal_search
from framesearch import app
from tagging.taggers import service as find_service
from ui import state
from ui.charts import TimelineRow, strip_figure
from ui.samples import credit_for
from ui.strip_pointer import strip_pointer
from ui.tabs import Tab, View
from ui.text import md, model_label
from ui.thumbs import crop_heat, evidence_line, full_frame, show_frame, show_thumbnail

GRID_COLUMNS = 3  # at 1280 px a frame stays at least 160 px wide, at 1920 at least 320
JUMP_MOMENTS = 5  # best moments per film the keyboard's "Jump to a moment" box lists


def play(film_id: str, time: float, end: float | None = None) -> None:
    """Ask the player to show ``film_id`` from ``time`` (to ``end``, for a moment; a button callback)."""
    st.session_state.play = {"film_id": film_id, "time": float(time)} | ({"end": float(end)} if end else {})


def play_button(hit, key: str) -> None:
    """▶ on a hit's card: plays its film from the hit's time, in view whichever tab is open."""
    st.button(
        f"▶ {fmt_time(hit.time)}",
        key=key,
        on_click=play,
        args=(hit.film_id, hit.time),
        help=f"Play {md(hit.film)} from {fmt_time(hit.time)}",
        width="stretch",
    )


def query_inputs(films: list[Film], engine_options: list[str]) -> tuple[list[Film], dict]:
    """The query widgets; returns the chosen films and the query parameters."""
    c1, c2, c3, c4 = st.columns([5, 3, 2, 1])
    text = c1.text_input("What did you see?", key="query", placeholder="a bird on a branch — press Enter")
    names = [f.name for f in films]
    chosen = c2.multiselect("Films", names, key="search-films", placeholder="All films")
    engine = c3.selectbox(
        "Engine",
        engine_options,
        key="search-engine",
        format_func=model_label,  # a local model by its folder's name, not a path cut after 16 characters
        help="clip: what is seen, by the library's default model; a model's name: what that model sees; "
        "dialogue: what is said (subtitles or on-screen text); tags:<service>: a tagging service's tags",
    )
    top_k = int(c4.number_input("Top k", 1, 100, 12, key="top-k"))
    view = st.segmented_control("Show", VIEWS, key="search-view", default=VIEWS[0], label_visibility="collapsed")
    with st.expander("Negative query · image query · spacing of hits · then / after / before / every occurrence"):
        n1, n2, n3 = st.columns([4, 2, 2])
        negative = n1.text_input("Push away from", key="negative", placeholder="e.g. black title card")
        weight = n2.slider("Negative weight", 0.0, 1.0, DEFAULT_NEGATIVE_WEIGHT, 0.05, key="negative-weight")
        gap = n3.slider("Min seconds between hits", 0.0, 30.0, DEFAULT_GAP, 0.5, key="gap")
        image = st.file_uploader("Search with an image", type=["png", "jpg", "jpeg", "webp", "bmp"], key="image-query")
        t1, t2, t3, t4, t5 = st.columns([4, 2, 2, 2, 2])
        then = t1.text_area("…then (one step per line)", key="then", height=68, placeholder="a ship at sea")
        within = t2.number_input("within (s)", 0.0, 3600.0, DEFAULT_WITHIN, 5.0, key="within")
        after = t3.text_input("after", key="after", placeholder="1:30")
        before = t4.text_input("before", key="before", placeholder="2:45")
        every = t5.toggle("every occurrence", key="every", help="all moments the engine can defend as a match")
    selected = [f for f in films if f.name in chosen] if chosen else films
    return selected, {
        "text": text,
        "negative": negative,
        "weight": weight,
        "gap": gap,
        "top_k": top_k,
        "image": image,
        "engine": engine,
        "view": view or VIEWS[0],
        "then": [line.strip() for line in then.splitlines() if line.strip()],
        "within": float(within),
        "after": after.strip(),
        "before": before.strip(),
        "every": bool(every),
    }


def lacking_note(lib: Library, films: list[Film]) -> None:
    """Say which engines the list leaves out for these films and which films lack what they need;
    the free offline tags are added by one button (a paid service's, from Compare's tagging panel)."""
    for name, lack in state.lacking_engines(lib, films).items():
        service = service_of(name)
        local = find_service(service).local  # free and here: one button runs it; a paid one shows its cost first
        shown = ", ".join(lack[:5]) + (f" and {len(lack) - 5} more" if len(lack) > 5 else "")
        c1, c2 = st.columns([5, 2], vertical_alignment="center")
        where = "" if local else " (tag them in *Compare engines*, which shows the cost first)"
        c1.caption(md(f"{name} is not offered for these films: {shown} lack {service} tags") + where)
        if local and c2.button(f"Tag {len(lack)} film(s) with {service}", key=f"tag-lacking-{service}"):
            _tag_here(lib, service, [f for f in films if f.name in lack])


def _tag_here(lib: Library, service: str, films: list[Film]) -> None:
    """Tag ``films`` with a local tagging service under one progress bar, then show the engine on offer."""
    bar = st.progress(0.0, text=f"tagging with {service}…")
    for n, film in enumerate(films):
        run = app.tag(
            lib,
            film,
            service,
            progress=lambda done, total, n=n, film=film: bar.progress(
                (n + done / max(total, 1)) / len(films), text=f"{film.name}: {done} of {total} frames tagged"
            ),
        )
        if run.fatal:
            st.error(md(run.summary()))
            return
    bar.empty()
    st.rerun()


def run_query(params: dict) -> Query | None:
    """The query as typed (text, negative, image), or None after saying why not (empty query,
    unreadable image)."""
    if not params["text"].strip() and params["image"] is None:
        if params["text"]:
            st.warning("The query is empty: type what you saw, e.g. “a ship at sea”.")
        else:
            st.info("Type what you saw and press Enter — or upload an image to search with.")
        return None
    try:
        return Query(params["text"], params["negative"], params["weight"], _image(params["image"]))
    except ValueError as e:
        st.error(md(e))
        return None


def _image(upload):
    if upload is None:
        return None

    try:
        return np.asarray(Image.open(io.BytesIO(upload.getvalue())).convert("RGB"))
    except (OSError, UnidentifiedImageError):
        raise ValueError(f"{upload.name}: not an image that can be read.") from None


def results(films: list[Film], query: Query, params: dict, lib: Library, ms: state.ModelState) -> Result:
    """The grid of hits (thumbnail, film, time, score, play button) and the moments table; returns the
    search's one result, which the explanation and the strips read too."""
    name = params["engine"]
    engine = state.engine(name, lib, ms)
    if engine.text_only and (query.negative.strip() or query.image is not None):
        st.caption(f"{md(name)} searches by text only: the negative and image queries are not used.")
    try:
        when = When(
            tuple(params["then"]), params["within"], _time(params["after"]), _time(params["before"]), params["every"]
        )
    except ValueError as e:
        st.error(md(e))
        return engine.run(films, query, params["top_k"], params["gap"])
    found = temporal_search(engine, films, query, when, params["top_k"], params["gap"])
    result = found.result
    for note in [*result.notices, *found.notes]:
        st.caption(md(note))
    if found.moments is not None or params["view"] == VIEWS[1]:
        moment_cards(found.moments if found.moments is not None else result.moments(params["top_k"]), films)
        return result
    hits = result.hits
    by_id = {f.id: f for f in films}
    st.markdown(f"**{len(hits)} hits** for *{md(result.label)}*")
    if hits:
        st.caption(
            "Keys: Tab or j / k (↓ / ↑) move between hits in rank order, Enter plays the one in focus, w explains it."
        )
    cols: list = []
    playing = st.session_state.get("play") or {}
    for i, h in enumerate(hits):
        if i % GRID_COLUMNS == 0:  # a row at a time: the page (and Tab) reads the hits in rank order
            cols = st.columns(GRID_COLUMNS)
        with cols[i % GRID_COLUMNS], st.container(border=True):
            show_thumbnail(by_id[h.film_id].thumbnail(h.frame))
            st.markdown(f"**#{i + 1}** · `{fmt_time(h.time)}` · {_standing(h)}")
            st.progress(h.percentile)  # reads the same for every engine; the raw score is in the caption
            if h.label:
                st.markdown(f"“{md(h.label)}”")
            st.caption(f"{md(h.film)} · score {h.score:.3f}")
            play_button(h, f"play-{i}")
            st.button("Why?", key=f"why-{i}", on_click=_explain_hit, args=(h.film_id, h.frame), width="stretch")
            if playing.get("film_id") == h.film_id and playing.get("time") == h.time and not _source_exists(h.source):
                st.caption(f"⚠ The source file is gone ({md(h.source)}); the frames stay searchable.")
    if hits:
        table = pd.DataFrame(
            [
                {
                    "film": h.film,
                    "start": fmt_time(h.start),
                    "end": fmt_time(h.end),
                    "peak": fmt_time(h.time),
                    "score": round(h.score, 4),
                    "hits": n,
                }
                for h, n in distinct_moments(hits)
            ]
        )
        st.markdown("**Moments** (adjacent frames that score high around the hits; each moment once)")
        st.dataframe(table, hide_index=True, width="stretch")
    return result


VIEWS = ["Frames", "Moments"]


def _time(text: str) -> float | None:
    """A time box's seconds (empty: no limit); ValueError naming the forms for anything else."""
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: seconds, mm:ss or h:mm:ss") from None


def moment_cards(moments: list, films: list[Film]) -> None:
    """Each moment as a card: its first, middle and last frame, start–end and duration, its score,
    and ▶ that plays exactly the moment."""
    by_id = {f.id: f for f in films}
    st.markdown(f"**{len(moments)} moments**")
    if not moments:
        st.caption("No moment matches.")
    for i, m in enumerate(moments):
        film = by_id.get(m.film_id)
        if film is None:
            continue
        with st.container(border=True):
            frames = [film.nearest_frame(t) for t in (m.start, (m.start + m.end) / 2, max(m.start, m.end - 0.01))]
            for col, frame in zip(st.columns(3), frames, strict=True):
                show_thumbnail(film.thumbnail(frame), col)
            c1, c2 = st.columns([4, 1], vertical_alignment="center")
            c1.markdown(
                f"**#{i + 1}** · {md(m.film)} · `{fmt_time(m.start)}`–`{fmt_time(m.end)}` "
                f"({m.end - m.start:.1f} s) · score {m.score:.3f}"
            )
            c2.button(
                "▶ moment",
                key=f"play-moment-{i}",
                on_click=play,
                args=(m.film_id, m.start, m.end),
                help=f"Play {md(m.film)} from {fmt_time(m.start)} to {fmt_time(m.end)}",
                width="stretch",
            )


def _restore(params, film_ids: dict[str, str]) -> list[str]:
    """The link's view (frames or moments) and temporal options."""
    ignored = []
    if params.get("view") in VIEWS:
        st.session_state["search-view"] = params["view"]
    if params.get("then"):
        st.session_state["then"] = "\n".join(params.get_all("then"))
    for key in ("after", "before"):
        if params.get(key):
            try:
                _time(params[key])
                st.session_state[key] = params[key]
            except ValueError:
                ignored.append(f"{key}={params[key]!r} (a time: seconds, mm:ss or h:mm:ss)")
    if params.get("within"):
        try:
            st.session_state["within"] = min(max(float(params["within"]), 0.0), 3600.0)
        except ValueError:
            ignored.append(f"within={params['within']!r} (seconds)")
    if params.get("all") == "1":
        st.session_state["every"] = True
    return ignored


def _publish(wanted: dict) -> None:
    state = st.session_state
    if state.get("search-view") not in (None, VIEWS[0]):
        wanted["view"] = state["search-view"]
    steps = [line.strip() for line in state.get("then", "").splitlines() if line.strip()]
    if steps:
        wanted["then"] = steps
        if state.get("within") not in (None, DEFAULT_WITHIN):
            wanted["within"] = f"{state['within']:g}"
    for key in ("after", "before"):
        if state.get(key, "").strip():
            wanted[key] = state[key].strip()
    if state.get("every"):
        wanted["all"] = "1"


MAX_STRIPS = 6
STRIP_POINTS = 600  # cells per strip row at most: about one per pixel of the strip's column


def _standing(hit) -> str:
    """Where a hit stands among its film's frames, in words that read the same for every engine."""
    top = max(1.0 - hit.percentile, 0.0) * 100
    return "best frame of its film" if hit.percentile >= 1.0 else f"top {max(top, 0.1):.1f} % of its film's frames"


def distinct_moments(hits: list) -> list[tuple]:
    """Each moment once, best hit first: a hit whose moment overlaps a better hit's moment of the
    same film joins it (the count says how many hits fell in it)."""
    kept: list[list] = []
    for h in hits:
        same = next((k for k in kept if k[0].film_id == h.film_id and h.start < k[0].end and k[0].start < h.end), None)
        if same:
            same[1] += 1
        else:
            kept.append([h, 1])
    return [(h, n) for h, n in kept]


def _explain_hit(film_id: str, frame: int) -> None:
    st.session_state.why = (film_id, frame)


def why(films: list[Film], result: Result) -> None:
    """The explanation of the hit whose Why? was clicked (shown beside the grid, in view)."""
    chosen = st.session_state.get("why")
    hit = next((h for h in result.hits if chosen and (h.film_id, h.frame) == chosen), None)
    if hit is not None:
        explain_panel({f.id: f for f in films}[hit.film_id], hit.frame, result)


def explain_panel(film: Film, frame: int, result: Result) -> None:
    """Why this frame matched, by the engine that found it: CLIP's crop map over the frame, or the
    tags, captions, OCR lines or subtitle cue that made it match."""
    engine = result.engine
    with st.container(border=True):
        st.markdown(f"**Why {md(film.name)} at `{fmt_time(film.times[frame])}` matched** ({md(engine.name)})")
        c1, c2 = st.columns([2, 3])
        with st.spinner("Scoring crops of the frame…"):
            why = result.explain(film, frame, crops=True)
        thumb = full_frame(film, frame)
        if why.grid and thumb:
            c1.image(crop_heat(thumb, why.grid, why.frame_size), width="stretch")
            c1.caption(f"red: where in the frame the query matches best (crops scored by {md(engine.model)})")
        else:
            show_thumbnail(thumb, c1)
        c2.markdown("\n".join(f"- {evidence_line(e)}" for e in why.evidence) or "_no evidence_")
        if why.note:
            c2.caption(md(why.note))


def strips(films: list[Film], result: Result) -> None:
    """A compact timeline per chosen film (films with hits first): the query's score over the whole
    film, as the search scored it; click it to see that frame and play from it, as in the Timeline tab."""
    with_hits = list(dict.fromkeys(h.film_id for h in result.hits))
    searched = {f.id for f in result.films}
    order = sorted(films, key=lambda f: (with_hits.index(f.id) if f.id in with_hits else len(films), f.name))
    shown = [f for f in order if f.id in searched][:MAX_STRIPS]
    if not shown:
        return
    engine = result.engine
    scores = [result.scores(f) for f in shown]
    drawn = [strip_points(s) for s in scores]  # frames drawn: all, or each stretch's best of a long film
    rows = [TimelineRow(f.name, f.times[d], s[d], d) for f, s, d in zip(shown, scores, drawn, strict=True)]
    duration = max(f.manifest.duration for f in shown)
    st.plotly_chart(
        strip_figure(rows, engine.score_label, duration),
        key="search-strip",
        width="stretch",
        # no mode bar: on a strip this short it would lie over the first row and take its hover
        config={"scrollZoom": True, "displayModeBar": False, "showTips": False},
    )
    showing = f"{result.label} · {engine.name}"  # what the strip shows: a click on an older one is not kept
    clicked = strip_pointer("search-strip", shown, showing)  # the hover preview, and the frame last clicked
    caption = (
        "Score over each film (each row on its own colour scale) · hover for the frame, click "
        "to play from there · scroll to zoom, double-click to zoom out"
    )
    if len(films) > len(shown):
        caption += f" · {len(shown)} of {len(films)} films shown (those with hits first)"
    st.caption(caption)
    points = [{"film": clicked.film.id, "frame": clicked.frame, "click": clicked.click}] if clicked else []
    peaks = [(f, float(t)) for f, fs in zip(shown, scores, strict=True) for t in peak_times(f, fs)]
    picked = moment_picker(peaks, "strip-jump", points)
    if picked is not None:
        film, at = picked
    elif clicked:
        film, at = clicked.film, float(clicked.film.times[clicked.frame])
    else:
        return
    i = film.nearest_frame(at)
    c1, c2 = st.columns([2, 3])
    show_frame(film, i, c1)
    c2.markdown(f"**{md(film.name)}** at `{fmt_time(film.times[i])}`")
    c2.button(f"▶ Play from {fmt_time(film.times[i])}", key="strip-play", on_click=play, args=(film.id, film.times[i]))


def strip_points(scores: np.ndarray, limit: int = STRIP_POINTS) -> np.ndarray:
    """The frames a strip row draws: every frame of a short film; of a longer one, the best frame of
    each of ``limit`` equal stretches, so a peak is never averaged away and the page carries a
    few hundred cells per film rather than 7 200 for two hours."""
    if len(scores) <= limit:
        return np.arange(len(scores))
    s = np.where(np.isfinite(scores), scores, -np.inf)
    edges = np.linspace(0, len(s), limit + 1).astype(int)
    return np.array([lo + int(np.argmax(s[lo:hi])) for lo, hi in itertools.pairwise(edges.tolist())])


def peak_times(film: Film, scores, limit: int = JUMP_MOMENTS) -> list[float]:
    """The peak times of a film's best moments for these scores (what the keyboard can jump to)."""
    return [m.peak_time for m in find_moments(film.times, scores, film.manifest.duration, limit=limit)]


def moment_picker(peaks: list[tuple[Film, float]], key: str, points: list[dict]) -> tuple[Film, float] | None:
    """A select box of the charts' best moments: the keyboard's way to do what a click on the chart
    does. Returns the chosen (film, time) while it is the latest choice: a click on the chart
    after it takes over, and choosing again takes it back."""
    labels = {f"{f.name} · {fmt_time(t)}": (f, t) for f, t in peaks}
    sig = repr(points)

    def chose() -> None:
        st.session_state[f"{key}-over"] = sig  # the chart selection this choice overrides

    choice = st.selectbox(
        "Jump to a moment (keyboard)",
        list(labels),
        index=None,
        key=key,
        placeholder="Jump to a moment: type or use arrow keys",
        on_change=chose,
        label_visibility="collapsed",
    )
    if choice is None or choice not in labels:
        return None
    if points and st.session_state.get(f"{key}-over") != sig:
        return None  # a click on the chart came later
    return labels[choice]


def selected_points(event) -> list[dict]:
    """The clicked points of a Plotly chart's selection event (dict or attribute form)."""
    if isinstance(event, dict):
        return event.get("selection", {}).get("points", [])
    return getattr(getattr(event, "selection", None), "points", []) or []


def _source_exists(source: str) -> bool:
    return Path(source).is_file()


def player(lib: Library) -> None:
    """The film playing from the chosen time (a hit or a timeline click); a vanished source file is
    said in one line instead of an error that would break the page."""
    choice = st.session_state.get("play")
    if not choice:
        return
    film = lib.get(choice["film_id"])
    if film is None:
        st.caption("The film to play is no longer in the library.")
        return
    source = film.manifest.source
    if not _source_exists(source):
        st.warning(md(f"Cannot play {film.name}: its source file is gone ({source}). Search results are not affected."))
        return

    end = choice.get("end")
    target, offset, note = playable(lib, film), 0.0, None
    if target is None:  # HEVC, MKV, ProRes, ...: an excerpt made now, the whole copy in the background
        try:
            with st.spinner(f"Making a playable excerpt of {film.name}…"):
                target, offset = ensure_window(lib, film, choice["time"], end)
        except FrameSearchError as e:
            st.error(md(e))
            return
        making = proxy_in_background(lib, film)
        note = f"A playable excerpt from {fmt_time(offset)}" + (
            "; the whole film's playable copy is being made meanwhile." if making else "."
        )
    until = f" to {fmt_time(end)}" if end else ""
    st.markdown(f"**Playing {md(film.name)} from {fmt_time(choice['time'])}{until}**")
    st.video(  # muted: browsers allow autoplay; a moment stops at its end
        str(target),
        start_time=int(choice["time"] - offset),
        end_time=int(np.ceil(end - offset)) if end else None,
        autoplay=True,
        muted=True,
    )
    if note:
        st.caption(note)
    credit = credit_for(source)
    if credit:
        st.caption(credit)


_keys = st.components.v2.component("hit_keys", js=(Path(__file__).with_name("hit_keys.js")).read_text(encoding="utf-8"))


def hit_keys() -> None:
    """j / k (or the up and down arrows) move between hits in rank order; Enter plays the one in focus."""
    _keys(key="hit-keys")


@st.fragment
def _render(view: View) -> None:
    """Results, the score strip of each film and the player, on one screen. A fragment: a click that
    concerns only this part (Why?, a strip click, ▶) reruns it alone, not the page around it."""
    lib, ms, chosen, params = view.lib, view.ms, view.films, view.params
    hit_keys()  # from the first load: the Enter that runs the first query already hands the keys to the results
    query = run_query(params)
    left, right = st.columns([2, 1])  # three cards of 320+ px a row at 1920 wide, the sidebar open
    beside = right.container(key="player-box")  # sticky (see STICKY_PLAYER): player and strips stay in view
    explained = beside.container()  # first: a Why? opens at the top of the sticky column, in view
    with beside:
        player(lib)
    if query is None:
        return
    try:
        with left:
            result = results(chosen, query, params, lib, ms)
        with explained:
            why(chosen, result)
        with beside:
            strips(chosen, result)
    except FrameSearchError as e:  # e.g. an engine that cannot run on these films: say so, keep the page
        st.error(md(e))
    view.publish()  # a click here (▶) changes the view's address too


TAB = Tab("Search", _render, _restore, _publish)

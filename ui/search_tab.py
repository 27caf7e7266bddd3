"""Search view: the query, the result grid, moments, and the player."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from clip_search.library import Film, Library
from clip_search.search import DEFAULT_GAP, DEFAULT_NEGATIVE_WEIGHT, QueryVector, build_query
from clip_search.timecode import fmt_time
from ui import state
from ui.samples import credit_for
from ui.thumbs import show_thumbnail

GRID_COLUMNS = 4


def play(film_id: str, time: float) -> None:
    """Ask the player to show ``film_id`` from ``time`` (a button callback)."""
    st.session_state.play = {"film_id": film_id, "time": float(time)}


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
        help="clip: what is seen; dialogue: what is said (subtitles or on-screen text); "
        "tags:<service>: a tagging service's tags",
    )
    top_k = int(c4.number_input("Top k", 1, 100, 12, key="top-k"))
    with st.expander("Negative query · image query · spacing of hits"):
        n1, n2, n3 = st.columns([4, 2, 2])
        negative = n1.text_input("Push away from", key="negative", placeholder="e.g. black title card")
        weight = n2.slider("Negative weight", 0.0, 1.0, DEFAULT_NEGATIVE_WEIGHT, 0.05, key="negative-weight")
        gap = n3.slider("Min seconds between hits", 0.0, 30.0, DEFAULT_GAP, 0.5, key="gap")
        image = st.file_uploader("Search with an image", type=["png", "jpg", "jpeg", "webp", "bmp"], key="image-query")
    selected = [f for f in films if f.name in chosen] if chosen else films
    return selected, {
        "text": text,
        "negative": negative,
        "weight": weight,
        "gap": gap,
        "top_k": top_k,
        "image": image,
        "engine": engine,
    }


def run_query(encoder, params: dict) -> QueryVector | None:
    """Build the query vector, or show why not (empty query, unreadable image)."""
    if not params["text"].strip() and params["image"] is None:
        if params["text"]:
            st.warning("The query is empty: type what you saw, e.g. “a ship at sea”.")
        else:
            st.info("Type what you saw and press Enter — or upload an image to search with.")
        return None
    try:
        q = build_query(encoder, params["text"], params["negative"], _image(params["image"]), params["weight"])
    except ValueError as e:
        st.error(str(e))
        return None
    for note in q.notices:
        st.caption(f"ⓘ {note}")
    return q


def _image(upload):
    if upload is None:
        return None
    import io

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        return np.asarray(Image.open(io.BytesIO(upload.getvalue())).convert("RGB"))
    except (OSError, UnidentifiedImageError):
        raise ValueError(f"{upload.name}: not an image that can be read.") from None


def results(films: list[Film], query: QueryVector, params: dict, lib: Library, ms: state.ModelState) -> None:
    """The grid of hits (thumbnail, film, time, score, play button) and the moments table."""
    name = params["engine"]
    engine = state.engine(name, lib, ms)
    if name == "clip":
        hits = engine.searcher(films).search(query, top_k=params["top_k"], gap=params["gap"])
    else:
        if params["negative"].strip() or params["image"] is not None:
            st.caption(f"ⓘ {name} searches by text only: the negative and image queries are not used.")
        hits = engine.search(films, params["text"], params["top_k"], params["gap"])
    by_id = {f.id: f for f in films}
    st.markdown(f"**{len(hits)} hits** for *{query.label}*")
    cols = st.columns(GRID_COLUMNS)
    playing = st.session_state.get("play") or {}
    for i, h in enumerate(hits):
        with cols[i % GRID_COLUMNS], st.container(border=True):
            show_thumbnail(by_id[h.film_id].thumbnail(h.frame))
            st.markdown(f"`{fmt_time(h.time)}` · score **{h.score:.3f}**")
            st.caption(h.film)
            st.button(
                f"▶ {fmt_time(h.time)}",
                key=f"play-{i}",
                on_click=play,
                args=(h.film_id, h.time),
                help=f"Play {h.film} from {fmt_time(h.time)}",
                width="stretch",
            )
            if playing.get("film_id") == h.film_id and playing.get("time") == h.time and not _source_exists(h.source):
                st.caption(f"⚠ The source file is gone ({h.source}); the frames stay searchable.")
    if hits:
        table = pd.DataFrame(
            [
                {
                    "film": h.film,
                    "start": fmt_time(h.start),
                    "end": fmt_time(h.end),
                    "peak": fmt_time(h.time),
                    "score": round(h.score, 4),
                    "softmax": round(h.softmax, 4),
                }
                for h in hits
            ]
        )
        st.markdown("**Moments** (adjacent frames that score high around each hit)")
        st.dataframe(table, hide_index=True, width="stretch")


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
        st.warning(f"Cannot play {film.name}: its source file is gone ({source}). Search results are not affected.")
        return
    st.markdown(f"**Playing {film.name} from {fmt_time(choice['time'])}**")
    st.video(source, start_time=int(choice["time"]))
    if source.endswith(".mkv"):
        st.caption("Browsers play MKV/HEVC only in part; if the player stays black, open the file in a desktop player.")
    credit = credit_for(source)
    if credit:
        st.caption(credit)

"""The view in the URL: the query and its negative, films, engine, top-k, tab, the playing time,
the Timeline's film, picked time, extra queries and toggles, and the Compare film live in
``st.query_params``, so a link reproduces what the sender saw (a lab demo sent as a link).

``restore`` runs once per browser session, before the widgets exist, and only takes values that
still make sense (films that are in the library, engines on offer); ``publish`` writes the current
view back after every run."""

from __future__ import annotations

import math
import re

import streamlit as st

TABS = ["Search", "Timeline", "Compare engines", "Evaluate"]


TOGGLES = {"tlsoft": "tl-softmax", "tlshared": "tl-shared"}  # URL key -> widget key (on when "1")


def restore(film_names: list[str], engines: list[str], film_ids: dict[str, str] | None = None) -> None:
    """Seed the widgets from the URL the page was opened with (once per session)."""
    if st.session_state.get("url-restored"):
        return
    st.session_state["url-restored"] = True
    params = st.query_params
    if params.get("q"):
        st.session_state["query"] = params["q"]
    if params.get("neg"):
        st.session_state["negative"] = params["neg"]
    if params.get("tlq"):
        st.session_state["tl-queries"] = "\n".join(params.get_all("tlq"))
    for key, widget in TOGGLES.items():
        if params.get(key) == "1":
            st.session_state[widget] = True
    if params.get("cmp") in film_names:
        st.session_state["cmp-film"] = params["cmp"]
    films = [f for f in params.get_all("film") if f in film_names]
    if films:
        st.session_state["search-films"] = films
    if params.get("engine") in engines:
        st.session_state["search-engine"] = params["engine"]
    ignored = []
    k = params.get("k")
    if k is not None:  # ASCII digits only: str.isdigit also takes "²", which int() refuses
        if re.fullmatch(r"[0-9]{1,3}", k) and 1 <= int(k) <= 100:
            st.session_state["top-k"] = int(k)
        else:
            ignored.append(f"k={k!r} (a number of hits from 1 to 100)")
    for key, known in (("tab", TABS), ("engine", engines)):
        if params.get(key) is not None and params.get(key) not in known:
            ignored.append(f"{key}={params.get(key)!r} (not one of {', '.join(known)})")
    if params.get("tab") in TABS:
        st.session_state["tab"] = params["tab"]
    if ignored:  # shown once above the results: the view still shows, with the defaults for these
        st.session_state["url-ignored"] = "The link's " + "; ".join(ignored) + " was ignored."
    play = _film_time(params.get("play", ""))
    if play:
        st.session_state["play"] = {"film_id": play[0], "time": play[1]}
    pick = _film_time(params.get("pick", ""))
    names_by_id = {v: k for k, v in (film_ids or {}).items()}
    if pick and pick[0] in names_by_id:  # the picked film is the Timeline's film, and its time
        st.session_state["tl-pick"] = {pick[0]: pick[1]}
        st.session_state["tl-film"] = names_by_id[pick[0]]


def _film_time(text: str) -> tuple[str, float] | None:
    """'film-id@12.5' -> ('film-id', 12.5); None for anything else."""
    film_id, _, t = text.rpartition("@")
    try:
        seconds = float(t)
        return (film_id, max(0.0, seconds)) if film_id and math.isfinite(seconds) else None  # not inf, not nan
    except ValueError:
        return None


def publish() -> None:
    """Write the current view into the URL (only what differs from the defaults)."""
    state = st.session_state
    wanted: dict[str, str | list[str]] = {}
    if state.get("query", "").strip():
        wanted["q"] = state["query"]
    if state.get("negative", "").strip():
        wanted["neg"] = state["negative"]
    if state.get("search-films"):
        wanted["film"] = list(state["search-films"])
    extra = [q.strip() for q in state.get("tl-queries", "").splitlines() if q.strip()]
    if extra:
        wanted["tlq"] = extra
    for key, widget in TOGGLES.items():
        if state.get(widget):
            wanted[key] = "1"
    if state.get("cmp-film") and state.get("tab") == "Compare engines":
        wanted["cmp"] = state["cmp-film"]
    if state.get("search-engine") not in (None, "clip"):
        wanted["engine"] = state["search-engine"]
    if state.get("top-k") not in (None, 12):
        wanted["k"] = str(state["top-k"])
    if state.get("tab") not in (None, "Search"):
        wanted["tab"] = state["tab"]
    if state.get("play"):
        wanted["play"] = f"{state['play']['film_id']}@{state['play']['time']:.3f}"
    picks = state.get("tl-pick") or {}
    film_id = (state.get("url-film-ids") or {}).get(state.get("tl-film"))
    if film_id in picks:  # the frame picked on the Timeline tab
        wanted["pick"] = f"{film_id}@{picks[film_id]:.3f}"
    many = ("film", "tlq")
    current = {k: (st.query_params.get_all(k) if k in many else st.query_params.get(k)) for k in st.query_params}
    if current != wanted:
        st.query_params.from_dict(wanted)

"""The view in the URL: the query and its negative, films, engine, top-k, tab and the playing time
live in ``st.query_params``, and each tab adds its own keys (``ui.tabs.Tab``: the Timeline's film,
picked time, extra queries and toggles; the Compare film), so a link reproduces what the sender saw
(a lab demo sent as a link).

``restore`` runs once per browser session, before the widgets exist, and only takes values that
still make sense (films that are in the library, engines on offer); ``publish`` writes the current
view back after every run."""

from __future__ import annotations

import math
import re

import streamlit as st

from engines import DEFAULT
from ui.tabs import Tab

MANY = ("film", "tlq", "then")  # keys a link may repeat


def restore(tabs: list[Tab], engines: list[str], film_ids: dict[str, str]) -> None:
    """Seed the widgets from the URL the page was opened with (once per session)."""
    if st.session_state.get("url-restored"):
        return
    st.session_state["url-restored"] = True
    params = st.query_params
    film_names = list(film_ids)
    labels = [t.label for t in tabs]
    if params.get("q"):
        st.session_state["query"] = params["q"]
    if params.get("neg"):
        st.session_state["negative"] = params["neg"]
    ignored = [line for t in tabs for line in t.restore(params, film_ids)]
    films = [f for f in params.get_all("film") if f in film_names]
    if films:
        st.session_state["search-films"] = films
    if params.get("engine") in engines:
        st.session_state["search-engine"] = params["engine"]
    k = params.get("k")
    if k is not None:  # ASCII digits only: str.isdigit also takes "²", which int() refuses
        if re.fullmatch(r"[0-9]{1,3}", k) and 1 <= int(k) <= 100:
            st.session_state["top-k"] = int(k)
        else:
            ignored.append(f"k={k!r} (a number of hits from 1 to 100)")
    for key, known in (("tab", labels), ("engine", engines)):
        if params.get(key) is not None and params.get(key) not in known:
            ignored.append(f"{key}={params.get(key)!r} (not one of {', '.join(known)})")
    if params.get("tab") in labels:
        st.session_state["tab"] = params["tab"]
    if ignored:  # shown once above the results: the view still shows, with the defaults for these
        st.session_state["url-ignored"] = "The link's " + "; ".join(ignored) + " was ignored."
    play = film_time(params.get("play", ""))
    if play:
        st.session_state["play"] = {"film_id": play[0], "time": play[1]}


def film_time(text: str) -> tuple[str, float] | None:
    """'film-id@12.5' -> ('film-id', 12.5); None for anything else."""
    film_id, _, t = text.rpartition("@")
    try:
        seconds = float(t)
        return (film_id, max(0.0, seconds)) if film_id and math.isfinite(seconds) else None  # not inf, not nan
    except ValueError:
        return None


def publish(tabs: list[Tab]) -> None:
    """Write the current view into the URL (only what differs from the defaults)."""
    state = st.session_state
    wanted: dict[str, str | list[str]] = {}
    if state.get("query", "").strip():
        wanted["q"] = state["query"]
    if state.get("negative", "").strip():
        wanted["neg"] = state["negative"]
    if state.get("search-films"):
        wanted["film"] = list(state["search-films"])
    for tab in tabs:
        tab.publish(wanted)
    if state.get("search-engine") not in (None, DEFAULT):
        wanted["engine"] = state["search-engine"]
    if state.get("top-k") not in (None, 12):
        wanted["k"] = str(state["top-k"])
    if state.get("tab") not in (None, tabs[0].label):
        wanted["tab"] = state["tab"]
    if state.get("play"):
        wanted["play"] = f"{state['play']['film_id']}@{state['play']['time']:.3f}"
    current = {k: (st.query_params.get_all(k) if k in MANY else st.query_params.get(k)) for k in st.query_params}
    if current != wanted:
        st.query_params.from_dict(wanted)

"""The view in the URL: query, films, engine, top-k, tab, the playing and the picked time live in
``st.query_params``, so a link reproduces what the sender saw (a lab demo sent as a link).

``restore`` runs once per browser session, before the widgets exist, and only takes values that
still make sense (films that are in the library, engines on offer); ``publish`` writes the current
view back after every run."""

from __future__ import annotations

import math

import streamlit as st

TABS = ["Search", "Timeline", "Compare engines", "Evaluate"]


def restore(film_names: list[str], engines: list[str]) -> None:
    """Seed the widgets from the URL the page was opened with (once per session)."""
    if st.session_state.get("url-restored"):
        return
    st.session_state["url-restored"] = True
    params = st.query_params
    if params.get("q"):
        st.session_state["query"] = params["q"]
    films = [f for f in params.get_all("film") if f in film_names]
    if films:
        st.session_state["search-films"] = films
    if params.get("engine") in engines:
        st.session_state["search-engine"] = params["engine"]
    if params.get("k", "").isdigit() and 1 <= int(params["k"]) <= 100:
        st.session_state["top-k"] = int(params["k"])
    if params.get("tab") in TABS:
        st.session_state["tab"] = params["tab"]
    play = _film_time(params.get("play", ""))
    if play:
        st.session_state["play"] = {"film_id": play[0], "time": play[1]}
    pick = _film_time(params.get("pick", ""))
    if pick:
        st.session_state["tl-pick"] = {pick[0]: pick[1]}


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
    if state.get("search-films"):
        wanted["film"] = list(state["search-films"])
    if state.get("search-engine") not in (None, "clip"):
        wanted["engine"] = state["search-engine"]
    if state.get("top-k") not in (None, 12):
        wanted["k"] = str(state["top-k"])
    if state.get("tab") not in (None, "Search"):
        wanted["tab"] = state["tab"]
    if state.get("play"):
        wanted["play"] = f"{state['play']['film_id']}@{state['play']['time']:.3f}"
    picks = state.get("tl-pick") or {}
    film = state.get("tl-film")
    if film is not None and film.id in picks:  # the frame picked on the Timeline tab
        wanted["pick"] = f"{film.id}@{picks[film.id]:.3f}"
    current = {k: (st.query_params.get_all(k) if k == "film" else st.query_params.get(k)) for k in st.query_params}
    if current != wanted:
        st.query_params.from_dict(wanted)

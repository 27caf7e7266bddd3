"""Frame Search Lab dashboard: ``streamlit run dashboard.py`` (or the README's demo command).

Thin on purpose: it wires the page helpers in ui/ to the clip_search engine."""

from __future__ import annotations

import streamlit as st

from clip_search.errors import FrameSearchError
from ui import library_panel, search_tab, state
from ui.compare_tab import compare_tab, engines_for
from ui.evaluate_tab import evaluate_tab
from ui.timeline_tab import timeline_tab

st.set_page_config(page_title="Frame Search Lab", layout="wide")


def main() -> None:
    ms = state.model()
    lib = state.library()
    with st.sidebar:
        st.title("Frame Search Lab")
        library_panel.model_status(ms)
        library_panel.add_films(lib, ms)
        library_panel.film_list(lib)
    if ms.encoder is None:
        st.info("No model is loaded; the sidebar says why and how to fix it.")
        return
    all_films = lib.films()
    films = [f for f in all_films if f.manifest.model == ms.model_id]
    if len(films) < len(all_films):
        st.caption(
            f"{len(all_films) - len(films)} film(s) were indexed with another model and are hidden; "
            "re-index them with this one to search them."
        )
    if not films:
        st.info("Add a film in the sidebar (a sample film, an upload, a path or a URL) to start searching.")
        return
    search, time_tab, compare, evaluation = st.tabs(["Search", "Timeline", "Compare engines", "Evaluate"])
    with search:
        chosen, params = search_tab.query_inputs(films, [e.name for e in engines_for(lib, films, ms.encoder)])
        query = search_tab.run_query(ms.encoder, params)
        if st.session_state.get("play"):
            left, right = st.columns([3, 2])
            with right:
                search_tab.player(lib)
        else:
            left = st.container()
        with left:
            if query is not None:
                search_tab.results(chosen, query, params, lib, ms.encoder)
    with time_tab:
        timeline_tab(chosen, ms.encoder, params["text"])
    with compare:
        compare_tab(lib, chosen, ms.encoder, params["text"])
    with evaluation:
        evaluate_tab(lib, ms.encoder)


try:
    main()
except FrameSearchError as e:  # a user-facing problem: one line, never a traceback
    st.error(str(e))
except Exception as e:  # noqa: BLE001 - last guard: show a sentence, keep the app alive
    st.error(f"Something went wrong ({type(e).__name__}: {e}). Everything indexed so far is kept.")

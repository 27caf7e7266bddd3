"""The dashboard's page, run by ``dashboard.py`` on every run: the sidebar, then the query and the
open tab as one fragment. Tabs are lazy: only the open tab runs (``st.tabs(on_change="rerun")``), so a
query in Search costs no Compare work; the fragment means a query reruns neither the sidebar nor the
page's set-up."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import streamlit as st

import clip_search.config as config
from clip_search.errors import FrameSearchError
from clip_search.store.library import Library
from ui import access, compare_tab, evaluate_tab, library_panel, search_tab, state, timeline_tab, url_state
from ui.samples import DEMO_QUERY
from ui.tabs import View
from ui.text import md


def _sidebar_state() -> str:
    """The sidebar opens by itself only while the library is empty (adding films is the first step);
    after that the frames get the width (at 1280 px a frame stays at least 160 px wide)."""
    try:
        return "collapsed" if Library(config.library_dir()).films() else "expanded"
    except OSError:
        return "expanded"


# The player and score strips beside the results stay in view while the grid scrolls: Streamlit
# gives a keyed container the class st-key-<key>, inside a wrapper whose parent is the column,
# which the row stretches to the grid's height, so the wrapper can stick.
TABS = [search_tab.TAB, timeline_tab.TAB, compare_tab.TAB, evaluate_tab.TAB]  # in the order they are shown
STICKY_PLAYER = """<style>
div[data-testid="stLayoutWrapper"]:has(> .st-key-player-box) { position: sticky; top: 3.5rem; z-index: 5; }
</style>"""


def run() -> None:
    """One run of the page, any problem said in one line."""
    st.set_page_config(page_title="Frame Search Lab", layout="wide", initial_sidebar_state=_sidebar_state())
    with guarded():
        main()


def main() -> None:
    """The page's set-up (password, model, library, the link's view) and the sidebar, then the fragment."""
    if not access.allowed():  # a lab's dashboard asks for its password before anything else
        return
    st.markdown(STICKY_PLAYER, unsafe_allow_html=True)
    with st.sidebar:
        st.title("Frame Search Lab")  # the page's frame at once, before the model loads
    with st.spinner("Starting: loading the model (once per process)…"):
        ms = state.model()
    lib = state.library(ms.model_id)
    with st.sidebar:
        library_panel.model_status(ms)
        library_panel.add_films(lib, ms)
        library_panel.add_model(lib)
        library_panel.film_list(lib)
    if ms.encoder is None:
        st.info("No model is loaded; the sidebar says why and how to fix it.")
        return
    films = lib.films()
    lacking = [f for f in films if not f.has(ms.model_id)]
    if lacking:  # never hidden: named, with where to add the vectors
        st.caption(
            f"{len(lacking)} film(s) have no {md(ms.model_id)} vectors ({md(', '.join(f.name for f in lacking[:3]))}"
            f"{' …' if len(lacking) > 3 else ''}): search them with their own model's engine, or add this "
            "model to them in the sidebar (Add a model)."
        )
    demo = os.environ.get("FRAMESEARCH_DEMO") == "1"
    if not films and demo:
        library_panel.index_demo_films(lib, ms)
    if not films:
        st.info("Add a film in the sidebar (a sample film, an upload, a path or a URL) to start searching.")
        return
    if demo:
        st.session_state.setdefault("query", DEMO_QUERY)
    notice = state.random_model_notice(ms)
    if notice:  # said in the main area too: the sidebar is hidden on narrow windows
        st.warning(md(notice))
    st.session_state["url-film-ids"] = {f.name: f.id for f in films}
    url_state.restore(TABS, state.engine_names(lib, films), st.session_state["url-film-ids"])
    if st.session_state.get("url-ignored"):
        st.caption(md(st.session_state.pop("url-ignored")))
    page(lib, ms)


@st.fragment
def page(lib: Library, ms: state.ModelState) -> None:
    """The query and the open tab: a fragment, so Enter in the query box reruns this part alone
    (not the sidebar and the page's set-up around it), and the browser redraws only what changed.
    It lists the films itself: another process may have added or removed one since the page's run."""
    with guarded():
        films = lib.films()
        if films:
            _query_and_tabs(lib, ms, films)
        else:
            st.info("The library has no films now (another window or process removed them): add one in the sidebar.")


def _query_and_tabs(lib: Library, ms: state.ModelState, films: list) -> None:
    picked = [f for f in films if f.name in (st.session_state.get("search-films") or [])] or films
    engines = state.engine_names(lib, picked)  # what can run on the films chosen
    if st.session_state.get("search-engine") not in (None, *engines):
        st.session_state["search-engine"] = engines[0]
    chosen, params = search_tab.query_inputs(films, engines)
    search_tab.lacking_note(lib, picked)
    view = View(lib, ms, chosen, params, engines, publish=lambda: url_state.publish(TABS))
    for tab, container in zip(TABS, st.tabs([t.label for t in TABS], key="tab", on_change="rerun"), strict=True):
        if container.open:
            with container:
                tab.render(view)
    url_state.publish(TABS)


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """A problem as one line on the page, never a traceback: around the whole run, and around the
    page fragment, whose own reruns do not pass through ``run``."""
    try:
        yield
    except FrameSearchError as e:  # a user-facing problem: one line
        st.error(md(e))
    except Exception as e:  # noqa: BLE001 - last guard: show a sentence, keep the app alive
        st.error(f"Something went wrong ({type(e).__name__}: {md(e)}). Everything indexed so far is kept.")

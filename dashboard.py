"""Frame Search Lab dashboard: ``streamlit run dashboard.py`` (or the README's demo command).

Thin on purpose. Streamlit imports this file once to find its server (``app``: Streamlit's own,
with ``ui/frame_cache.py`` so the browser keeps the frames it has seen), then runs it for every
visit and click: each run draws the page (``ui/page.py``)."""

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

if get_script_run_ctx(suppress_warning=True) is None:  # imported by the server, not run for a page
    # the server needs only its middleware: the page's modules make Streamlit calls that need a run
    from starlette.middleware import Middleware

    from ui.frame_cache import FrameCache  # the frames' cache headers

    app = st.App(__file__, middleware=[Middleware(FrameCache)])
else:
    from ui.page import run  # the page, loaded by its first run (then kept)

    run()

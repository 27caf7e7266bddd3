"""Bringing a part of the page into view after a click elsewhere made it: the Timeline's picked frame
below a tall chart, the Evaluate tab's results below its controls. Without it, at 1280x800 they
appear below the fold, as if nothing happened (``into_view.js`` scrolls once per ``stamp``)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

_component = st.components.v2.component(
    "into_view", js=Path(__file__).with_name("into_view.js").read_text(encoding="utf-8")
)


def into_view(container: str, stamp: str, block: str = "nearest") -> None:
    """Scroll the container with key ``container`` into view once for each new ``stamp`` (a pick, a
    run); ``block``: "nearest" (the least scrolling) or "start" (its top at the top of the window)."""
    _component(key=f"{container}-into-view", data={"key": container, "stamp": stamp, "block": block})

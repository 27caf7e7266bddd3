"""The pointer on the Search tab's score strip: hovering shows the frame under it, a click picks it.

Plotly's hover label can only hold text (plotly.js #1323), and Streamlit reports no selection for
a heatmap (the strip is one, see ``ui/charts.py``), so a small component (``strip_pointer.js``)
listens to the chart's own hover and click events. The hover thumbnails travel with the page as
data: URIs, so their number is bounded: every frame of a short film, an even spread of a long one."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import NamedTuple

import numpy as np
import streamlit as st
from PIL import Image, UnidentifiedImageError

from clip_search.indexing.indexer import make_thumbnail
from clip_search.store.library import Film
from clip_search.timecode import fmt_time

PREVIEWS = 360  # thumbnails sent with the page for all strips together (about 4 KB each)
PREVIEW_WIDTH = 160

_component = st.components.v2.component(
    "strip_pointer", js=(Path(__file__).with_name("strip_pointer.js")).read_text(encoding="utf-8")
)


def preview_picks(n_frames: int, budget: int) -> np.ndarray:
    """Frame indices that get a hover thumbnail: all of them when they fit the budget, else an even
    spread that includes the first and the last frame."""
    if n_frames <= budget:
        return np.arange(n_frames)
    return np.unique(np.round(np.linspace(0, n_frames - 1, max(budget, 2))).astype(int))


def share(total: int, needs: list[int]) -> list[int]:
    """Split ``total`` previews between rows fairly: a short film takes only what it needs and
    leaves the rest to the longer ones (every row gets at least 2)."""
    out = [0] * len(needs)
    left = total
    for n, i in enumerate(sorted(range(len(needs)), key=lambda i: needs[i])):
        out[i] = max(min(needs[i], left // (len(needs) - n)), 2)
        left -= out[i]
    return out


def small_jpeg(jpeg: bytes, width: int = PREVIEW_WIDTH) -> bytes:
    """A thumbnail at most ``width`` pixels wide (JPEG); empty for missing or undecodable bytes."""
    try:
        img = Image.open(io.BytesIO(jpeg)).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        return b""
    return make_thumbnail(np.asarray(img), min(width, img.width), quality=60)


@st.cache_resource(max_entries=64, show_spinner=False)
def _film_previews(_film: Film, version: tuple, budget: int) -> dict:
    """One strip row's previews (cached per film version: thumbnails change only on re-indexing).
    Shared, not copied per call: nobody changes it, and a copy of its ~1 MB cost every query ~10 ms."""
    picks, images, times = [], [], []
    for i in preview_picks(len(_film.times), budget):
        small = small_jpeg(_film.thumbnail(int(i)))
        if small:  # a damaged thumbnail is left out; the nearest good one is shown instead
            picks.append(int(i))
            images.append("data:image/jpeg;base64," + base64.b64encode(small).decode("ascii"))
            times.append(fmt_time(float(_film.times[i])))
    return {"film": _film.name, "id": _film.id, "picks": picks, "images": images, "times": times}


class Pick(NamedTuple):
    """A frame clicked on the strip; ``click`` tells one click from the next on the same cell."""

    film: Film
    frame: int
    click: float


def strip_pointer(chart_key: str, films: list[Film], drawn: str) -> Pick | None:
    """Show the frame under the pointer while it hovers the chart drawn with ``key=chart_key``, whose
    rows (curves) are ``films`` in order, each point's frame index the third value of its customdata;
    return the frame last clicked on it while it showed ``drawn`` (the query and engine: a click on
    an older query's strip is not carried over). The previews depend on the films only, so a new
    query sends none of them again."""
    budgets = share(PREVIEWS, [len(f.times) for f in films])
    rows = [_film_previews(f, f.version, b) for f, b in zip(films, budgets, strict=True)]
    result = _component(
        key=f"{chart_key}-pointer", data={"chart": chart_key, "rows": rows, "drawn": drawn}, on_pick_change=lambda: None
    )
    return picked(getattr(result, "pick", None), films, drawn)


def picked(pick: object, films: list[Film], drawn: str) -> Pick | None:
    """The click a browser reported, checked: on the strip showing ``drawn``, a film among ``films`` and
    a frame it has (the page can be older than the library, and a crafted message must not reach an index)."""
    if not isinstance(pick, dict) or pick.get("drawn") != drawn:
        return None
    film = next((f for f in films if f.id == pick.get("film")), None)
    frame = pick.get("frame")
    if film is None or not isinstance(frame, int) or isinstance(frame, bool) or not 0 <= frame < len(film.times):
        return None
    click = pick.get("click")
    return Pick(film, frame, float(click) if isinstance(click, int | float) else 0.0)

"""Frame thumbnails on the page: one place that draws them, so a damaged one is a caption, not a crash."""

from __future__ import annotations

import io

import numpy as np
import streamlit as st
from PIL import Image, UnidentifiedImageError

from clip_search.errors import FrameSearchError
from clip_search.store.library import Film
from clip_search.timecode import fmt_time
from clip_search.video.decode import frame_at
from ui.text import md


def show_thumbnail(data: bytes, where=st) -> None:
    """Draw a JPEG thumbnail full width; missing or undecodable bytes become a short caption."""
    if not data:
        where.caption("(no thumbnail)")
        return
    try:
        where.image(data, width="stretch")
    except (UnidentifiedImageError, OSError, ValueError):
        where.caption("(thumbnail damaged; re-index the film to restore it)")


FULL_QUALITY = 90  # a picked frame is looked at closely


@st.cache_data(max_entries=64, show_spinner=False)
def _source_frame(source: str, fingerprint: str, t: float) -> bytes:
    """The source's frame at ``t`` as a JPEG at the source's resolution (decoded once per frame:
    the cache is keyed by the film's content, so a re-encoded file is decoded again)."""
    buf = io.BytesIO()
    Image.fromarray(frame_at(source, t)).save(buf, format="JPEG", quality=FULL_QUALITY)
    return buf.getvalue()


def full_frame(film: Film, i: int) -> bytes:
    """Frame ``i`` of ``film`` as an editor judges it: decoded from the source at its own resolution,
    never an enlarged thumbnail; the stored frame when the source is gone or unreadable."""
    try:
        return _source_frame(film.manifest.source, film.manifest.fingerprint, float(film.times[i]))
    except (FrameSearchError, OSError, ValueError):
        return film.thumbnail(i)


def show_frame(film: Film, i: int, where=st) -> None:
    """Draw the picked, explained or hovered frame at the source's resolution (see ``full_frame``)."""
    show_thumbnail(full_frame(film, i), where)


def crop_heat(jpeg: bytes, grid: list[dict], frame_size: tuple[int, int]) -> bytes:
    """The thumbnail with CLIP's crop scores laid over it: each pixel tinted by the best crop that
    covers it, from clear (the frame's lowest crop score) to red (its highest). PNG bytes."""
    img = Image.open(io.BytesIO(jpeg)).convert("RGB")
    w, h = img.size
    sx, sy = w / frame_size[0], h / frame_size[1]
    heat = np.full((h, w), -np.inf, np.float32)
    for cell in grid:
        left, top, right, bottom = cell["box"]
        sl = np.s_[int(top * sy) : max(int(bottom * sy), int(top * sy) + 1), int(left * sx) : max(int(right * sx), 1)]
        heat[sl] = np.maximum(heat[sl], cell["score"])
    finite = heat[np.isfinite(heat)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    norm = np.where(np.isfinite(heat), (heat - lo) / (hi - lo) if hi > lo else 0.0, 0.0)[..., None]
    base = np.asarray(img, np.float32)
    red = np.array([230, 30, 30], np.float32)
    out = base * (1 - 0.6 * norm) + red * 0.6 * norm
    buf = io.BytesIO()
    Image.fromarray(out.clip(0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def evidence_line(e) -> str:
    """One piece of an engine's evidence as a Markdown-safe line: CLIP's measures as they are, a tag or
    caption (text from outside, escaped) with its confidence, a subtitle cue with its times."""
    if e.kind in ("cosine", "rank"):
        return md(e.text)
    line = f"{e.kind} “{md(e.text)}”"
    if e.confidence is not None:
        line += f" ({e.confidence:.2f})"
    if e.start is not None and e.end is not None:
        line += f" at {fmt_time(e.start)}–{fmt_time(e.end)}"
    return line

"""Frame thumbnails on the page: one place that draws them, so a damaged one is a caption, not a crash."""

from __future__ import annotations

import streamlit as st
from PIL import UnidentifiedImageError


def show_thumbnail(data: bytes, where=st) -> None:
    """Draw a JPEG thumbnail full width; missing or undecodable bytes become a short caption."""
    if not data:
        where.caption("(no thumbnail)")
        return
    try:
        where.image(data, width="stretch")
    except (UnidentifiedImageError, OSError, ValueError):
        where.caption("(thumbnail damaged; re-index the film to restore it)")

"""The one rule for showing text that did not come from our code (film names, paths, subtitle cues,
tags, OCR lines, query text, URL parameters, error messages that quote any of these): Streamlit
renders messages, captions, labels and tooltips as Markdown, so such text is escaped first and
shows as the characters it is. ``![x](http://host/p.png)`` in a film name must never make a
viewer's browser fetch that URL. Plotly labels take HTML-like markup: ``plain`` escapes for them."""

from __future__ import annotations

import html
import re
from pathlib import Path

# what can start markup: links and images ([ ] !), emphasis and code (* _ `), HTML and autolinks (< >),
# tables (|), strike-through (~), LaTeX ($), headings (#), the escape itself; and, at the start, a list
_MARKDOWN = re.compile(r"([\\`*_\[\]!<>|~$#])")
_LIST = re.compile(r"^(\d+)([.)])|^([-+])")


def md(value: object) -> str:
    """``value`` as Markdown that displays exactly its characters (one line: breaks become spaces)."""
    text = _MARKDOWN.sub(r"\\\1", " ".join(str(value).split()))
    return _LIST.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[3]}", text)


def plain(value: object) -> str:
    """``value`` for a Plotly label, legend or hover text: markup shown as text."""
    return html.escape(str(value), quote=False)


def model_label(model: str) -> str:
    """A model as a person reads it: a hub id as it is; a local folder by its own name, marked local
    (its full path, cut to a column's width, said nothing)."""
    if model.startswith(("/", "~", ".")):
        return f"{Path(model).expanduser().name or model} (local)"
    return model


def engine_label(engine) -> str:
    """An engine's column or row title: its name, and for a model's engine named otherwise (``clip``)
    the model it runs."""
    model = getattr(engine, "model", None)
    if isinstance(model, str) and model != engine.name:
        return f"{engine.name} · {model_label(model)}"
    return model_label(engine.name)

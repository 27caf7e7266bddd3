"""Plugins: a lab's own tagger, encoder backend or engine, shipped as a separate installed package,
found through its entry points (``framesearch.taggers``, ``framesearch.encoders``,
``framesearch.engines``) by the registry of each. Nothing here knows what a plugin is."""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points

GROUPS = ("framesearch.taggers", "framesearch.encoders", "framesearch.engines")


def plugins(group: str) -> dict[str, object]:
    """Each installed entry point of ``group``, loaded, by its name. One that fails to load is
    skipped with a warning naming it (a broken plugin never takes the product down)."""
    if group not in GROUPS:
        raise ValueError(f"unknown plugin group {group!r} (one of {', '.join(GROUPS)})")
    found = {}
    for ep in entry_points(group=group):
        try:
            found[ep.name] = ep.load()
        except Exception as e:  # noqa: BLE001 - any import error of someone else's package
            warnings.warn(f"plugin {ep.name} ({ep.value}) of {group} could not be loaded: {e}", stacklevel=2)
    return found

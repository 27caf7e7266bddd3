"""The dashboard's tabs behind one small protocol: a label, the URL keys the tab owns (read once when
a link opens the page, written after every run) and how it renders. ``dashboard.py`` iterates the
list; adding a tab is one module with one ``Tab``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from clip_search.store.library import Film, Library


@dataclass
class View:
    """What every tab renders from: the library, the session's model, the films chosen, the search
    box's parameters and the engines that can run on the chosen films."""

    lib: Library
    ms: object  # ui.state.ModelState
    films: list[Film]
    params: dict
    engines: list[str]
    publish: Callable[[], None] = lambda: None  # writes the view into the URL (after a fragment's own rerun)


def _nothing(params: Mapping, films: dict[str, str]) -> list[str]:
    return []


@dataclass(frozen=True)
class Tab:
    """One tab: ``restore(query_params, film ids by name)`` seeds its widgets from a link (returns what
    it ignored, in words), ``publish(wanted)`` adds its view to the URL, ``render(view)`` draws it."""

    label: str
    render: Callable[[View], None]
    restore: Callable[[Mapping, dict[str, str]], list[str]] = _nothing
    publish: Callable[[dict], None] = field(default=lambda wanted: None)

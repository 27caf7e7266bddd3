"""Cross-process locks of a library: one writer per film (or per named job, e.g. a film's tagging)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from clip_search.errors import FrameSearchError

if TYPE_CHECKING:  # only its locks folder is used: no import of the library module at run time
    from clip_search.store.library import Library


class FilmBusy(FrameSearchError):
    """Another process holds the film's lock (it is indexing or publishing that film)."""


@contextmanager
def film_lock(
    library: Library,
    film_id: str,
    wait: float | None = None,
    on_wait: Callable[[], None] | None = None,
    busy: str | None = None,
) -> Iterator[None]:
    """Hold the film's cross-process lock (or another named one, e.g. a film's tagging lock).
    ``wait``: seconds to wait (None: as long as it takes, 0: not at all); ``on_wait`` is called once
    when another process holds it; ``busy`` is what FilmBusy says then."""
    library.locks_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(library.locks_dir / f"{film_id}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait:
            on_wait()
        try:
            lock.acquire(timeout=-1 if wait is None else wait)
        except Timeout:
            raise FilmBusy(
                f"{busy or f'{film_id} is being indexed by another process'}; try again when it is done."
            ) from None
    try:
        yield
    finally:
        lock.release()

"""The example evaluation ready to run whole: every sample film the example query set names, indexed
and tagged by the offline tagger, with one progress over both (the demo's first start and the
Evaluate tab's button call this)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import clip_search.config as config
from clip_search.errors import FrameSearchError
from clip_search.store.library import Library
from clip_search.video.decode import probe
from framesearch import app
from tagging.tag_store import TagStore
from tagging.taggers import local_service

EXAMPLE_SET = config.data_dir() / "queries.csv"
TAG_COST = 2.0  # offline tagging takes about twice as long per frame as indexing, for the progress bar


def sample_films() -> list[Path]:
    """Video files under ../shared/media (empty when that folder is absent)."""
    root = config.shared_media_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in config.VIDEO_SUFFIXES)


def example_films(query_set: Path = EXAMPLE_SET) -> list[Path]:
    """The sample films whose names (file stems) the query set's ``film`` column uses, in set order."""
    with open(query_set, newline="", encoding="utf-8-sig") as f:
        names = list(dict.fromkeys((row.get("film") or "").strip() for row in csv.DictReader(f)))
    by_stem = {p.stem: p for p in sample_films()}
    return [by_stem[n] for n in names if n in by_stem]


def missing(library: Library, paths: Sequence[Path]) -> list[Path]:
    """Of ``paths``, the films not yet indexed in ``library`` or not yet tagged by the offline tagger."""
    films = {f.manifest.source: f for f in library.films()}
    store = TagStore(library, readonly=True)
    try:  # a row count per film, not its tags: this runs on every rerun of the Evaluate tab
        found = [films.get(str(p.resolve())) for p in paths]
        return [p for p, f in zip(paths, found, strict=True) if f is None or not store.version(f, local_service())[0]]
    finally:
        store.close()


@dataclass
class Prepared:
    """What preparing the example films did: films ready, and one line per film that failed."""

    ready: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _seconds(path: Path) -> float:
    """The film's length for weighting the progress bar (a minute when it cannot be probed)."""
    try:
        return max(probe(path).duration, 1.0)
    except (FrameSearchError, OSError):
        return 60.0


@dataclass
class _Share:
    """One step's slice of a shared progress bar: from ``start`` for ``size`` of ``total``."""

    progress: Callable[[float, str], None] | None
    start: float
    size: float
    total: float
    label: str

    def indexing(self, p) -> None:
        self.at(p.fraction, f"indexing {p.fraction:.0%}")

    def watch(self) -> app.Watch:
        """The index verb's hooks, moving this share of the bar."""
        share = self

        class _Bar(app.FilmWatch):
            def indexing(self, p) -> None:
                share.indexing(p)

        return app.Watch(film=lambda name: _Bar())

    def tagging(self, done: int, frames: int) -> None:
        self.at(done / max(frames, 1), f"tagging offline {done}/{frames} frames")

    def at(self, fraction: float, text: str) -> None:
        if self.progress:
            self.progress(min(1.0, (self.start + fraction * self.size) / self.total), f"{self.label}: {text}")


def prepare(
    library: Library, encoder, paths: Sequence[Path], progress: Callable[[float, str], None] | None = None
) -> Prepared:
    """Index each film (reused when already indexed) and tag it offline (cached frames reused), through
    the application's verbs. ``progress(fraction, text)`` covers both steps of every film; a bad film
    is one error, the rest go on."""
    seconds = [_seconds(p) for p in paths]
    total = sum(seconds) * (1 + TAG_COST) or 1.0
    out = Prepared()
    for n, path in enumerate(paths):
        start = sum(seconds[:n]) * (1 + TAG_COST)
        label = f"film {n + 1}/{len(paths)} · {path.stem}"
        index_part = _Share(progress, start, seconds[n], total, label)
        tag_part = _Share(progress, start + seconds[n], seconds[n] * TAG_COST, total, label)
        index_part.at(0.0, "indexing")
        report = app.index(library, [path], [encoder.model_id], load=lambda model: encoder, watch=index_part.watch())
        if report.failed:
            out.errors += [f"{path.name}: {item.error}" for item in report.failed]
            continue
        (film,) = report.films
        run = app.tag(library, film, local_service(), progress=tag_part.tagging)
        if run.fatal:
            out.errors.append(f"{path.name}: {run.fatal}")
            continue
        out.ready.append(film.name)
    if progress:
        progress(1.0, "ready")
    return out

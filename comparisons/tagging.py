"""Run a tagger over an indexed film's sampled frames, resumably, with bounded parallelism."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np

from clip_search.library import Film, Library
from clip_search.video import SamplingSettings, iter_frames
from comparisons.tag_store import TagStore
from comparisons.taggers.base import FatalTaggerError, Tag, Tagger, TaggerError

BATCH = 16  # frames per call of a tagger that works in batches (amortises starting Tesseract)


def _batches(frames, size: int):
    ts, imgs = [], []
    for t, img in frames:
        ts.append(t)
        imgs.append(img)
        if len(ts) == size:
            yield ts, imgs
            ts, imgs = [], []
    if ts:
        yield ts, imgs


def _finish_batch(ts: list[float], fut: Future, record: Callable) -> None:
    try:
        results = fut.result()
    except TaggerError as e:  # the whole batch failed (e.g. OCR could not run)
        results = [e] * len(ts)
    for t, res in zip(ts, results, strict=True):
        record(t, res)


@dataclass
class TagRun:
    """What a tagging run did: frames tagged now, reused from the cache, and problems."""

    film: str
    service: str
    total: int
    tagged: int = 0
    reused: int = 0
    errors: list[tuple[float, str]] = field(default_factory=list)
    fatal: str | None = None
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for the CLI and the dashboard."""
        parts = [f"{self.film} / {self.service}: {self.tagged} frames tagged, {self.reused} reused"]
        if self.errors:
            parts.append(f"{len(self.errors)} failed (first: {self.errors[0][1]})")
        if self.fatal:
            parts.append(f"stopped: {self.fatal}")
        return "; ".join(parts)


def frames_to_tag(library: Library, film: Film, tagger: Tagger) -> int:
    """How many of the film's frames still need this tagger (for the cost estimate)."""
    done = TagStore(library, film, tagger.service, tagger.features).load()
    return sum(1 for t in film.times if round(float(t), 3) not in done)


def tag_film(
    library: Library, film: Film, tagger: Tagger, workers: int = 2, progress: Callable[[int, int], None] | None = None
) -> TagRun:
    """Tag every sampled frame of ``film`` that the store lacks; keep each result as it arrives.

    The frames are decoded again with the film's own sampling settings, which give the same
    times as the index. A frame that fails is reported and retried on the next run; a fatal
    error (credentials) stops the run, keeping what was tagged."""
    t0 = time.perf_counter()
    store = TagStore(library, film, tagger.service, tagger.features)
    done = store.load()
    times = np.round(np.asarray(film.times, float), 3)
    run = TagRun(film.name, tagger.service, total=len(times), reused=sum(1 for t in times if t in done))
    wanted = {float(t) for t in times if t not in done}
    if not wanted:
        run.seconds = time.perf_counter() - t0
        return run
    sampling = SamplingSettings(**film.manifest.sampling)

    def record(t: float, result: list[Tag] | BaseException) -> None:
        if isinstance(result, FatalTaggerError):
            run.fatal = run.fatal or str(result)
        elif isinstance(result, TaggerError):
            run.errors.append((t, str(result)))
        elif isinstance(result, BaseException):
            raise result
        else:
            store.add(t, result, tagger.model_version)
            run.tagged += 1
        if progress:
            progress(run.reused + run.tagged + len(run.errors), run.total)

    frames = ((round(f.time, 3), f.image) for f in iter_frames(film.manifest.source, sampling))
    frames = ((t, img) for t, img in frames if t in wanted)
    batch_fn = getattr(tagger, "tag_batch", None)
    if batch_fn:  # one batch in the tagger (which parallelises inside it) while the next is decoded
        with ThreadPoolExecutor(max_workers=1) as pool:
            inflight = None
            for ts, imgs in _batches(frames, BATCH):
                submitted = (ts, pool.submit(batch_fn, imgs))
                if inflight:
                    _finish_batch(*inflight, record)
                inflight = submitted
                if run.fatal:
                    break
            if inflight:
                _finish_batch(*inflight, record)
    else:  # per-frame calls in parallel (network-bound cloud services)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending: dict[Future, float] = {}
            for t, img in frames:
                pending[pool.submit(tagger.tag, img)] = t
                if len(pending) >= workers * 2:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        record(pending.pop(fut), fut.exception() or fut.result())
                if run.fatal:
                    break
            for fut in list(pending):
                record(pending.pop(fut), fut.exception() or fut.result())
    run.seconds = time.perf_counter() - t0
    return run

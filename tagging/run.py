"""Run a tagger (or a cloud embedding service) over an indexed film's sampled frames, resumably,
with bounded parallelism.

Only what the tag store lacks is asked for, down to the single feature (a Rekognition frame whose
celebrity call failed gets only that call again). Each response is stored the moment it arrives.
A circuit breaker stops the run after ``BREAKER`` frames in a row that failed (timeouts, refused
connections, throttling, server errors, bad answers), so a dead or throttling endpoint costs under a
minute (each call ends within ``CALL_DEADLINE``), not hours. One run at a time tags a film with a
service (a per-(film, service) lock across processes), so two runs never pay twice for a frame, and
a film whose source file changed since it was indexed is not tagged (its frames would be others)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np

from clip_search.errors import FrameSearchError
from clip_search.store.library import Film, Library, fingerprint
from clip_search.store.locks import film_lock
from clip_search.timecode import time_key
from clip_search.video.decode import iter_frames
from tagging.tag_store import TagStore
from tagging.taggers.base import FatalTaggerError, Tag, Tagger, TaggerError

BATCH = 16  # frames per call of a tagger that works in batches (amortises starting Tesseract)
BREAKER = 3  # consecutive failed frames that stop a run
GIVE_UP_AFTER = 40.0  # seconds without any answer from the service that stop a run (the calls in flight
# then end within their own deadline: a silent or dripping endpoint costs under a minute in all)


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
    failed_streak: int = 0
    notice: str | None = None  # e.g. a damaged tag cache set aside when the run began

    def summary(self) -> str:
        """One line for the CLI and the dashboard."""
        parts = [f"{self.film} / {self.service}: {self.tagged} frames tagged, {self.reused} reused"]
        if self.notice:
            parts.insert(0, self.notice)
        if self.errors:
            parts.append(f"{len(self.errors)} failed (first: {self.errors[0][1]})")
        if self.fatal:
            parts.append(f"stopped: {self.fatal}")
        return "; ".join(parts)


@dataclass(frozen=True)
class Work:
    """What a tagger still has to do on a film: frames and calls (for the cost estimate)."""

    frames: int
    calls: int


def work_left(library: Library, film: Film, tagger: Tagger, store: TagStore | None = None) -> Work:
    """Frames and calls the store still lacks for this tagger (what a run would pay for)."""
    own = store is None
    store = store or TagStore(library, readonly=True)
    try:
        todo = store.missing(film, tagger.service, tagger.model_version, tagger.features)
    finally:
        if own:  # an open reader would keep a new database from switching to WAL
            store.close()
    return Work(len(todo), sum(len(f) for f in todo.values()))


def check_writable(library: Library) -> None:
    """Refuse a run up front when the library cannot store what would be paid for."""
    root = library.root
    probe = root if root.exists() else root.parent
    db = root / "tags.sqlite"
    if not os.access(probe, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
        raise FrameSearchError(f"The library {root} is read-only: tags could not be kept, so nothing is run.")


def tag_film(
    library: Library,
    film: Film,
    tagger: Tagger,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    breaker: int = BREAKER,
    give_up_after: float = GIVE_UP_AFTER,
) -> TagRun:
    """Tag every sampled frame of ``film`` that the store lacks; keep each response as it arrives.

    The frames are decoded again with the film's own sampling settings, which give the same
    times as the index. A frame that fails is reported and retried on the next run; a fatal
    error (credentials) or the circuit breaker stops the run, keeping what was tagged."""
    check_writable(library)
    check_source(film)
    waiting = f"{film.name} is being tagged with {tagger.service} by another process"
    with film_lock(library, f"tag-{film.id}-{tagger.service}", wait=None, busy=waiting):
        store = TagStore(library)
        try:
            return _tag_film(store, film, tagger, workers, progress, breaker, give_up_after)
        finally:
            store.close()


def check_source(film: Film) -> None:
    """Refuse to tag a film whose source file is gone or changed since it was indexed: the frames
    decoded now would not be the frames indexed, and their tags would be paid for under the old film."""
    source = film.manifest.source
    try:
        now = fingerprint(source)
    except OSError as e:
        raise FrameSearchError(f"{film.name}: its source {source} cannot be read ({e.strerror or e}).") from None
    if now != film.manifest.fingerprint:
        raise FrameSearchError(
            f"{film.name}: its source {source} has changed since it was indexed; index it again "
            "(python -m clip_search index ...) before tagging, so nothing is paid for under the old film."
        )


def _tag_film(store: TagStore, film, tagger, workers, progress, breaker, give_up_after) -> TagRun:
    """``tag_film`` under the film's tagging lock, into ``store``."""
    t0 = time.perf_counter()
    heard = [time.monotonic()]  # when the service last answered (a result or an error it sent)
    stop = threading.Event()
    todo = store.missing(film, tagger.service, tagger.model_version, tagger.features)
    run = TagRun(film.name, tagger.service, total=len(film.times), reused=len(film.times) - len(todo))
    run.notice = store.notice
    if not todo:
        run.seconds = time.perf_counter() - t0
        return run

    def store_response(t: float, feature: str, tags: list[Tag], served: str | None) -> None:
        store.put(film, t, tagger.service, feature, tagger.model_version, tags, served)

    def tag_one(t: float, image: np.ndarray) -> list[TaggerError]:
        """Runs on a worker: every missing feature of one frame, each stored as it arrives. A call the
        service did not answer ends the frame (its other calls would wait as long); so does a stopped run."""
        errors = []
        if stop.is_set():
            return [TaggerError("not asked: the run had stopped", unreachable=True)]
        for r in tagger.responses(image, tuple(todo[time_key(t)])):
            if r.error is not None:
                errors.append(r.error)
                if r.error.unreachable or stop.is_set():
                    break
                heard[0] = time.monotonic()
            elif r.vector is not None:  # an embedding service's answer: the frame's vector
                heard[0] = time.monotonic()
                store.put_vector(film, t, tagger.service, tagger.model_version, r.vector)
            else:
                heard[0] = time.monotonic()
                store_response(t, r.feature, r.tags or [], r.served_version)
        return errors

    def silent() -> bool:
        """The whole run's bound: no answer for ``give_up_after`` seconds stops it, whatever each call's."""
        if time.monotonic() - heard[0] <= give_up_after:
            return False
        run.fatal = run.fatal or (
            f"{tagger.service} gave no answer for {give_up_after:g} s; stopped. Check the endpoint and the "
            "network, then run again: frames tagged so far are kept."
        )
        stop.set()
        return True

    def record(t: float, errors: list[TaggerError] | BaseException) -> None:
        if isinstance(errors, FatalTaggerError):
            run.fatal = run.fatal or str(errors)
        elif isinstance(errors, BaseException):
            raise errors
        elif errors:
            run.errors.append((t, "; ".join(dict.fromkeys(str(e) for e in errors))))
            run.failed_streak += 1
            if run.failed_streak >= breaker and not run.fatal:
                what = "did not answer" if all(e.unreachable for e in errors) else "failed on"
                run.fatal = (
                    f"{tagger.service} {what} {run.failed_streak} frames in a row (last: {errors[-1]}); stopped. "
                    "Check the endpoint and the network, then run again: frames tagged so far are kept."
                )
        else:
            run.tagged += 1
            run.failed_streak = 0
        if progress:
            progress(run.reused + run.tagged + len(run.errors), run.total)

    frames = (
        (f.time, f.image)
        for f in iter_frames(film.manifest.source, film.manifest.sampling_settings())
        if time_key(f.time) in todo
    )
    batch_fn = getattr(tagger, "tag_batch", None)
    if batch_fn and len(tagger.features) == 1:
        _run_batches(frames, batch_fn, tagger.features[0], store_response, record, run)
    else:  # per-frame calls in parallel (network-bound cloud services)
        pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=f"tag-{tagger.service}")
        pending: dict[Future, float] = {}

        def settle(until_below: int) -> None:
            """Record finished frames until fewer than ``until_below`` are in flight, or the run is silent."""
            while len(pending) >= max(1, until_below) and not silent():
                finished, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in finished:
                    record(pending.pop(fut), fut.exception() or fut.result())

        try:
            for t, img in frames:
                pending[pool.submit(tag_one, t, img)] = t
                settle(workers * 2)
                if run.fatal:
                    break
            settle(1)
        finally:
            stop.set()
            # frames not started are not asked; those in flight end within one call's deadline (a frame
            # stops at its first unanswered call), and an answer that still arrives is paid for: kept
            pool.shutdown(wait=True, cancel_futures=True)
    run.seconds = time.perf_counter() - t0
    store.record_run(film, tagger.service, run.tagged, run.seconds)
    return run


def _batches(frames: Iterator[tuple[float, np.ndarray]], size: int) -> Iterator[tuple[list, list]]:
    ts, imgs = [], []
    for t, img in frames:
        ts.append(t)
        imgs.append(img)
        if len(ts) == size:
            yield ts, imgs
            ts, imgs = [], []
    if ts:
        yield ts, imgs


def _run_batches(frames, batch_fn, feature: str, store_response, record, run: TagRun) -> None:
    """One batch in the tagger (which parallelises inside it) while the next one is decoded."""

    def finish(ts: list[float], fut: Future) -> None:
        try:
            results = fut.result()
        except TaggerError as e:  # the whole batch failed (e.g. OCR could not run)
            results = [e] * len(ts)
        for t, res in zip(ts, results, strict=True):
            if isinstance(res, TaggerError):
                record(t, [res])
            else:
                store_response(t, feature, res, None)
                record(t, [])

    with ThreadPoolExecutor(max_workers=1) as pool:
        inflight = None
        for ts, imgs in _batches(frames, BATCH):
            submitted = (ts, pool.submit(batch_fn, imgs))
            if inflight:
                finish(*inflight)
            inflight = submitted
            if run.fatal:
                break
        if inflight:
            finish(*inflight)

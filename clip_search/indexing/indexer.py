"""Indexing: stream a film from the decoder through one or more models to disk.

Two threads: the decoder thread decodes, samples and prepares frames (each model's resize/crop,
thumbnail, patch crops); the calling thread encodes batches with every model and writes finished
chunks. A film already indexed with other models is decoded again and only the new models' vector
sets are added, on exactly its frame times (``index FILM --model M``); several models given at
once share one decode. A bounded queue
between them keeps memory flat and lets decoding run while the model works. Chunks are written
atomically into a staging folder, so an interrupted run resumes from the last chunk and the
finished film appears in the library in one rename.

Three parts: ``_Producer`` (decode, sample, prepare), ``_encode_into`` (batches through the models
into the staged film's chunks) and ``index_film``, the orchestrator, which holds the film's
cross-process lock from the cache check to the publish (``clip_search.store.writer``).
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

import clip_search.config as config
from clip_search.encoders import spot_check
from clip_search.encoders.base import clip_frames, set_threads
from clip_search.errors import FrameSearchError, VideoError
from clip_search.indexing.clips import ClipRows, ClipStage, ClipStarts, expected_clips
from clip_search.store.atomic import atomic_save_npy, atomic_write_bytes
from clip_search.store.library import (
    DamagedFilm,
    Film,
    Library,
    Manifest,
    VectorSet,
    check_record,
    film_id_for,
    fingerprint,
)
from clip_search.store.locks import FilmBusy, film_lock
from clip_search.store.writer import StagedFilm, add_source
from clip_search.timecode import fmt_time
from clip_search.video import shots
from clip_search.video.decode import SampledFrame, SamplingSettings, iter_frames, probe, scale_rgb
from clip_search.video.patches import PatchSettings, crop_patches
from clip_search.video.subtitles import load_dialogue

THUMB_WIDTH = 384  # the grid shows cards 320+ px wide on a 1920-wide screen: stored at least that size
SMALL_MACHINE_CORES = 4  # up to this many cores, a bf16 model on the CPU leaves the decoder a core (``CoreSplit``)
SPLIT_SETTLE = 1  # batches of start-up (the queue filling, first-batch set-up) the split is not judged on
SPLIT_WATCH = 4  # batches the split is then judged on
SPLIT_GIVE_UP = 0.25  # the decoder's waiting share above which the model gets every core back
CPU_BATCH = 16  # one thread of a ViT-B/32 is fastest per frame at 16 (at 4: a third slower; at 32: 5 %)
PREPARE_AHEAD = 4  # decoded frames that may wait for the preparing thread (each a full-size RGB frame)

if TYPE_CHECKING:  # torch is imported only when a model is really needed
    from clip_search.encoders import DualEncoder


@dataclass(frozen=True)
class IndexOptions:
    """How to index: which frames, whether to add patch crops, batch and chunk sizes."""

    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    patches: PatchSettings | None = None
    batch_size: int = 0  # 0: CPU_BATCH on CPU, 128 on GPU
    chunk_frames: int = 256  # frames per atomically written chunk (the resume granularity)


@dataclass
class Progress:
    """Where an indexing run is, for progress bars: film seconds decoded out of the duration."""

    film: str
    done_seconds: float
    duration: float
    frames: int
    elapsed: float

    @property
    def fraction(self) -> float:
        return min(1.0, self.done_seconds / self.duration) if self.duration > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Estimated seconds left, from the rate so far (None until there is a rate)."""
        if self.fraction <= 0.01 or self.elapsed <= 0:
            return None
        return self.elapsed * (1 - self.fraction) / self.fraction


@dataclass
class IndexResult:
    """The outcome for one film."""

    film: Film
    reused: bool
    resumed_frames: int
    encoded_frames: int
    seconds: float
    added_to: list[str] = field(default_factory=list)  # models added to a film indexed with others
    decoder_core: bool = False  # the model left the decoder a core to the end (``CoreSplit``)


ProgressFn = Callable[[Progress], None]


class _Item:
    """One sampled frame, prepared for each model (``pixels[i]``, ``patches[i]``: model i's crops)."""

    __slots__ = ("patches", "pixels", "thumb", "time")

    def __init__(self, time: float, pixels: list, thumb: bytes, patches: list[list[np.ndarray]]) -> None:
        self.time, self.pixels, self.thumb, self.patches = time, pixels, thumb, patches


_DONE = object()


def make_thumbnail(rgb: np.ndarray, width: int = THUMB_WIDTH, quality: int = 80) -> bytes:
    """A small JPEG of a frame (what the dashboard's result grid shows)."""
    return _jpeg(Image.fromarray(scale_rgb(rgb, width)), quality)


def frame_thumbnail(frame: SampledFrame, width: int = THUMB_WIDTH, quality: int = 80) -> bytes:
    """``make_thumbnail`` of a sampled frame, scaled from the decoded picture (a third of the cost)."""
    return _jpeg(Image.fromarray(frame.small(width)), quality)


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


class CoreSplit:
    """The model's torch threads while a film is indexed on a small machine with a bf16 model on
    its CPU: one core fewer than the machine has, restored after, or as soon as the model proves
    to be the slower side.

    Decoding and preparing need about one core, and on a CPU with AMX a bf16 ViT-B/32 costs about
    as much per frame as decoding 480p does, so the decoder is never short of a core and the
    model's one thread never waits at the barrier of a thread the decoder preempted. Where the
    model costs clearly more (AVX-512 BF16 without AMX, a larger model, a smaller picture), the
    decoder would idle on a full queue: ``watch`` sees that over the first batches and gives the
    model every core back. A float32 model costs three times as much: it keeps every core, as on
    a GPU or a larger machine. torch's thread count is per process (and read once by each thread,
    so only the model's own thread changes it), so a second run of this process started meanwhile
    leaves it as the first set it."""

    _lock = threading.Lock()
    _users = 0
    _before = 0

    def __init__(self, encoders: Sequence[DualEncoder]) -> None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.threads = cores - 1
        self.active = 1 < cores <= SMALL_MACHINE_CORES and all(
            e.device == "cpu" and getattr(e, "precision", "") == "bf16" for e in encoders
        )
        self.batches = 0
        self.start: tuple[float, float] = (0.0, 0.0)  # (clock, decoder's blocked seconds) when watching began

    def __enter__(self) -> CoreSplit:
        self.counted = self.active  # every run that would split counts, so the last one out is known
        if self.active:
            import torch  # torch loads only when a model is used

            with CoreSplit._lock:
                CoreSplit._users += 1
                self.active = CoreSplit._users == 1
                if self.active:
                    CoreSplit._before = torch.get_num_threads()
                    set_threads(self.threads)
        return self

    def __exit__(self, *exc) -> None:
        if self.counted:
            with CoreSplit._lock:
                CoreSplit._users -= 1
                if self.active:
                    set_threads(CoreSplit._before)

    def watch(self, blocked: float, now: float | None = None) -> None:
        """Called on the model's thread after each batch with the seconds the decoder has spent
        waiting on a full queue so far. After the first SPLIT_WATCH batches (past SPLIT_SETTLE of
        start-up), a decoder that waited more than SPLIT_GIVE_UP of that time means the model on
        one core fewer is the bottleneck; the model gets every core back (2 cores: sharing them pays
        once the decoder would idle a quarter of the time, measured 1.2x on a Zen 4)."""
        if not self.active:
            return
        now = time.perf_counter() if now is None else now
        self.batches += 1
        if self.batches == SPLIT_SETTLE:
            self.start = (now, blocked)
        elif self.batches == SPLIT_SETTLE + SPLIT_WATCH:
            elapsed = now - self.start[0]
            if elapsed > 0 and (blocked - self.start[1]) / elapsed > SPLIT_GIVE_UP:
                set_threads(CoreSplit._before)
                self.active = False  # the model has every core again; leaving restores nothing more


class _Producer(threading.Thread):
    """Decodes, samples and prepares frames (resize/crop, thumbnail, patch crops) into a bounded queue."""

    def __init__(
        self,
        path: Path,
        options: IndexOptions,
        encoders: Sequence[DualEncoder],
        start_after: float | None,
        size: int,
        thumbnails: bool = True,
    ) -> None:
        super().__init__(name=f"decode-{path.name}", daemon=True)
        self.path, self.options, self.encoders, self.start_after = path, options, list(encoders), start_after
        self.thumbnails = thumbnails  # a film that has its thumbnails (a model being added) makes none
        self.queue: queue.Queue = queue.Queue(maxsize=size)
        self.stop = threading.Event()
        self.decoded = start_after or 0.0  # film time reached by the decoder, for progress
        self.blocked = 0.0  # seconds spent waiting for room in the queue (the model is slower)

    def _seen(self, t: float) -> None:
        self.decoded = t

    def _prepare(self, fr) -> _Item:
        """One sampled frame made ready for the models: crops (shared by models that prepare alike),
        patch crops and the thumbnail."""
        pieces = crop_patches(fr.image, self.options.patches)
        done: dict = {}
        for enc in self.encoders:
            if enc.pre not in done:
                done[enc.pre] = (enc.prepare(fr.image), [enc.prepare(c) for c in pieces])
        pixels = [done[enc.pre][0] for enc in self.encoders]
        crops = [done[enc.pre][1] for enc in self.encoders]
        return _Item(fr.time, pixels, thumb=frame_thumbnail(fr) if self.thumbnails else b"", patches=crops)

    def run(self) -> None:
        # Decoding and preparing run on two threads (PIL's resizes and JPEG release the GIL), so
        # the decoder is never idle while a frame is resized; at most AHEAD frames wait in between.
        pending: deque[Future] = deque()
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare") as pool:
                for fr in iter_frames(
                    self.path, self.options.sampling, start_after=self.start_after, on_decoded=self._seen
                ):
                    pending.append(pool.submit(self._prepare, fr))
                    if len(pending) >= PREPARE_AHEAD and not self._put(pending.popleft().result()):
                        return
                while pending:
                    if not self._put(pending.popleft().result()):
                        return
            self.queue.put(_DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, re-raised on its thread
            self.queue.put(e)

    def _put(self, item: _Item) -> bool:
        t0 = time.perf_counter()
        try:
            while not self.stop.is_set():
                try:
                    self.queue.put(item, timeout=0.2)
                    return True
                except queue.Full:
                    continue
            return False
        finally:
            self.blocked += time.perf_counter() - t0

    def items(self) -> Iterator[_Item]:
        """The prepared frames in order; re-raises the decoder's error on the caller's thread."""
        while True:
            item = self.queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


def _encode_into(
    staged: StagedFilm,
    items: Iterator[_Item],
    encoders: Sequence[DualEncoder],
    batch_size: int,
    chunk_frames: int,
    after_batch: Callable[[int], None],
    keep: np.ndarray | None = None,
    clip_starts: ClipStarts | None = None,
) -> tuple[int, list[float]]:
    """Encode prepared frames in batches with every model and write them as chunks; returns frames
    encoded and each model's own seconds.

    A frame whose time does not follow the last one kept (duplicate PTS) is dropped, so stored
    times strictly increase whatever the container says; with ``keep`` (a live film's times, when
    adding models) only frames at those times are encoded. A video model's frames wait in its
    ``ClipStage`` until their clip ends (``clip_starts`` says where clips start); a chunk is
    written up to the last frame every model has a vector of, so a chunk always ends a clip."""
    encoded = 0
    seconds = [0.0] * len(encoders)
    stages = {k: ClipStage(e) for k, e in enumerate(encoders) if clip_frames(e) > 1}
    checks = [spot_check.needs_check(e) and k not in stages for k, e in enumerate(encoders)]
    inputs: list[list[tuple[np.ndarray, int]]] = [[] for _ in encoders]  # a checked model's batches of the chunk
    vecs: list[list[np.ndarray]] = [[] for _ in encoders]
    patches: list[list[np.ndarray]] = [[] for _ in encoders]
    times: list[float] = []
    thumbs: list[bytes] = []
    last = staged.last_time
    has_patches = False

    def encode(batch: list[_Item]) -> None:
        nonlocal encoded, has_patches
        n = len(batch)
        starts = [clip_starts(it.time, it.thumb) for it in batch] if stages else []
        for k, enc in enumerate(encoders):
            if k in stages:
                for it, new in zip(batch, starts, strict=True):
                    stages[k].add(it.time, it.pixels[k], new)
                continue
            pixels = [it.pixels[k] for it in batch]
            for it in batch:
                pixels.extend(it.patches[k])
            t0 = time.perf_counter()
            stacked = np.stack(pixels)
            out = enc.encode_prepared(stacked)
            seconds[k] += time.perf_counter() - t0
            if checks[k]:
                inputs[k].append((stacked, n))
            vecs[k].append(out[:n])
            if n < len(out):  # rows n.. are the patches, already frame-major: (frame, patch)
                patches[k].append(out[n:])
                has_patches = True
        times.extend(it.time for it in batch)
        thumbs.extend(it.thumb for it in batch)
        encoded += n

    def verify(k: int) -> None:
        """Spot-check model k's vectors of this chunk; encode the chunk again in float32 if they disagree."""
        t0 = time.perf_counter()
        frames = np.concatenate([b[:n] for b, n in inputs[k]])
        whole = np.concatenate(vecs[k])
        carried = whole[: len(whole) - len(frames)]  # frames checked before, waiting for a clip to end
        if spot_check.agreement(encoders[k], frames, whole[len(carried) :]) < spot_check.SPOT_MIN_COSINE:
            redone = [encoders[k].encode_float32(b) for b, _ in inputs[k]]
            vecs[k][:] = [carried] + [out[:n] for out, (_, n) in zip(redone, inputs[k], strict=True)]
            patches[k][:] = [out[n:] for out, (_, n) in zip(redone, inputs[k], strict=True) if n < len(out)]
            staged.sets[k].float32_chunks += 1
        inputs[k].clear()
        seconds[k] += time.perf_counter() - t0

    def flush(final: bool = False) -> None:
        for k in range(len(encoders)):
            if checks[k] and inputs[k]:
                verify(k)
        if final:
            for stage in stages.values():
                stage.close(staged.manifest.duration)
        n = min([len(times), *(s.ready for s in stages.values())])
        if not n:
            return
        out: list[np.ndarray] = []
        clips: list[ClipRows | None] = []
        for k in range(len(encoders)):
            if k in stages:
                vectors, rows = stages[k].take(n)
                out.append(vectors)
                clips.append(rows)
            else:  # frames after n wait for the video models' clip to end (no patches: refused with them)
                whole = np.concatenate(vecs[k])
                out.append(whole[:n])
                vecs[k][:] = [whole[n:]] if n < len(whole) else []
                clips.append(None)
        staged.write_chunk(
            out,
            times[:n],
            thumbs[:n] if staged.film is None else [],
            [np.concatenate(p) for p in patches] if has_patches else None,
            clips if stages else None,
        )
        for part in patches:
            part.clear()
        del times[:n], thumbs[:n]

    pending: list[_Item] = []
    for item in items:
        if last is not None and item.time <= last:
            continue
        if keep is not None and not _among(keep, item.time):
            continue
        last = item.time
        pending.append(item)
        if len(pending) >= batch_size:
            encode(pending)
            pending = []
            if len(times) >= chunk_frames:
                flush()
            after_batch(encoded)
    if pending:
        encode(pending)
    flush(final=True)
    for k, stage in stages.items():
        seconds[k] = stage.seconds
        staged.sets[k].float32_chunks += stage.failed_checks
    return encoded, seconds


def _clip_starts(encoders: Sequence[DualEncoder], film: Film | None, manifest: Manifest) -> ClipStarts | None:
    """Where the video models' clips start: at the film's shots (found now from its thumbnails if
    it has none yet), or, for a new film, where its thumbnails cut as they are made. None without a
    video model. A video model scores clips of whole frames: a film with patch crops is refused."""
    video = [e.model_id for e in encoders if clip_frames(e) > 1]
    if not video:
        return None
    if manifest.patches_per_frame or manifest.patches:
        raise FrameSearchError(
            f"{manifest.name}: {video[0]} scores clips of whole frames, not patch crops; index the film without "
            "--patches to add a video model."
        )
    if film is None:
        return ClipStarts(None)
    return ClipStarts(film.shots() if film.shots() is not None else shots.of_film(film))


def thumbnail_width(film: Film) -> int:
    """The width of the film's stored frames (0 when they cannot be read)."""
    try:
        with Image.open(io.BytesIO(film.thumbnail(0))) as im:
            return im.width
    except (OSError, ValueError):
        return 0


def upgrade_thumbnails(library: Library, film: Film) -> bool:
    """Store ``film``'s frames again at ``THUMB_WIDTH`` when they are narrower (a film indexed before
    frames were stored this size), decoding its source once at its own sampling; nothing is encoded
    again. False when there was nothing to do, or the source cannot give exactly the film's frames
    (then the old ones stay)."""
    width = thumbnail_width(film)
    if width >= min(THUMB_WIDTH, film.manifest.width or THUMB_WIDTH) or not Path(film.manifest.source).is_file():
        return False
    try:
        if fingerprint(film.manifest.source) != film.manifest.fingerprint:
            return False
        thumbs = [
            frame_thumbnail(fr)
            for fr in iter_frames(film.manifest.source, film.manifest.sampling_settings())
            if _among(film.times, fr.time)
        ]
    except (VideoError, OSError):
        return False
    if len(thumbs) != len(film.times):
        return False
    try:
        with film_lock(library, film.id, wait=0):
            # the new frames after the old ones, then the offsets to them: whichever file a reader opens
            # first, every offset it holds points at a whole JPEG (old or new), never at a torn one
            old = (film.dir / "thumbs.bin").read_bytes()[: int(np.load(film.dir / "thumb_offsets.npy")[-1])]
            offsets = len(old) + np.concatenate([[0], np.cumsum([len(t) for t in thumbs])]).astype(np.int64)
            atomic_write_bytes(film.dir / "thumbs.bin", old + b"".join(thumbs))
            atomic_save_npy(film.dir / "thumb_offsets.npy", offsets)
    except (FilmBusy, OSError, ValueError):
        return False
    return True


def _among(times: np.ndarray, t: float, tol: float = 1e-6) -> bool:
    i = int(np.searchsorted(times, t))
    return any(0 <= j < len(times) and abs(times[j] - t) <= tol for j in (i - 1, i))


def vector_set_for(encoder: DualEncoder) -> VectorSet:
    """The record a model's vectors are stored with: what made them and how they score."""
    sc = encoder.scoring
    return VectorSet(
        model=encoder.model_id,
        dim=int(encoder.dim),
        logit_scale=sc.logit_scale,
        logit_bias=sc.logit_bias,
        scoring=sc.kind,
        device=encoder.device,
        precision=getattr(encoder, "precision", None),
        clip_frames=clip_frames(encoder),
    )


def options_of(film: Film, base: IndexOptions = IndexOptions()) -> IndexOptions:
    """The options that reproduce ``film``'s frames (its sampling and patches): what adding a model
    to it must use, else the frames would differ and it would be a different film."""
    m = film.manifest
    return replace(base, sampling=m.sampling_settings(), patches=PatchSettings(**m.patches) if m.patches else None)


def existing_film(path: str | os.PathLike, library: Library) -> Film | None:
    """The library's film of this file's content, if it has one (any settings, any path to it); None
    for a file that cannot be read (indexing it then says why)."""
    try:
        return library.by_content(fingerprint(path))
    except OSError:
        return None


def new_manifest(path: Path, options: IndexOptions, library: Library) -> Manifest:
    """The film's own manifest (no model's fields): what its key is compared on. A film is its
    content: a path to bytes the library already has gets that film's id, so it is reused."""
    info = probe(path)
    w, h = info.display_size
    content = fingerprint(path)
    known = library.by_content(content)
    return Manifest(
        id=known.id if known else film_id_for(path),
        sources=[
            s
            for s in ([known.record.manifest.source, *known.record.manifest.sources] if known else [])
            if s != str(path.resolve())
        ],
        name=path.stem,
        source=str(path.resolve()),
        fingerprint=content,
        model="",
        sampling=options.sampling.key(),
        patches=asdict(options.patches) if options.patches else None,
        duration=info.duration,
        width=w,
        height=h,
        fps=info.fps,
    )


def _models(model_ids: str | Sequence[str] | None) -> list[str]:
    ids = [model_ids] if model_ids is None or isinstance(model_ids, str) else list(model_ids)
    return list(dict.fromkeys(config.model_id(m) for m in ids))


def cached_index(
    path: str | os.PathLike,
    library: Library,
    model_id: str | Sequence[str] | None,
    options: IndexOptions = IndexOptions(),
) -> Film | None:
    """The complete index of this file with these settings and every one of these models, if the
    library has it (seen through the first model). Needs no model, so a re-run over indexed films
    returns at once."""
    models = _models(model_id)
    film = complete_index(library, new_manifest(Path(path), options, library))
    if film is None or not all(film.has(m) for m in models):
        return None
    with contextlib.suppress(FilmBusy):  # another process holds the film: the path is noted next time
        film = add_source(library, film, path)
    return film.view(models[0])


@dataclass
class FilmPlan:
    """What indexing one file must do, decided once for the threaded indexer and for Ray alike: the
    manifest to write (the existing film's when models are added to it), the complete film already
    in the library if any, and the models still to encode (none: the film is reused as it is)."""

    path: Path
    manifest: Manifest
    existing: Film | None
    todo: list[str]

    @property
    def reused(self) -> bool:
        return self.existing is not None and not self.todo

    @classmethod
    def of(cls, library: Library, path: Path, manifest: Manifest, options: IndexOptions, models: list[str]) -> FilmPlan:
        """The plan for ``path`` (``manifest``: its ``new_manifest``), made while holding the film's
        lock; a complete film of the same key notes this path as one of its sources."""
        existing = complete_index(library, manifest)
        todo = [m for m in dict.fromkeys(models) if existing is None or not existing.has(m)]
        if existing is not None:
            existing = add_source(library, existing, path, locked=True)
            manifest = existing.record.manifest
        elif options.patches:
            manifest.patches_per_frame = options.patches.count(manifest.width, manifest.height)
        return cls(path, manifest, existing, todo)


def complete_index(library: Library, manifest: Manifest) -> Film | None:
    """The film's index, if complete and of the same key, with the sets that are sound to the last
    vector (a set ``films --check`` rejects is encoded again, never reused)."""
    existing = library.get(manifest.id)
    if existing and existing.manifest.status == "complete" and existing.manifest.key() == manifest.key():
        try:
            return Film(existing.dir, check_record(existing.dir, deep=True))
        except DamagedFilm:
            return None
    return None


def index_film(
    path: str | os.PathLike,
    library: Library,
    encoder: DualEncoder | Sequence[DualEncoder],
    options: IndexOptions = IndexOptions(),
    progress: ProgressFn | None = None,
    wait: float | None = None,
    on_wait: Callable[[], None] | None = None,
) -> IndexResult:
    """Index one film into ``library`` with one model or several (one decode for all); reuse a
    complete index with the same key, add only the models it lacks, resume a partial run.

    Holds the film's cross-process lock throughout: a second process indexing the same film waits
    (``wait`` seconds, None: until done; ``on_wait`` is told) and then reuses the result, or raises
    FilmBusy. Raises VideoError (naming the file and the reason) for files that cannot be indexed;
    chunks already encoded stay in the staging folder for the next run. The result's film is seen
    through the first model."""
    path = Path(path)
    encoders = list(encoder) if isinstance(encoder, (list, tuple)) else [encoder]
    t0 = time.perf_counter()
    manifest = new_manifest(path, options, library)
    with film_lock(library, manifest.id, wait, on_wait):
        plan = FilmPlan.of(library, path, manifest, options, [e.model_id for e in encoders])
        if plan.reused:
            film = plan.existing.view(encoders[0].model_id)
            return IndexResult(film, reused=True, resumed_frames=0, encoded_frames=0, seconds=0.0)
        existing, manifest = plan.existing, plan.manifest
        todo = [e for e in encoders if e.model_id in plan.todo]
        clip_starts = _clip_starts(todo, existing, manifest)
        staged = StagedFilm(library, manifest, [vector_set_for(e) for e in todo], film=existing)
        resumed = staged.frames
        device = todo[0].device
        batch_size = options.batch_size or (128 if device.startswith("cuda") else CPU_BATCH)
        producer = _Producer(path, options, todo, staged.last_time, batch_size * 2, thumbnails=existing is None)

        def report(encoded: int) -> None:
            if progress:
                progress(
                    Progress(
                        manifest.name, producer.decoded, manifest.duration, resumed + encoded, time.perf_counter() - t0
                    )
                )

        producer.start()
        split = CoreSplit(todo)

        def after_batch(encoded: int) -> None:
            split.watch(producer.blocked)
            report(encoded)

        try:
            keep = existing.times if existing is not None else None
            with split:
                encoded, seconds = _encode_into(
                    staged, producer.items(), todo, batch_size, options.chunk_frames, after_batch, keep, clip_starts
                )
        finally:
            producer.stop.set()
            producer.join(timeout=5)
        if resumed + encoded == 0:
            raise VideoError(f"{path.name}: no frames were sampled")
        if progress:
            progress(
                Progress(
                    manifest.name, manifest.duration, manifest.duration, resumed + encoded, time.perf_counter() - t0
                )
            )
        dialogue = load_dialogue(path) if existing is None else None  # never raises: a bad subtitle is a warning
        if resumed and encoded:  # a resumed run timed only its own frames: the rate, over them all
            seconds = [s * (resumed + encoded) / encoded for s in seconds]
        film = staged.publish(dialogue, round(time.perf_counter() - t0, 3), seconds)
    film = film.view(encoders[0].model_id) if film.has(encoders[0].model_id) else film
    added = [e.model_id for e in todo] if existing is not None else []
    return IndexResult(film, False, resumed, encoded, time.perf_counter() - t0, added, split.active)


@dataclass(frozen=True)
class TimeEstimate:
    """How long encoding ``frames`` frames with a model should take on a device, and from what."""

    seconds: float
    frames: int
    basis: str

    def sentence(self) -> str:
        return f"about {fmt_time(self.seconds)[:-2]} for {self.frames} frames ({self.basis})"


def estimate_adding(library: Library, films: Sequence[Film], encoder: DualEncoder, trial: int = 8) -> TimeEstimate:
    """The time to add ``encoder``'s vectors to ``films``, shown before it starts: the model's own
    time per frame measured on this device in this library if it has any, else measured now on a
    batch of ``trial`` frames (after one warm-up batch). Decoding comes on top."""
    frames = sum(f.manifest.frames for f in films if not f.has(encoder.model_id))
    sets = [f.vector_set for f in library.films(encoder.model_id)]  # films seen through the model already
    measured = [v for v in sets if v.device == encoder.device and v.seconds_per_frame]
    if measured:
        spf = sum(v.seconds_per_frame * v.frames for v in measured) / sum(v.frames for v in measured)
        basis = f"{spf * 1000:.0f} ms/frame measured on {encoder.device} in this library; decoding comes on top"
    elif clip_frames(encoder) > 1:  # a video model: one clip of its frames timed, times the clips the films cut into
        crop, f = encoder.pre.crop, clip_frames(encoder)
        clip = np.random.default_rng(0).integers(0, 255, (1, f, crop, crop, 3), dtype=np.uint8)
        encoder.encode_clips(clip)
        t0 = time.perf_counter()
        encoder.encode_clips(clip)
        per_clip = time.perf_counter() - t0
        clips = sum(expected_clips(f) for f in films if not f.has(encoder.model_id))
        spf = per_clip * clips / max(frames, 1)
        basis = f"{per_clip * 1000:.0f} ms per {f}-frame clip measured now on {encoder.device}, {clips} clips"
        basis += "; decoding comes on top"
    else:
        crop = encoder.pre.crop
        batch = np.random.default_rng(0).integers(0, 255, (trial, crop, crop, 3), dtype=np.uint8)
        encoder.encode_prepared(batch)
        t0 = time.perf_counter()
        encoder.encode_prepared(batch)
        spf = (time.perf_counter() - t0) / trial
        basis = f"{spf * 1000:.0f} ms/frame measured now on {encoder.device}; decoding comes on top"
    return TimeEstimate(spf * frames, frames, basis)

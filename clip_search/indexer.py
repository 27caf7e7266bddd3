"""Indexing: stream a film from the decoder through CLIP to disk.

Two threads: the decoder thread decodes, samples and prepares frames (resize/crop, thumbnail,
patch crops); the calling thread encodes batches and writes finished chunks. A bounded queue
between them keeps memory flat and lets decoding run while the model works. Chunks are written
atomically into a staging folder, so an interrupted run resumes from the last chunk and the
finished film appears in the library in one rename.

Three parts: ``_Producer`` (decode, sample, prepare), ``_encode_into`` (batches through the model
into the staged film's chunks) and ``index_film``, the orchestrator, which holds the film's
cross-process lock from the cache check to the publish (``clip_search.store``).
"""

from __future__ import annotations

import io
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from clip_search import config
from clip_search.errors import VideoError
from clip_search.library import Film, Library, Manifest, film_id_for, fingerprint
from clip_search.patches import PatchSettings, crop_patches
from clip_search.store import StagedFilm, film_lock
from clip_search.subtitles import load_dialogue
from clip_search.video import SamplingSettings, iter_frames, probe

THUMB_WIDTH = 256

if TYPE_CHECKING:  # torch is imported only when a model is really needed
    from clip_search.model import ClipEncoder


@dataclass(frozen=True)
class IndexOptions:
    """How to index: which frames, whether to add patch crops, batch and chunk sizes."""

    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    patches: PatchSettings | None = None
    batch_size: int = 0  # 0: 32 on CPU, 128 on GPU
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


ProgressFn = Callable[[Progress], None]


class _Item:
    __slots__ = ("patches", "pixels", "thumb", "time")

    def __init__(self, time: float, pixels: np.ndarray, thumb: bytes, patches: list[np.ndarray]) -> None:
        self.time, self.pixels, self.thumb, self.patches = time, pixels, thumb, patches


_DONE = object()


def make_thumbnail(rgb: np.ndarray, width: int = THUMB_WIDTH, quality: int = 80) -> bytes:
    """A small JPEG of a frame (what the dashboard's result grid shows)."""
    img = Image.fromarray(rgb)
    h = max(1, round(img.height * width / img.width))
    buf = io.BytesIO()
    img.resize((width, h), Image.Resampling.BILINEAR).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


class _Producer(threading.Thread):
    """Decodes, samples and prepares frames (resize/crop, thumbnail, patch crops) into a bounded queue."""

    def __init__(
        self, path: Path, options: IndexOptions, encoder: ClipEncoder, start_after: float | None, size: int
    ) -> None:
        super().__init__(name=f"decode-{path.name}", daemon=True)
        self.path, self.options, self.encoder, self.start_after = path, options, encoder, start_after
        self.queue: queue.Queue = queue.Queue(maxsize=size)
        self.stop = threading.Event()
        self.decoded = start_after or 0.0  # film time reached by the decoder, for progress

    def _seen(self, t: float) -> None:
        self.decoded = t

    def run(self) -> None:
        try:
            patches = self.options.patches
            for fr in iter_frames(
                self.path, self.options.sampling, start_after=self.start_after, on_decoded=self._seen
            ):
                crops = [self.encoder.prepare(c) for c in crop_patches(fr.image, patches)]
                item = _Item(fr.time, self.encoder.prepare(fr.image), make_thumbnail(fr.image), crops)
                if not self._put(item):
                    return
            self.queue.put(_DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, re-raised on its thread
            self.queue.put(e)

    def _put(self, item: _Item) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

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
    encoder: ClipEncoder,
    batch_size: int,
    chunk_frames: int,
    after_batch: Callable[[int], None],
) -> int:
    """Encode prepared frames in batches and write them as chunks; returns frames encoded.

    A frame whose time does not follow the last one kept (duplicate PTS) is dropped, so stored
    times strictly increase whatever the container says."""
    encoded = 0
    vecs: list[np.ndarray] = []
    times: list[float] = []
    thumbs: list[bytes] = []
    patches: list[np.ndarray] = []
    last = staged.last_time

    def encode(batch: list[_Item]) -> None:
        nonlocal encoded
        pixels = [it.pixels for it in batch]
        for it in batch:
            pixels.extend(it.patches)
        out = encoder.encode_prepared(np.stack(pixels))
        n = len(batch)
        vecs.append(out[:n])
        if n < len(out):  # rows n.. are the patches, already frame-major: (frame, patch)
            patches.append(out[n:])
        times.extend(it.time for it in batch)
        thumbs.extend(it.thumb for it in batch)
        encoded += n

    def flush() -> None:
        if times:
            staged.write_chunk(np.concatenate(vecs), times, thumbs, np.concatenate(patches) if patches else None)
            for part in (vecs, times, thumbs, patches):
                part.clear()

    pending: list[_Item] = []
    for item in items:
        if last is not None and item.time <= last:
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
    flush()
    return encoded


def _new_manifest(path: Path, model_id: str, options: IndexOptions) -> Manifest:
    info = probe(path)
    w, h = info.display_size
    return Manifest(
        id=film_id_for(path),
        name=path.stem,
        source=str(path.resolve()),
        fingerprint=fingerprint(path),
        model=config.model_id(model_id),
        sampling=options.sampling.key(),
        patches=asdict(options.patches) if options.patches else None,
        duration=info.duration,
        width=w,
        height=h,
        fps=info.fps,
    )


def cached_index(
    path: str | os.PathLike, library: Library, model_id: str | None, options: IndexOptions = IndexOptions()
) -> Film | None:
    """The complete index of this file with this model and these settings, if the library has
    one. Needs no model, so a re-run over indexed films returns at once."""
    return _complete_index(library, _new_manifest(Path(path), model_id, options))


def _complete_index(library: Library, manifest: Manifest) -> Film | None:
    """The film's index, if complete, of the same key, and sound to the last vector (what
    ``films --check`` rejects is indexed again, never reused)."""
    from clip_search.library import DamagedFilm, check_film

    existing = library.get(manifest.id)
    if existing and existing.manifest.status == "complete" and existing.manifest.key() == manifest.key():
        try:
            check_film(existing.dir, deep=True)
        except DamagedFilm:
            return None
        return existing
    return None


def index_film(
    path: str | os.PathLike,
    library: Library,
    encoder: ClipEncoder,
    options: IndexOptions = IndexOptions(),
    progress: ProgressFn | None = None,
    wait: float | None = None,
    on_wait: Callable[[], None] | None = None,
) -> IndexResult:
    """Index one film into ``library``; reuse a complete index with the same key, resume a partial one.

    Holds the film's cross-process lock throughout: a second process indexing the same film waits
    (``wait`` seconds, None: until done; ``on_wait`` is told) and then reuses the result, or raises
    FilmBusy. Raises VideoError (naming the file and the reason) for files that cannot be indexed;
    chunks already encoded stay in the staging folder for the next run."""
    path = Path(path)
    t0 = time.perf_counter()
    manifest = _new_manifest(path, encoder.model_id, options)
    with film_lock(library, manifest.id, wait, on_wait):
        existing = _complete_index(library, manifest)
        if existing:
            return IndexResult(existing, reused=True, resumed_frames=0, encoded_frames=0, seconds=0.0)
        manifest.dim, manifest.logit_scale, manifest.device = encoder.dim, encoder.logit_scale, encoder.device
        if options.patches:
            manifest.patches_per_frame = options.patches.count(manifest.width, manifest.height)
        staged = StagedFilm(library, manifest)
        resumed = staged.frames
        batch_size = options.batch_size or (128 if encoder.device.startswith("cuda") else 32)
        producer = _Producer(path, options, encoder, staged.last_time, batch_size * 2)

        def report(encoded: int) -> None:
            if progress:
                progress(
                    Progress(
                        manifest.name, producer.decoded, manifest.duration, resumed + encoded, time.perf_counter() - t0
                    )
                )

        producer.start()
        try:
            encoded = _encode_into(staged, producer.items(), encoder, batch_size, options.chunk_frames, report)
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
        dialogue = load_dialogue(path)  # never raises: a bad subtitle file is a warning
        film = staged.publish(dialogue, indexing_seconds=round(time.perf_counter() - t0, 3))
    return IndexResult(
        film, reused=False, resumed_frames=resumed, encoded_frames=encoded, seconds=time.perf_counter() - t0
    )

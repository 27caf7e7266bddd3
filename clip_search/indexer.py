"""Indexing: stream a film from the decoder through CLIP to disk.

Two threads: the decoder thread decodes, samples and prepares frames (resize/crop, thumbnail,
patch crops); the calling thread encodes batches and writes finished chunks. A bounded queue
between them keeps memory flat and lets decoding run while the model works. Chunks are written
atomically into a staging folder, so an interrupted run resumes from the last chunk and the
finished film appears in the library in one rename.
"""

from __future__ import annotations

import io
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from clip_search import config
from clip_search.errors import VideoError
from clip_search.library import (
    Film,
    Library,
    Manifest,
    atomic_write_json,
    film_id_for,
    fingerprint,
)
from clip_search.patches import PatchSettings, crop_patches
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


def make_thumbnail(rgb: np.ndarray, width: int = THUMB_WIDTH) -> bytes:
    """A small JPEG of a frame (what the dashboard's result grid shows)."""
    img = Image.fromarray(rgb)
    h = max(1, round(img.height * width / img.width))
    buf = io.BytesIO()
    img.resize((width, h), Image.Resampling.BILINEAR).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


class _ChunkStore:
    """Finished chunks of a staging folder: write one atomically, read them all back in order."""

    def __init__(self, staging: Path) -> None:
        self.dir = staging / "parts"
        self.dir.mkdir(parents=True, exist_ok=True)

    def paths(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.npz"))

    def write(self, emb: list[np.ndarray], times: list[float], thumbs: list[bytes], patches: list[np.ndarray]) -> None:
        seq = len(self.paths())
        target = self.dir / f"part-{seq:06d}.npz"
        tmp = self.dir / f".part-{seq:06d}.{os.getpid()}.tmp.npz"
        arrays = {
            "embeddings": np.concatenate(emb).astype(np.float32),
            "times": np.asarray(times, np.float64),
            "thumbs": np.frombuffer(b"".join(thumbs), np.uint8),
            "thumb_lens": np.asarray([len(t) for t in thumbs], np.int64),
        }
        if patches:
            arrays["patch_embeddings"] = np.concatenate(patches).astype(np.float32)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)

    def summary(self) -> tuple[int, float | None]:
        """(frames stored, time of the last stored frame)."""
        n, last = 0, None
        for p in self.paths():
            with np.load(p) as z:
                t = z["times"]
                n += len(t)
                if len(t):
                    last = float(t[-1])
        return n, last

    def merge_into(self, staging: Path, dim: int, patches_per_frame: int) -> int:
        """Concatenate all chunks into the film's final arrays, streaming (never all in RAM)."""
        paths = self.paths()
        sizes = []
        for p in paths:
            with np.load(p) as z:
                sizes.append(len(z["times"]))
        n = sum(sizes)
        emb = np.lib.format.open_memmap(staging / "embeddings.npy", mode="w+", dtype=np.float32, shape=(n, dim))
        times = np.empty(n, np.float64)
        offsets = np.zeros(n + 1, np.int64)
        pem = None
        if patches_per_frame:
            pem = np.lib.format.open_memmap(
                staging / "patch_embeddings.npy", mode="w+", dtype=np.float32, shape=(n * patches_per_frame, dim)
            )
        pos = 0
        with open(staging / "thumbs.bin", "wb") as thumbs:
            for p, k in zip(paths, sizes, strict=True):
                with np.load(p) as z:
                    emb[pos : pos + k] = z["embeddings"]
                    times[pos : pos + k] = z["times"]
                    offsets[pos + 1 : pos + k + 1] = offsets[pos] + np.cumsum(z["thumb_lens"])
                    thumbs.write(z["thumbs"].tobytes())
                    if pem is not None:
                        pem[pos * patches_per_frame : (pos + k) * patches_per_frame] = z["patch_embeddings"]
                pos += k
            thumbs.flush()
            os.fsync(thumbs.fileno())
        emb.flush()
        del emb
        if pem is not None:
            pem.flush()
            del pem
        np.save(staging / "times.npy", times)
        np.save(staging / "thumb_offsets.npy", offsets)
        return n


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
    existing = library.get(manifest.id)
    if existing and existing.manifest.status == "complete" and existing.manifest.key() == manifest.key():
        return existing
    return None


def index_film(
    path: str | os.PathLike,
    library: Library,
    encoder: ClipEncoder,
    options: IndexOptions = IndexOptions(),
    progress: ProgressFn | None = None,
) -> IndexResult:
    """Index one film into ``library``; reuse a complete index with the same key, resume a partial one.

    Raises VideoError (naming the file and the reason) for files that cannot be indexed; chunks
    already encoded stay in the staging folder for the next run."""
    path = Path(path)
    t0 = time.perf_counter()
    manifest = _new_manifest(path, encoder.model_id, options)
    existing = _complete_index(library, manifest)
    if existing:
        return IndexResult(existing, reused=True, resumed_frames=0, encoded_frames=0, seconds=0.0)
    manifest.dim, manifest.logit_scale = encoder.dim, encoder.logit_scale

    staging = library.staging_for(manifest)
    _drop_stale_staging(library, manifest, keep=staging)
    store = _ChunkStore(staging)
    previous = staging / "manifest.json"
    if previous.is_file():
        manifest.started_at = Manifest.load(previous).started_at
    atomic_write_json(previous, manifest.to_dict())
    resumed, done_until = store.summary()

    batch_size = options.batch_size or (128 if encoder.device.startswith("cuda") else 32)
    ppf = options.patches.count(manifest.width, manifest.height) if options.patches else 0
    state = {"decoded": done_until or 0.0}
    q: queue.Queue = queue.Queue(maxsize=batch_size * 2)
    stop = threading.Event()

    def produce() -> None:
        try:

            def seen(t: float) -> None:
                state["decoded"] = t

            for fr in iter_frames(path, options.sampling, start_after=done_until, on_decoded=seen):
                patches = [encoder.prepare(c) for c in crop_patches(fr.image, options.patches)] if ppf else []
                item = _Item(fr.time, encoder.prepare(fr.image), make_thumbnail(fr.image), patches)
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, re-raised on its thread
            q.put(e)

    producer = threading.Thread(target=produce, name=f"decode-{manifest.id}", daemon=True)
    producer.start()
    encoded = 0
    chunk: tuple[list, list, list, list] = ([], [], [], [])
    pending: list[_Item] = []
    failure: BaseException | None = None

    def encode(items: list[_Item]) -> None:
        nonlocal encoded
        pixels = [it.pixels for it in items]
        for it in items:
            pixels.extend(it.patches)
        vecs = encoder.encode_prepared(np.stack(pixels))
        n = len(items)
        chunk[0].append(vecs[:n])
        chunk[1].extend(it.time for it in items)
        chunk[2].extend(it.thumb for it in items)
        if ppf:  # rows n.. are the patches, already frame-major: (frame, patch)
            chunk[3].append(vecs[n:])
        encoded += n

    def flush() -> None:
        if chunk[1]:
            store.write(*chunk)
            for part in chunk:
                part.clear()

    try:
        while True:
            item = q.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                failure = item
                break
            pending.append(item)
            if len(pending) >= batch_size:
                encode(pending)
                pending = []
                if len(chunk[1]) >= options.chunk_frames:
                    flush()
                if progress:
                    progress(
                        Progress(
                            manifest.name,
                            state["decoded"],
                            manifest.duration,
                            resumed + encoded,
                            time.perf_counter() - t0,
                        )
                    )
        if pending:
            encode(pending)
        flush()
    finally:
        stop.set()
        producer.join(timeout=5)
    if failure is not None:
        raise failure
    if resumed + encoded == 0:
        raise VideoError(f"{path.name}: no frames were sampled")
    if progress:
        progress(
            Progress(manifest.name, manifest.duration, manifest.duration, resumed + encoded, time.perf_counter() - t0)
        )
    dialogue = load_dialogue(path)  # never raises: a bad subtitle file is a warning
    atomic_write_json(staging / "dialogue.json", dialogue.to_dict())
    manifest.dialogue = {"origin": dialogue.origin, "cues": len(dialogue.cues), "warning": dialogue.warning}
    manifest.frames = store.merge_into(staging, manifest.dim, ppf)
    manifest.patches_per_frame = ppf
    manifest.status = "complete"
    manifest.completed_at = time.time()
    manifest.indexing_seconds = round(time.perf_counter() - t0, 3)
    atomic_write_json(staging / "manifest.json", manifest.to_dict())
    shutil.rmtree(store.dir, ignore_errors=True)
    film = library.publish(staging, manifest.id)
    return IndexResult(
        film, reused=False, resumed_frames=resumed, encoded_frames=encoded, seconds=time.perf_counter() - t0
    )


def _drop_stale_staging(library: Library, manifest: Manifest, keep: Path) -> None:
    """A partial index built with other settings (or of an older file) can never be resumed."""
    if not library.staging_dir.is_dir():
        return
    for d in library.staging_dir.glob(f"{manifest.id}-*"):
        if d != keep and d.name[len(manifest.id) + 1 :].isalnum():
            shutil.rmtree(d, ignore_errors=True)

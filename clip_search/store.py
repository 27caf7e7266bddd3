"""The one writer of the film format: a per-film lock, staged chunks, merge, verify, publish.

Every way a film enters a library (indexing, the Ray indexer, imports of vectors made elsewhere)
goes through :class:`StagedFilm`, so the rules live in one place:

- one writer per film, across processes: ``film_lock`` (``filelock``) guards staging and publish;
  a second process waits, or is told the film is being indexed by another process;
- chunks are written atomically into ``staging/<id>-<key>/parts`` (the resume granularity), each
  with strictly increasing times;
- ``publish`` merges the chunks, verifies the result against its manifest (``check_film``), and
  only then makes it the live film in one rename, so no partial or inconsistent film is ever seen.
"""

from __future__ import annotations

import os
import shutil
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from clip_search.errors import FrameSearchError
from clip_search.library import (
    DamagedFilm,
    Film,
    Library,
    Manifest,
    atomic_write_json,
    check_film,
)


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


class StagedFilm:
    """A film being written under its lock: chunks in staging, then one verified publish.

    Create it inside ``film_lock``. A staging folder left by an interrupted run with the same key is
    resumed; one with another key (other settings, older file) can never be resumed and is removed."""

    def __init__(self, library: Library, manifest: Manifest, segmented: bool = False) -> None:
        self.library = library
        self.manifest = manifest
        self.dir = library.staging_for(manifest)
        self.parts = self.dir / "parts"
        self.segmented = segmented  # whole segments written in any order (the Ray indexer), not a sequence
        self._drop_stale()
        self.parts.mkdir(parents=True, exist_ok=True)
        for other in self.parts.glob("part-*.npz" if segmented else "seg-*.npz"):  # the other layout's leftovers
            other.unlink()
        previous = self.dir / "manifest.json"
        if previous.is_file():
            try:
                manifest.started_at = Manifest.load(previous).started_at
            except DamagedFilm:
                pass
        atomic_write_json(previous, manifest.to_dict())
        self.frames, self.last_time = self._summary()

    def _drop_stale(self) -> None:
        if not self.library.staging_dir.is_dir():
            return
        film_id = self.manifest.id
        for d in self.library.staging_dir.glob(f"{film_id}-*"):
            if d != self.dir and d.name[len(film_id) + 1 :].isalnum():
                shutil.rmtree(d, ignore_errors=True)

    def _paths(self) -> list[Path]:
        return sorted(self.parts.glob("seg-*.npz" if self.segmented else "part-*.npz"))

    def segments_done(self) -> set[int]:
        """Segments already written whole (an interrupted archive run resumes with the others; a torn
        one is dropped and made again)."""
        done = set()
        for p in self.parts.glob("seg-*.npz"):
            if _chunk_times(p) is None:
                p.unlink(missing_ok=True)
            else:
                done.add(int(p.stem.split("-")[1]))
        return done

    def write_segment(self, k: int, embeddings: np.ndarray, times: Sequence[float], thumbs: Sequence[bytes]) -> None:
        """Write segment ``k`` whole and atomically (frames in time order); publish checks the joins."""
        order = np.argsort(np.asarray(times, np.float64), kind="stable")
        self._write(
            self.parts / f"seg-{k:06d}.npz",
            np.asarray(embeddings, np.float32)[order],
            np.asarray(times, np.float64)[order],
            [thumbs[i] for i in order],
            None,
        )

    def _summary(self) -> tuple[int, float | None]:
        """(frames stored, time of the last stored frame); a damaged chunk and all after it are dropped."""
        n, last = 0, None
        for i, p in enumerate(paths := self._paths()):
            t = _chunk_times(p)
            if t is None:  # torn (a filesystem that did not honour the rename): encoded again
                for bad in paths[i:]:
                    bad.unlink(missing_ok=True)
                break
            n += len(t)
            if len(t):
                last = float(t[-1])
        return n, last

    def write_chunk(
        self,
        embeddings: np.ndarray,
        times: Sequence[float],
        thumbs: Sequence[bytes],
        patches: np.ndarray | None = None,
    ) -> None:
        """Append one chunk atomically. Times must continue strictly after those already stored."""
        times = np.asarray(times, np.float64)
        if not len(times):
            return
        if np.any(np.diff(times) <= 0) or (self.last_time is not None and times[0] <= self.last_time):
            raise ValueError("chunk times must strictly increase after the frames already stored")
        if not len(embeddings) == len(times) == len(thumbs):
            raise ValueError("a chunk needs one vector, time and thumbnail per frame")
        self._write(self.parts / f"part-{len(self._paths()):06d}.npz", embeddings, times, thumbs, patches)
        self.frames += len(times)
        self.last_time = float(times[-1])

    def _write(self, target: Path, embeddings, times: np.ndarray, thumbs, patches) -> None:
        if len(times) > 1 and np.any(np.diff(times) <= 0):
            raise ValueError("chunk times must strictly increase")
        tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp.npz")
        arrays = {
            "embeddings": np.asarray(embeddings, np.float32),
            "times": times,
            "thumbs": np.frombuffer(b"".join(thumbs), np.uint8),
            "thumb_lens": np.asarray([len(t) for t in thumbs], np.int64),
        }
        if patches is not None:
            arrays["patch_embeddings"] = np.asarray(patches, np.float32)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)

    def _merge(self, dim: int, patches_per_frame: int) -> int:
        """Concatenate all chunks into the film's final arrays, streaming (never all in RAM)."""
        paths = self._paths()
        sizes = []
        for p in paths:
            with np.load(p) as z:
                sizes.append(len(z["times"]))
        n = sum(sizes)
        emb = np.lib.format.open_memmap(self.dir / "embeddings.npy", mode="w+", dtype=np.float32, shape=(n, dim))
        times = np.empty(n, np.float64)
        offsets = np.zeros(n + 1, np.int64)
        pem = None
        if patches_per_frame:
            pem = np.lib.format.open_memmap(
                self.dir / "patch_embeddings.npy", mode="w+", dtype=np.float32, shape=(n * patches_per_frame, dim)
            )
        pos = 0
        with open(self.dir / "thumbs.bin", "wb") as thumbs:
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
        np.save(self.dir / "times.npy", times)
        np.save(self.dir / "thumb_offsets.npy", offsets)
        return n

    def publish(self, dialogue=None, indexing_seconds: float | None = None) -> Film:
        """Merge, write the final manifest, verify everything against it, then swap it in atomically.

        Raises DamagedFilm (and removes the staging folder) if the merged film is inconsistent."""
        m = self.manifest
        if dialogue is not None:
            atomic_write_json(self.dir / "dialogue.json", dialogue.to_dict())
            m.dialogue = {"origin": dialogue.origin, "cues": len(dialogue.cues), "warning": dialogue.warning}
        m.frames = self._merge(m.dim, m.patches_per_frame)
        if not m.duration and m.frames:  # a raw stream's header has no duration: the last frame's end
            times = np.load(self.dir / "times.npy")
            m.duration = float(times[-1] + (times[-1] - times[-2] if len(times) > 1 else 1.0))
        m.status = "complete"
        m.completed_at = time.time()
        m.indexing_seconds = indexing_seconds
        atomic_write_json(self.dir / "manifest.json", m.to_dict())
        try:
            check_film(self.dir)
        except DamagedFilm as e:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise DamagedFilm(f"{m.name}: the index came out inconsistent and was not published ({e})") from None
        shutil.rmtree(self.parts, ignore_errors=True)
        lib = self.library
        lib.films_dir.mkdir(parents=True, exist_ok=True)
        live = lib.film_dir(m.id)
        old = live.with_name(live.name + ".old")
        if live.exists():
            os.replace(live, old)
        os.replace(self.dir, live)
        shutil.rmtree(old, ignore_errors=True)
        return Film(live)


def _chunk_times(path: Path) -> np.ndarray | None:
    """A staged chunk's times when every array of it reads back whole, else None (torn or junk)."""
    try:
        with np.load(path) as z:
            arrays = {k: np.asarray(z[k]) for k in z.files}
        times = arrays["times"]
        if len(arrays["embeddings"]) != len(times) or len(arrays["thumb_lens"]) != len(times):
            return None
        return times
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
        return None


def import_vectors(
    library: Library,
    manifest: Manifest,
    embeddings: np.ndarray,
    times: np.ndarray,
    thumbnails: Sequence[bytes] | None = None,
    wait: float | None = None,
) -> Film:
    """Store vectors made elsewhere (``import``, benchmarks, tests) as a complete film, through the
    same lock, verification and publish as indexing. Vectors not of unit length are L2-normalised.

    Everything is checked first, one sentence each: real numbers only (no strings, no complex
    numbers), finite, N x D with N strictly increasing times, D the size of the library's other
    films of the same model. An import never replaces a film: an id already in the library (the
    same name, or one that slugs alike) is refused."""
    for what, arr in (("embeddings", embeddings), ("times", times)):
        kind = np.asarray(arr).dtype.kind
        if kind not in "fiu":
            raise FrameSearchError(f"{manifest.name}: {what} must be real numbers, not {np.asarray(arr).dtype}")
    emb = np.asarray(embeddings, np.float32)
    times = np.asarray(times, np.float64)
    if emb.ndim != 2 or emb.shape[0] != len(times) or not len(times):
        raise FrameSearchError(f"{manifest.name}: need N x D embeddings and N times (got {emb.shape}, {times.shape})")
    if not np.all(np.isfinite(emb)) or not np.all(np.isfinite(times)):
        raise FrameSearchError(f"{manifest.name}: embeddings and times must be finite numbers")
    if np.any(np.diff(times) <= 0):
        raise FrameSearchError(f"{manifest.name}: times must strictly increase")
    norms = np.linalg.norm(emb, axis=1)
    if np.any(norms == 0):
        raise FrameSearchError(f"{manifest.name}: some embeddings are all zeros")
    off = np.abs(norms - 1) > 1e-5  # unit vectors stay bit-identical: export -> import round-trips exactly
    if np.any(off):
        emb = emb.copy()
        emb[off] /= norms[off, None]
    same_model = {f.manifest.dim for f in library.films() if f.manifest.model == manifest.model}
    if same_model and int(emb.shape[1]) not in same_model:
        raise FrameSearchError(
            f"{manifest.name}: vectors of {emb.shape[1]} dimensions, but the library's {manifest.model} films have "
            f"{', '.join(map(str, sorted(same_model)))}; import them with the model that made them (--model)."
        )
    thumbs = list(thumbnails) if thumbnails is not None else [b""] * len(emb)
    manifest.dim = int(emb.shape[1])
    manifest.duration = manifest.duration or float(times[-1] + 1.0)
    with film_lock(library, manifest.id, wait):
        if library.film_dir(manifest.id).is_dir():
            held = library.get(manifest.id)
            named = f" ({held.name})" if held and held.name != manifest.name else ""
            raise FrameSearchError(
                f"{manifest.name}: the library already has a film with id {manifest.id}{named}; nothing was "
                "imported. Choose another name (an import never replaces a film)."
            )
        staged = StagedFilm(library, manifest)
        for p in staged._paths():  # an import replaces any earlier partial import wholesale
            p.unlink()
        staged.frames, staged.last_time = 0, None
        step = 65536
        for lo in range(0, len(emb), step):
            staged.write_chunk(emb[lo : lo + step], times[lo : lo + step], thumbs[lo : lo + step])
        return staged.publish()

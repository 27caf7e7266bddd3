"""The on-disk index: a library folder of films, plain files readable without the app.

Layout (format 2: a film's frames are shared, its vectors belong to a model)::

    library/
      films/<film_id>/            one complete film (only ever appears by an atomic rename)
        manifest.json             source, fingerprint, sampling, counts, status
        times.npy                 (N,) float64 presentation times in seconds
        thumbs.bin, thumb_offsets.npy   JPEG thumbnails, one per frame
        dialogue.json             the film's subtitle cues
        vectors/<model-key>/      one vector set per model (appears by an atomic rename)
          vectors.json            model, dim, logit scale and bias, device, time per frame
          embeddings.npy          (N, D) float32, L2-normalised
          patch_embeddings.npy    (N * P, D) float32, only in patch mode
      staging/<film_id>-<key>/    an index being built; parts/ holds finished chunks

A :class:`Film` is a film seen through one of its models (``film.model``; ``film.view(m)`` gives
another): ``film.manifest`` carries that set's model, dim and scale, ``film.embeddings`` its
vectors, so search code reads one model's vectors without knowing there are others.

Format 1 (vectors at the film's top level, one model per film) is migrated once, in place, when a
library is opened for use (``store.open_library``): the vector files are hard-linked into their set, then
the manifest is replaced, then the old names are removed; until the manifest is replaced the old
layout is whole, so an interrupted migration leaves a library the old version still reads.

This module reads the format and checks it (both formats); ``clip_search.store.writer`` is its one writer,
which also recovers interrupted swaps and migrates format 1 when it opens a library. A crash can
leave a staging folder but never a film that looks complete, and a film or set whose files were
damaged afterwards is reported by name (``Library.damaged``) and left out, never allowed to break
the listing of the others.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import time
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import clip_search.config as config
from clip_search.errors import FilmNotFound, FrameSearchError
from clip_search.store.atomic import atomic_write_bytes
from clip_search.video.decode import SamplingSettings
from clip_search.video.subtitles import Dialogue, load_dialogue

FORMAT_VERSION = 2
SET_FORMAT = 1


def fingerprint(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """A content fingerprint that is fast for multi-GB films: size + head, tail and 16 blocks between."""
    p = Path(path)
    size = p.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(p, "rb") as f:
        offsets = sorted({0, max(0, size - block), *[size * i // 17 for i in range(1, 17)]})
        for off in offsets:
            f.seek(off)
            h.update(f.read(block))
    return h.hexdigest()[:32]


def slug(text: str) -> str:
    """A file-system-safe name."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "film"


def film_id_for(path: str | os.PathLike) -> str:
    """Stable id of a source file: readable name plus a hash of its absolute path."""
    p = Path(path).resolve()
    return f"{slug(p.stem)}-{hashlib.sha1(str(p).encode()).hexdigest()[:6]}"


REQUIRED_FIELDS = {"id": str, "name": str, "source": str, "fingerprint": str, "sampling": dict}


def _read_json(path: Path):
    """A film file's JSON; DamagedFilm naming the file when it cannot be read as JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DamagedFilm(f"{path.name} is not readable JSON ({type(e).__name__})") from None


def model_key(model: str) -> str:
    """The folder name of a model's vector set: readable, and unique per model name."""
    return f"{slug(model)[:40]}-{hashlib.sha1(model.encode()).hexdigest()[:8]}"


@dataclass
class VectorSet:
    """One model's vectors of a film: what made them and what they cost (``vectors.json``)."""

    model: str
    dim: int
    logit_scale: float = 100.0
    logit_bias: float = 0.0
    scoring: str = "softmax"  # softmax (CLIP) or sigmoid (SigLIP): the model's score -> probability
    device: str | None = None  # where the model ran (cpu, cuda): which machine price applies
    precision: str | None = None
    frames: int = 0
    indexing_seconds: float | None = None  # this model's share of the run's wall time
    seconds_per_frame: float | None = None  # the model's own time per frame, measured
    completed_at: float | None = None
    format: int = SET_FORMAT
    float32_chunks: int = 0  # chunks whose spot check failed and that were encoded again in float32
    clip_frames: int = 1  # a video model's frames per clip: its clips are in the set's clips.npz
    service_model: str | None = None  # a cloud service's model id and version (vectors bought, not computed)

    @classmethod
    def load(cls, path: Path) -> VectorSet:
        """Read a vectors.json; raises DamagedFilm naming what is wrong."""
        data = _read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("model"), str) or not isinstance(data.get("dim"), int):
            raise DamagedFilm("vectors.json lacks its model or dimension")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass
class Manifest:
    """What is stored about a film; also the key a cached index is compared on."""

    id: str
    name: str
    source: str
    fingerprint: str
    model: str  # in a Film: the model it is seen through; "" in a format-2 manifest.json
    sampling: dict
    patches: dict | None
    dim: int = 0
    logit_scale: float = 100.0
    frames: int = 0
    patches_per_frame: int = 0
    duration: float = 0.0
    width: int = 0
    height: int = 0
    fps: float = 0.0
    status: str = "indexing"
    started_at: float = field(default_factory=time.time)
    completed_at: float | None = None
    indexing_seconds: float | None = None  # wall time of the run that encoded the frames (cost per film-hour)
    device: str | None = None  # where the model ran (cpu, cuda): which machine price applies
    dialogue: dict | None = None  # origin, cue count and any warning of the film's subtitles
    format_version: int = FORMAT_VERSION
    logit_bias: float = 0.0
    scoring: str = "softmax"
    sources: list[str] = field(default_factory=list)  # other paths to the same content, found later

    SET_FIELDS = ("model", "dim", "logit_scale", "logit_bias", "scoring", "device", "indexing_seconds")

    @classmethod
    def imported(
        cls, name: str, model: str, duration: float, source: str | None = None, logit_scale: float = 100.0
    ) -> Manifest:
        """A manifest for vectors made elsewhere (imports, synthetic benchmark libraries), 1 fps."""
        return cls(
            id=slug(name),
            name=name,
            source=source or f"/imported/{name}",
            fingerprint=f"imported:{name}",
            model=model,
            sampling={"mode": "fps", "fps": 1.0},
            patches=None,
            duration=duration,
            logit_scale=logit_scale,
        )

    def key(self) -> dict:
        """The inputs that determine the frames: same key, same film (each model adds its set)."""
        return {
            "fingerprint": self.fingerprint,
            "sampling": self.sampling,
            "patches": self.patches,
            "format_version": FORMAT_VERSION,
        }

    def film_part(self) -> Manifest:
        """This manifest without any model's fields: what a format-2 manifest.json holds."""
        blank = Manifest("", "", "", "", "", {}, None)
        return Manifest(**{**self.to_dict(), **{f: getattr(blank, f) for f in self.SET_FIELDS}})

    def seen_through(self, vs: VectorSet) -> Manifest:
        """This film's manifest carrying one vector set's model fields (what search code reads)."""
        fields = {f: getattr(vs, f) for f in self.SET_FIELDS}
        return Manifest(**{**self.to_dict(), **fields})

    def vector_set(self) -> VectorSet:
        """The model fields of a format-1 manifest as a vector set (what migration writes)."""
        return VectorSet(
            model=self.model,
            dim=self.dim,
            logit_scale=self.logit_scale,
            device=self.device,
            frames=self.frames,
            indexing_seconds=self.indexing_seconds,
            seconds_per_frame=(self.indexing_seconds / self.frames) if self.indexing_seconds and self.frames else None,
            completed_at=self.completed_at,
        )

    def key_hash(self) -> str:
        """Short hash of :meth:`key` (names a staging folder)."""
        return hashlib.sha1(json.dumps(self.key(), sort_keys=True).encode()).hexdigest()[:10]

    def sampling_settings(self):
        """The film's :class:`~clip_search.video.decode.SamplingSettings` (the one reading of ``sampling``)."""
        return SamplingSettings.from_key(self.sampling)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read a manifest.json; raises DamagedFilm naming what is wrong (unknown keys are ignored)."""
        data = _read_json(path)
        if not isinstance(data, dict):
            raise DamagedFilm(f"manifest.json holds a {type(data).__name__}, not an object")
        bad = [k for k, t in REQUIRED_FIELDS.items() if not isinstance(data.get(k), t)]
        if bad:
            raise DamagedFilm(f"manifest.json lacks or has wrong types for: {', '.join(bad)}")
        known = {f for f in cls.__dataclass_fields__}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as e:
            raise DamagedFilm(f"manifest.json is incomplete ({e})") from None

    def to_dict(self) -> dict:
        """Plain dict (JSON-ready)."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


class DamagedFilm(FrameSearchError):
    """A film folder whose files do not agree with its manifest (the message says what)."""


SAMPLED_ROWS = 64  # vectors read on every load of a film (films --check reads them all)


def _npy_shape(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a .npy file, checked against its size without reading the data."""
    if not path.is_file():
        raise DamagedFilm(f"{path.name} is missing")
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError) as e:
        raise DamagedFilm(f"{path.name} is truncated or not a NumPy array ({str(e)[:80]})") from None
    return arr.shape, arr.dtype


def check_film(film_dir: Path, deep: bool = False) -> Manifest:
    """Verify that a film folder is complete and consistent; return its manifest or raise DamagedFilm.

    Checks the manifest's fields, that times strictly increase, that the thumbnails cover every
    frame, that dialogue.json parses, and that at least one vector set is sound (each set is
    checked by :func:`check_set`; ``deep`` reads every vector: slower, for ``films --check``)."""
    return check_record(film_dir, deep).manifest


def check_record(film_dir: Path, deep: bool = False) -> FilmRecord:
    """:func:`check_film`, giving the film's manifest and every set, sound or not."""
    m = _check_frames(film_dir)
    sets = film_sets(film_dir, m, deep)
    if not any(isinstance(v, VectorSet) for _, v in sets.values()):
        problems = "; ".join(f"{model or 'vectors'}: {v}" for model, (_, v) in sets.items())
        raise DamagedFilm(problems or "it has no vector set")
    return FilmRecord(m, sets)


def _check_frames(film_dir: Path) -> Manifest:
    """The film's own files (manifest, times, thumbnails, dialogue), without any vectors."""
    m = Manifest.load(film_dir / "manifest.json")
    if m.status != "complete":
        raise DamagedFilm(f"manifest status is {m.status!r}, not 'complete'")
    try:
        m.sampling_settings()
    except (TypeError, ValueError) as e:
        raise DamagedFilm(f"manifest sampling is invalid ({e})") from None
    n = m.frames
    if not isinstance(n, int) or n <= 0:
        raise DamagedFilm(f"manifest says {n!r} frames")
    shape, _ = _npy_shape(film_dir / "times.npy")
    if shape != (n,):
        raise DamagedFilm(f"times.npy holds {shape} times for {n} frames")
    times = np.load(film_dir / "times.npy")
    if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
        raise DamagedFilm("times.npy is not strictly increasing")
    shape, _ = _npy_shape(film_dir / "thumb_offsets.npy")
    if shape != (n + 1,):
        raise DamagedFilm(f"thumb_offsets.npy has {shape[0] if shape else 0} entries for {n} frames")
    offsets = np.load(film_dir / "thumb_offsets.npy")
    thumbs = film_dir / "thumbs.bin"
    size = thumbs.stat().st_size if thumbs.is_file() else -1
    # frames stored again larger (``upgrade_thumbnails``) follow the old ones in the file: the offsets
    # may start past 0, but never run past its end
    if offsets[0] < 0 or np.any(np.diff(offsets) < 0) or int(offsets[-1]) > size:
        raise DamagedFilm(f"thumbs.bin is {max(size, 0)} bytes, the offsets need {int(offsets[-1])}")
    if (film_dir / "dialogue.json").exists():
        _read_dialogue(film_dir / "dialogue.json")
    return m


def film_sets(film_dir: Path, m: Manifest, deep: bool = False) -> dict[str, tuple[Path, VectorSet | DamagedFilm]]:
    """Every vector set of a film by model: its folder and its record, or what is wrong with it.

    A format-1 film has one set, its top-level files, described by its manifest."""
    if m.format_version < 2:
        found = {m.model: (film_dir, m.vector_set())}
    else:
        found = {}
        root = film_dir / "vectors"
        for d in sorted(root.iterdir()) if root.is_dir() else []:
            if not d.is_dir() or d.name.startswith("."):
                continue
            try:
                vs = VectorSet.load(d / "vectors.json")
            except DamagedFilm as e:
                found[f"?{d.name}"] = (d, e)
                continue
            found[vs.model] = (d, vs)
    for model, (d, vs) in found.items():
        if isinstance(vs, VectorSet):
            try:
                check_set(d, vs, m.frames, m.patches_per_frame, deep)
            except DamagedFilm as e:
                found[model] = (d, e)
    return found


def check_set(set_dir: Path, vs: VectorSet, n: int, patches_per_frame: int, deep: bool = False) -> None:
    """One vector set against its film: shapes, and finite unit vectors (sampled, or all if ``deep``)."""
    dim = vs.dim
    if not isinstance(dim, int) or dim <= 0:
        raise DamagedFilm(f"vectors of dimension {dim!r}")
    shape, dtype = _npy_shape(set_dir / "embeddings.npy")
    if shape != (n, dim) or dtype != np.float32:
        raise DamagedFilm(f"embeddings.npy is {shape} {dtype}, the manifest says ({n}, {dim}) float32")
    if patches_per_frame:
        shape, _ = _npy_shape(set_dir / "patch_embeddings.npy")
        if shape != (n * patches_per_frame, dim):
            raise DamagedFilm(f"patch_embeddings.npy is {shape}, expected ({n * patches_per_frame}, {dim})")
    if vs.clip_frames > 1:
        clips = read_clips(set_dir, n)
        if clips is None or clips.frame_times.shape[1] != vs.clip_frames:
            raise DamagedFilm(f"clips.npz is missing or damaged, or not of {vs.clip_frames}-frame clips of {n} frames")
    emb = np.load(set_dir / "embeddings.npy", mmap_mode="r")
    sample = np.unique(np.linspace(0, n - 1, min(n, SAMPLED_ROWS)).astype(np.int64))  # cheap: on every load
    for lo, block in ((0, emb[sample]),) if not deep else ((lo, emb[lo : lo + 65536]) for lo in range(0, n, 65536)):
        block = np.asarray(block, np.float32)
        where = "sampled rows of " if not deep else ""
        if not np.all(np.isfinite(block)):
            raise DamagedFilm(f"{where}embeddings.npy have non-finite values (near frame {lo})")
        if np.any(np.abs(np.linalg.norm(block, axis=1) - 1) > 1e-3):
            raise DamagedFilm(f"{where}embeddings.npy have vectors that are not unit length (near frame {lo})")


CLIPS = "clips.npz"  # a video model's set: segments (C, 2), frame_times (C, F), clip_of (N,)


@dataclass(frozen=True)
class Clips:
    """A video model's clips of a film: ``segments`` (C, 2) [start, end] seconds, ``frame_times``
    (C, F) the times of the frames each clip's vector was computed from, ``clip_of`` (N,) the clip
    of each sampled frame (whose stored vector is its clip's)."""

    segments: np.ndarray
    frame_times: np.ndarray
    clip_of: np.ndarray

    def per_frame(self) -> tuple[np.ndarray, np.ndarray]:
        """Each frame's clip [start, end] (N, 2) and clip frame times (N, F): what ``export`` writes."""
        return self.segments[self.clip_of], self.frame_times[self.clip_of]


def read_clips(set_dir: Path, n: int) -> Clips | None:
    """A set's clips when they read back whole and fit its ``n`` frames (one clip per frame, clips
    in time order, each frame's clip index in range), else None."""
    try:
        with np.load(set_dir / CLIPS) as z:
            segments = np.asarray(z["segments"], np.float64)
            frame_times = np.asarray(z["frame_times"], np.float64)
            clip_of = np.asarray(z["clip_of"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
        return None
    c = len(segments)
    fits = (
        segments.ndim == 2
        and segments.shape[1] == 2
        and frame_times.ndim == 2
        and len(frame_times) == c
        and clip_of.shape == (n,)
        and clip_of.dtype.kind in "iu"
        and (n == 0 or (clip_of.min() >= 0 and clip_of.max() < c and np.all(np.diff(clip_of) >= 0)))
        and np.all(np.isfinite(segments))
        and np.all(segments[:, 1] >= segments[:, 0])
    )
    return Clips(segments, frame_times, clip_of.astype(np.int64)) if fits else None


def _read_dialogue(path: Path):
    try:
        return Dialogue.from_dict(json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError, KeyError) as e:
        raise DamagedFilm(f"dialogue.json is damaged ({type(e).__name__})") from None


@dataclass(frozen=True)
class FilmRecord:
    """A checked film: its manifest (no model's fields) and its sets, sound or not."""

    manifest: Manifest
    sets: dict[str, tuple[Path, VectorSet | DamagedFilm]]

    def sound(self) -> dict[str, tuple[Path, VectorSet]]:
        return {m: (d, v) for m, (d, v) in self.sets.items() if isinstance(v, VectorSet)}


_checked: dict[Path, tuple[tuple, FilmRecord | DamagedFilm]] = {}


def _stamp(film_dir: Path) -> tuple:
    """Size and mtime of every file of a film and of its sets: a re-check is needed only when one changes."""
    try:
        entries = [(e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(film_dir)]
        sets = film_dir / "vectors"
        if sets.is_dir():
            for d in os.scandir(sets):
                if d.is_dir():
                    entries += [(f"{d.name}/{e.name}", e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(d)]
        return tuple(sorted(entries))
    except OSError:
        return ()


def checked_record(film_dir: Path) -> FilmRecord:
    """:func:`check_film` with its sets, remembered until a file of the film changes (listings stay cheap)."""
    stamp = _stamp(film_dir)
    cached = _checked.get(film_dir)
    if cached is None or cached[0] != stamp:
        try:
            result: FilmRecord | DamagedFilm = check_record(film_dir)
        except DamagedFilm as e:
            result = e
        except OSError as e:
            result = DamagedFilm(f"cannot be read ({e.strerror or e})")
        cached = (stamp, result)
        _checked[film_dir] = cached
    if isinstance(cached[1], DamagedFilm):
        raise cached[1]
    return cached[1]


def checked_manifest(film_dir: Path) -> Manifest:
    """The film's manifest, checked (see :func:`checked_record`)."""
    return checked_record(film_dir).manifest


def preferred_model(sets: dict[str, VectorSet], preferred: str | None = None) -> str:
    """Which of a film's models it is seen through by default: ``preferred`` (the model the user
    chose, at the edge) if it has it, else the first it was indexed with."""
    if preferred in sets:
        return preferred
    return min(sets, key=lambda m: (sets[m].completed_at or 0, m))


class Thumbnails:
    """JPEG thumbnails stored back to back in one file, addressed by frame index."""

    def __init__(self, film_dir: Path) -> None:
        self.path = film_dir / "thumbs.bin"
        self.offsets = np.load(film_dir / "thumb_offsets.npy")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> bytes:
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(end - start)


class MissingVectors(FrameSearchError):
    """A film that has no vectors of the model asked for (the message says how to add them)."""


def add_model_command(film_source: str, model: str) -> str:
    """The command that adds ``model``'s vectors to an indexed film (what a missing set names)."""
    return f"python -m clip_search index {shlex.quote(film_source)} --model {shlex.quote(model)}"


def lacks_vectors(name: str, source: str, model: str) -> str:
    """The one line naming a film without ``model``'s vectors, and the command that adds them."""
    return f"{name} has no {model} vectors; add them with: {add_model_command(source, model)}"


class Vectors:
    """One model's vectors of a film's frames: the set's description (model, dimension, scoring,
    how it was made) and its arrays, memory-mapped when first read. The film owns times,
    thumbnails, shots and dialogue; this owns what one model made of them."""

    def __init__(self, folder: Path, vector_set: VectorSet, patches_per_frame: int = 0) -> None:
        self.dir, self.set, self.patches_per_frame = folder, vector_set, patches_per_frame
        self._embeddings: np.ndarray | None = None
        self._patches: np.ndarray | None = None

    @property
    def model(self) -> str:
        return self.set.model

    @property
    def embeddings(self) -> np.ndarray:
        """(N, D) float32 unit vectors, memory-mapped."""
        if self._embeddings is None:
            # a plain ndarray over the mapping: np.memmap's Python-level indexing costs ~20 us a call,
            # and archive search gathers from a hundred films per query
            self._embeddings = np.asarray(np.load(self.dir / "embeddings.npy", mmap_mode="r"))
        return self._embeddings

    @property
    def clips(self) -> Clips | None:
        """A video model's clips (which frames each vector was computed from); None for an image model."""
        if self.set.clip_frames <= 1:
            return None
        return read_clips(self.dir, self.set.frames)

    @property
    def patch_embeddings(self) -> np.ndarray | None:
        """(N * P, D) patch vectors in patch mode, else None."""
        if not self.patches_per_frame:
            return None
        if self._patches is None:
            self._patches = np.asarray(np.load(self.dir / "patch_embeddings.npy", mmap_mode="r"))
        return self._patches


class Film:
    """A complete film in the library seen through one of its models (``model``; default: the
    configured model if the film has it, else the first it was indexed with).

    ``manifest`` carries that model's fields (model, dim, logit scale, device, indexing time);
    ``embeddings`` and ``patch_embeddings`` are that model's, memory-mapped; ``view`` gives the
    same film through another model. Times, thumbnails and dialogue are the film's own."""

    def __init__(
        self, film_dir: Path, record: FilmRecord | None = None, model: str | None = None, preferred: str | None = None
    ) -> None:
        self.dir = film_dir
        self.record = record or checked_record(film_dir)
        sets = self.record.sound()
        if not sets:
            raise DamagedFilm(f"{film_dir.name} has no sound vector set")
        self.model = model if model is not None else preferred_model({m: v for m, (_, v) in sets.items()}, preferred)
        if self.model not in sets:
            m = self.record.manifest
            raise MissingVectors(lacks_vectors(m.name, m.source, self.model))
        self.set_dir, self.vector_set = sets[self.model]
        self.manifest = self.record.manifest.seen_through(self.vector_set)
        self._vectors: dict[str, Vectors] = {}
        self._times: np.ndarray | None = None
        self._thumbs: Thumbnails | None = None

    @property
    def models(self) -> list[str]:
        """Every model this film has sound vectors of, the first indexed first."""
        sets = self.record.sound()
        return sorted(sets, key=lambda m: (sets[m][1].completed_at or 0, m))

    def has(self, model: str) -> bool:
        return model in self.record.sound()

    def view(self, model: str) -> Film:
        """This film seen through ``model`` (MissingVectors, naming the command, if it has none)."""
        return self if model == self.model else Film(self.dir, self.record, model)

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> tuple[str, float | None, str, float | None]:
        """Changes whenever the film or this model's set is re-indexed: a key for caches of anything
        derived from it."""
        return str(self.dir), self.manifest.completed_at, self.model, self.vector_set.completed_at

    def vectors(self, model: str | None = None) -> Vectors:
        """One model's vectors of this film's frames (default: the model it is seen through);
        MissingVectors, naming the command that adds them, when it has none."""
        model = self.model if model is None else model
        if model not in self._vectors:
            sets = self.record.sound()
            if model not in sets:
                m = self.record.manifest
                raise MissingVectors(lacks_vectors(m.name, m.source, model))
            folder, vs = sets[model]
            self._vectors[model] = Vectors(folder, vs, self.record.manifest.patches_per_frame)
        return self._vectors[model]

    @property
    def embeddings(self) -> np.ndarray:
        """(N, D) float32 unit vectors of the model the film is seen through (``vectors().embeddings``)."""
        return self.vectors().embeddings

    @property
    def times(self) -> np.ndarray:
        """(N,) presentation times in seconds, ascending."""
        if self._times is None:
            self._times = np.load(self.dir / "times.npy")
        return self._times

    @property
    def patch_embeddings(self) -> np.ndarray | None:
        """(N * P, D) patch vectors in patch mode, else None (``vectors().patch_embeddings``)."""
        return self.vectors().patch_embeddings

    def thumbnail(self, i: int) -> bytes:
        """JPEG bytes of frame ``i``'s thumbnail (empty when the thumbnail file is unreadable)."""
        try:
            if self._thumbs is None:
                self._thumbs = Thumbnails(self.dir)
            return self._thumbs[i]
        except (OSError, ValueError, IndexError):
            return b""

    def shots(self) -> np.ndarray | None:
        """The film's shots, (n, 2) [start, end] seconds covering it; None until they are found
        (``index`` finds them, for films indexed before shots existed too)."""
        path = self.dir / "shots.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path) as data:
                shots = np.asarray(data["shots"], np.float64)
        except (OSError, ValueError, KeyError):
            return None
        return shots if shots.ndim == 2 and shots.shape[1] == 2 and len(shots) else None

    def dialogue(self):
        """The film's subtitle cues (stored at index time; read from the source for older indexes).

        A dialogue.json damaged after indexing gives no cues and a warning, never an exception."""
        stored = self.dir / "dialogue.json"
        if stored.is_file():
            try:
                return _read_dialogue(stored)
            except DamagedFilm as e:
                return Dialogue([], None, f"{self.name}: {e}; re-index the film to read its subtitles again.")
        return load_dialogue(self.manifest.source)

    def nearest_frame(self, t: float) -> int:
        """Index of the sampled frame closest to time ``t``."""
        times = self.times
        i = int(np.searchsorted(times, t))
        if i <= 0:
            return 0
        if i >= len(times):
            return len(times) - 1
        return i if times[i] - t < t - times[i - 1] else i - 1


def in_order(films: Sequence[Film]) -> list[Film]:
    """The films in the library's order (by name, then id), each once: equal scores go to the earlier
    film, so a search must not depend on the order a front end happened to list its films in."""
    return sorted({f.id: f for f in films}.values(), key=lambda f: (f.name, f.id))


def _model_counts(films: list[Film], local: bool = False) -> dict[str, int]:
    """How many of ``films`` have each model's vectors (``local``: only models that run here, not a
    cloud service's bought vectors, which cannot be the default: a query would be a paid call)."""
    counts: dict[str, int] = {}
    for f in films:
        sets = f.record.sound()
        for m in f.models:
            if not (local and sets[m][1].service_model):
                counts[m] = counts.get(m, 0) + 1
    return counts


def _default_of(counts: dict[str, int], preferred: str | None) -> str:
    """The default model given how many films have each: ``preferred`` (the user's choice) if any
    film has it (or none has any), else the one most films have."""
    if preferred and (preferred in counts or not counts):
        return preferred
    if not counts:
        return config.DEFAULT_MODEL  # a library with no films, and no choice made: the documented default
    return min(counts, key=lambda m: (-counts[m], m))


def _duplicates(films: list[Film]) -> list[tuple[Film, Film]]:
    """(extra, kept) pairs among ``films``: same content fingerprint and same frames (sampling, patches)."""
    groups: dict[str, list[Film]] = {}
    for f in films:
        groups.setdefault(json.dumps(f.manifest.key(), sort_keys=True), []).append(f)
    pairs = []
    for group in groups.values():
        group.sort(key=lambda f: (-len(f.models), f.manifest.completed_at or 0, f.id))
        pairs += [(extra, group[0]) for extra in group[1:]]
    return pairs


@dataclass(frozen=True)
class Damaged:
    """A film folder that cannot be used, and why (shown to the user by name)."""

    id: str
    dir: Path
    problem: str

    def describe(self) -> str:
        """One line: which film, what is wrong, what to do."""
        return f"{self.id}: damaged ({self.problem}); re-index its source to repair it."


class Library:
    """A folder of indexed films; cheap to construct, reads manifests on demand."""

    def __init__(self, root: str | os.PathLike, model: str | None = None) -> None:
        """``model``: the model the user chose (a front end decides it, from its arguments or its
        session): films are seen through it when they have it, and it is the default engine's."""
        self.root = Path(root)
        self.model = model
        self.films_dir = self.root / "films"
        self.staging_dir = self.root / "staging"
        self.downloads_dir = self.root / "downloads"
        self.uploads_dir = self.root / "uploads"
        self.locks_dir = self.root / "locks"

    def film_dir(self, film_id: str) -> Path:
        """The film's folder (its <id>.old after an interrupted swap, until the writer repairs it)."""
        live = self.films_dir / film_id
        old = self.films_dir / f"{film_id}.old"
        return old if not live.exists() and old.is_dir() else live

    def staging_for(self, manifest: Manifest) -> Path:
        return self.staging_dir / f"{manifest.id}-{manifest.key_hash()}"

    def _folders(self) -> list[Path]:
        """Every film folder; a crash between the two renames of a swap leaves only <id>.old, which
        is read as the film until the writer repairs it (``store.recover``)."""
        if not self.films_dir.is_dir():
            return []
        dirs = [d for d in self.films_dir.iterdir() if d.is_dir()]
        live = {d.name for d in dirs if not d.name.endswith(".old")}
        return sorted(d for d in dirs if not d.name.endswith(".old") or d.name[:-4] not in live)

    def scan(self) -> tuple[list[Film], list[Damaged]]:
        """Healthy films (by name) and damaged ones (by id, with the problem); a damaged vector set
        of a film that has others is listed as ``<id> [<model>]``, its film stays usable. A film is
        its content: of two folders with the same content and frames (indexed from two paths before
        films were found by content), one is listed; :meth:`duplicates` names the other."""
        films, damaged = self._scan()
        extra = {id(f) for f, _ in _duplicates(films)}
        return [f for f in films if id(f) not in extra], damaged

    def duplicates(self) -> list[tuple[Film, Film]]:
        """(extra, kept) for each film folder holding the same content and frames as another one: the
        kept one has the most models, then was indexed first. ``films --dedupe`` merges them."""
        return _duplicates(self._scan()[0])

    def by_content(self, fingerprint: str) -> Film | None:
        """The film of this content (what a second path to the same bytes reuses), if the library has it."""
        return next((f for f in self.scan()[0] if f.manifest.fingerprint == fingerprint), None)

    def _scan(self) -> tuple[list[Film], list[Damaged]]:
        films, damaged = [], []
        for d in self._folders():
            try:
                record = checked_record(d)
                films.append(Film(d, record, preferred=self.model))
            except DamagedFilm as e:
                damaged.append(Damaged(d.name, d, str(e)))
                continue
            for model, (set_dir, vs) in record.sets.items():
                if isinstance(vs, DamagedFilm):
                    damaged.append(Damaged(f"{d.name} [{model.lstrip('?')}]", set_dir, str(vs)))
        return sorted(films, key=lambda f: (f.name, f.id)), damaged

    def films(self, model: str | None = None) -> list[Film]:
        """All complete, healthy films, by name (damaged ones are in :meth:`damaged`); with
        ``model``, those that have its vectors, seen through it."""
        films = self.scan()[0]
        return films if model is None else [f.view(model) for f in films if f.has(model)]

    def damaged(self) -> list[Damaged]:
        """Film folders (and vector sets) that fail their checks, with what is wrong."""
        return self.scan()[1]

    def models(self, films: list[Film] | None = None) -> list[str]:
        """Every model the films (default: the library's) have vectors of, the default first."""
        films = self.films() if films is None else films
        counts = _model_counts(films)
        default = _default_of(_model_counts(films, local=True), self.model)
        return sorted(counts, key=lambda m: (m != default, -counts[m], m))

    def default_model(self, films: list[Film] | None = None) -> str:
        """The library's default model (the engine named ``clip``): the model the user chose if any
        film has it, else the model most films have, else the chosen (or documented) model."""
        return _default_of(_model_counts(self.films() if films is None else films, local=True), self.model)

    def get(self, film_id: str, model: str | None = None) -> Film | None:
        """The complete, healthy film with this id (seen through ``model`` if given and it has
        it), or None."""
        d = self.film_dir(film_id)
        if not d.is_dir():
            return None
        try:
            return Film(d, checked_record(d), model, self.model)
        except (DamagedFilm, MissingVectors):
            return None

    def find(self, ref: str) -> list[Film]:
        """Films matching a reference: id, name, source path or file name; raises FilmNotFound
        (or DamagedFilm when the reference names a damaged film)."""
        films, damaged = self.scan()
        resolved = str(Path(ref).expanduser().resolve()) if ref else ""
        exact = [
            f
            for f in films
            if ref in (f.id, f.name, f.manifest.source, Path(f.manifest.source).name) or f.manifest.source == resolved
        ]
        if exact:
            return exact
        low = ref.lower()
        partial = [f for f in films if low in f.name.lower() or low in f.id]
        if partial:
            return partial
        broken = [d for d in damaged if low in d.id]
        if broken:
            raise DamagedFilm(broken[0].describe())
        names = ", ".join(f.name for f in films) or "the library is empty"
        raise FilmNotFound(f"No indexed film matches '{ref}' (indexed: {names}).")

    def find_one(self, ref: str) -> Film:
        """The single film ``ref`` names; raises FrameSearchError when it names several."""
        matches = self.find(ref)
        if len(matches) > 1:
            raise FrameSearchError(f"'{ref}' matches several films ({', '.join(f.id for f in matches)}); use an id.")
        return matches[0]

    def select(self, refs: list[str] | None) -> list[Film]:
        """The films named by ``refs`` (all films when empty), without duplicates."""
        if not refs:
            return self.films()
        seen: dict[str, Film] = {}
        for r in refs:
            for f in self.find(r):
                seen.setdefault(f.id, f)
        return list(seen.values())

    def store_upload(self, name: str, data: bytes) -> tuple[Path, bool]:
        """Keep uploaded bytes under uploads/<content hash>/<name>; returns (path, newly stored).

        Stored by content, so two uploads with one file name never replace each other and the same
        bytes uploaded twice are one file (and one film)."""
        digest = hashlib.sha256(data).hexdigest()[:16]
        safe = re.sub(r"[^\w.\-]+", "_", Path(name).name).lstrip(".") or "upload"
        target = self.uploads_dir / digest / safe
        if target.is_file() and target.stat().st_size == len(data):
            return target, False
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)
        return target, True

    def discard_upload(self, path: Path) -> None:
        """Remove one rejected upload (only its own folder under uploads/, never anything else)."""
        path = Path(path)
        if path.parent.parent.resolve() == self.uploads_dir.resolve():
            shutil.rmtree(path.parent, ignore_errors=True)

    def model_for(self, films: list[Film], override: str | None = None) -> str:
        """The one rule for which model searches ``films``: an explicit choice, else the library's
        default model (:meth:`default_model`)."""
        return config.model_id(override) if override else self.default_model(films or None)

    @staticmethod
    def through(films: list[Film], model: str) -> tuple[list[Film], list[str]]:
        """``films`` seen through ``model``, and one line for each film that lacks its vectors
        (naming the command that adds them): never hidden silently."""
        have = [f.view(model) for f in films if f.has(model)]
        missing = [lacks_vectors(f.name, f.manifest.source, model) for f in films if not f.has(model)]
        return have, missing

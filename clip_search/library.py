"""The on-disk index: a library folder of films, plain files readable without the app.

Layout::

    library/
      films/<film_id>/            one complete film (only ever appears by an atomic rename)
        manifest.json             source, fingerprint, model, sampling, counts, status
        embeddings.npy            (N, D) float32, L2-normalised
        times.npy                 (N,) float64 presentation times in seconds
        thumbs.bin, thumb_offsets.npy   JPEG thumbnails, one per frame
        patch_embeddings.npy      (N * P, D) float32, only in patch mode
      staging/<film_id>-<key>/    an index being built; parts/ holds finished chunks

This module reads the format and checks it; ``clip_search.store`` is its one writer. A crash can
leave a staging folder but never a film that looks complete, and a film whose files were damaged
afterwards is reported by name (``Library.damaged``) and left out, never allowed to break the
listing of the others.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clip_search.errors import FilmNotFound, FrameSearchError

FORMAT_VERSION = 1


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old content or the new, never a torn one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: dict) -> None:
    """JSON version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True).encode())


def atomic_save_npy(path: Path, arr: np.ndarray) -> None:
    """Save one array atomically (tmp file + rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, arr)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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


REQUIRED_FIELDS = {"id": str, "name": str, "source": str, "fingerprint": str, "model": str, "sampling": dict}


@dataclass
class Manifest:
    """What is stored about a film; also the key a cached index is compared on."""

    id: str
    name: str
    source: str
    fingerprint: str
    model: str
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
        """The inputs that determine the vectors: same key, same index."""
        return {
            "fingerprint": self.fingerprint,
            "model": self.model,
            "sampling": self.sampling,
            "patches": self.patches,
            "format_version": self.format_version,
        }

    def key_hash(self) -> str:
        """Short hash of :meth:`key` (names a staging folder)."""
        return hashlib.sha1(json.dumps(self.key(), sort_keys=True).encode()).hexdigest()[:10]

    def sampling_settings(self):
        """The film's :class:`~clip_search.video.SamplingSettings` (the one reading of ``sampling``)."""
        from clip_search.video import SamplingSettings

        return SamplingSettings.from_key(self.sampling)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read a manifest.json; raises DamagedFilm naming what is wrong (unknown keys are ignored)."""
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DamagedFilm(f"manifest.json is not readable JSON ({type(e).__name__})") from None
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

    Checks the manifest's fields, that every array has the shape the manifest says, that times
    strictly increase, that the thumbnails cover every frame and that dialogue.json parses.
    ``deep`` also reads every vector (finite, unit length): slower, for ``films --check``."""
    m = Manifest.load(film_dir / "manifest.json")
    if m.status != "complete":
        raise DamagedFilm(f"manifest status is {m.status!r}, not 'complete'")
    try:
        m.sampling_settings()
    except (TypeError, ValueError) as e:
        raise DamagedFilm(f"manifest sampling is invalid ({e})") from None
    n, dim = m.frames, m.dim
    if not isinstance(n, int) or not isinstance(dim, int) or n <= 0 or dim <= 0:
        raise DamagedFilm(f"manifest says {n!r} frames of dimension {dim!r}")
    shape, dtype = _npy_shape(film_dir / "embeddings.npy")
    if shape != (n, dim) or dtype != np.float32:
        raise DamagedFilm(f"embeddings.npy is {shape} {dtype}, the manifest says ({n}, {dim}) float32")
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
    if offsets[0] != 0 or np.any(np.diff(offsets) < 0) or int(offsets[-1]) != size:
        raise DamagedFilm(f"thumbs.bin is {max(size, 0)} bytes, the offsets need {int(offsets[-1])}")
    if m.patches_per_frame:
        shape, _ = _npy_shape(film_dir / "patch_embeddings.npy")
        if shape != (n * m.patches_per_frame, dim):
            raise DamagedFilm(f"patch_embeddings.npy is {shape}, expected ({n * m.patches_per_frame}, {dim})")
    if (film_dir / "dialogue.json").exists():
        _read_dialogue(film_dir / "dialogue.json")
    emb = np.load(film_dir / "embeddings.npy", mmap_mode="r")
    sample = np.unique(np.linspace(0, n - 1, min(n, SAMPLED_ROWS)).astype(np.int64))  # cheap: on every load
    for lo, block in ((0, emb[sample]),) if not deep else ((lo, emb[lo : lo + 65536]) for lo in range(0, n, 65536)):
        block = np.asarray(block, np.float32)
        where = "sampled rows of " if not deep else ""
        if not np.all(np.isfinite(block)):
            raise DamagedFilm(f"{where}embeddings.npy have non-finite values (near frame {lo})")
        if np.any(np.abs(np.linalg.norm(block, axis=1) - 1) > 1e-3):
            raise DamagedFilm(f"{where}embeddings.npy have vectors that are not unit length (near frame {lo})")
    return m


def _read_dialogue(path: Path):
    from clip_search.subtitles import Dialogue

    try:
        return Dialogue.from_dict(json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError, KeyError) as e:
        raise DamagedFilm(f"dialogue.json is damaged ({type(e).__name__})") from None


_checked: dict[Path, tuple[tuple, Manifest | DamagedFilm]] = {}


def _stamp(film_dir: Path) -> tuple:
    """Size and mtime of every file of a film: a re-check is needed only when one changes."""
    try:
        return tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(film_dir)))
    except OSError:
        return ()


def checked_manifest(film_dir: Path) -> Manifest:
    """:func:`check_film`, remembered until a file of the film changes (listings stay cheap)."""
    stamp = _stamp(film_dir)
    cached = _checked.get(film_dir)
    if cached is None or cached[0] != stamp:
        try:
            result: Manifest | DamagedFilm = check_film(film_dir)
        except DamagedFilm as e:
            result = e
        except OSError as e:
            result = DamagedFilm(f"cannot be read ({e.strerror or e})")
        cached = (stamp, result)
        _checked[film_dir] = cached
    if isinstance(cached[1], DamagedFilm):
        raise cached[1]
    return cached[1]


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


class Film:
    """A complete film in the library: its manifest and memory-mapped arrays."""

    def __init__(self, film_dir: Path, manifest: Manifest | None = None) -> None:
        self.dir = film_dir
        self.manifest = manifest or Manifest.load(film_dir / "manifest.json")
        self._embeddings: np.ndarray | None = None
        self._times: np.ndarray | None = None
        self._patches: np.ndarray | None = None
        self._thumbs: Thumbnails | None = None

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> tuple[str, float | None]:
        """Changes whenever the film is re-indexed: a key for caches of anything derived from it."""
        return str(self.dir), self.manifest.completed_at

    @property
    def embeddings(self) -> np.ndarray:
        """(N, D) float32 unit vectors, memory-mapped."""
        if self._embeddings is None:
            self._embeddings = np.load(self.dir / "embeddings.npy", mmap_mode="r")
        return self._embeddings

    @property
    def times(self) -> np.ndarray:
        """(N,) presentation times in seconds, ascending."""
        if self._times is None:
            self._times = np.load(self.dir / "times.npy")
        return self._times

    @property
    def patch_embeddings(self) -> np.ndarray | None:
        """(N * P, D) patch vectors in patch mode, else None."""
        if not self.manifest.patches_per_frame:
            return None
        if self._patches is None:
            self._patches = np.load(self.dir / "patch_embeddings.npy", mmap_mode="r")
        return self._patches

    def thumbnail(self, i: int) -> bytes:
        """JPEG bytes of frame ``i``'s thumbnail (empty when the thumbnail file is unreadable)."""
        try:
            if self._thumbs is None:
                self._thumbs = Thumbnails(self.dir)
            return self._thumbs[i]
        except (OSError, ValueError, IndexError):
            return b""

    def dialogue(self):
        """The film's subtitle cues (stored at index time; read from the source for older indexes).

        A dialogue.json damaged after indexing gives no cues and a warning, never an exception."""
        from clip_search.subtitles import Dialogue, load_dialogue

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

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.films_dir = self.root / "films"
        self.staging_dir = self.root / "staging"
        self.downloads_dir = self.root / "downloads"
        self.uploads_dir = self.root / "uploads"
        self.locks_dir = self.root / "locks"
        self._recover()

    def _recover(self) -> None:
        """A crash between the two renames of a swap leaves the previous index as <id>.old.

        Repaired only under the film's lock, so a swap in progress in another process is left alone."""
        if not self.films_dir.is_dir():
            return
        from clip_search.store import FilmBusy, film_lock

        for old in self.films_dir.glob("*.old"):
            live = old.with_suffix("")
            try:
                with film_lock(self, live.name, wait=0):
                    if live.exists():
                        shutil.rmtree(old, ignore_errors=True)
                    elif old.exists():
                        os.replace(old, live)
            except (FilmBusy, OSError):
                continue

    def film_dir(self, film_id: str) -> Path:
        return self.films_dir / film_id

    def staging_for(self, manifest: Manifest) -> Path:
        return self.staging_dir / f"{manifest.id}-{manifest.key_hash()}"

    def _folders(self) -> list[Path]:
        if not self.films_dir.is_dir():
            return []
        return sorted(d for d in self.films_dir.iterdir() if d.is_dir() and not d.name.endswith(".old"))

    def scan(self) -> tuple[list[Film], list[Damaged]]:
        """Healthy films (by name) and damaged ones (by id, with the problem)."""
        films, damaged = [], []
        for d in self._folders():
            try:
                films.append(Film(d, checked_manifest(d)))
            except DamagedFilm as e:
                damaged.append(Damaged(d.name, d, str(e)))
        return sorted(films, key=lambda f: (f.name, f.id)), damaged

    def films(self) -> list[Film]:
        """All complete, healthy films, by name (damaged ones are in :meth:`damaged`)."""
        return self.scan()[0]

    def damaged(self) -> list[Damaged]:
        """Film folders that fail :func:`check_film`, with what is wrong."""
        return self.scan()[1]

    def get(self, film_id: str) -> Film | None:
        """The complete, healthy film with this id, or None."""
        d = self.film_dir(film_id)
        if not d.is_dir():
            return None
        try:
            return Film(d, checked_manifest(d))
        except DamagedFilm:
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
        """The one rule for which CLIP model searches ``films``: an explicit choice, else the model
        they were all indexed with, else the configured default; several models is an error."""
        from clip_search import config

        if override:
            return config.model_id(override)
        models = sorted({f.manifest.model for f in films})
        if len(models) > 1:
            raise FrameSearchError(
                f"These films were indexed with different models ({', '.join(models)}); "
                "choose films of one model, or name the model."
            )
        return models[0] if models else config.model_id()

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

A crash can leave a staging folder but never a film that looks complete; the next run with the
same settings continues from the chunks already written.
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

from clip_search.errors import FilmNotFound

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
    indexing_seconds: float | None = None
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

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read a manifest.json (unknown keys from newer versions are ignored)."""
        data = json.loads(path.read_text())
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict:
        """Plain dict (JSON-ready)."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


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

    def __init__(self, film_dir: Path) -> None:
        self.dir = film_dir
        self.manifest = Manifest.load(film_dir / "manifest.json")
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
        """JPEG bytes of frame ``i``'s thumbnail."""
        if self._thumbs is None:
            self._thumbs = Thumbnails(self.dir)
        return self._thumbs[i]

    def dialogue(self):
        """The film's subtitle cues (stored at index time; read from the source for older indexes)."""
        from clip_search.subtitles import Dialogue, load_dialogue

        stored = self.dir / "dialogue.json"
        if stored.is_file():
            return Dialogue.from_dict(json.loads(stored.read_text()))
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


class Library:
    """A folder of indexed films; cheap to construct, reads manifests on demand."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.films_dir = self.root / "films"
        self.staging_dir = self.root / "staging"
        self.downloads_dir = self.root / "downloads"
        self._recover()

    def _recover(self) -> None:
        # A crash between the two renames of a swap leaves the previous index as <id>.old.
        if not self.films_dir.is_dir():
            return
        for old in self.films_dir.glob("*.old"):
            live = old.with_suffix("")
            if live.exists():
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(old, live)

    def film_dir(self, film_id: str) -> Path:
        return self.films_dir / film_id

    def staging_for(self, manifest: Manifest) -> Path:
        return self.staging_dir / f"{manifest.id}-{manifest.key_hash()}"

    def films(self) -> list[Film]:
        """All complete films, by name."""
        if not self.films_dir.is_dir():
            return []
        out = []
        for d in sorted(self.films_dir.iterdir()):
            if d.is_dir() and not d.name.endswith(".old") and (d / "manifest.json").is_file():
                try:
                    out.append(Film(d))
                except (OSError, ValueError, TypeError):
                    continue  # a foreign or damaged folder is not a film; never crash the listing
        return sorted(out, key=lambda f: (f.name, f.id))

    def get(self, film_id: str) -> Film | None:
        """The complete film with this id, or None."""
        d = self.film_dir(film_id)
        return Film(d) if (d / "manifest.json").is_file() else None

    def find(self, ref: str) -> list[Film]:
        """Films matching a reference: id, name, source path or file name; raises FilmNotFound."""
        films = self.films()
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
        names = ", ".join(f.name for f in films) or "the library is empty"
        raise FilmNotFound(f"No indexed film matches '{ref}' (indexed: {names}).")

    def select(self, refs: list[str] | None) -> list[Film]:
        """The films named by ``refs`` (all films when empty), without duplicates."""
        if not refs:
            return self.films()
        seen: dict[str, Film] = {}
        for r in refs:
            for f in self.find(r):
                seen.setdefault(f.id, f)
        return list(seen.values())

    def publish(self, staging: Path, film_id: str) -> Film:
        """Make a finished staging folder the film's live index, replacing any older one."""
        self.films_dir.mkdir(parents=True, exist_ok=True)
        live = self.film_dir(film_id)
        old = live.with_name(live.name + ".old")
        if live.exists():
            os.replace(live, old)
        os.replace(staging, live)
        shutil.rmtree(old, ignore_errors=True)
        return Film(live)

    def add_vectors(
        self, manifest: Manifest, embeddings: np.ndarray, times: np.ndarray, thumbnails: list[bytes] | None = None
    ) -> Film:
        """Store precomputed vectors as a complete film (imports, synthetic benchmark libraries)."""
        staging = self.staging_for(manifest)
        staging.mkdir(parents=True, exist_ok=True)
        emb = np.asarray(embeddings, np.float32)
        np.save(staging / "embeddings.npy", emb)
        np.save(staging / "times.npy", np.asarray(times, np.float64))
        thumbs = thumbnails or [b""] * len(emb)
        (staging / "thumbs.bin").write_bytes(b"".join(thumbs))
        np.save(staging / "thumb_offsets.npy", np.concatenate([[0], np.cumsum([len(t) for t in thumbs])]))
        manifest.frames, manifest.dim, manifest.status = len(emb), emb.shape[1], "complete"
        manifest.completed_at = time.time()
        atomic_write_json(staging / "manifest.json", manifest.to_dict())
        return self.publish(staging, manifest.id)

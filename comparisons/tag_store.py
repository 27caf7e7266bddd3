"""Never pay twice: every tagger result is kept on disk, per film, frame time, service, features
and service model version. One JSON line per frame, appended and flushed as soon as it arrives,
so an interrupted run keeps everything it paid for and the next run resumes. Credentials are
never part of what is stored."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from clip_search.library import Film, Library
from comparisons.taggers.base import Tag


def _key(film: Film, service: str, features: tuple[str, ...]) -> str:
    m = film.manifest
    raw = json.dumps([m.fingerprint, m.sampling, service, sorted(features)], sort_keys=True)
    return hashlib.sha1(raw.encode()).hexdigest()[:12]


class TagStore:
    """Tags of one film by one service with one feature set: {frame time: tags}."""

    def __init__(self, library: Library, film: Film, service: str, features: tuple[str, ...]) -> None:
        self.film = film
        self.service = service
        self.dir = library.root / "tags" / film.id
        self.path = self.dir / f"{service}-{_key(film, service, features)}.jsonl"
        self._lock = threading.Lock()
        self.meta = {
            "film_id": film.id,
            "fingerprint": film.manifest.fingerprint,
            "service": service,
            "features": list(features),
            "sampling": film.manifest.sampling,
        }

    def load(self) -> dict[float, list[Tag]]:
        """Frames tagged so far (a torn last line from a crash is ignored)."""
        return _read(self.path)

    def add(self, time: float, tags: list[Tag], model_version: str) -> None:
        """Append one frame's tags durably (flushed and fsynced before returning)."""
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists()
            with open(self.path, "a") as f:
                if new:
                    f.write(json.dumps({"meta": self.meta}) + "\n")
                f.write(
                    json.dumps(
                        {"time": round(time, 3), "model_version": model_version, "tags": [t.to_dict() for t in tags]}
                    )
                    + "\n"
                )
                f.flush()
                os.fsync(f.fileno())


def _read(path: Path) -> dict[float, list[Tag]]:
    out: dict[float, list[Tag]] = {}
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "time" in row:
            out[round(float(row["time"]), 3)] = [Tag(**t) for t in row["tags"]]
    return out


def _meta(path: Path) -> dict:
    try:
        with open(path) as f:
            return json.loads(f.readline()).get("meta", {})
    except (json.JSONDecodeError, OSError):
        return {}


def _current(meta: dict, film: Film) -> bool:
    return meta.get("fingerprint") == film.manifest.fingerprint and meta.get("sampling") == film.manifest.sampling


def tagged_services(library: Library, film: Film) -> list[str]:
    """Services that have tags stored for ``film`` (its current index)."""
    d = library.root / "tags" / film.id
    metas = [_meta(p) for p in sorted(d.glob("*.jsonl"))] if d.is_dir() else []
    return sorted({m["service"] for m in metas if _current(m, film)})


def load_tags(library: Library, film: Film, service: str) -> dict[float, list[Tag]]:
    """All stored tags of ``film`` by ``service`` (whatever feature set), by frame time."""
    d = library.root / "tags" / film.id
    out: dict[float, list[Tag]] = {}
    for p in sorted(d.glob(f"{service}-*.jsonl")) if d.is_dir() else []:
        if _current(_meta(p), film):
            out.update(_read(p))
    return out

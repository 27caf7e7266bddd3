"""Never pay twice: every tagger response is kept in one SQLite database per library
(``library/tags.sqlite``, WAL mode, safe for several processes at once).

One row per response, keyed by (film content fingerprint, frame time in ms, service, feature,
requested model version), upserted as soon as the response arrives. A service that makes several
calls per frame (Rekognition: labels, celebrities, text) stores each call's result on its own, so
when one call fails the others are kept and a rerun asks only for what is missing. Credentials are
never part of what is stored. Tag caches of older versions (``tags/<film>/*.jsonl``) are imported
once, automatically."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from clip_search.library import Film, Library
from clip_search.timecode import time_key
from comparisons.taggers.base import Tag

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    fingerprint TEXT NOT NULL,      -- the film's content (same bytes, same frames, wherever they live)
    time_ms INTEGER NOT NULL,       -- the sampled frame's presentation time (clip_search.timecode.time_key)
    service TEXT NOT NULL,          -- offline, azure, rekognition
    feature TEXT NOT NULL,          -- one paid unit of work (a call), e.g. labels; '*' = all (legacy import)
    model_version TEXT NOT NULL,    -- the service model asked for
    served_version TEXT,            -- the model version the service reported, if any
    film_id TEXT,
    tags TEXT NOT NULL,             -- JSON list of {kind, text, confidence}
    created REAL NOT NULL,
    PRIMARY KEY (fingerprint, time_ms, service, feature, model_version)
);
CREATE INDEX IF NOT EXISTS by_service ON responses (fingerprint, service);
CREATE TABLE IF NOT EXISTS runs (   -- how long tagging took, for the cost per film-hour of local taggers
    fingerprint TEXT NOT NULL,
    service TEXT NOT NULL,
    frames INTEGER NOT NULL,
    seconds REAL NOT NULL,
    created REAL NOT NULL
);
"""
ALL_FEATURES = "*"


class TagStore:
    """The library's tag database. Thread-safe; each process opens its own connection."""

    def __init__(self, library: Library, readonly: bool = False) -> None:
        self.library = library
        self.path = library.root / "tags.sqlite"
        self._lock = threading.Lock()
        if readonly and not self.path.is_file():
            self._db = sqlite3.connect(":memory:", check_same_thread=False)
            self._db.executescript(SCHEMA)
            return
        library.root.mkdir(parents=True, exist_ok=True)
        uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
        self._db = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False, isolation_level=None)
        if not readonly:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            _import_legacy(self)

    def close(self) -> None:
        self._db.close()

    def put(
        self,
        film: Film,
        t: float,
        service: str,
        feature: str,
        model_version: str,
        tags: list[Tag],
        served_version: str | None = None,
    ) -> None:
        """Store one response durably (an upsert: a retried call replaces its earlier row)."""
        row = (
            film.manifest.fingerprint,
            time_key(t),
            service,
            feature,
            model_version,
            served_version,
            film.id,
            json.dumps([tag.to_dict() for tag in tags]),
            time.time(),
        )
        with self._lock:
            self._db.execute(
                "INSERT INTO responses VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT"
                "(fingerprint, time_ms, service, feature, model_version) DO UPDATE SET "
                "served_version=excluded.served_version, film_id=excluded.film_id, tags=excluded.tags, "
                "created=excluded.created",
                row,
            )

    def done(self, film: Film, service: str, model_version: str) -> dict[int, set[str]]:
        """Features already stored per frame-time key for this service and model version."""
        with self._lock:
            rows = self._db.execute(
                "SELECT time_ms, feature FROM responses WHERE fingerprint=? AND service=? "
                "AND (model_version=? OR feature='*')",
                (film.manifest.fingerprint, service, model_version),
            ).fetchall()
        out: dict[int, set[str]] = {}
        for t, feature in rows:
            out.setdefault(t, set()).add(feature)
        return out

    def missing(self, film: Film, service: str, model_version: str, features: Iterable[str]) -> dict[int, list[str]]:
        """Per frame of the film (by time key): the features not yet stored, for frames that lack any."""
        done = self.done(film, service, model_version)
        wanted = list(features)
        out = {}
        for t in film.times:
            have = done.get(time_key(t), set())
            if ALL_FEATURES not in have:
                todo = [f for f in wanted if f not in have]
                if todo:
                    out[time_key(t)] = todo
        return out

    def tags(self, film: Film, service: str) -> dict[int, list[Tag]]:
        """Every stored tag of ``film`` by ``service`` per frame-time key (newest response per feature)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT time_ms, feature, tags FROM responses WHERE fingerprint=? AND service=? ORDER BY created",
                (film.manifest.fingerprint, service),
            ).fetchall()
        latest: dict[tuple[int, str], str] = {}
        for t, feature, tags in rows:
            latest[(t, feature)] = tags
        out: dict[int, list[Tag]] = {}
        for (t, _), tags in latest.items():
            try:
                out.setdefault(t, []).extend(Tag(**d) for d in json.loads(tags))
            except (ValueError, TypeError):
                out.setdefault(t, [])
        return out

    def record_run(self, film: Film, service: str, frames: int, seconds: float) -> None:
        """Remember how long tagging ``frames`` frames took (measured, for the cost per film-hour)."""
        if frames:
            with self._lock:
                self._db.execute(
                    "INSERT INTO runs VALUES (?,?,?,?,?)",
                    (film.manifest.fingerprint, service, frames, seconds, time.time()),
                )

    def seconds_per_frame(self, service: str) -> float | None:
        """Measured tagging time per frame of ``service`` over every run in this library, or None."""
        with self._lock:
            frames, seconds = self._db.execute(
                "SELECT COALESCE(SUM(frames), 0), COALESCE(SUM(seconds), 0) FROM runs WHERE service=?", (service,)
            ).fetchone()
        return seconds / frames if frames else None

    def services(self, film: Film) -> list[str]:
        """Services that have stored anything for ``film``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT service FROM responses WHERE fingerprint=?", (film.manifest.fingerprint,)
            ).fetchall()
        return sorted(r[0] for r in rows)

    def version(self, film: Film, service: str) -> tuple[int, float]:
        """(rows, newest write) for a film and service: changes whenever its tags change (a cache key)."""
        with self._lock:
            n, newest = self._db.execute(
                "SELECT COUNT(*), COALESCE(MAX(created), 0) FROM responses WHERE fingerprint=? AND service=?",
                (film.manifest.fingerprint, service),
            ).fetchone()
        return int(n), float(newest)


def load_tags(library: Library, film: Film, service: str) -> dict[int, list[Tag]]:
    """All stored tags of ``film`` by ``service`` per frame-time key (read-only; no database is created)."""
    store = TagStore(library, readonly=True)
    try:
        return store.tags(film, service)
    finally:
        store.close()


def tagged_services(library: Library, film: Film) -> list[str]:
    """Services that have tags stored for ``film``."""
    store = TagStore(library, readonly=True)
    try:
        return store.services(film)
    finally:
        store.close()


def _import_legacy(store: TagStore) -> None:
    """Import ``tags/<film>/<service>-<key>.jsonl`` caches once (each file renamed *.imported)."""
    root = store.library.root / "tags"
    if not root.is_dir():
        return
    films = {f.id: f for f in store.library.films()}
    for path in sorted(root.glob("*/*.jsonl")):
        film = films.get(path.parent.name)
        if film is None:
            continue
        meta, rows = _read_legacy(path)
        if meta.get("fingerprint") != film.manifest.fingerprint:
            continue
        for t, model_version, tags in rows:
            store.put(film, t, meta.get("service", path.stem.split("-")[0]), ALL_FEATURES, model_version, tags)
        path.rename(path.with_suffix(".jsonl.imported"))


def _read_legacy(path: Path) -> tuple[dict, list[tuple[float, str, list[Tag]]]]:
    meta, rows = {}, []
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
            if "meta" in row:
                meta = row["meta"]
            elif "time" in row:
                rows.append((float(row["time"]), row.get("model_version", ""), [Tag(**t) for t in row["tags"]]))
        except (ValueError, TypeError, KeyError):
            continue  # a torn last line from a crash
    return meta, rows

"""Never pay twice: every tagger response is kept in one SQLite database per library
(``library/tags.sqlite``, WAL mode, safe for several processes at once). A cloud embedding service's
answers are kept the same way: a frame's vector per call (table ``vectors``) and a query's vector
per text (``text_vectors``), so a frame or a repeated query is never paid for twice.

One row per response, keyed by (film content fingerprint, frame time in ms, service, feature,
requested model version), upserted as soon as the response arrives. A service that makes several
calls per frame (Rekognition: labels, celebrities, text) stores each call's result on its own, so
when one call fails the others are kept and a rerun asks only for what is missing. Credentials are
never part of what is stored. Tag caches of older versions (``tags/<film>/*.jsonl``) are imported
once, automatically.

A paid response is never lost: a database that another process holds locked is waited for (busy
timeout, then retries for ``LOCKED_PATIENCE`` seconds); if it stays locked, the response is appended
to ``tags-pending.jsonl`` (stored on the next open) and the run stops with one sentence. A damaged
database (junk, truncated) is moved aside as ``tags.sqlite.damaged-<time>`` with one notice and a
new one is started; a full disk is one sentence."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from clip_search.store.library import Film, Library
from clip_search.store.locks import film_lock
from clip_search.timecode import time_key
from tagging.taggers.base import FatalTaggerError, Tag

UPSERT = (
    "INSERT INTO responses VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT"
    "(fingerprint, time_ms, service, feature, model_version) DO UPDATE SET "
    "served_version=excluded.served_version, film_id=excluded.film_id, tags=excluded.tags, "
    "created=excluded.created"
)
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
CREATE TABLE IF NOT EXISTS vectors (  -- a cloud embedding service's vector of one frame: one paid call
    fingerprint TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    service TEXT NOT NULL,          -- the engine it is for, e.g. cloud:titan
    model_version TEXT NOT NULL,    -- the service's model id and version, e.g. amazon.titan-embed-image-v1@G1
    film_id TEXT,
    vector BLOB NOT NULL,           -- float32, unit length, as checked when it arrived
    created REAL NOT NULL,
    PRIMARY KEY (fingerprint, time_ms, service, model_version)
);
CREATE TABLE IF NOT EXISTS text_vectors (  -- a query's vector by a service: a repeated query costs nothing
    service TEXT NOT NULL,
    model_version TEXT NOT NULL,
    text TEXT NOT NULL,
    vector BLOB NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (service, model_version, text)
);
CREATE TABLE IF NOT EXISTS runs (   -- how long tagging took, for the cost per film-hour of local taggers
    fingerprint TEXT NOT NULL,
    service TEXT NOT NULL,
    frames INTEGER NOT NULL,
    seconds REAL NOT NULL,
    created REAL NOT NULL
);
"""
ALL_FEATURES = "*"
VECTOR = "embedding"  # the one feature of an embedding service: its response is a vector (table vectors)
VECTOR_UPSERT = "INSERT OR REPLACE INTO vectors VALUES (?,?,?,?,?,?,?)"
TEXT_UPSERT = "INSERT OR REPLACE INTO text_vectors VALUES (?,?,?,?,?)"
BUSY_TIMEOUT = 30.0  # seconds SQLite itself waits for another process's lock
LOCKED_PATIENCE = 120.0  # seconds a write keeps retrying a locked database before the response is spilled
PENDING = "tags-pending.jsonl"  # paid responses that could not be written yet


def _memory() -> sqlite3.Connection:
    """An empty store in memory: what a reader sees where there is no readable database."""
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.executescript(SCHEMA)
    return db


def _locked(e: sqlite3.Error) -> bool:
    return isinstance(e, sqlite3.OperationalError) and ("locked" in str(e) or "busy" in str(e))


def _full(e: sqlite3.Error) -> bool:
    return "disk is full" in str(e) or "disk I/O error" in str(e)


class TagStore:
    """The library's tag database. Thread-safe; each process opens its own connection.

    ``notice`` says, in one line, when a damaged database was moved aside on opening."""

    def __init__(
        self,
        library: Library,
        readonly: bool = False,
        busy_timeout: float = BUSY_TIMEOUT,
        patience: float | None = None,
    ) -> None:
        self.library = library
        self.path = library.root / "tags.sqlite"
        self.readonly, self.busy_timeout = readonly, busy_timeout
        self.patience = LOCKED_PATIENCE if patience is None else patience
        self.notice: str | None = None
        self._lock = threading.Lock()
        self._db = self._open()
        if not readonly:
            _import_legacy(self)
            self._store_pending()

    def _open(self) -> sqlite3.Connection:
        """Connect. A writer checks every page under the cache's cross-process lock and moves a
        damaged database aside (once); a reader never moves anything (the file may be another
        process's database being created): one it cannot read reads as empty, with a notice."""
        if self.readonly:
            if not self.path.is_file():
                return _memory()
            db = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, timeout=self.busy_timeout, check_same_thread=False
            )
            try:
                db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
                return db
            except sqlite3.Error as e:
                db.close()
                if _locked(e):
                    raise self._error(e) from None
                self.notice = f"The tag cache {self.path.name} cannot be read ({e}); tag engines see no tags."
                return _memory()

        with film_lock(self.library, "_tags-sqlite", wait=None):
            for attempt in (1, 2):
                self.library.root.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(
                    self.path, timeout=self.busy_timeout, check_same_thread=False, isolation_level=None
                )
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("PRAGMA synchronous=NORMAL")
                    db.executescript(SCHEMA)
                    (check,) = db.execute("PRAGMA quick_check").fetchone()  # it is about to be paid for
                    if check != "ok":
                        raise sqlite3.DatabaseError(f"database disk image is malformed ({check})")
                    return db
                except sqlite3.Error as e:
                    db.close()
                    if _locked(e) or _full(e) or attempt == 2:
                        raise self._error(e) from None
                    self._set_aside(e)
        raise AssertionError("unreachable")  # pragma: no cover

    def _set_aside(self, e: sqlite3.Error) -> None:
        """Move a damaged database (and its WAL) aside so a new one can start; say so once."""
        aside = self.path.with_name(f"tags.sqlite.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            try:
                Path(f"{self.path}{suffix}").rename(f"{aside}{suffix}")
            except FileNotFoundError:
                continue
            except OSError as err:
                raise FatalTaggerError(f"{self.path} is damaged ({e}) and cannot be moved aside ({err}).") from None
        self.notice = (
            f"The tag cache {self.path.name} was damaged ({e}); it is kept aside as {aside.name} and a new one "
            "was started (tags in it must be made again)."
        )

    def _error(self, e: sqlite3.Error) -> FatalTaggerError:
        if _full(e):
            return FatalTaggerError(
                f"The disk holding {self.path.parent} is full: no tags can be stored, so nothing more is paid for. "
                "Free some space and run again; frames tagged so far are kept."
            )
        if _locked(e):
            return FatalTaggerError(f"{self.path} is locked by another process ({e}); try again when it is done.")
        return FatalTaggerError(f"{self.path} cannot be used ({e}).")

    def _read(self, sql: str, args: tuple = ()) -> list:
        """A query. Damage found now: a writer reopens (setting a damaged file aside), a reader reads
        as empty, with a notice."""
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.DatabaseError as e:
                if _locked(e) or _full(e):
                    raise self._error(e) from None
                self._db.close()
                if self.readonly:
                    self.notice = f"The tag cache {self.path.name} cannot be read ({e}); tag engines see no tags."
                    self._db = _memory()
                else:
                    self._db = self._open()
                return self._db.execute(sql, args).fetchall()

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
        """Store one response durably (see ``_write``)."""
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
        self._write(UPSERT, row)

    def put_vector(self, film: Film, t: float, service: str, model_version: str, vector: np.ndarray) -> None:
        """Store one frame's vector from an embedding service durably, as ``put`` stores tags."""
        blob = np.asarray(vector, np.float32).tobytes()
        row = (film.manifest.fingerprint, time_key(t), service, model_version, film.id, blob, time.time())
        self._write(VECTOR_UPSERT, row)

    def put_text_vector(self, service: str, model_version: str, text: str, vector: np.ndarray) -> None:
        """Keep a query's vector (what a repeated query is answered from, without a call)."""
        self._write(TEXT_UPSERT, (service, model_version, text, np.asarray(vector, np.float32).tobytes(), time.time()))

    def _write(self, sql: str, row: tuple) -> None:
        """One row written durably (an upsert: a retried call replaces its earlier row). A database
        locked longer than ``patience`` gets the row appended to the pending file, and the run
        stops (FatalTaggerError): the next run stores it first."""
        end = time.monotonic() + self.patience
        while True:
            try:
                with self._lock:
                    self._db.execute(sql, row)
                return
            except sqlite3.Error as e:
                if _locked(e) and time.monotonic() < end:
                    time.sleep(0.2)
                    continue
                if _full(e):
                    raise self._error(e) from None
                if not _locked(e):  # damaged under us: reopen (a damaged file is set aside), keep this response
                    with self._lock:
                        self._db.close()
                        self._db = self._open()
                        self._db.execute(sql, row)
                    return
                self._spill(sql, row)
                raise FatalTaggerError(
                    f"{self.path.name} stayed locked by another process for {self.patience:g} s; stopped so "
                    f"nothing more is paid for. The responses received are kept in {PENDING} and stored on "
                    "the next run."
                ) from None

    def _spill(self, sql: str, row: tuple) -> None:
        """Append a row that could not be written to the pending file, durably (a vector as hex)."""
        line = {"sql": sql, "row": [r.hex() if isinstance(r, bytes) else r for r in row]}
        with open(self.library.root / PENDING, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _store_pending(self) -> None:
        """Write the rows a locked database kept out last time, then drop the pending file."""
        path = self.library.root / PENDING
        if not path.is_file():
            return
        rows: dict[str, list[tuple]] = {}
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue  # a torn last line
            if isinstance(item, list) and len(item) == 9:  # a tag response, as older versions spilled it
                rows.setdefault(UPSERT, []).append(tuple(item))
            elif isinstance(item, dict) and item.get("sql") in (UPSERT, VECTOR_UPSERT, TEXT_UPSERT):
                blob = 5 if item["sql"] == VECTOR_UPSERT else 3 if item["sql"] == TEXT_UPSERT else None
                row = [bytes.fromhex(v) if i == blob else v for i, v in enumerate(item["row"])]
                rows.setdefault(item["sql"], []).append(tuple(row))
        with self._lock:
            for sql, batch in rows.items():
                self._db.executemany(sql, batch)
        path.unlink()

    def done(self, film: Film, service: str, model_version: str) -> dict[int, set[str]]:
        """Features already stored per frame-time key for this service and model version."""
        rows = self._read(
            "SELECT time_ms, feature FROM responses WHERE fingerprint=? AND service=? "
            "AND (model_version=? OR feature='*')",
            (film.manifest.fingerprint, service, model_version),
        )
        rows += self._read(
            "SELECT time_ms, ? FROM vectors WHERE fingerprint=? AND service=? AND model_version=?",
            (VECTOR, film.manifest.fingerprint, service, model_version),
        )
        out: dict[int, set[str]] = {}
        for t, feature in rows:
            out.setdefault(t, set()).add(feature)
        return out

    def vectors(self, film: Film, service: str, model_version: str) -> dict[int, np.ndarray]:
        """Every stored vector of ``film`` by an embedding service's model version, per frame-time key."""
        rows = self._read(
            "SELECT time_ms, vector FROM vectors WHERE fingerprint=? AND service=? AND model_version=?",
            (film.manifest.fingerprint, service, model_version),
        )
        return {t: np.frombuffer(blob, np.float32) for t, blob in rows}

    def text_vector(self, service: str, model_version: str, text: str) -> np.ndarray | None:
        """A query's vector kept from an earlier search (None: not asked yet)."""
        sql = "SELECT vector FROM text_vectors WHERE service=? AND model_version=? AND text=?"
        rows = self._read(sql, (service, model_version, text))
        return np.frombuffer(rows[0][0], np.float32) if rows else None

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
        rows = self._read(
            "SELECT time_ms, feature, tags FROM responses WHERE fingerprint=? AND service=? ORDER BY created",
            (film.manifest.fingerprint, service),
        )
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
            try:
                with self._lock:
                    self._db.execute(
                        "INSERT INTO runs VALUES (?,?,?,?,?)",
                        (film.manifest.fingerprint, service, frames, seconds, time.time()),
                    )
            except sqlite3.Error:  # a timing for the cost estimate, not a paid response: losing it loses nothing
                pass

    def seconds_per_frame(self, service: str) -> float | None:
        """Measured tagging time per frame of ``service`` over every run in this library, or None."""
        ((frames, seconds),) = self._read(
            "SELECT COALESCE(SUM(frames), 0), COALESCE(SUM(seconds), 0) FROM runs WHERE service=?", (service,)
        )
        return seconds / frames if frames else None

    def services(self, film: Film) -> list[str]:
        """Services that have stored anything for ``film``."""
        rows = self._read("SELECT DISTINCT service FROM responses WHERE fingerprint=?", (film.manifest.fingerprint,))
        return sorted(r[0] for r in rows)

    def version(self, film: Film, service: str) -> tuple[int, float]:
        """(rows, newest write) for a film and service: changes whenever its tags change (a cache key)."""
        ((n, newest),) = self._read(
            "SELECT COUNT(*), COALESCE(MAX(created), 0) FROM responses WHERE fingerprint=? AND service=?",
            (film.manifest.fingerprint, service),
        )
        return int(n), float(newest)


_versions: dict[tuple, tuple[int, float]] = {}  # (database stamp, film, service) -> version
_versions_lock = threading.Lock()


def database_stamp(library: Library) -> tuple:
    """What changes whenever the tag database does: its file's and its write-ahead log's size and
    time (a cache key for anything derived from stored tags)."""
    out = []
    for suffix in ("", "-wal"):
        try:
            st = os.stat(f"{library.root / 'tags.sqlite'}{suffix}")
            out.append((st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


def tags_version(library: Library, film: Film, service: str) -> tuple[int, float]:
    """``TagStore.version`` of ``film`` and ``service`` (a cache key for what is derived from its
    tags), opening the database only when a file of it changed since the last time it was read: a
    search asks this for every film, an evaluation for every query."""
    key = (str(library.root), database_stamp(library), film.manifest.fingerprint, service)
    with _versions_lock:
        if key in _versions:
            return _versions[key]
    store = TagStore(library, readonly=True)
    try:
        found = store.version(film, service)
    finally:
        store.close()
    with _versions_lock:
        if len(_versions) > 4096:
            _versions.clear()
        _versions[key] = found
    return found


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

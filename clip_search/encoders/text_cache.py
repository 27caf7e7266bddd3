"""Query texts a model has encoded, kept in the library (``text-vectors.sqlite``), so that a repeated
``search`` reads its query's vector and loads neither torch nor the model.

A row is keyed by the model as it was loaded (its name, the device and precision asked for, and
for a local folder the size and time of its weight files, so re-saved weights are never read
through old vectors) and the exact text. SQLite in WAL mode: several processes read and write it at
once; a damaged or read-only cache is simply not used (the text is encoded, as without one)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np

from clip_search.encoders.base import TextEncoding
from clip_search.store.library import Library

DB = "text-vectors.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS texts (
    model TEXT NOT NULL,       -- the model as loaded (model_key)
    text TEXT NOT NULL,        -- the text exactly as encoded
    vector BLOB NOT NULL,      -- float32 unit vector
    truncated INTEGER NOT NULL, -- whether the model's token limit cut it
    used TEXT NOT NULL,        -- the words of it the model read
    PRIMARY KEY (model, text)
);
CREATE TABLE IF NOT EXISTS models (model TEXT PRIMARY KEY, max_tokens INTEGER NOT NULL, dim INTEGER NOT NULL);
"""
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def model_key(model: str, device: str = "auto", precision: str = "auto") -> str:
    """Which vectors a text gets: the model's name, the device and precision asked for, and for a
    local folder its weight files' sizes and times."""
    folder = Path(model).expanduser()
    stamp = ""
    if folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
        stamp = ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    return f"{model}|{device}|{precision}|{stamp}"


class TextVectors:
    """The library's cache of text vectors for one model key."""

    def __init__(self, library: Library, key: str) -> None:
        self.path = library.root / DB
        self.key = key

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=5)
        con.execute("PRAGMA journal_mode=WAL")
        con.executescript(SCHEMA)
        return con

    def get(self, texts: list[str]) -> tuple[dict[str, tuple[np.ndarray, bool, str]], int | None]:
        """The cached vectors of ``texts`` (those it has) and the model's token limit, if known."""
        if not self.path.is_file():
            return {}, None
        try:
            con = self._connect()
            try:
                found = {}
                for text in dict.fromkeys(texts):
                    row = con.execute(
                        "SELECT vector, truncated, used FROM texts WHERE model = ? AND text = ?", (self.key, text)
                    ).fetchone()
                    if row:
                        found[text] = (np.frombuffer(row[0], np.float32).copy(), bool(row[1]), row[2])
                meta = con.execute("SELECT max_tokens FROM models WHERE model = ?", (self.key,)).fetchone()
            finally:
                con.close()
        except sqlite3.Error:
            return {}, None
        return found, (int(meta[0]) if meta else None)

    def put(self, texts: list[str], encoded: TextEncoding, max_tokens: int) -> None:
        """Keep ``encoded`` (the vectors of ``texts``); a cache that cannot be written is skipped."""
        try:
            con = self._connect()
            try:
                with con:
                    con.execute(
                        "INSERT OR REPLACE INTO models VALUES (?, ?, ?)",
                        (self.key, int(max_tokens), int(encoded.vectors.shape[1])),
                    )
                    con.executemany(
                        "INSERT OR REPLACE INTO texts VALUES (?, ?, ?, ?, ?)",
                        [
                            (self.key, t, np.asarray(v, np.float32).tobytes(), int(cut), used)
                            for t, v, cut, used in zip(
                                texts, encoded.vectors, encoded.truncated, _used(texts, encoded), strict=True
                            )
                        ],
                    )
            finally:
                con.close()
        except (sqlite3.Error, OSError):
            pass


def _used(texts: list[str], encoded: TextEncoding) -> list[str]:
    """Of each text, the words the model read (the text itself when the encoding does not say)."""
    return encoded.used or list(texts)


class CachedTextEncoder:
    """A model's text side through the library's cache (what ``build_query`` needs of an encoder):
    the model is loaded, by ``load``, only for a text the cache lacks or for an image."""

    def __init__(self, library: Library, model: str, key: str, load: Callable[[], object]) -> None:
        self.model_id = model
        self.cache = TextVectors(library, key)
        self._load = load
        self._encoder = None
        self._max_tokens: int | None = None

    @property
    def encoder(self):
        """The model itself, loaded on first need."""
        if self._encoder is None:
            self._encoder = self._load()
        return self._encoder

    @property
    def loaded(self) -> bool:
        return self._encoder is not None

    @property
    def max_tokens(self) -> int:
        return self._max_tokens if self._max_tokens is not None else self.encoder.max_tokens

    def encode_text(self, texts: list[str]) -> TextEncoding:
        """Cached vectors where the cache has them; the rest encoded by the model, then kept."""
        found, self._max_tokens = self.cache.get(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            encoded = self.encoder.encode_text(missing)
            self.cache.put(missing, encoded, self.encoder.max_tokens)
            self._max_tokens = self.encoder.max_tokens
            found.update(
                {
                    t: (v, cut, used)
                    for t, v, cut, used in zip(
                        missing, encoded.vectors, encoded.truncated, _used(missing, encoded), strict=True
                    )
                }
            )
        return TextEncoding(
            np.stack([found[t][0] for t in texts]), [found[t][1] for t in texts], [found[t][2] for t in texts]
        )

    def encode_images(self, images: list) -> np.ndarray:
        return self.encoder.encode_images(images)


def cached_loader(library: Library, load: Callable[[str, str | None, str | None], object]):
    """A model loader for ``engines.Encoders`` that gives each model through the library's text cache:
    an evaluation or a comparison whose query texts were encoded before loads no model at all."""

    def loader(model: str, device: str | None = None, precision: str | None = None) -> CachedTextEncoder:
        key = model_key(model, device or "auto", precision or "auto")
        return CachedTextEncoder(library, model, key, lambda: load(model, device, precision))

    return loader

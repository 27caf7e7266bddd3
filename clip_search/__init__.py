"""Frame Search Lab engine: video -> frames -> CLIP embeddings -> on-disk index -> search -> moments.

Usable without Streamlit, as a library or through ``python -m clip_search``.
"""

import os

# The model's OpenMP threads share the cores with the decoder. After each parallel region libgomp
# spins 300 000 times by default before it sleeps, burning the core the decoder needs; a short
# spin made indexing 12 % faster on 2 cores (bench_index.py). Read when torch loads libgomp, so
# it is set before any torch import; a value the user set wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from clip_search.errors import FrameSearchError, ModelLoadError, VideoError

__all__ = ["FrameSearchError", "ModelLoadError", "VideoError"]

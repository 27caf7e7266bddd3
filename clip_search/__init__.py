"""Frame Search Lab engine: video -> frames -> CLIP embeddings -> on-disk index -> search -> moments.

Usable without Streamlit, as a library or through ``python -m clip_search``.
"""

from clip_search.errors import FrameSearchError, ModelLoadError, VideoError

__all__ = ["FrameSearchError", "ModelLoadError", "VideoError"]

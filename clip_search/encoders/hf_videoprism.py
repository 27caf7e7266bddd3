"""transformers VideoPrism (``VideoPrismClipModel``, e.g. ``google/videoprism-lvt-base-f16r288``,
16 frames at 288 px): a video encoder with a contrastive text tower. Equal to its processor
(``VideoPrismProcessor``: every frame resized whole to a square, pixels in [0, 1]; text padded to
64 tokens) + ``get_video_features`` / ``get_text_features``, which are unit vectors already.

Its forward scores with ``exp`` of the cosine over a temperature it does not learn (none by
default), so a score becomes a probability with a softmax at scale 1."""

from __future__ import annotations

from clip_search.encoders.base import Scoring
from clip_search.encoders.hub import read_json
from clip_search.encoders.video import VideoEncoder, load_video_model, processor_settings, video_preprocessing

TEXT_TOKENS = 64  # VideoPrismProcessor pads and cuts text to this many tokens


class HfVideoPrismEncoder(VideoEncoder):
    """A loaded ``VideoPrismClipModel`` with its tokenizer; clips of the checkpoint's ``num_frames``."""

    backend = "transformers-videoprism"
    padding = "max_length"  # as VideoPrismProcessor pads a text

    def __init__(self, model, tokenizer, model_id: str, device: str, pre, precision: str) -> None:
        text = model.config.text_config
        max_tokens = int(getattr(text, "max_position_embeddings", TEXT_TOKENS) or TEXT_TOKENS)
        super().__init__(
            model, model_id, device, pre, precision, int(text.hidden_size), max_tokens, Scoring("softmax", 1.0)
        )
        self.tokenizer = tokenizer
        self.clip_frames = int(getattr(model.config.vision_config, "num_frames", 16))

    def _video_features(self, model, pixels):
        out = model.get_video_features(pixel_values_videos=pixels)
        return out.pooler_output.reshape(pixels.shape[0], -1)


def preprocessing(ref, offline: bool = False):
    """VideoPrismProcessor's frame settings (the whole frame to a square, no normalisation)."""
    cfg = read_json(ref.target, "config.json", offline) or {}
    size = cfg.get("vision_config", {}).get("image_size", 288)
    side = int(size[0] if isinstance(size, (list, tuple)) else size)
    return video_preprocessing(processor_settings(ref.target, offline, "video_processor"), side)


def load(ref, device: str, precision: str | None, offline: bool) -> HfVideoPrismEncoder:
    """``VideoPrismClipModel`` + the checkpoint's tokenizer (``AutoTokenizer``) from the hub or a folder."""
    from transformers import VideoPrismClipModel  # transformers loads only when a model is used

    pre = preprocessing(ref, offline)
    return load_video_model(ref, device, precision, offline, VideoPrismClipModel, HfVideoPrismEncoder, pre)

"""transformers X-CLIP (``XCLIPModel``, e.g. ``microsoft/xclip-base-patch32``, 8 frames): CLIP's
towers with a multi-frame integration transformer over the frames' features. Equal to
``XCLIPProcessor`` + ``get_video_features`` / ``get_text_features``, L2-normalised.

X-CLIP's own forward also rewrites each text's vector with a prompt drawn from the video it is
compared with; that would make a query's vector depend on the film, so no index could hold it.
Search uses the two towers as a dual encoder (the text tower's own vector), as retrieval must."""

from __future__ import annotations

from clip_search.encoders.base import Scoring
from clip_search.encoders.hf_clip import CLIP_MAX_TOKENS
from clip_search.encoders.hub import read_json
from clip_search.encoders.video import VideoEncoder, load_video_model, processor_settings, video_preprocessing


class HfXClipEncoder(VideoEncoder):
    """A loaded ``XCLIPModel`` with CLIP's tokenizer; clips of the checkpoint's ``num_frames``."""

    backend = "transformers-xclip"

    def __init__(self, model, tokenizer, model_id: str, device: str, pre, precision: str) -> None:
        scale = float(model.logit_scale.exp().item())
        super().__init__(
            model,
            model_id,
            device,
            pre,
            precision,
            model.config.projection_dim,
            CLIP_MAX_TOKENS,
            Scoring("softmax", scale),
        )
        self.tokenizer = tokenizer
        self.clip_frames = int(getattr(model.config.vision_config, "num_frames", 8))

    def _video_features(self, model, pixels):
        return model.get_video_features(pixel_values=pixels)


def preprocessing(ref, offline: bool = False):
    """XCLIPProcessor's frame settings (VideoMAE's: short side, centre crop), from the checkpoint's files."""
    cfg = read_json(ref.target, "config.json", offline) or {}
    image_size = int(cfg.get("vision_config", {}).get("image_size", 224))
    return video_preprocessing(processor_settings(ref.target, offline, "image_processor"), image_size)


def load(ref, device: str, precision: str | None, offline: bool) -> HfXClipEncoder:
    """``XCLIPModel`` + the checkpoint's tokenizer (``AutoTokenizer``: CLIP's) from the hub or a folder."""
    from transformers import XCLIPModel  # transformers loads only when a model is used

    return load_video_model(ref, device, precision, offline, XCLIPModel, HfXClipEncoder, preprocessing(ref, offline))

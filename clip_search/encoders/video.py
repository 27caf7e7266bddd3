"""Video-text models behind the encoder protocol: an encoder whose ``clip_frames`` (F) is above 1
scores a clip of F frames, not one frame, so it can tell dancing from walking.

Such an encoder is a :class:`~clip_search.encoders.base.DualEncoder` like any other (``prepare``
makes one frame's crop off the model thread; ``encode_text`` gives query vectors) and adds
``encode_clips``: (B, F, crop, crop, 3) uint8 -> (B, D) unit vectors. ``encode_prepared`` reads
each frame as a still clip (the frame repeated F times), which is what a time estimate or a
single picture needs. Indexing takes clips per shot, a long shot in windows of ``CLIP_SECONDS``
(``clip_search.indexing.clips``), from the frames it samples for every model anyway.
"""

from __future__ import annotations

import numpy as np

from clip_search.encoders.base import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    Preprocessing,
    TorchEncoder,
    pick_precision,
    unit,
    weight_dtype,
)
from clip_search.encoders.hub import from_pretrained, read_json
from clip_search.errors import ModelLoadError

CLIP_SECONDS = 8.0  # a shot longer than this is cut into clips of at most this many seconds


def clip_picks(n: int, frames: int) -> np.ndarray:
    """Which of a clip's ``n`` sampled frames feed a model that reads ``frames``: spread evenly,
    first and last included, repeated in order where the clip has fewer."""
    return np.linspace(0, max(n - 1, 0), frames).round().astype(np.int64)


def processor_settings(target: str, offline: bool, kind: str) -> dict:
    """A checkpoint's frame processor settings: ``processor_config.json``'s ``kind`` entry
    (``image_processor``, ``video_processor``: how transformers 5 saves a processor), else the
    separate file an older checkpoint has (``preprocessor_config.json``,
    ``video_preprocessor_config.json``)."""
    nested = (read_json(target, "processor_config.json", offline) or {}).get(kind)
    if isinstance(nested, dict):
        return nested
    for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
        found = read_json(target, name, offline)
        if isinstance(found, dict):
            return found
    return {}


def video_preprocessing(cfg: dict, image_size: int) -> Preprocessing:
    """How a video processor prepares each frame: short side then centre crop where it names a
    ``shortest_edge`` (VideoMAE's, X-CLIP's), else the whole frame to a square (VideoPrism's
    ``{"height", "width"}``); without ``do_normalize`` the pixels are only rescaled to [0, 1]."""
    normalise = cfg.get("do_normalize", True)
    mean = tuple(cfg.get("image_mean", OPENAI_CLIP_MEAN)) if normalise else (0.0, 0.0, 0.0)
    std = tuple(cfg.get("image_std", OPENAI_CLIP_STD)) if normalise else (1.0, 1.0, 1.0)
    size = cfg.get("size", {"shortest_edge": image_size})
    resample = "bilinear" if cfg.get("resample") == 2 else "bicubic"
    if (isinstance(size, dict) and "shortest_edge" in size) or isinstance(size, int):
        pre = Preprocessing.from_config(cfg, image_size)
        return Preprocessing(pre.shortest_edge, pre.crop, mean, std, "crop", resample)
    side = int(size.get("height", image_size)) if isinstance(size, dict) else image_size
    return Preprocessing(side, side, mean, std, "square", resample)


class VideoEncoder(TorchEncoder):
    """What the video backends share: clips normalised like frames, then ``_video_features(model,
    pixels)`` with pixels (B, F, 3, H, W); a still frame is a clip of one frame repeated."""

    clip_frames = 8

    def encode_clips(self, clips: np.ndarray) -> np.ndarray:
        """(B, F, crop, crop, 3) uint8 -> (B, D) float32 unit vectors, at the encoder's precision
        (a batch that comes out unsound is computed again in float32)."""
        import torch  # torch loads only when a model is used

        with torch.inference_mode():
            x = self._clip_pixels(clips).to(self.dtype)
            return self._checked(lambda model: self._video_features(model, x.float() if model is not self.model else x))

    def encode_clips_float32(self, clips: np.ndarray) -> np.ndarray:
        """``encode_clips`` in float32 arithmetic (what a spot check holds stored clip vectors against)."""
        import torch  # torch loads only when a model is used

        model = self.model if self.precision == "fp32" else self._float32_twin()
        with torch.inference_mode():
            return unit(self._video_features(model, self._clip_pixels(clips).float()))

    def _clip_pixels(self, clips: np.ndarray):
        """(B, F, H, W, 3) uint8 -> (B, F, 3, H, W) float32, normalised on the model's device."""
        import torch  # torch loads only when a model is used

        b, f = clips.shape[:2]
        x = torch.from_numpy(np.ascontiguousarray(clips)).to(self.device).reshape(b * f, *clips.shape[2:])
        x = (x.permute(0, 3, 1, 2).float() - self._mean) / self._std
        return x.reshape(b, f, *x.shape[1:])

    padding: bool | str = True  # texts padded to the longest of a batch, or to the model's length

    def _tokens(self, texts: list[str]):
        tok = self.tokenizer(
            texts, padding=self.padding, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        cut = [len(ids) > self.max_tokens for ids in self.tokenizer(texts, truncation=False)["input_ids"]]
        return tok.to(self.device), cut

    def _token_count(self, text: str) -> int:
        return len(self.tokenizer(text, truncation=False)["input_ids"])

    def _text_features(self, model, tok):
        return model.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])

    def _image_features(self, model, pixels):
        """A still frame as a clip: (B, 3, H, W) -> the frame repeated ``clip_frames`` times."""
        return self._video_features(model, pixels.unsqueeze(1).expand(-1, self.clip_frames, -1, -1, -1))

    def _video_features(self, model, pixels):  # pragma: no cover - each backend defines it
        raise NotImplementedError


def load_video_model(ref, device: str, precision: str | None, offline: bool, model_class, encoder_class, pre):
    """A video-text checkpoint loaded with transformers' ``model_class`` and the checkpoint's own
    tokenizer (``AutoTokenizer``) into ``encoder_class``, at ``precision``; ModelLoadError for a
    checkpoint of another kind. ``pre``: its frames' preprocessing."""
    from transformers import AutoTokenizer  # transformers loads only when a model is used

    precision = pick_precision(precision, device)
    model = from_pretrained(model_class, ref.target, offline, dtype=weight_dtype(precision))
    if not hasattr(model, "get_video_features"):
        raise ModelLoadError(f"'{ref.name}' (a {type(model).__name__}, not a {model_class.__name__} video-text model)")
    tokenizer = from_pretrained(AutoTokenizer, ref.target, offline)
    model.eval().to(device)
    return encoder_class(model, tokenizer, ref.target, device, pre, precision)

"""transformers SigLIP and SigLIP 2 (fixed-resolution checkpoints such as
``google/siglip2-base-patch16-224``) through ``AutoModel`` + ``AutoTokenizer``.

Text is padded to ``max_length`` (64 tokens), as the checkpoints were trained: SigLIP's text tower
has no attention mask, so a text padded only to the longest in its batch scores differently (the
classic SigLIP pitfall). Frames are resized whole to a square, as SiglipImageProcessor does.
Scores become probabilities with a sigmoid of logit_scale x cosine + logit_bias."""

from __future__ import annotations

from clip_search.encoders.base import Preprocessing, Scoring, pick_precision, weight_dtype
from clip_search.encoders.hf_clip import HfEncoder
from clip_search.encoders.hub import from_pretrained, read_json
from clip_search.errors import ModelLoadError

SIGLIP_MEAN = (0.5, 0.5, 0.5)


class HfSiglipEncoder(HfEncoder):
    """A loaded SigLIP model with its tokenizer and square-resize preprocessing."""

    backend = "transformers-siglip"

    def __init__(self, model, tokenizer, model_id: str, device: str, pre: Preprocessing, precision: str) -> None:
        scale = float(model.logit_scale.exp().item())
        bias = float(model.logit_bias.item())
        text_cfg = model.config.text_config
        max_tokens = int(getattr(text_cfg, "max_position_embeddings", 64))
        dim = int(getattr(text_cfg, "projection_size", None) or text_cfg.hidden_size)
        super().__init__(model, model_id, device, pre, precision, dim, max_tokens, Scoring("sigmoid", scale, bias))
        self.tokenizer = tokenizer

    def _tokens(self, texts: list[str]):
        tok = self.tokenizer(
            texts, padding="max_length", truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        return tok["input_ids"].to(self.device), self._cut(texts)

    def _text_features(self, model, ids):
        return model.get_text_features(input_ids=ids)


def preprocessing(ref, offline: bool = False) -> Preprocessing:
    """SiglipImageProcessor's settings (the whole frame to a square), from the checkpoint's files."""
    cfg = read_json(ref.target, "preprocessor_config.json", offline) or {}
    model_cfg = read_json(ref.target, "config.json", offline) or {}
    image_size = int(model_cfg.get("vision_config", {}).get("image_size", 224))
    size = cfg.get("size", {"height": image_size})
    side = int(size.get("height", image_size)) if isinstance(size, dict) else int(size)
    return Preprocessing(
        shortest_edge=side,
        crop=side,
        mean=tuple(cfg.get("image_mean", SIGLIP_MEAN)),
        std=tuple(cfg.get("image_std", SIGLIP_MEAN)),
        mode="square",
        resample="bilinear" if cfg.get("resample") == 2 else "bicubic",
    )


def load(ref, device: str, precision: str | None, offline: bool) -> HfSiglipEncoder:
    """``AutoModel`` + ``AutoTokenizer`` (a SigLIP checkpoint) from the hub or a folder."""
    from transformers import AutoModel, AutoTokenizer  # transformers loads only when a model is used

    precision = pick_precision(precision, device)
    model = from_pretrained(AutoModel, ref.target, offline, dtype=weight_dtype(precision))
    if not hasattr(model, "logit_bias") or not hasattr(model, "get_text_features"):
        raise ModelLoadError(f"'{ref.name}' (a {type(model).__name__}, not a SigLIP dual encoder)")
    tokenizer = from_pretrained(AutoTokenizer, ref.target, offline)
    model.eval().to(device)
    return HfSiglipEncoder(model, tokenizer, ref.name, device, preprocessing(ref, offline), precision)

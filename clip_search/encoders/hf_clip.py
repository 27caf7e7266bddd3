"""transformers CLIP: any ``CLIPModel`` checkpoint (OpenAI, LAION, DFN on the hub, or a local
``save_pretrained`` folder). Equal to ``CLIPProcessor`` + ``get_image_features`` /
``get_text_features``, L2-normalised."""

from __future__ import annotations

from clip_search.encoders.base import Preprocessing, Scoring, TorchEncoder, pick_precision, weight_dtype
from clip_search.encoders.hub import from_pretrained, read_json

CLIP_MAX_TOKENS = 77


class HfEncoder(TorchEncoder):
    """What the transformers backends share: ``get_image_features``, and a tokenizer whose full
    token count says which texts are cut."""

    def _image_features(self, model, pixels):
        return model.get_image_features(pixel_values=pixels)

    def _cut(self, texts: list[str]) -> list[bool]:
        return [len(ids) > self.max_tokens for ids in self.tokenizer(texts, truncation=False)["input_ids"]]

    def _token_count(self, text: str) -> int:
        return len(self.tokenizer(text, truncation=False)["input_ids"])


class HfClipEncoder(HfEncoder):
    """A loaded ``CLIPModel`` with its tokenizer and preprocessing."""

    backend = "transformers-clip"

    def __init__(self, model, tokenizer, model_id: str, device: str, pre: Preprocessing, precision: str) -> None:
        scale = float(model.logit_scale.exp().item())
        dim = model.config.projection_dim
        super().__init__(model, model_id, device, pre, precision, dim, CLIP_MAX_TOKENS, Scoring("softmax", scale))
        self.tokenizer = tokenizer

    def _tokens(self, texts: list[str]):
        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
        return tok.to(self.device), self._cut(texts)

    def _text_features(self, model, tok):
        return model.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])


def preprocessing(ref, offline: bool = False) -> Preprocessing:
    """CLIPImageProcessor's settings, read from the checkpoint's files (no weights loaded)."""
    model_id = ref.target
    cfg = read_json(model_id, "config.json", offline) or {}
    image_size = int(cfg.get("vision_config", {}).get("image_size", 224))
    return Preprocessing.from_config(read_json(model_id, "preprocessor_config.json", offline) or {}, image_size)


def load(ref, device: str, precision: str | None, offline: bool) -> HfClipEncoder:
    """``CLIPModel`` + ``CLIPTokenizerFast`` from the hub or a folder."""
    from transformers import CLIPModel, CLIPTokenizerFast  # transformers loads only when a model is used

    return load_with(ref, device, precision, offline, CLIPModel, CLIPTokenizerFast, HfClipEncoder)


def load_with(ref, device: str, precision: str | None, offline: bool, model_class, tokenizer_class, encoder_class):
    """A CLIP-shaped checkpoint (projection, logit scale, CLIP's preprocessing) loaded with these
    transformers classes into ``encoder_class``: CLIP itself, and MetaCLIP 2."""
    model_id = ref.target
    precision = pick_precision(precision, device)
    model = from_pretrained(model_class, model_id, offline, dtype=weight_dtype(precision))
    tokenizer = from_pretrained(tokenizer_class, model_id, offline)
    model.eval().to(device)
    return encoder_class(model, tokenizer, model_id, device, preprocessing(ref, offline), precision)

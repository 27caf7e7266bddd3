"""transformers MetaCLIP 2 (``MetaClip2Model``, e.g. ``facebook/metaclip-2-worldwide-huge-quickgelu``):
CLIP trained on worldwide, multilingual data, so a query in another language finds the same frames.
Its weights carry a non-commercial licence (CC BY-NC 4.0): a lab checks it before using them.
Equal to its own ``get_image_features`` / ``get_text_features`` with ``CLIPImageProcessor`` and the
checkpoint's tokenizer, L2-normalised."""

from __future__ import annotations

from clip_search.encoders.hf_clip import HfClipEncoder, load_with, preprocessing

LICENCE = "MetaCLIP 2 weights: CC BY-NC 4.0 (non-commercial)"


class HfMetaClip2Encoder(HfClipEncoder):
    """A loaded ``MetaClip2Model``: CLIP's shape (projection, logit scale, 77 tokens), its own tokenizer."""

    backend = "transformers-metaclip2"
    multilingual = True


def load(ref, device: str, precision: str | None, offline: bool) -> HfMetaClip2Encoder:
    """``MetaClip2Model`` + the checkpoint's tokenizer (``AutoTokenizer``) from the hub or a folder."""
    from transformers import AutoTokenizer, MetaClip2Model  # transformers loads only when a model is used

    return load_with(ref, device, precision, offline, MetaClip2Model, AutoTokenizer, HfMetaClip2Encoder)


__all__ = ["LICENCE", "HfMetaClip2Encoder", "load", "preprocessing"]

"""The tagger interface: frames in, tags out. New services plug in by implementing ``Tagger``."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
from PIL import Image

TAG_KINDS = ("label", "caption", "object", "text", "face", "celebrity")


@dataclass(frozen=True)
class Tag:
    """One thing a service saw in a frame: kind (see TAG_KINDS), text, confidence in [0, 1]."""

    kind: str
    text: str
    confidence: float

    def to_dict(self) -> dict:
        return asdict(self)


class TaggerError(Exception):
    """A frame could not be tagged (throttled after retries, server error, timeout, bad image)."""


class FatalTaggerError(TaggerError):
    """The whole run cannot go on (missing or rejected credentials): stop, keep what is tagged."""


class Tagger(Protocol):
    """Tags one frame. ``service`` names it, ``features`` lists what it asks for, and
    ``model_version`` identifies the service model, so cached results are keyed exactly."""

    service: str
    features: tuple[str, ...]
    model_version: str
    paid: bool

    def tag(self, image: np.ndarray) -> list[Tag]: ...


def jpeg_under(image: np.ndarray, max_bytes: int, max_side: int = 2048, min_side: int = 50) -> bytes:
    """Encode an RGB frame as JPEG within a service's byte and pixel limits (downscale as needed)."""
    img = Image.fromarray(image)
    if min(img.size) < min_side:
        scale = min_side / min(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC)
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    for quality in (90, 80, 70, 55, 40):
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality)
        if buf.tell() <= max_bytes:
            return buf.getvalue()
    img = img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS)
    return jpeg_under(np.asarray(img), max_bytes, max_side, min_side)

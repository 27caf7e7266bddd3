"""The tagger interface: frames in, per-feature responses out. New services plug in by implementing
``Tagger``; callers never need to know which service they hold."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
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
    """A frame could not be tagged (throttled after retries, server error, timeout, bad response).

    ``unreachable`` marks timeouts and connection failures: many in a row trip the circuit breaker."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(one_line(message))
        self.unreachable = unreachable


class FatalTaggerError(TaggerError):
    """The whole run cannot go on (missing or rejected credentials, bad configuration): stop, keep what is tagged."""


_HTML = re.compile(r"<[^>]*>")


def one_line(message: str, limit: int = 240) -> str:
    """An error message fit for one line: markup (a proxy's HTML page) and line breaks removed, length bounded."""
    text = " ".join(_HTML.sub(" ", str(message)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Response:
    """One paid unit of work for one frame: a feature's tags, or why it failed."""

    feature: str
    tags: list[Tag] | None = None
    error: TaggerError | None = None
    served_version: str | None = None


class Tagger(Protocol):
    """Tags frames. ``service`` names it; ``features`` are its units of work, each stored on its own
    (one call each for Rekognition); ``model_version`` is the service model asked for, part of the
    cache key; ``paid`` says whether calls cost money."""

    service: str
    features: tuple[str, ...]
    model_version: str
    paid: bool

    def responses(self, image: np.ndarray, features: tuple[str, ...]) -> Iterator[Response]:
        """Each asked-for feature's result, as soon as it arrives; FatalTaggerError stops the run."""
        ...


def all_tags(tagger: Tagger, image: np.ndarray) -> list[Tag]:
    """Every feature of one frame, or the first error (for one-off use and tests)."""
    tags: list[Tag] = []
    for r in tagger.responses(image, tagger.features):
        if r.error is not None:
            raise r.error
        tags += r.tags or []
    return tags


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

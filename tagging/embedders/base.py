"""What every cloud embedding adapter shares: a frame in, a unit vector out (``embed_image``), a
query text in, a unit vector out (``embed_text``), each one paid call.

For frames an embedder *is* a tagger with one feature, ``embedding``, whose response carries a
vector instead of tags: ``tagging.run.tag_film`` runs it as it runs any tagger (parallel calls,
each answer stored the moment it arrives, the breaker, the deadlines, a resumed run asking only
for what is missing), and the tag store keeps the vectors (``TagStore.put_vector``).

A malformed answer (not JSON, an HTML page, the wrong number of numbers, NaN, a list of strings,
all zeros) is an error for that call, never a stored vector (``checked_vector``)."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator

import numpy as np

from tagging.tag_store import VECTOR
from tagging.taggers.base import FatalTaggerError, Response, TaggerError, jpeg_under

MAX_IMAGE_BYTES = 5 * 1024 * 1024 - 64 * 1024  # every service here takes 5 MB a frame (some more): a margin
MAX_IMAGE_SIDE = 2048  # Titan's largest side; plenty for a search vector and a quick upload


def checked_vector(values: object, dim: int, label: str) -> np.ndarray:
    """``values`` as a float32 unit vector when it is exactly ``dim`` finite real numbers, not all
    zero; else TaggerError naming what was wrong (nothing of it is stored)."""
    if not isinstance(values, list):
        raise TaggerError(f"{label} returned no vector (a {type(values).__name__}); not stored.")
    if len(values) != dim:
        raise TaggerError(f"{label} returned a vector of {len(values)} numbers, not {dim}; not stored.")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise TaggerError(f"{label} returned a vector with values that are not numbers; not stored.")
    if not all(math.isfinite(v) for v in values):
        raise TaggerError(f"{label} returned a vector with NaN or infinite values; not stored.")
    vector = np.asarray(values, np.float64)
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        raise TaggerError(f"{label} returned a vector of zeros; not stored.")
    return (vector / norm).astype(np.float32)


def parsed_json(body: bytes | str | None, label: str) -> dict:
    """A response body as a JSON object; TaggerError for anything else (an HTML page, junk, a list)."""
    try:
        data = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError):
        raise TaggerError(f"{label} returned a response that is not valid JSON (bad response).") from None
    if not isinstance(data, dict):
        raise TaggerError(f"{label} returned JSON that is not an object (bad response).")
    return data


def jpeg_base64(image: np.ndarray) -> str:
    """A frame as the base64 JPEG the Bedrock models take inline, within their size limits."""
    return base64.b64encode(jpeg_under(image, MAX_IMAGE_BYTES, MAX_IMAGE_SIDE)).decode("ascii")


class Embedder:
    """A cloud embedding adapter. ``service`` is the engine it serves (``cloud:<name>``, the store's
    key), ``model_id`` and ``version`` what the service is asked for (``model_version`` joins them:
    vectors of another model version are never mixed with these), ``dim`` the vector size. A
    subclass gives ``embed_image`` and ``embed_text``."""

    service = "cloud:?"
    label = "?"
    features = (VECTOR,)
    paid = True
    model_id = "?"
    version = "?"
    dim = 0

    model_version = "?@?"  # model_id@version, set for each adapter class (readable without credentials)

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.model_version = f"{cls.model_id}@{cls.version}"

    def responses(self, image: np.ndarray, features: tuple[str, ...] = features) -> Iterator[Response]:
        """The frame's vector (or why it failed) as one response; rejected credentials raise."""
        try:
            yield Response(VECTOR, [], served_version=self.model_version, vector=self.embed_image(image))
        except FatalTaggerError:
            raise
        except TaggerError as e:
            yield Response(VECTOR, error=e)

    def embed_image(self, image: np.ndarray) -> np.ndarray:  # pragma: no cover - each adapter defines it
        raise NotImplementedError

    def embed_text(self, text: str) -> np.ndarray:  # pragma: no cover - each adapter defines it
        raise NotImplementedError

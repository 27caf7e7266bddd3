"""Google's Gemini Embedding 2 (``gemini-embedding-2``, multimodal, over 100 languages) through
Google's own SDK, ``google-genai``: ``client.models.embed_content`` with the frame as an inline
JPEG part, or the query as text with the model's retrieval instruction (``task: search result |
query: ...``), at 1 024 of its 3 072 dimensions (``output_dimensionality``). The SDK sends
``POST {base}/v1/models/gemini-embedding-2:batchEmbedContents`` and reads ``embeddings[0].values``.

Credentials are the SDK's own: ``GEMINI_API_KEY`` / ``GOOGLE_API_KEY`` (the Gemini API), or
``GOOGLE_GENAI_USE_VERTEXAI`` with ``GOOGLE_CLOUD_PROJECT`` / ``GOOGLE_CLOUD_LOCATION`` and
application default credentials (Vertex AI); ``GOOGLE_GEMINI_BASE_URL`` is honoured as the SDK does.
The SDK's own retries are off (ours are bounded, ``BoundedCalls``) and so is its following of
redirects, which would carry the key elsewhere. Vertex's older ``multimodalembedding@001`` needs
another SDK (``google-cloud-aiplatform``) and is not offered."""

from __future__ import annotations

import numpy as np

from tagging.embedders.base import MAX_IMAGE_BYTES, MAX_IMAGE_SIDE, Embedder, checked_vector
from tagging.taggers.azure import retry_after
from tagging.taggers.base import (
    CALL_DEADLINE,
    BoundedCalls,
    FatalTaggerError,
    Retryable,
    RetryBudget,
    TaggerError,
    jpeg_under,
)

QUERY = "task: search result | query: {}"  # Gemini Embedding 2's instruction for a search query


class GeminiEmbedder(Embedder):
    """One ``embed_content`` per frame or query."""

    service = "cloud:gemini"
    label = "Gemini Embedding 2"
    model_id = "gemini-embedding-2"
    version = "1024"
    dim = 1024

    def __init__(
        self,
        max_attempts: int = 4,
        timeout: float = 30.0,
        deadline: float = CALL_DEADLINE,
        budget: RetryBudget | None = None,
        backoff: float = 0.25,
        client=None,
    ) -> None:
        from google import genai  # Google's SDK loads only when Gemini is used
        from google.genai import types  # Google's SDK loads only when Gemini is used

        self._calls = BoundedCalls(self.label, max_attempts, deadline, budget, backoff)
        self.budget = self._calls.budget
        if client is None:
            options = types.HttpOptions(
                timeout=int(timeout * 1000),
                retry_options=types.HttpRetryOptions(attempts=1),  # retried in BoundedCalls
                client_args={"follow_redirects": False},  # the key goes to Google's endpoint alone
            )
            try:
                client = genai.Client(http_options=options)
            except ValueError as e:  # no API key, no project: the SDK says which
                raise FatalTaggerError(
                    f"Gemini needs GEMINI_API_KEY (or GOOGLE_API_KEY), or GOOGLE_GENAI_USE_VERTEXAI with a project "
                    f"({str(e).splitlines()[0][:160]})."
                ) from None
        self._client = client
        self._types = types

    def embed_image(self, image: np.ndarray) -> np.ndarray:
        data = jpeg_under(image, MAX_IMAGE_BYTES, MAX_IMAGE_SIDE)
        return self._embed([self._types.Part.from_bytes(data=data, mime_type="image/jpeg")])

    def embed_text(self, text: str) -> np.ndarray:
        return self._embed(QUERY.format(text))

    def _embed(self, contents) -> np.ndarray:
        config = self._types.EmbedContentConfig(output_dimensionality=self.dim)
        reply = self._calls.run(
            "embed_content",
            lambda: self._attempt(
                lambda: self._client.models.embed_content(model=self.model_id, contents=contents, config=config)
            ),
        )
        try:
            values = list(reply.embeddings[0].values)
        except (AttributeError, IndexError, TypeError):
            raise TaggerError(f"{self.label} returned a response without its vector (bad response).") from None
        return checked_vector(values, self.dim, self.label)

    def _attempt(self, call):
        from google.genai import errors  # Google's SDK loads only when Gemini is used
        from pydantic import ValidationError  # the SDK's schemas: loads only when Gemini is used

        try:
            return call()
        except errors.APIError as e:
            code = int(e.code or 0)
            if code in (401, 403):
                raise FatalTaggerError(
                    f"Google rejected the credentials ({code} {e.status or ''}): check GEMINI_API_KEY or the project."
                ) from None
            if code == 429 or code >= 500:
                what = "kept throttling" if code == 429 else f"failed ({code})"
                after = retry_after(e.response)
                raise Retryable(f"{self.label} {what} after retries; try again later.", after=after) from None
            if 300 <= code < 400:
                raise TaggerError(
                    f"{self.label} answered with a redirect ({code}), which is not followed so the key goes nowhere "
                    "else: check GOOGLE_GEMINI_BASE_URL."
                ) from None
            raise TaggerError(f"{self.label} answered {code} ({(e.message or '')[:160]}).") from None
        except ValidationError:  # JSON the SDK's schema refuses: a vector of strings, a list for an object
            raise TaggerError(f"{self.label} returned a response that does not fit its schema; not stored.") from None
        except ValueError:  # the SDK could not read the body: not JSON, an HTML page
            raise TaggerError(f"{self.label} returned a response that is not valid JSON (bad response).") from None
        except (*_http_errors(), OSError) as e:  # timeouts, refused connections, a body cut short
            raise Retryable(f"{self.label} could not be reached or timed out ({type(e).__name__}).", True) from None


def _http_errors() -> tuple[type[BaseException], ...]:
    """The transport errors of the HTTP clients the SDK may run on (httpx2 where installed, httpx)."""
    import importlib  # the SDK's HTTP clients load only when Gemini is used

    found = []
    for name in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(name).HTTPError)
        except ImportError:
            continue
    return tuple(found)

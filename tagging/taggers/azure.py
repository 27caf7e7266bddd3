"""Azure AI Vision Image Analysis 4.0 (``azure-ai-vision-imageanalysis``): tags, caption, dense
captions, objects and read (OCR), in one ``analyze`` call per frame. Endpoint and key from
AZURE_VISION_ENDPOINT / AZURE_VISION_KEY.

The SDK's default retry policy can wait for minutes; here retries are bounded (a few tries,
backoff capped, a retry budget per run), a 429's Retry-After header is honoured up to
``RETRY_AFTER_CAP`` seconds (one asking for longer fails the call at once), every call ends within
``CALL_DEADLINE`` seconds in all, and no redirect is followed (it would carry the key elsewhere).
Image Analysis 4.0 has no celebrity recognition (that was 3.2's domain model): no celebrity tags.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from tagging.taggers.base import (
    CALL_DEADLINE,
    RETRY_AFTER_CAP,
    FatalTaggerError,
    Response,
    RetryBudget,
    Tag,
    TaggerError,
    checked_tags,
    jpeg_under,
    within_deadline,
)

MAX_BYTES = 4 * 1024 * 1024  # well under the service's 20 MB; keeps uploads quick
MAX_SIDE = 2048  # the service takes 50..16000 px; 2048 keeps OCR legible and requests small
VISUAL_FEATURES = ("tags", "caption", "denseCaptions", "objects", "read")


def capped_retry_policy(retries: int, backoff: float, cap: float, budget: RetryBudget):
    from azure.core.pipeline.policies import RetryPolicy  # the Azure SDK loads only when Azure is used

    class CappedRetryPolicy(RetryPolicy):
        """azure-core's retry policy within the run's retry budget; a server's Retry-After is honoured up
        to ``cap``, and one asking for longer ends the call at once (waiting an hour helps nobody)."""

        def get_retry_after(self, response):
            after = super().get_retry_after(response)
            return None if after is None else min(after, cap)

        def increment(self, settings, response=None, error=None) -> bool:
            wanted = RetryPolicy.get_retry_after(self, response) if hasattr(response, "http_response") else None
            if wanted is not None and wanted > cap:
                settings["total"] = 0
                return False
            return super().increment(settings, response, error) and budget.take()

    return CappedRetryPolicy(retry_total=retries, retry_backoff_factor=backoff, retry_backoff_max=cap)


class AzureTagger:
    """One ``analyze`` call per frame with all five visual features: one stored response."""

    service = "azure"
    features = ("analyze",)
    paid = True
    model_version = "latest"

    def __init__(
        self,
        endpoint: str | None = None,
        key: str | None = None,
        retries: int = 3,
        timeout: float = 30.0,
        backoff: float = 0.5,
        retry_after_cap: float = RETRY_AFTER_CAP,
        deadline: float = CALL_DEADLINE,
        budget: RetryBudget | None = None,
        **client_kwargs,
    ) -> None:
        from azure.ai.vision.imageanalysis import ImageAnalysisClient  # the Azure SDK loads only when Azure is used
        from azure.core.credentials import AzureKeyCredential  # the Azure SDK loads only when Azure is used
        from azure.core.pipeline.policies import RedirectPolicy  # the Azure SDK loads only when Azure is used

        endpoint = endpoint or os.environ.get("AZURE_VISION_ENDPOINT")
        key = key or os.environ.get("AZURE_VISION_KEY")
        if not endpoint or not key:
            raise FatalTaggerError("Azure AI Vision needs AZURE_VISION_ENDPOINT and AZURE_VISION_KEY to be set.")
        self.deadline, self.retry_after_cap = deadline, retry_after_cap
        try:
            self._client = ImageAnalysisClient(
                endpoint,
                AzureKeyCredential(key),
                retry_policy=capped_retry_policy(retries, backoff, retry_after_cap, budget or RetryBudget()),
                # the key is added to every request the pipeline sends, a redirected one too: a 3xx to
                # another host would carry it there, so no redirect is followed
                redirect_policy=RedirectPolicy(permit_redirects=False),
                connection_timeout=10,
                read_timeout=timeout,
                logging_enable=False,
                **client_kwargs,
            )
        except ValueError as e:
            raise FatalTaggerError(f"AZURE_VISION_ENDPOINT is not a usable URL ({e}).") from None

    def responses(self, image: np.ndarray, features: tuple[str, ...] = features) -> Iterator[Response]:
        """Analyse one RGB frame; credential problems raise FatalTaggerError."""
        try:
            result = self._analyze(image)
            if getattr(result, "model_version", None) is None and getattr(result, "metadata", None) is None:
                # every real answer has both; the SDK hands back other JSON (a list, {}) unchecked
                raise TaggerError("Azure returned a response without the Image Analysis fields (bad response).")
            try:
                tags = checked_tags(parse_result(result), "Azure")
            except (KeyError, TypeError, AttributeError, ValueError) as e:
                raise TaggerError(f"Azure returned a response that could not be read ({type(e).__name__}).") from None
            yield Response("analyze", tags, served_version=result.model_version)
        except FatalTaggerError:
            raise
        except TaggerError as e:
            yield Response("analyze", error=e)

    def _analyze(self, image: np.ndarray):
        from azure.ai.vision.imageanalysis.models import VisualFeatures  # the Azure SDK loads only when Azure is used
        from azure.core.exceptions import (  # the Azure SDK loads only when Azure is used
            DecodeError,
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        data = jpeg_under(image, MAX_BYTES, MAX_SIDE)
        try:
            return within_deadline(
                lambda: self._client.analyze(
                    image_data=data,
                    visual_features=[VisualFeatures(f) for f in VISUAL_FEATURES],
                    language="en",
                    gender_neutral_caption=True,
                ),
                self.deadline,
                "Azure",
            )
        except DecodeError:
            raise TaggerError("Azure returned a response that is not valid JSON (bad response).") from None
        except HttpResponseError as e:
            if e.status_code in (401, 403):
                raise FatalTaggerError(
                    f"Azure rejected the credentials (HTTP {e.status_code}): check AZURE_VISION_KEY "
                    "and that AZURE_VISION_ENDPOINT is the resource's endpoint."
                ) from None
            if e.status_code == 429:
                wait = retry_after(e.response)
                if wait is not None and wait > self.retry_after_cap:
                    raise TaggerError(
                        f"Azure is throttling and asks to wait {wait:g} s (more than the {self.retry_after_cap:g} s "
                        "waited here); try again later."
                    ) from None
                raise TaggerError("Azure kept throttling (HTTP 429) after retries; try again later.") from None
            if e.status_code and 300 <= e.status_code < 400:
                raise TaggerError(
                    f"Azure answered with a redirect (HTTP {e.status_code}), which is not followed so the key "
                    "goes nowhere else: check AZURE_VISION_ENDPOINT."
                ) from None
            code = getattr(e.error, "code", None) or e.reason
            raise TaggerError(f"Azure answered HTTP {e.status_code} ({code}).") from None
        except (ServiceRequestError, ServiceResponseError) as e:
            raise TaggerError(
                f"Azure could not be reached or timed out ({type(e).__name__}).", unreachable=True
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise TaggerError(f"Azure returned a response that could not be read ({type(e).__name__}).") from None


def retry_after(response) -> float | None:
    """Seconds a response's Retry-After header asks for (None without one, or unreadable)."""
    try:
        return float(response.headers.get("Retry-After"))
    except (AttributeError, TypeError, ValueError):
        return None


def parse_result(result) -> list[Tag]:
    """ImageAnalysisResult -> tags, read from the JSON as the service sent it (the SDK's attributes
    would turn a number or a list into text, and that must be caught by ``checked_tags``)."""
    tags: list[Tag] = []

    def values(key: str, inner: str = "values") -> list:
        return list((result.get(key) or {}).get(inner) or [])

    caption = result.get("captionResult")
    if caption:
        tags.append(Tag("caption", caption["text"], caption["confidence"]))
    tags += [Tag("caption", c["text"], c["confidence"]) for c in values("denseCaptionsResult")]
    tags += [Tag("label", t["name"], t["confidence"]) for t in values("tagsResult")]
    for obj in values("objectsResult"):
        if obj.get("tags"):
            tags.append(Tag("object", obj["tags"][0]["name"], obj["tags"][0]["confidence"]))
    for block in values("readResult", "blocks"):
        for line in block["lines"]:
            conf = [w["confidence"] for w in line.get("words") or []] or [1.0]
            tags.append(Tag("text", line["text"], sum(conf) / len(conf)))
    return tags

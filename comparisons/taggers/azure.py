"""Azure AI Vision Image Analysis 4.0 (``azure-ai-vision-imageanalysis``): tags, caption, dense
captions, objects and read (OCR). Endpoint and key from AZURE_VISION_ENDPOINT / AZURE_VISION_KEY.

The SDK's default retry policy can wait for minutes; here retries are bounded (a few tries,
backoff capped) and a 429's Retry-After header is honoured by azure-core's RetryPolicy.
Image Analysis 4.0 has no celebrity recognition (that was 3.2's domain model): no celebrity tags.
"""

from __future__ import annotations

import os

import numpy as np

from comparisons.taggers.base import FatalTaggerError, Tag, TaggerError, jpeg_under

MAX_BYTES = 4 * 1024 * 1024  # well under the service's 20 MB; keeps uploads quick
MAX_SIDE = 2048  # the service takes 50..16000 px; 2048 keeps OCR legible and requests small
FEATURES = ("tags", "caption", "denseCaptions", "objects", "read")
CELEBRITY_NOTE = "Azure Image Analysis 4.0 has no celebrity recognition; use Rekognition for celebrities."


class AzureTagger:
    """One ``analyze`` call per frame with all five visual features."""

    service = "azure"
    features = FEATURES
    paid = True

    def __init__(
        self,
        endpoint: str | None = None,
        key: str | None = None,
        retries: int = 3,
        timeout: float = 30.0,
        backoff: float = 0.5,
        **client_kwargs,
    ) -> None:
        from azure.ai.vision.imageanalysis import ImageAnalysisClient
        from azure.core.credentials import AzureKeyCredential

        endpoint = endpoint or os.environ.get("AZURE_VISION_ENDPOINT")
        key = key or os.environ.get("AZURE_VISION_KEY")
        if not endpoint or not key:
            raise FatalTaggerError("Azure AI Vision needs AZURE_VISION_ENDPOINT and AZURE_VISION_KEY to be set.")
        self.model_version = "latest"
        self._client = ImageAnalysisClient(
            endpoint,
            AzureKeyCredential(key),
            retry_total=retries,
            retry_backoff_factor=backoff,
            retry_backoff_max=20,
            connection_timeout=10,
            read_timeout=timeout,
            logging_enable=False,
            **client_kwargs,
        )

    def tag(self, image: np.ndarray) -> list[Tag]:
        """Analyse one RGB frame; raises TaggerError (or FatalTaggerError for auth problems)."""
        from azure.ai.vision.imageanalysis.models import VisualFeatures
        from azure.core.exceptions import (
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        data = jpeg_under(image, MAX_BYTES, MAX_SIDE)
        try:
            result = self._client.analyze(
                image_data=data,
                visual_features=[VisualFeatures(f) for f in FEATURES],
                language="en",
                gender_neutral_caption=True,
            )
        except HttpResponseError as e:
            if e.status_code in (401, 403):
                raise FatalTaggerError(
                    f"Azure rejected the credentials (HTTP {e.status_code}): check AZURE_VISION_KEY "
                    "and that AZURE_VISION_ENDPOINT is the resource's endpoint."
                ) from None
            if e.status_code == 429:
                raise TaggerError("Azure kept throttling (HTTP 429) after retries; try again later.") from None
            code = getattr(e.error, "code", None) or e.reason
            raise TaggerError(f"Azure answered HTTP {e.status_code} ({code}).") from None
        except (ServiceRequestError, ServiceResponseError) as e:
            raise TaggerError(f"Azure could not be reached or timed out ({type(e).__name__}).") from None
        self.model_version = result.model_version or self.model_version
        return parse_result(result)


def parse_result(result) -> list[Tag]:
    """ImageAnalysisResult -> tags."""
    tags: list[Tag] = []
    if result.caption:
        tags.append(Tag("caption", result.caption.text, float(result.caption.confidence)))
    if result.dense_captions:
        tags += [Tag("caption", c.text, float(c.confidence)) for c in result.dense_captions.list]
    if result.tags:
        tags += [Tag("label", t.name, float(t.confidence)) for t in result.tags.list]
    if result.objects:
        for obj in result.objects.list:
            if obj.tags:
                tags.append(Tag("object", obj.tags[0].name, float(obj.tags[0].confidence)))
    if result.read:
        for block in result.read.blocks:
            for line in block.lines:
                conf = [w.confidence for w in line.words] or [1.0]
                tags.append(Tag("text", line.text, float(sum(conf) / len(conf))))
    return tags

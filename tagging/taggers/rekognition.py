"""AWS Rekognition through boto3: detect_labels, recognize_celebrities, detect_text.

Calls go through ``tagging.aws.AwsCalls`` (credentials the boto3 way, bounded retries within the
run's budget and each call's deadline, no redirect). Images are JPEG under Rekognition's 5 MB
limit. Each of the three calls is its own response, so a failed call never throws away the two
that were paid for."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from tagging.aws import AwsCalls, aws_client
from tagging.taggers.base import (
    CALL_DEADLINE,
    FatalTaggerError,
    Response,
    RetryBudget,
    Tag,
    TaggerError,
    checked_tags,
    jpeg_under,
)

MAX_BYTES = 5 * 1024 * 1024 - 64 * 1024  # Rekognition's limit for image bytes, with a margin


def parse_labels(r: dict) -> list[Tag]:
    """DetectLabels -> labels (objects when boxed), confidences scaled from percent."""
    return [Tag("object" if x.get("Instances") else "label", x["Name"], x["Confidence"] / 100) for x in r["Labels"]]


def parse_celebrities(r: dict) -> list[Tag]:
    """RecognizeCelebrities -> celebrity names and a face count."""
    tags = [Tag("celebrity", f["Name"], f.get("MatchConfidence", 0.0) / 100) for f in r["CelebrityFaces"]]
    n = len(r["CelebrityFaces"]) + len(r.get("UnrecognizedFaces", []))
    if n:
        tags.append(Tag("face", "1 face" if n == 1 else f"{n} faces", 1.0))
    return tags


def parse_text(r: dict) -> list[Tag]:
    """DetectText -> whole lines (not words)."""
    return [
        Tag("text", d["DetectedText"], d.get("Confidence", 0.0) / 100)
        for d in r["TextDetections"]
        if d.get("Type") == "LINE"
    ]


# feature -> (operation, extra request fields, parser)
CALLS: dict[str, tuple[str, dict, Callable[[dict], list[Tag]]]] = {
    "labels": ("detect_labels", {"MaxLabels": 25, "MinConfidence": 50}, parse_labels),
    "celebrities": ("recognize_celebrities", {}, parse_celebrities),
    "text": ("detect_text", {}, parse_text),
}


class RekognitionTagger:
    """Three calls per frame (labels, celebrities, text), each stored as it arrives."""

    service = "rekognition"
    features = tuple(CALLS)
    paid = True
    model_version = "rekognition-2016-06-27"

    def __init__(
        self,
        client=None,
        max_attempts: int = 4,
        timeout: float = 30.0,
        deadline: float = CALL_DEADLINE,
        budget: RetryBudget | None = None,
        backoff: float = 0.25,
    ) -> None:
        client = aws_client("rekognition", timeout) if client is None else client
        self._calls = AwsCalls(client, "Rekognition", max_attempts, deadline, budget, backoff)
        self._client, self.budget = client, self._calls.budget

    def responses(self, image: np.ndarray, features: tuple[str, ...] = features) -> Iterator[Response]:
        """Each asked-for call's tags (or its error) as soon as it returns; credentials problems raise."""
        img = {"Bytes": jpeg_under(image, MAX_BYTES, max_side=4096, min_side=80)}
        for feature in features:
            op, extra, parse = CALLS[feature]
            try:
                reply = self._calls.call(op, Image=img, **extra)
                try:
                    tags = checked_tags(parse(reply), "Rekognition")
                except (KeyError, TypeError, AttributeError):
                    raise TaggerError(f"Rekognition {op} returned a response without the expected fields.") from None
                yield Response(feature, tags, served_version=reply.get("LabelModelVersion"))
            except FatalTaggerError:
                raise
            except TaggerError as e:
                yield Response(feature, error=e)

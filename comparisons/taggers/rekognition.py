"""AWS Rekognition through boto3: detect_labels, recognize_celebrities, detect_text.

Region and credentials come the standard boto3 way (environment, profile, instance role), and
AWS_ENDPOINT_URL is honoured as boto3 does. Images are JPEG under Rekognition's 5 MB limit;
throttling is retried with botocore's bounded "standard" retry mode."""

from __future__ import annotations

import numpy as np

from comparisons.taggers.base import FatalTaggerError, Tag, TaggerError, jpeg_under

MAX_BYTES = 5 * 1024 * 1024 - 64 * 1024  # Rekognition's limit for image bytes, with a margin
FEATURES = ("labels", "celebrities", "text")
AUTH_CODES = {
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "AccessDeniedException",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
}
THROTTLE_CODES = {"ThrottlingException", "ProvisionedThroughputExceededException", "LimitExceededException"}


class RekognitionTagger:
    """Three calls per frame (labels, celebrities, text)."""

    service = "rekognition"
    features = FEATURES
    paid = True
    model_version = "rekognition-2016-06-27"

    def __init__(self, client=None, max_attempts: int = 4, timeout: float = 30.0) -> None:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import NoRegionError

        if client is None:
            session = boto3.Session()
            if session.get_credentials() is None:
                raise FatalTaggerError(
                    "AWS credentials not found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                    "or AWS_PROFILE, as for any boto3 program."
                )
            config = Config(
                retries={"total_max_attempts": max_attempts, "mode": "standard"},
                connect_timeout=10,
                read_timeout=timeout,
            )
            try:
                client = session.client("rekognition", config=config)
            except NoRegionError:
                raise FatalTaggerError(
                    "AWS region not set: set AWS_DEFAULT_REGION (or a region in your profile)."
                ) from None
        self._client = client

    def tag(self, image: np.ndarray) -> list[Tag]:
        """Tag one RGB frame; raises TaggerError (FatalTaggerError for credential problems)."""
        img = {"Bytes": jpeg_under(image, MAX_BYTES, max_side=4096, min_side=80)}
        labels = self._call("detect_labels", Image=img, MaxLabels=25, MinConfidence=50)
        celebs = self._call("recognize_celebrities", Image=img)
        text = self._call("detect_text", Image=img)
        return parse(labels, celebs, text)

    def _call(self, op: str, **kwargs) -> dict:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        try:
            return getattr(self._client, op)(**kwargs)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in AUTH_CODES or status in (401, 403):
                raise FatalTaggerError(
                    f"AWS rejected the credentials ({code or status}): check the access key, secret and region."
                ) from None
            if code in THROTTLE_CODES:
                raise TaggerError(f"Rekognition kept throttling ({code}) after retries; try again later.") from None
            raise TaggerError(
                f"Rekognition {op} failed: {code or status} {e.response['Error'].get('Message', '')}".strip()
            ) from None
        except (ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError) as e:
            raise TaggerError(f"Rekognition could not be reached or timed out ({type(e).__name__}).") from None
        except BotoCoreError as e:
            raise TaggerError(f"Rekognition {op} failed ({type(e).__name__}).") from None


def parse(labels: dict, celebs: dict, text: dict) -> list[Tag]:
    """The three responses -> tags (confidences scaled from percent)."""
    tags: list[Tag] = []
    for label in labels.get("Labels", []):
        kind = "object" if label.get("Instances") else "label"
        tags.append(Tag(kind, label["Name"], label["Confidence"] / 100))
    for face in celebs.get("CelebrityFaces", []):
        tags.append(Tag("celebrity", face["Name"], face.get("MatchConfidence", 0.0) / 100))
    n_faces = len(celebs.get("CelebrityFaces", [])) + len(celebs.get("UnrecognizedFaces", []))
    if n_faces:
        tags.append(Tag("face", "1 face" if n_faces == 1 else f"{n_faces} faces", 1.0))
    for det in text.get("TextDetections", []):
        if det.get("Type") == "LINE":
            tags.append(Tag("text", det["DetectedText"], det.get("Confidence", 0.0) / 100))
    return tags

"""AWS Rekognition through boto3: detect_labels, recognize_celebrities, detect_text.

Region and credentials come the standard boto3 way (environment, profile, instance role), and
AWS_ENDPOINT_URL is honoured as boto3 does. Images are JPEG under Rekognition's 5 MB limit.
Throttling, server errors and timeouts are retried here, not by botocore: a few attempts per call
with capped backoff, within the run's retry budget and the call's total deadline (botocore's own
retries, per call and unbounded in sum, made 72 requests for 6 frames of a throttling endpoint).
botocore follows no redirects, so the signed request goes to the endpoint alone. Each of the three
calls is its own response, so a failed call never throws away the two that were paid for."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np

from tagging.taggers.base import (
    CALL_DEADLINE,
    FatalTaggerError,
    Response,
    RetryBudget,
    Tag,
    TaggerError,
    checked_tags,
    jpeg_under,
    within_deadline,
)

MAX_BYTES = 5 * 1024 * 1024 - 64 * 1024  # Rekognition's limit for image bytes, with a margin
AUTH_CODES = {
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "AccessDeniedException",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
}
THROTTLE_CODES = {"ThrottlingException", "ProvisionedThroughputExceededException", "LimitExceededException"}
BACKOFF_CAP = 4.0  # seconds between two attempts of one call at most


class _Retryable(TaggerError):
    """A failure worth another attempt (throttling, a server error, a timeout)."""


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
        if client is None:
            client = _client(timeout)
        self._client = client
        self.max_attempts, self.deadline, self.backoff = max(1, max_attempts), deadline, backoff
        self.budget = budget or RetryBudget()

    def responses(self, image: np.ndarray, features: tuple[str, ...] = features) -> Iterator[Response]:
        """Each asked-for call's tags (or its error) as soon as it returns; credentials problems raise."""
        img = {"Bytes": jpeg_under(image, MAX_BYTES, max_side=4096, min_side=80)}
        for feature in features:
            op, extra, parse = CALLS[feature]
            try:
                reply = self._call(op, Image=img, **extra)
                try:
                    tags = checked_tags(parse(reply), "Rekognition")
                except (KeyError, TypeError, AttributeError):
                    raise TaggerError(f"Rekognition {op} returned a response without the expected fields.") from None
                yield Response(feature, tags, served_version=reply.get("LabelModelVersion"))
            except FatalTaggerError:
                raise
            except TaggerError as e:
                yield Response(feature, error=e)

    def _call(self, op: str, **kwargs) -> dict:
        """One call, retried while it is worth it, the budget lasts and the deadline allows."""
        end = time.monotonic() + self.deadline
        for attempt in range(1, self.max_attempts + 1):
            left = end - time.monotonic()
            if left <= 0:
                raise TaggerError(f"Rekognition {op} gave no answer within {self.deadline:g} s (timed out).", True)
            try:
                return within_deadline(lambda: self._attempt(op, **kwargs), left, "Rekognition")
            except _Retryable as e:
                pause = min(BACKOFF_CAP, self.backoff * 2 ** (attempt - 1))
                if attempt == self.max_attempts or time.monotonic() + pause >= end or not self.budget.take():
                    raise TaggerError(str(e), e.unreachable) from None
                time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _attempt(self, op: str, **kwargs) -> dict:
        from botocore.exceptions import (  # the AWS SDK loads only when Rekognition is used
            BotoCoreError,
            ClientError,
            ConnectionError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )
        from botocore.parsers import ResponseParserError  # the AWS SDK loads only when Rekognition is used

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
                raise _Retryable(f"Rekognition kept throttling ({code}) after retries; try again later.") from None
            message = e.response.get("Error", {}).get("Message", "")
            error = _Retryable if (status or 0) >= 500 else TaggerError
            raise error(f"Rekognition {op} failed: {code or status} {message}".strip()) from None
        except (ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError, ConnectionError) as e:
            raise _Retryable(
                f"Rekognition could not be reached or timed out ({type(e).__name__}).", unreachable=True
            ) from None
        except (ResponseParserError, AttributeError, TypeError, ValueError):  # botocore choking on a junk body
            raise TaggerError(f"Rekognition {op} returned a response that is not valid JSON (bad response).") from None
        except BotoCoreError as e:
            raise TaggerError(f"Rekognition {op} failed ({type(e).__name__}).") from None


def _client(timeout: float):
    """A boto3 Rekognition client; every configuration problem becomes one FatalTaggerError sentence."""
    import boto3  # the AWS SDK loads only when Rekognition is used
    from botocore.config import Config  # the AWS SDK loads only when Rekognition is used

    # the AWS SDK loads only when Rekognition is used
    from botocore.exceptions import BotoCoreError, NoRegionError, ProfileNotFound

    try:
        session = boto3.Session()
        if session.get_credentials() is None:
            raise FatalTaggerError(
                "AWS credentials not found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or AWS_PROFILE, as for any boto3 program."
            )
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},  # retried in RekognitionTagger._call
            connect_timeout=10,
            read_timeout=timeout,
        )
        return session.client("rekognition", config=config)
    except ProfileNotFound as e:
        raise FatalTaggerError(f"AWS profile not found ({e.kwargs.get('profile')}): check AWS_PROFILE.") from None
    except NoRegionError:
        raise FatalTaggerError("AWS region not set: set AWS_DEFAULT_REGION (or a region in your profile).") from None
    except ValueError as e:  # botocore: invalid region string or endpoint URL
        raise FatalTaggerError(
            f"AWS configuration is invalid: {e}. Check AWS_DEFAULT_REGION and AWS_ENDPOINT_URL."
        ) from None
    except BotoCoreError as e:
        raise FatalTaggerError(f"AWS configuration problem: {e}") from None

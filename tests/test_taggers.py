"""Tagger adapters through their real SDK clients against a local fake of each service
(tests/fake_cloud.py): request shapes, parsing, throttling with retries, hard failures."""

from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import pytest
from PIL import Image

from tagging.taggers import FatalTaggerError, Tag, TaggerError, all_tags
from tagging.taggers.azure import AzureTagger
from tagging.taggers.rekognition import RekognitionTagger
from tests.fake_cloud import FakeCloud, Scripted

FRAME = (np.random.default_rng(0).random((480, 854, 3)) * 255).astype(np.uint8)
KEY = "secret-key-1234"


@pytest.fixture
def cloud():
    with FakeCloud() as c:
        yield c


def azure(cloud, **kw) -> AzureTagger:
    kw.setdefault("backoff", 0.01)
    return AzureTagger(endpoint=cloud.url, key=KEY, **kw)


def test_azure_request_shape_and_parsing(cloud):
    tags = all_tags(azure(cloud), FRAME)
    (req,) = cloud.requests
    assert req.path.startswith("/computervision/imageanalysis:analyze?")
    for feature in ("tags", "caption", "denseCaptions", "objects", "read"):
        assert feature in req.path
    assert req.headers["ocp-apim-subscription-key"] == KEY
    assert req.headers["content-type"] == "application/octet-stream"
    assert Image.open(io.BytesIO(req.body)).format == "JPEG"
    assert Tag("caption", "a man standing on a ship", 0.81) in tags
    assert Tag("caption", "a ship at sea", 0.7) in tags
    assert Tag("label", "ship", 0.95) in tags
    assert Tag("object", "boat", 0.8) in tags
    text = [t for t in tags if t.kind == "text"]
    assert text[0].text == "SINBAD THE SAILOR" and text[0].confidence == pytest.approx(0.97)


def test_azure_429_backs_off_honouring_retry_after_then_succeeds(cloud):
    cloud.then(Scripted(429, {"error": {"code": "429", "message": "Rate limit"}}, {"Retry-After": "1"}))
    tags = all_tags(azure(cloud), FRAME)
    assert len(cloud.requests) == 2 and tags
    assert cloud.requests[1].at - cloud.requests[0].at >= 0.9  # waited as the service asked


def test_azure_retries_are_bounded_and_end_in_a_clear_error(cloud):
    cloud.then(*[Scripted(500, {"error": {"code": "InternalServerError", "message": "boom"}})] * 10)
    with pytest.raises(TaggerError, match="HTTP 500"):
        all_tags(azure(cloud, retries=2), FRAME)
    assert len(cloud.requests) == 3  # the first try and two retries, not minutes of them


def test_azure_throttling_storm_gives_up(cloud):
    cloud.then(*[Scripted(429, {"error": {"code": "429", "message": "x"}}, {"Retry-After": "0"})] * 10)
    with pytest.raises(TaggerError, match="throttling"):
        all_tags(azure(cloud, retries=2), FRAME)
    assert len(cloud.requests) == 3


@pytest.mark.parametrize("status", [401, 403])
def test_azure_bad_credentials_stop_the_run(cloud, status):
    cloud.then(Scripted(status, {"error": {"code": str(status), "message": "Access denied"}}))
    with pytest.raises(FatalTaggerError, match="rejected the credentials") as err:
        all_tags(azure(cloud), FRAME)
    assert KEY not in str(err.value)


def test_azure_timeout_is_a_per_frame_error(cloud):
    cloud.then(Scripted(delay=3.0), Scripted(delay=3.0))
    with pytest.raises(TaggerError, match="timed out"):
        all_tags(azure(cloud, retries=1, timeout=0.5), FRAME)


def test_azure_oversize_frame_is_downscaled_to_fit(cloud):
    huge = (np.random.default_rng(1).random((3000, 5000, 3)) * 255).astype(np.uint8)
    all_tags(azure(cloud), huge)
    body = cloud.requests[0].body
    assert len(body) <= 4 * 1024 * 1024
    assert max(Image.open(io.BytesIO(body)).size) <= 2048


def test_azure_missing_credentials(monkeypatch):
    monkeypatch.delenv("AZURE_VISION_ENDPOINT", raising=False)
    monkeypatch.delenv("AZURE_VISION_KEY", raising=False)
    with pytest.raises(FatalTaggerError, match="AZURE_VISION_ENDPOINT and AZURE_VISION_KEY"):
        AzureTagger()


def test_rekognition_request_shapes_and_parsing(aws):
    tags = all_tags(RekognitionTagger(), FRAME)
    assert [r.operation for r in aws.requests] == ["DetectLabels", "RecognizeCelebrities", "DetectText"]
    body = json.loads(aws.requests[0].body)
    assert body["MaxLabels"] == 25 and body["MinConfidence"] == 50
    image = base64.b64decode(body["Image"]["Bytes"])
    assert Image.open(io.BytesIO(image)).format == "JPEG" and len(image) < 5 * 1024 * 1024
    assert "eu-west-1/rekognition/aws4_request" in aws.requests[0].headers["authorization"]
    assert Tag("object", "Boat", 0.975) in tags
    assert Tag("label", "Sea", 0.91) in tags
    assert Tag("celebrity", "Popeye", 0.88) in tags
    assert Tag("face", "2 faces", 1.0) in tags
    assert [t.text for t in tags if t.kind == "text"] == ["SINBAD THE SAILOR"]  # lines, not words


def test_rekognition_throttling_is_retried_then_succeeds(aws):
    aws.then(Scripted(400, {"__type": "ThrottlingException", "message": "Rate exceeded"}))
    tags = all_tags(RekognitionTagger(), FRAME)
    assert [r.operation for r in aws.requests][:2] == ["DetectLabels", "DetectLabels"]
    assert tags


def test_rekognition_retries_are_bounded(aws):
    aws.then(*[Scripted(500, {"__type": "InternalServerError", "message": "boom"})] * 10)
    t0 = time.time()
    with pytest.raises(TaggerError, match="InternalServerError"):
        all_tags(RekognitionTagger(max_attempts=2), FRAME)
    assert len(aws.requests) == 2 and time.time() - t0 < 30


def test_rekognition_bad_credentials_stop_the_run(aws):
    aws.then(Scripted(400, {"__type": "UnrecognizedClientException", "message": "The security token is invalid"}))
    with pytest.raises(FatalTaggerError, match="rejected the credentials") as err:
        all_tags(RekognitionTagger(), FRAME)
    assert KEY not in str(err.value)


def test_rekognition_missing_credentials(monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(FatalTaggerError, match="AWS credentials not found"):
        RekognitionTagger()

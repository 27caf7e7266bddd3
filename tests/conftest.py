"""Shared fixtures: the real films in ../shared/media and a small random CLIP.

Pretrained CLIP weights cannot be had offline, so tests use a randomly initialised CLIP built
from the real ViT-B/32 config, tokenizer and preprocessing in ../shared (narrower and
shallower so it runs fast). Everything else (from_pretrained, tokenizer, preprocessing,
decoding, storage, search) is the real code path; with real weights the same code gives
reference-CLIP vectors, which test_encoders proves against transformers' own pipeline (and the
SigLIP and open_clip backends against theirs).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import av
import numpy as np
import pytest

from clip_search import config

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no network here: fail fast instead of retrying
# the sentence vectors a run keeps for the next (tagging.text_embed): in a folder of this test run
os.environ.setdefault("FRAMESEARCH_CACHE", tempfile.mkdtemp(prefix="framesearch-cache-"))

MEDIA = config.shared_media_dir()
BUNNY = MEDIA / "big-buck-bunny" / "big-buck-bunny-30s.mp4"
FLOWER = MEDIA / "closeups" / "flower.mp4"
TEARS = MEDIA / "tears-of-steel" / "tears-of-steel-battle-clip-medium.webm"
POPEYE1 = MEDIA / "popeye" / "popeye_p1.mkv"
QUERY_SET = config.PROJECT_DIR / "data" / "queries.csv"
EXAMPLE_FILMS = [
    BUNNY,
    TEARS,
    POPEYE1,
    MEDIA / "popeye" / "popeye_p2.mkv",
    MEDIA / "popeye" / "popeye_p3.mkv",
    MEDIA / "popeye" / "popeye_p4.mkv",
    MEDIA / "intel" / "one-by-one-person-detection.mp4",
    MEDIA / "intel" / "bottle-detection.mp4",
]


def assert_no_error(at) -> None:
    """The page ran without an exception or an error line; a failure prints what the page said."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


if not BUNNY.is_file():
    pytest.exit(f"The shared films are missing ({MEDIA}); the tests need ../shared beside the checkout.", 2)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A small random CLIP saved with save_pretrained, with the real tokenizer and preprocessing."""
    from clip_search.encoders.random import build_random_clip

    return build_random_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def siglip_dir(tmp_path_factory) -> Path:
    """A small random SigLIP (SiglipConfig, a sentencepiece tokenizer trained on our queries)."""
    from clip_search.encoders.random import build_random_siglip

    return build_random_siglip(tmp_path_factory.mktemp("siglip") / "model")


@pytest.fixture(scope="session")
def open_clip_dir(tmp_path_factory) -> Path:
    """A small random open_clip model from its own ViT-B-32 config, laid out as its hub repos are."""
    from clip_search.encoders.random import build_random_open_clip

    return build_random_open_clip(tmp_path_factory.mktemp("open_clip") / "model")


@pytest.fixture(scope="session")
def encoder(tiny_clip_dir):
    from clip_search.encoders import load_encoder

    return load_encoder(str(tiny_clip_dir), "cpu", "fp32")  # the reference path; bf16 is tested on its own


@pytest.fixture(scope="session")
def indexed_library(tmp_path_factory, encoder):
    """The films of the example query set (three codecs among them) indexed at 1 fps."""
    from clip_search.indexing.indexer import index_film
    from clip_search.store.library import Library

    lib = Library(tmp_path_factory.mktemp("library"))
    for path in EXAMPLE_FILMS:
        index_film(path, lib, encoder)
    return lib


def write_video(
    path: Path,
    frames: list[np.ndarray],
    pts: list[int] | None = None,
    time_base: int = 1000,
    rotation: int | None = None,
    codec: str = "libx264",
    rate: int = 24,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode RGB frames to a real video file with PyAV; ``pts`` in 1/time_base s (variable frame
    rate); ``options``: the encoder's (e.g. x264's GOP length)."""
    from fractions import Fraction

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = options or {}
        stream.time_base = Fraction(1, time_base)
        stream.codec_context.time_base = Fraction(1, time_base)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = pts[i] if pts is not None else round(i * time_base / rate)
            frame.time_base = Fraction(1, time_base)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def level_frame(level: int, w: int = 64, h: int = 48) -> np.ndarray:
    """A flat grey frame whose brightness encodes a number (survives lossy coding)."""
    return np.full((h, w, 3), level, np.uint8)


def text_video(path: Path) -> Path:
    """8 s at 24 fps with burned-in text: HELLO WORLD from 2 to 4 s, FRAME SEARCH from 5 to 7 s."""
    import cv2

    frames = []
    for i in range(8 * 24):
        img = np.full((360, 640, 3), 30, np.uint8)
        t = i / 24
        text = "HELLO WORLD" if 2 <= t < 4 else "FRAME SEARCH" if 5 <= t < 7 else None
        if text:
            cv2.putText(img, text, (60, 200), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (255, 255, 255), 5)
        frames.append(img)
    return write_video(path, frames)


@pytest.fixture(scope="module")
def text_film(tmp_path_factory, encoder):
    """An 8 s film with burned-in text indexed at 1 fps (8 frames), once per test module; tests that
    change its library copy it first."""
    from clip_search.indexing.indexer import index_film
    from clip_search.store.library import Library

    tmp = tmp_path_factory.mktemp("text-film")
    lib = Library(tmp / "lib")
    return lib, index_film(text_video(tmp / "captions.mp4"), lib, encoder).film


AWS_SECRET = "secret-key-1234"


@pytest.fixture
def aws(monkeypatch):
    """Fake credentials and AWS_ENDPOINT_URL pointing boto3 at a local fake of Rekognition
    (tests/fake_cloud.py), as boto3 honours it; yields the fake, which records every request."""
    from tests.fake_cloud import FakeCloud

    with FakeCloud() as cloud:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        monkeypatch.setenv("AWS_ENDPOINT_URL", cloud.url)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        yield cloud

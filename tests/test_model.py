"""CLIP encoding: our pipeline gives the reference transformers vectors; load errors are clear."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPModel, CLIPProcessor

from clip_search.errors import ModelLoadError
from clip_search.model import CLIP_MAX_TOKENS, load_encoder
from clip_search.video import SamplingSettings, iter_frames
from tests.conftest import BUNNY, POPEYE1, TEARS


@pytest.fixture(scope="module")
def reference(tiny_clip_dir):
    """transformers' own CLIPProcessor + CLIPModel on the same checkpoint: the reference path."""
    return CLIPProcessor.from_pretrained(tiny_clip_dir), CLIPModel.from_pretrained(tiny_clip_dir).eval()


def _unit(t: torch.Tensor) -> np.ndarray:
    return (t / t.norm(dim=-1, keepdim=True)).numpy()


def test_frame_vectors_equal_reference_clip(encoder, reference):
    processor, model = reference
    frames = []
    for path in (BUNNY, TEARS, POPEYE1):  # three aspect ratios and codecs
        frames += [f.image for f in iter_frames(path, SamplingSettings(fps=0.2))][:4]
    ours = encoder.encode_images(frames)
    with torch.no_grad():
        inputs = processor(images=[Image.fromarray(f) for f in frames], return_tensors="pt")
        ref = _unit(model.get_image_features(**inputs).pooler_output)
    cos = (ours * ref).sum(axis=1)
    assert cos.min() >= 0.999, cos
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_text_vectors_equal_reference_clip(encoder, reference):
    processor, model = reference
    texts = ["Vizzini says inconceivable", "a wide shot of a girl practising ballet"]
    with torch.no_grad():
        ref = _unit(model.get_text_features(**processor(text=texts, return_tensors="pt", padding=True)).pooler_output)
    enc = encoder.encode_text(texts)
    assert ((enc.vectors * ref).sum(axis=1) >= 0.999).all()
    assert enc.truncated == [False, False]


def test_long_text_is_truncated_and_flagged(encoder):
    long = "a man hanging from a boom barrier " * 30
    enc = encoder.encode_text([long])
    assert enc.truncated == [True]
    ids = encoder.tokenizer(long)["input_ids"]
    assert len(ids) > CLIP_MAX_TOKENS
    # the vector is that of the text cut at 77 tokens
    cut = encoder.tokenizer.decode(ids[1 : CLIP_MAX_TOKENS - 1])
    assert float(enc.vectors[0] @ encoder.encode_text([cut]).vectors[0]) > 0.999


def test_missing_folder_gives_one_clear_sentence(tmp_path):
    with pytest.raises(ModelLoadError) as err:
        load_encoder(str(tmp_path / "no-such-model"))
    msg = str(err.value)
    assert "does not exist" in msg and "local folder" in msg and "\n" not in msg


def test_folder_without_weights_gives_clear_error(tmp_path, tiny_clip_dir):
    for name in ("config.json", "tokenizer.json", "vocab.json", "merges.txt"):
        (tmp_path / name).write_bytes((tiny_clip_dir / name).read_bytes())
    with pytest.raises(ModelLoadError, match="Cannot load CLIP model .*local folder"):
        load_encoder(str(tmp_path))


def test_hub_id_offline_gives_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # this machine has no network; make that explicit
    with pytest.raises(ModelLoadError, match="Cannot load CLIP model 'openai/clip-vit-base-patch32'"):
        load_encoder("openai/clip-vit-base-patch32")

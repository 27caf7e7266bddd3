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


def test_bfloat16_on_the_cpu_keeps_the_float32_vectors(tiny_clip_dir, encoder):
    """The fast CPU path: bfloat16 matrix work under autocast, weights in float32, parity measured."""
    fast = load_encoder(str(tiny_clip_dir), "cpu", "bf16")
    assert fast.precision == "bf16" and fast.dtype == torch.float32
    frames = [f.image for f in iter_frames(BUNNY, SamplingSettings(fps=0.5))][:8]
    cos = (fast.encode_images(frames) * encoder.encode_images(frames)).sum(axis=1)
    assert cos.min() >= 0.999, cos
    texts = ["a bird on a branch", "Vizzini says inconceivable"]
    assert ((fast.encode_text(texts).vectors * encoder.encode_text(texts).vectors).sum(axis=1) >= 0.999).all()


def test_auto_precision_is_bfloat16_only_where_the_cpu_has_it(monkeypatch):
    import clip_search.model as model

    monkeypatch.setattr(model, "cpu_has_bf16", lambda: True)  # stands for a CPU with AVX-512 BF16 / AMX
    assert model.pick_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(model, "cpu_has_bf16", lambda: False)
    assert model.pick_precision("auto", "cpu") == "fp32" and model.pick_precision(None, "cpu") == "fp32"
    assert model.pick_precision("auto", "cuda") == "fp16" and model.pick_precision("fp32", "cuda") == "fp32"
    assert model.pick_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        model.pick_precision("int4", "cpu")


def test_the_cli_takes_a_precision(tmp_path, tiny_clip_dir, capsys):
    from clip_search.cli import main
    from tests.conftest import FLOWER

    lib = str(tmp_path / "lib")
    args = ["index", str(FLOWER), "--library", lib, "--model", str(tiny_clip_dir)]
    assert main([*args, "--precision", "bf16"]) == 0
    assert "(bf16)" in capsys.readouterr().err
    assert main(["search", "a flower", "--library", lib, "--precision", "fp32"]) == 0
    assert main(["search", "a flower", "--library", lib, "--precision", "int4"]) == 2


def test_a_bfloat16_batch_that_comes_out_non_finite_is_computed_again_in_float32(tiny_clip_dir, encoder):
    fast = load_encoder(str(tiny_clip_dir), "cpu", "bf16")
    real = fast.model.get_image_features

    def flaky(**kwargs):  # stands for the rare NaN a bf16 forward gave under load
        out = real(**kwargs)
        if torch.is_autocast_enabled("cpu"):
            out.pooler_output[0] = float("nan")
        return out

    fast.model.get_image_features = flaky
    frames = [f.image for f in iter_frames(BUNNY, SamplingSettings(fps=0.5))][:4]
    vectors = fast.encode_images(frames)
    assert np.all(np.isfinite(vectors)) and fast.fallbacks == 1
    assert np.allclose(vectors, encoder.encode_images(frames), atol=1e-5)  # the float32 answer

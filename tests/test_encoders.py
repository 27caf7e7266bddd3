"""Encoders: each backend gives its own library's reference vectors; names resolve; errors are clear.

The reference paths are the libraries' own: transformers' CLIPProcessor + CLIPModel, AutoProcessor +
SigLIP's get_image_features / get_text_features, open_clip's own preprocess + encode_image /
encode_text. The models are random (no pretrained weights exist on these machines), built from each
library's own configs: CLIP's real config and tokenizer from ../shared, open_clip's shipped ViT-B-32
config and BPE tokenizer, and for SigLIP a small SiglipConfig with a sentencepiece tokenizer that
``build_random_siglip`` trains on our queries (the real SigLIP tokenizers are not here either)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPModel, CLIPProcessor

from clip_search.encoders import load_encoder, preprocessing_for, resolve
from clip_search.encoders.base import matmul_modules
from clip_search.encoders.hf_clip import CLIP_MAX_TOKENS
from clip_search.errors import ModelLoadError
from clip_search.video.decode import SamplingSettings, iter_frames
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
    assert cos.min() >= 0.9999, cos
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_text_vectors_equal_reference_clip(encoder, reference):
    processor, model = reference
    texts = ["Vizzini says inconceivable", "a wide shot of a girl practising ballet"]
    with torch.no_grad():
        ref = _unit(model.get_text_features(**processor(text=texts, return_tensors="pt", padding=True)).pooler_output)
    enc = encoder.encode_text(texts)
    assert ((enc.vectors * ref).sum(axis=1) >= 0.9999).all()
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
    # the words it read, for a header: as many of the first words as fit, and no more
    used = enc.used[0]
    assert long.startswith(used) and len(encoder.tokenizer(used)["input_ids"]) <= CLIP_MAX_TOKENS
    one_more = " ".join(long.split()[: len(used.split()) + 1])
    assert len(encoder.tokenizer(one_more)["input_ids"]) > CLIP_MAX_TOKENS


def test_missing_folder_gives_one_clear_sentence(tmp_path):
    with pytest.raises(ModelLoadError) as err:
        load_encoder(str(tmp_path / "no-such-model"))
    msg = str(err.value)
    assert "does not exist" in msg and "local folder" in msg and "\n" not in msg


def test_folder_without_weights_gives_clear_error(tmp_path, tiny_clip_dir):
    for name in ("config.json", "tokenizer.json", "vocab.json", "merges.txt"):
        (tmp_path / name).write_bytes((tiny_clip_dir / name).read_bytes())
    with pytest.raises(ModelLoadError, match="Cannot load model .*local folder"):
        load_encoder(str(tmp_path))


def test_hub_id_offline_gives_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # this machine has no network; make that explicit
    with pytest.raises(ModelLoadError, match="Cannot load model 'openai/clip-vit-base-patch32'"):
        load_encoder("openai/clip-vit-base-patch32")


def test_bfloat16_on_the_cpu_keeps_the_float32_vectors(tiny_clip_dir, encoder):
    """The fast CPU path: bfloat16 matrix work under autocast (matrix weights held in bf16, norms and
    input in float32), parity measured."""
    fast = load_encoder(str(tiny_clip_dir), "cpu", "bf16")
    assert fast.precision == "bf16" and fast.dtype == torch.float32
    frames = [f.image for f in iter_frames(BUNNY, SamplingSettings(fps=0.5))][:8]
    cos = (fast.encode_images(frames) * encoder.encode_images(frames)).sum(axis=1)
    assert cos.min() >= 0.999, cos
    texts = ["a bird on a branch", "Vizzini says inconceivable"]
    assert ((fast.encode_text(texts).vectors * encoder.encode_text(texts).vectors).sum(axis=1) >= 0.999).all()


@pytest.mark.parametrize("model_dir", ["tiny_clip_dir", "siglip_dir", "open_clip_dir"])
def test_every_backend_in_bfloat16_keeps_its_float32_vectors(model_dir, request):
    """Each backend the library loads (transformers CLIP and SigLIP, open_clip) under bf16 autocast:
    frames and texts within cosine 0.999 of float32, and still unit vectors."""
    path = str(request.getfixturevalue(model_dir))
    exact, fast = load_encoder(path, "cpu", "fp32"), load_encoder(path, "cpu", "bf16")
    assert (exact.precision, fast.precision) == ("fp32", "bf16")
    # matrix weights held in bf16 (not cast on every call), norms in float32 (as autocast runs them)
    assert {p.dtype for m in matmul_modules(fast.model) for p in m.parameters()} == {torch.bfloat16}
    norms = [m for m in fast.model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and {p.dtype for m in norms for p in m.parameters()} == {torch.float32}
    frames = [f.image for f in iter_frames(BUNNY, SamplingSettings(fps=0.5))][:6]
    a, b = fast.encode_images(frames), exact.encode_images(frames)
    assert (a * b).sum(axis=1).min() >= 0.999
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-4)
    texts = ["a bird on a branch", "Vizzini says inconceivable"]
    assert ((fast.encode_text(texts).vectors * exact.encode_text(texts).vectors).sum(axis=1) >= 0.999).all()


def test_auto_precision_is_bfloat16_only_where_the_cpu_has_it(monkeypatch):
    import clip_search.encoders.base as model

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
    real = fast._image_features
    before = {name: (p.dtype, p.data_ptr()) for name, p in fast.model.named_parameters()}

    def flaky(model, pixels):  # stands for the rare NaN a bf16 forward gave under load
        out = real(model, pixels)
        if torch.is_autocast_enabled("cpu"):
            out.pooler_output[0] = float("nan")
        return out

    fast._image_features = flaky
    frames = [f.image for f in iter_frames(BUNNY, SamplingSettings(fps=0.5))][:4]
    vectors = fast.encode_images(frames)
    assert np.all(np.isfinite(vectors)) and fast.fallbacks == 1
    # float32 arithmetic on the weights the bf16 path holds (loaded in bf16, its norms widened after)
    rounded = load_encoder(str(tiny_clip_dir), "cpu", "fp32")
    for p in rounded.model.parameters():
        p.data = p.data.to(torch.bfloat16).float()
    assert np.allclose(vectors, rounded.encode_images(frames), atol=1e-5)
    assert (vectors * encoder.encode_images(frames)).sum(axis=1).min() >= 0.999  # and float32's within parity
    # the shared model was never touched: the re-run used a float32 twin of its own
    assert {name: (p.dtype, p.data_ptr()) for name, p in fast.model.named_parameters()} == before
    held = [p.dtype for m in matmul_modules(fast.model) for p in m.parameters()]
    assert held and set(held) == {torch.bfloat16}


FRAMES_FROM = (BUNNY, TEARS, POPEYE1)  # three aspect ratios and codecs
TEXTS = ["Vizzini says inconceivable", "a wide shot of a girl practising ballet", "a boom barrier " * 40]


def _frames() -> list[np.ndarray]:
    frames = []
    for path in FRAMES_FROM:
        frames += [f.image for f in iter_frames(path, SamplingSettings(fps=0.2))][:3]
    return frames


def _cosines(a: np.ndarray, b) -> np.ndarray:
    b = np.asarray(getattr(b, "pooler_output", b), np.float32)
    return (a * (b / np.linalg.norm(b, axis=1, keepdims=True))).sum(axis=1)


def test_siglip_vectors_equal_autoprocessor_and_siglip_features(siglip_dir):
    from transformers import AutoModel, AutoProcessor

    ours = load_encoder(str(siglip_dir), "cpu", "fp32")
    assert ours.backend == "transformers-siglip" and ours.max_tokens == 64 and ours.scoring.kind == "sigmoid"
    processor, model = AutoProcessor.from_pretrained(siglip_dir), AutoModel.from_pretrained(siglip_dir).eval()
    frames = _frames()
    with torch.no_grad():
        pixels = processor(images=[Image.fromarray(f) for f in frames], return_tensors="pt")
        ref_img = model.get_image_features(**pixels)
        tok = processor(text=TEXTS, padding="max_length", max_length=64, truncation=True, return_tensors="pt")
        ref_txt = model.get_text_features(**tok)
    assert _cosines(ours.encode_images(frames), ref_img).min() >= 0.9999
    enc = ours.encode_text(TEXTS)
    assert _cosines(enc.vectors, ref_txt).min() >= 0.9999
    assert enc.truncated == [False, False, True]
    # padded to max_length whatever the batch: a text scores the same alone as beside a long one
    assert float(ours.encode_text(TEXTS[:1]).vectors[0] @ enc.vectors[0]) > 0.99999
    assert ours.pre.mode == "square" and ours.prepare(frames[0]).shape == (224, 224, 3)


def test_open_clip_vectors_equal_its_own_preprocess_and_encoders(open_clip_dir):
    import open_clip

    ours = load_encoder(str(open_clip_dir), "cpu", "fp32")
    assert ours.backend == "open_clip" and ours.max_tokens == 77
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{open_clip_dir}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{open_clip_dir}")
    frames = _frames()
    with torch.no_grad():
        ref_img = model.eval().encode_image(torch.stack([preprocess(Image.fromarray(f)) for f in frames]))
        ref_txt = model.encode_text(tokenizer(TEXTS))
    assert _cosines(ours.encode_images(frames), ref_img).min() >= 0.9999
    enc = ours.encode_text(TEXTS)
    assert _cosines(enc.vectors, ref_txt).min() >= 0.9999
    assert enc.truncated == [False, False, True]


def test_open_clip_squash_resizes_the_whole_frame(tmp_path):
    import open_clip

    from clip_search.encoders.random import build_random_open_clip

    folder = build_random_open_clip(tmp_path / "squash", resize_mode="squash")
    ours = load_encoder(f"open_clip:{folder}", "cpu", "fp32")
    assert ours.pre.mode == "square" and ours.model_id == f"open_clip:{folder}"
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    frames = _frames()[:4]
    with torch.no_grad():
        ref = model.eval().encode_image(torch.stack([preprocess(Image.fromarray(f)) for f in frames]))
    assert _cosines(ours.encode_images(frames), ref).min() >= 0.9999


@pytest.mark.parametrize("which", ["clip", "siglip", "open_clip"])
def test_the_decode_side_prepares_frames_without_the_weights(which, tiny_clip_dir, siglip_dir, open_clip_dir):
    folder = {"clip": tiny_clip_dir, "siglip": siglip_dir, "open_clip": open_clip_dir}[which]
    assert preprocessing_for(str(folder)) == load_encoder(str(folder), "cpu", "fp32").pre


def test_model_names_resolve_to_their_backend(tiny_clip_dir, siglip_dir, open_clip_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # hub ids resolve by name here: no network
    assert resolve(str(tiny_clip_dir)).backend == "transformers-clip"
    assert resolve(str(siglip_dir)).backend == "transformers-siglip"
    assert resolve(str(open_clip_dir)).backend == "open_clip"
    assert resolve("google/siglip2-base-patch16-224").backend == "transformers-siglip"
    assert resolve("openai/clip-vit-base-patch32").backend == "transformers-clip"
    ref = resolve("open_clip:ViT-B-32/laion2b_s34b_b79k")
    assert (ref.backend, ref.target, ref.pretrained) == ("open_clip", "ViT-B-32", "laion2b_s34b_b79k")
    assert resolve("open_clip:hf-hub:timm/PE-Core-B-16").target == "hf-hub:timm/PE-Core-B-16"
    for bad in ("not a model", "open_clip:", "open_clip:hf-hub:"):
        with pytest.raises(ModelLoadError) as err:
            resolve(bad)
        msg = str(err.value)
        assert "hub id" in msg and "open_clip:hf-hub:" in msg and "local folder" in msg and "\n" not in msg


def test_an_open_clip_hub_model_offline_fails_at_once_in_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="Cannot load model 'open_clip:hf-hub:timm/PE-Core-B-16'") as err:
        load_encoder("open_clip:hf-hub:timm/PE-Core-B-16")
    assert "\n" not in str(err.value)


def test_an_open_clip_folder_without_weights_is_refused(tmp_path, open_clip_dir):
    (tmp_path / "open_clip_config.json").write_bytes((open_clip_dir / "open_clip_config.json").read_bytes())
    with pytest.raises(ModelLoadError, match="open_clip_model.safetensors"):
        load_encoder(str(tmp_path))


def test_probabilities_follow_each_model(siglip_dir, encoder):
    scores = np.array([0.1, 0.3, 0.2], np.float32)
    soft = encoder.scoring.probabilities(scores)
    assert soft.sum() == pytest.approx(1.0) and soft.argmax() == 1
    sig = load_encoder(str(siglip_dir), "cpu", "fp32").scoring
    expected = 1 / (1 + np.exp(-(sig.logit_scale * scores + sig.logit_bias)))
    assert np.allclose(sig.probabilities(scores), expected)


def test_metaclip2_vectors_equal_its_own_model_and_processor(tmp_path, monkeypatch):
    """MetaCLIP 2, built small and random from transformers' own MetaClip2Config: our vectors are its
    get_image_features / get_text_features on CLIPImageProcessor's pixels and the checkpoint's tokens."""
    from transformers import AutoTokenizer, CLIPImageProcessor, MetaClip2Model

    from clip_search.encoders.random import build_random_metaclip2

    folder = build_random_metaclip2(tmp_path / "metaclip2")
    ours = load_encoder(str(folder), "cpu", "fp32")
    assert ours.backend == "transformers-metaclip2" and ours.multilingual and ours.max_tokens == 77
    model = MetaClip2Model.from_pretrained(folder).eval()
    processor, tokenizer = CLIPImageProcessor.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    frames = _frames()
    with torch.no_grad():
        ref_img = model.get_image_features(
            **processor(images=[Image.fromarray(f) for f in frames], return_tensors="pt")
        )
        tok = tokenizer(TEXTS, padding=True, truncation=True, max_length=77, return_tensors="pt")
        ref_txt = model.get_text_features(**tok)
    assert _cosines(ours.encode_images(frames), ref_img).min() >= 0.999
    enc = ours.encode_text(TEXTS)
    assert _cosines(enc.vectors, ref_txt).min() >= 0.999
    assert enc.truncated == [False, False, True]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub id resolves by its name here: no network
    assert resolve("facebook/metaclip-2-worldwide-huge-quickgelu").backend == "transformers-metaclip2"

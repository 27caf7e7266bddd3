"""Random-weights models built from each library's own configs: for tests, benchmarks and the
offline demo. Loading them runs the real loading code (``from_pretrained``, open_clip's factory);
only the weights are random, so their rankings mean nothing.

- CLIP: the real ViT-B/32 config, tokenizer and preprocessing in ../shared.
- SigLIP: a ``SiglipConfig`` and a sentencepiece tokenizer trained here on a small corpus (the real
  SigLIP tokenizers are not on these machines); preprocessing as SiglipImageProcessor's defaults.
- open_clip: open_clip's own shipped model config (ViT-B-32) and its own BPE tokenizer, saved as
  a local folder laid out as open_clip's hub repos are.
- X-CLIP and VideoPrism (video-text): transformers' own configs, small, with the processors their
  checkpoints ship (X-CLIP with CLIP's real tokenizer; VideoPrism with a tokenizer trained here).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import clip_search.config as config
from clip_search.encoders.openclip import save_folder
from clip_search.errors import ModelLoadError

SMALL = {"layers": 2, "width": 64, "heads": 4}
SIGLIP_SPECIAL_IDS = {"pad_token_id": 1, "eos_token_id": 1, "bos_token_id": None}  # the trained tokenizer's
CORPUS = Path(__file__).resolve().parents[2] / "data" / "queries.csv"


def build_random_clip(
    target: str | os.PathLike, layers: int = 2, width: int = 64, seed: int = 0, full_size: bool = False
) -> Path:
    """Save a randomly initialised CLIP built from the real config in ../shared into ``target``.

    For tests, benchmarks and offline demos: the real tokenizer, preprocessing and
    ``from_pretrained`` path run end to end; only the weights are random. ``full_size`` keeps
    ViT-B/32's real widths and depths (for speed measurements)."""
    import torch  # torch loads only when a model is used
    from transformers import CLIPConfig, CLIPModel  # transformers loads only when a model is used

    src = config.shared_clip_config_dir()
    if not (src / "config.json").is_file():
        raise ModelLoadError(f"No CLIP config at {src}: the shared data folder is missing.")
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((src / "config.json").read_text())
    if not full_size:
        for part, heads in (("text_config", 4), ("vision_config", 4)):
            cfg[part].update(
                hidden_size=width, intermediate_size=width * 4, num_hidden_layers=layers, num_attention_heads=heads
            )
        cfg["projection_dim"] = width
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(**{k: v for k, v in cfg.items() if k not in ("architectures",)}))
    model.save_pretrained(target)
    for name in (
        "vocab.json",
        "merges.txt",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "preprocessor_config.json",
    ):
        shutil.copy(src / name, target / name)
    return target


def build_random_metaclip2(target: str | os.PathLike, seed: int = 0, width: int = 64, layers: int = 2) -> Path:
    """Save a random ``MetaClip2Model`` into ``target``: transformers' own MetaCLIP 2 config, small,
    with CLIP's real tokenizer and preprocessing from ../shared (the config's vocabulary and special
    tokens are CLIP's; the worldwide checkpoints bring their own multilingual tokenizer)."""
    import torch  # torch loads only when a model is used
    from transformers import MetaClip2Config, MetaClip2Model  # transformers loads only when a model is used

    src = config.shared_clip_config_dir()
    if not (src / "tokenizer.json").is_file():
        raise ModelLoadError(f"No CLIP tokenizer at {src}: the shared data folder is missing.")
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    tower = {
        "hidden_size": width,
        "intermediate_size": width * 4,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
    }
    cfg = MetaClip2Config(text_config=tower, vision_config={**tower, "patch_size": 32}, projection_dim=width)
    torch.manual_seed(seed)
    MetaClip2Model(cfg).save_pretrained(target)
    for name in ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, target / name)
    shutil.copy(src / "preprocessor_config.json", target / "preprocessor_config.json")
    return target


def build_random_siglip(
    target: str | os.PathLike, seed: int = 0, full_size: bool = False, image_size: int = 224, vocab: int = 600
) -> Path:
    """Save a random SigLIP (``SiglipModel``, ``SiglipTokenizer``, ``SiglipImageProcessor``) into
    ``target``. ``full_size`` uses SigLIP B/16's widths and depths (for speed measurements)."""
    import torch  # torch loads only when a model is used

    # transformers loads only when a model is used
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipTokenizer

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    spm = _train_sentencepiece(target, vocab)
    width, layers, heads = (768, 12, 12) if full_size else (SMALL["width"], SMALL["layers"], SMALL["heads"])
    tower = {"hidden_size": width, "num_hidden_layers": layers, "num_attention_heads": heads}
    tower["intermediate_size"] = width * 4
    cfg = SiglipConfig(  # special token ids: those of the tokenizer trained below
        text_config={**tower, "vocab_size": vocab, "max_position_embeddings": 64, **SIGLIP_SPECIAL_IDS},
        vision_config={**tower, "image_size": image_size, "patch_size": 16},
    )
    torch.manual_seed(seed)
    SiglipModel(cfg).save_pretrained(target)
    # as the real checkpoints: no attention mask (SigLIP's text tower was trained without one)
    SiglipTokenizer(vocab_file=str(spm), model_max_length=64, model_input_names=["input_ids"]).save_pretrained(target)
    SiglipImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(target)
    return target


def build_random_xclip(
    target: str | os.PathLike, seed: int = 0, width: int = 64, layers: int = 2, frames: int = 8
) -> Path:
    """Save a random ``XCLIPModel`` into ``target``: transformers' own X-CLIP config, small, with
    CLIP's real tokenizer from ../shared and the processor ``microsoft/xclip-base-patch32`` ships
    (``VideoMAEImageProcessor``: short side 224, centre crop, bilinear, ImageNet mean and std)."""
    import torch  # torch loads only when a model is used

    # transformers loads only when a model is used
    from transformers import CLIPTokenizerFast, VideoMAEImageProcessor, XCLIPConfig, XCLIPModel, XCLIPProcessor

    src = config.shared_clip_config_dir()
    if not (src / "tokenizer.json").is_file():
        raise ModelLoadError(f"No CLIP tokenizer at {src}: the shared data folder is missing.")
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    tokenizer = CLIPTokenizerFast.from_pretrained(src)
    tower = {
        "hidden_size": width,
        "intermediate_size": width * 4,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
    }
    cfg = XCLIPConfig(
        text_config={**tower, "vocab_size": tokenizer.vocab_size},
        vision_config={
            **tower,
            "patch_size": 32,
            "num_frames": frames,
            "mit_hidden_size": width // 2,
            "mit_intermediate_size": width * 2,
            "mit_num_hidden_layers": 1,
            "mit_num_attention_heads": 2,
        },
        projection_dim=width // 2,  # the multi-frame transformer works on projected features
        prompt_layers=1,
        prompt_num_attention_heads=2,
    )
    torch.manual_seed(seed)
    XCLIPModel(cfg).save_pretrained(target)
    frames_processor = VideoMAEImageProcessor(
        size={"shortest_edge": 224},
        crop_size={"height": 224, "width": 224},
        resample=2,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    XCLIPProcessor(image_processor=frames_processor, tokenizer=tokenizer).save_pretrained(target)
    return target


def build_random_videoprism(
    target: str | os.PathLike, seed: int = 0, width: int = 32, frames: int = 16, vocab: int = 600
) -> Path:
    """Save a random ``VideoPrismClipModel`` into ``target``: transformers' own VideoPrism config,
    small, a unigram tokenizer trained here (the real one is not on these machines) in VideoPrism's
    layout (<pad> 0, </s> 1, <unk> 2), and the processor the LVT checkpoints ship
    (``VideoPrismProcessor``: frames resized whole to 288 x 288, rescaled to [0, 1])."""
    import sentencepiece as spm  # loaded only when a VideoPrism tokenizer is made
    import torch  # torch loads only when a model is used

    # transformers loads only when a model is used
    from transformers import (
        LlavaOnevisionVideoProcessor,
        VideoPrismClipModel,
        VideoPrismConfig,
        VideoPrismProcessor,
        VideoPrismTokenizer,
    )

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    model_file = _train_sentencepiece(target, vocab)
    pieces = spm.SentencePieceProcessor(model_file=str(model_file))
    table = [(pieces.id_to_piece(i), float(pieces.get_score(i))) for i in range(pieces.get_piece_size())]
    model_file.unlink()
    tokenizer = VideoPrismTokenizer(vocab=table, extra_ids=0)
    tower = {"hidden_size": width, "intermediate_size": width * 2, "num_attention_heads": 2}
    cfg = VideoPrismConfig(
        text_config={**tower, "num_hidden_layers": 1, "vocab_size": len(table), "max_position_embeddings": 64},
        vision_config={
            **tower,
            "num_spatial_layers": 1,
            "num_temporal_layers": 1,
            "num_auxiliary_layers": 1,
            "num_frames": frames,
            "image_size": 288,
            "tubelet_size": [1, 18, 18],
        },
    )
    torch.manual_seed(seed)
    VideoPrismClipModel(cfg).save_pretrained(target)
    frames_processor = LlavaOnevisionVideoProcessor(
        size={"height": 288, "width": 288}, do_normalize=False, do_sample_frames=False
    )
    VideoPrismProcessor(video_processor=frames_processor, tokenizer=tokenizer).save_pretrained(target)
    return target


def _train_sentencepiece(target: Path, vocab: int) -> Path:
    """A small unigram sentencepiece model trained on the project's labelled queries."""
    import sentencepiece as spm  # loaded only when a SigLIP tokenizer is read

    lines = [line.split(",")[0] for line in CORPUS.read_text().splitlines()[1:]] if CORPUS.is_file() else []
    lines += ["a photo of a man", "a woman dancing", "a car on a road", "two people talking at night"] * 20
    prefix = target / "spiece"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_prefix=str(prefix),
        vocab_size=vocab,
        model_type="unigram",
        hard_vocab_limit=False,
        minloglevel=2,
        unk_id=2,
        eos_id=1,
        bos_id=-1,
        pad_id=0,
        pad_piece="<pad>",
    )
    (target / "spiece.vocab").unlink(missing_ok=True)
    return prefix.with_suffix(".model")


def build_random_open_clip(
    target: str | os.PathLike, seed: int = 0, full_size: bool = False, resize_mode: str = "shortest"
) -> Path:
    """Save a random open_clip model from open_clip's own ViT-B-32 config into ``target``, as an
    open_clip hub repo is laid out (``open_clip_config.json`` + ``open_clip_model.safetensors``)."""
    import open_clip  # open_clip loads only when one of its models is used
    import torch  # torch loads only when a model is used

    model_cfg = open_clip.get_model_config("ViT-B-32")
    if not full_size:
        w = SMALL["width"]
        model_cfg["embed_dim"] = w
        model_cfg["vision_cfg"].update(width=w, layers=SMALL["layers"], head_width=w // SMALL["heads"])
        model_cfg["text_cfg"].update(width=w, layers=SMALL["layers"], heads=SMALL["heads"])
    preprocess_cfg = {
        "mean": list(open_clip.OPENAI_DATASET_MEAN),
        "std": list(open_clip.OPENAI_DATASET_STD),
        "interpolation": "bicubic",
        "resize_mode": resize_mode,
    }
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    (target / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg}))
    torch.manual_seed(seed)
    model = open_clip.create_model(f"local-dir:{target}")  # no weights yet: open_clip's random init
    return save_folder(model, target, model_cfg, preprocess_cfg)

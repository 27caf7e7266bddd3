"""open_clip (``open-clip-torch``): PE-Core, MobileCLIP 2, EVA02, DFN, LAION ViT-H/14 and the rest
of its zoo. Named ``open_clip:hf-hub:ORG/REPO``, ``open_clip:ARCH/PRETRAINED`` or a local folder
laid out as open_clip's hub repos are (``open_clip_config.json`` + ``open_clip_model.safetensors``).

Frames are prepared as open_clip's own transform does (its ``preprocess_cfg``): PIL resize, then a
torchvision centre crop (``shortest``), or the whole frame to a square (``squash``). Equal to
open_clip's preprocess + ``encode_image`` / ``encode_text``, L2-normalised."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from clip_search.encoders.base import Preprocessing, Scoring, TorchEncoder, pick_precision
from clip_search.encoders.hub import first_line, read_json
from clip_search.errors import ModelLoadError

WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class OpenClipEncoder(TorchEncoder):
    """A loaded open_clip model with its tokenizer."""

    backend = "open_clip"

    def __init__(self, model, tokenizer, model_id: str, device: str, pre: Preprocessing, precision: str) -> None:
        bias = getattr(model, "logit_bias", None)
        scale = float(model.logit_scale.exp().item())
        scoring = Scoring("sigmoid", scale, float(bias.item())) if bias is not None else Scoring("softmax", scale)
        dim = int(model.text_projection.shape[-1] if hasattr(model, "text_projection") else _probe_dim(model))
        super().__init__(model, model_id, device, pre, precision, dim, int(tokenizer.context_length), scoring)
        self.tokenizer = tokenizer

    def _image_features(self, model, pixels):
        return model.encode_image(pixels)

    def _tokens(self, texts: list[str]):
        return self.tokenizer(texts).to(self.device), [self._token_count(t) > self.max_tokens for t in texts]

    def _token_count(self, text: str) -> int:
        """Tokens of ``text`` before the tokenizer cuts it (open_clip's own BPE adds start and end)."""
        tok = self.tokenizer
        if hasattr(tok, "encoder") and hasattr(tok, "encode"):  # SimpleTokenizer (CLIP BPE)
            return len(tok.encode(tok.clean_fn(text) if hasattr(tok, "clean_fn") else text)) + 2
        inner = getattr(tok, "tokenizer", None)  # HFTokenizer wraps a transformers tokenizer
        if inner is not None:
            return len(inner(text)["input_ids"])
        return 0

    def _text_features(self, model, ids):
        return model.encode_text(ids)


def _probe_dim(model) -> int:
    import torch  # torch loads only when a model is used

    size = model.visual.image_size
    size = size if isinstance(size, (tuple, list)) else (size, size)
    with torch.inference_mode():
        return int(model.encode_image(torch.zeros(1, 3, *size)).shape[-1])


def _open_clip_name(ref) -> tuple[str, str | None]:
    """What open_clip's factory is given: 'local-dir:PATH', 'hf-hub:ORG/REPO' or (ARCH, TAG)."""
    if Path(ref.target).is_dir():
        return f"local-dir:{ref.target}", None
    return ref.target, ref.pretrained


def _configs(ref, offline: bool) -> tuple[dict, dict]:
    """(model_cfg, preprocess_cfg) as open_clip's factory would assemble them, without weights."""
    import open_clip  # open_clip loads only when one of its models is used

    # open_clip loads only when one of its models is used
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    pre = asdict(PreprocessCfg())
    folder = Path(ref.target)
    if folder.is_dir() or ref.target.startswith("hf-hub:"):
        source = str(folder) if folder.is_dir() else ref.target[len("hf-hub:") :]
        whole = read_json(source, "open_clip_config.json", offline)
        if not whole or "model_cfg" not in whole:
            raise ModelLoadError(f"'{ref.name}' (no open_clip_config.json with a model_cfg)")
        model_cfg, pre = whole["model_cfg"], merge_preprocess_dict(pre, whole.get("preprocess_cfg", {}))
    else:
        model_cfg = open_clip.get_model_config(ref.target)
        if model_cfg is None:
            raise ModelLoadError(f"'{ref.name}' (open_clip has no model {ref.target!r})")
        pre = merge_preprocess_dict(pre, open_clip.get_pretrained_cfg(ref.target, ref.pretrained or ""))
    size = model_cfg.get("vision_cfg", {}).get("image_size")
    if size:
        pre["size"] = size
    return model_cfg, pre


def from_preprocess_cfg(cfg: dict) -> Preprocessing:
    """open_clip's ``preprocess_cfg`` as our Preprocessing ('longest' letterboxing is not supported)."""
    size = cfg.get("size", 224)
    if isinstance(size, (tuple, list)):
        if size[0] != size[1]:
            raise ModelLoadError(f"(non-square input size {tuple(size)} is not supported)")
        size = size[0]
    mode = cfg.get("resize_mode", "shortest")
    if mode not in ("shortest", "squash"):
        raise ModelLoadError(f"(open_clip resize_mode {mode!r} is not supported; shortest and squash are)")
    return Preprocessing(
        shortest_edge=int(size),
        crop=int(size),
        mean=tuple(cfg.get("mean")),
        std=tuple(cfg.get("std")),
        mode="square" if mode == "squash" else "crop",
        resample="bilinear" if cfg.get("interpolation") == "bilinear" else "bicubic",
        crop_round=True,
        resizer="pil",
    )


def preprocessing(ref, offline: bool = False) -> Preprocessing:
    """How open_clip's transform prepares frames for this model, from its configs only."""
    return from_preprocess_cfg(_configs(ref, offline)[1])


def load(ref, device: str, precision: str | None, offline: bool) -> OpenClipEncoder:
    """``open_clip.create_model`` + ``get_tokenizer``; half precision on CUDA."""
    import open_clip  # open_clip loads only when one of its models is used

    precision = pick_precision(precision, device)
    folder = Path(ref.target)
    if folder.is_dir() and not any((folder / w).is_file() for w in WEIGHT_FILES):
        raise ModelLoadError(f"'{ref.name}' (the folder has no {' or '.join(WEIGHT_FILES)})")
    name, tag = _open_clip_name(ref)
    if offline and ref.target.startswith("hf-hub:") and not read_json(ref.target[7:], "open_clip_config.json", True):
        raise ModelLoadError(f"'{ref.name}' (no network, and the hub cache does not hold it)")
    if offline and tag and not _weights_cached(open_clip, name, tag):  # else the hub client retries for ~50 s
        raise ModelLoadError(f"'{ref.name}' (no network, and this machine's caches do not hold its weights)")
    try:
        model = open_clip.create_model(
            name, pretrained=tag, device=device, precision="fp16" if precision == "fp16" else "fp32"
        )
        tokenizer = open_clip.get_tokenizer(name)
    except Exception as e:  # noqa: BLE001 - network, missing files, unknown names, bad configs
        raise ModelLoadError(f"'{ref.name}' ({first_line(e)})") from None
    model.eval()
    pre = from_preprocess_cfg(model.visual.preprocess_cfg)
    return OpenClipEncoder(model, tokenizer, ref.name, device, pre, precision)


def _weights_cached(open_clip, name: str, tag: str) -> bool:
    """Whether open_clip's pretrained weights ``tag`` of ``name`` are on this machine already (a file
    path, the hub cache, or open_clip's own download folder); an unknown tag counts as present, so
    open_clip names it itself."""
    from huggingface_hub import try_to_load_from_cache  # the hub client loads only when a model is fetched

    cfg = open_clip.get_pretrained_cfg(name, tag)
    if Path(tag).expanduser().is_file() or not cfg or "file" in cfg:
        return True
    repo, filename = os.path.split(cfg.get("hf_hub", ""))
    names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    if repo and any(isinstance(try_to_load_from_cache(repo, n), str) for n in names):
        return True
    url = cfg.get("url", "")
    return bool(url) and (Path.home() / ".cache" / "clip" / os.path.basename(url)).is_file()


def save_folder(model, target: Path, model_cfg: dict, preprocess_cfg: dict) -> Path:
    """Write ``model`` as open_clip's hub repos are laid out (what a local folder must hold)."""
    from safetensors.torch import save_file  # torch loads only when a model is used

    target.mkdir(parents=True, exist_ok=True)
    cfg = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}
    (target / "open_clip_config.json").write_text(json.dumps(cfg, indent=2))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(target / "open_clip_model.safetensors"))
    return target

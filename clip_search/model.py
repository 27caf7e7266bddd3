"""CLIP encoding: load a Hugging Face CLIPModel, turn frames and text into unit vectors.

The image path is split in two so it can run on two threads: ``prepare_image`` (resize the
shortest edge with PIL bicubic, centre-crop; exactly what CLIPImageProcessor does, uint8) runs
beside the decoder, and ``encode_prepared`` (rescale, normalise, forward) runs on the model's
thread in batches. The result equals ``CLIPProcessor`` + ``get_image_features``, L2-normalised.

Precision: float16 on CUDA; on the CPU bfloat16 (``torch.autocast``, the weights stay float32)
where the CPU computes it natively (AVX-512 BF16 or AMX, as current Xeons do), about 3x faster
at minimum cosine 0.99999 against float32 on random weights; float32 elsewhere or when asked.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from clip_search import config
from clip_search.errors import ModelLoadError

CLIP_MAX_TOKENS = 77
PRECISIONS = ("auto", "fp32", "bf16")
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class Preprocessing:
    """The image preprocessing a checkpoint was trained with (from preprocessor_config.json)."""

    shortest_edge: int = 224
    crop: int = 224
    mean: tuple[float, float, float] = OPENAI_CLIP_MEAN
    std: tuple[float, float, float] = OPENAI_CLIP_STD

    @classmethod
    def from_config(cls, cfg: dict, image_size: int) -> Preprocessing:
        """Read the fields CLIPImageProcessor uses; fall back to the model's image size."""
        size = cfg.get("size", image_size)
        edge = size.get("shortest_edge", image_size) if isinstance(size, dict) else int(size)
        crop = cfg.get("crop_size", image_size)
        crop = crop.get("height", image_size) if isinstance(crop, dict) else int(crop)
        return cls(
            shortest_edge=int(edge),
            crop=int(crop),
            mean=tuple(cfg.get("image_mean", OPENAI_CLIP_MEAN)),
            std=tuple(cfg.get("image_std", OPENAI_CLIP_STD)),
        )


def prepare_image(rgb: np.ndarray | Image.Image, pre: Preprocessing) -> np.ndarray:
    """Resize the shortest edge (PIL bicubic) and centre-crop: (crop, crop, 3) uint8.

    Same arithmetic as transformers' CLIPImageProcessor: long edge = int(edge * long / short),
    crop offsets = (size - crop) // 2."""
    img = rgb if isinstance(rgb, Image.Image) else Image.fromarray(rgb)
    if img.mode != "RGB":
        img = img.convert("RGB")
    w, h = img.size
    edge = pre.shortest_edge
    if w <= h:
        size = (edge, int(edge * h / w))
    else:
        size = (int(edge * w / h), edge)
    if size != (w, h):
        img = img.resize(size, resample=Image.Resampling.BICUBIC)
    arr = np.asarray(img)
    top = (arr.shape[0] - pre.crop) // 2
    left = (arr.shape[1] - pre.crop) // 2
    if top < 0 or left < 0:  # smaller than the crop: pad like the reference (centre, zeros)
        pad = np.zeros((max(pre.crop, arr.shape[0]), max(pre.crop, arr.shape[1]), 3), np.uint8)
        py, px = (pad.shape[0] - arr.shape[0]) // 2, (pad.shape[1] - arr.shape[1]) // 2
        pad[py : py + arr.shape[0], px : px + arr.shape[1]] = arr
        arr, top, left = pad, (pad.shape[0] - pre.crop) // 2, (pad.shape[1] - pre.crop) // 2
    return np.ascontiguousarray(arr[top : top + pre.crop, left : left + pre.crop])


def pick_device(device: str | None = None) -> str:
    """'cuda' when a GPU is there (or asked for), else 'cpu'."""
    if device and device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX); elsewhere it would be slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f" {flag}" in flags for flag in ("avx512_bf16", "amx_bf16"))


def pick_precision(precision: str | None, device: str) -> str:
    """The precision to run at: fp16 on CUDA (unless fp32 is asked for), bf16 on a CPU that has
    it under ``auto``, else fp32. ValueError for a precision this device cannot run."""
    precision = precision or "auto"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if device.startswith("cuda"):
        return "fp32" if precision == "fp32" else "bf16" if precision == "bf16" else "fp16"
    if precision == "auto":
        return "bf16" if cpu_has_bf16() else "fp32"
    return precision


@dataclass
class TextEncoding:
    """Unit vectors for a list of texts, and which texts were cut to CLIP's 77 tokens."""

    vectors: np.ndarray
    truncated: list[bool]


class ClipEncoder:
    """A loaded CLIP model with its tokenizer and preprocessing; thread-safe for one writer."""

    def __init__(
        self, model, tokenizer, model_id: str, device: str, pre: Preprocessing, precision: str = "fp32"
    ) -> None:
        self.model = model
        self.precision = precision  # fp32, bf16 (autocast on the CPU) or fp16 (CUDA weights)
        self.fallbacks = 0  # bf16 batches computed again in float32 (a non-finite vector came out)
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.device = device
        self.pre = pre
        self.dtype = next(model.parameters()).dtype
        self.dim = int(model.config.projection_dim)
        self.logit_scale = float(model.logit_scale.exp().item())
        self._mean = torch.tensor(pre.mean, device=device, dtype=torch.float32).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(pre.std, device=device, dtype=torch.float32).view(1, 3, 1, 1) * 255

    def prepare(self, rgb: np.ndarray | Image.Image) -> np.ndarray:
        """Resize and crop one image for this model (runs off the model thread)."""
        return prepare_image(rgb, self.pre)

    @torch.inference_mode()
    def encode_prepared(self, batch: np.ndarray) -> np.ndarray:
        """(B, crop, crop, 3) uint8 from ``prepare`` -> (B, D) float32 unit vectors."""
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float()
        x = ((x - self._mean) / self._std).to(self.dtype)
        return self._checked(lambda: self.model.get_image_features(pixel_values=x))

    def _checked(self, forward) -> np.ndarray:
        """``forward()`` as unit vectors, under bfloat16 where chosen. A batch with a non-finite vector
        (seen rarely under bf16 on a loaded CPU) is computed again in float32: never stored as NaN."""
        with self._autocast():
            out = forward()
        vectors = _unit(getattr(out, "pooler_output", out))
        sound = np.all(np.isfinite(vectors)) and np.all(np.abs(np.linalg.norm(vectors, axis=1) - 1) < 1e-3)
        if self.precision == "bf16" and not sound:
            self.fallbacks += 1
            out = forward()
            vectors = _unit(getattr(out, "pooler_output", out))
        return vectors

    def _autocast(self):
        """bfloat16 matrix work where chosen; a no-op context otherwise."""
        import contextlib

        if self.precision == "bf16" and self.dtype == torch.float32:
            return torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def encode_images(self, images: list[np.ndarray | Image.Image]) -> np.ndarray:
        """Whole images (any size) -> (B, D) unit vectors."""
        return self.encode_prepared(np.stack([self.prepare(im) for im in images]))

    @torch.inference_mode()
    def encode_text(self, texts: list[str]) -> TextEncoding:
        """Texts -> (B, D) unit vectors; texts longer than 77 tokens are truncated, and flagged."""
        full = self.tokenizer(texts, truncation=False)["input_ids"]
        truncated = [len(ids) > CLIP_MAX_TOKENS for ids in full]
        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=CLIP_MAX_TOKENS, return_tensors="pt").to(
            self.device
        )
        ids, mask = tok["input_ids"], tok["attention_mask"]
        return TextEncoding(
            self._checked(lambda: self.model.get_text_features(input_ids=ids, attention_mask=mask)), truncated
        )


def _unit(t: torch.Tensor) -> np.ndarray:
    v = t.float()
    v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return v.cpu().numpy().astype(np.float32)


def _read_preprocessor_config(model_id: str) -> dict:
    local = Path(model_id) / "preprocessor_config.json"
    if local.is_file():
        return json.loads(local.read_text())
    try:
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(model_id, "preprocessor_config.json")).read_text())
    except Exception:  # noqa: BLE001 - a checkpoint without the file uses CLIP's own defaults
        return {}


def _hub_resolvable(timeout: float = 2.0) -> bool:
    """Whether the hub's name resolves (a DNS lookup only; nothing is sent to the hub)."""
    import socket
    import threading

    found: list[bool] = []

    def look() -> None:
        try:
            socket.getaddrinfo("huggingface.co", 443)
            found.append(True)
        except OSError:
            found.append(False)

    worker = threading.Thread(target=look, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(found and found[0])


def preprocessing_for(model_id: str) -> Preprocessing:
    """The model's image preprocessing, read from its config files without loading its weights
    (decode workers prepare frames for a model they never load)."""
    local = Path(model_id) / "config.json"
    if local.is_file():
        cfg = json.loads(local.read_text())
    else:
        from transformers import CLIPConfig

        cfg = CLIPConfig.from_pretrained(model_id).to_dict()
    image_size = int(cfg.get("vision_config", {}).get("image_size", 224))
    return Preprocessing.from_config(_read_preprocessor_config(model_id), image_size)


LOAD_HELP = (
    "Point --model (or FRAMESEARCH_MODEL) at a local folder holding a saved CLIP model "
    "(config.json, the weights and the tokenizer files, as written by save_pretrained), "
    "or connect to the internet so the Hugging Face hub can provide it. Offline, to try the tools "
    'with a random-weights CLIP (its rankings mean nothing): python -c "from clip_search.model import '
    "build_random_clip; build_random_clip('clip-random')\" then --model clip-random (scripts/demo.sh does "
    "this by itself)."
)


def load_encoder(model_id: str | None = None, device: str | None = None, precision: str | None = None) -> ClipEncoder:
    """Load CLIP with ``from_pretrained`` (hub id or local folder) at ``precision`` (auto, fp32,
    bf16; see :func:`pick_precision`): half precision on GPU, bfloat16 on a CPU that has it.

    Raises ModelLoadError with one sentence saying why and how to fix it."""
    from transformers import CLIPModel, CLIPTokenizerFast
    from transformers.utils import logging as hf_logging

    model_id = config.model_id(model_id)
    device = pick_device(device)
    precision = pick_precision(precision, device)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
    if not device.startswith("cuda"):
        dtype = torch.float32  # CPU bf16 runs under autocast: the weights stay float32
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    local = Path(model_id).expanduser()
    if (local.is_absolute() or model_id.startswith(".")) and not local.exists():
        raise ModelLoadError(f"Cannot load CLIP model: the folder {model_id} does not exist. {LOAD_HELP}")
    # no network: use only what the local Hugging Face cache holds, and fail at once if it is not
    # there (otherwise the hub client retries for half a minute before giving up)
    offline = not local.exists() and not os.environ.get("HF_HUB_OFFLINE") and not _hub_resolvable()
    try:
        model = CLIPModel.from_pretrained(model_id, dtype=dtype, local_files_only=offline)
        tokenizer = CLIPTokenizerFast.from_pretrained(model_id, local_files_only=offline)
    except Exception as e:  # noqa: BLE001 - OSError offline/missing files, ValueError wrong type, ...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"Cannot load CLIP model '{model_id}' ({reason[:200]}). {LOAD_HELP}") from None
    model.eval().to(device)
    pre = Preprocessing.from_config(_read_preprocessor_config(model_id), model.config.vision_config.image_size)
    return ClipEncoder(model, tokenizer, model_id, device, pre, precision)


def build_random_clip(
    target: str | os.PathLike, layers: int = 2, width: int = 64, seed: int = 0, full_size: bool = False
) -> Path:
    """Save a randomly initialised CLIP built from the real config in ../shared into ``target``.

    For tests, benchmarks and offline demos: the real tokenizer, preprocessing and
    ``from_pretrained`` path run end to end; only the weights are random. ``full_size`` keeps
    ViT-B/32's real widths and depths (for speed measurements)."""
    import shutil

    from transformers import CLIPConfig, CLIPModel

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

"""The one protocol every dual text-image encoder follows, and what the backends share.

A backend gives ``prepare`` (one frame -> the uint8 crop its processor would make; runs on the
decode side, off the model thread), ``encode_prepared`` (a batch of crops -> unit vectors),
``encode_text`` (texts -> unit vectors, with which texts were cut to the token limit), ``dim``,
``max_tokens`` and the model's own score -> probability (``scoring``: CLIP's softmax with its
logit scale, SigLIP's sigmoid with logit scale and bias).

Precision: float16 on CUDA; on the CPU bfloat16 (``torch.autocast``, the matrix weights held in
bf16) where the CPU computes it natively (AVX-512 BF16 or AMX), float32 elsewhere or when asked. A
bf16 batch with a non-finite or non-unit vector is computed again in float32, never stored.

Thread safety: an encoder is shared (by dashboard sessions, by the threads an actor runs on), so
nothing here mutates a loaded model. The float32 re-run uses a float32 twin of the model, made
once under a lock and never changed after; the tokenizer (a Rust object that refuses to be
re-configured while another thread uses it) is called under its own lock.
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

PRECISIONS = ("auto", "fp32", "bf16")
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


@dataclass(frozen=True)
class Preprocessing:
    """How a checkpoint turns a frame into pixels, read from its own config files.

    ``mode``: ``crop`` resizes the short side to ``shortest_edge`` and centre-crops ``crop``
    (CLIP, open_clip's "shortest"); ``square`` resizes the whole frame to ``crop`` x ``crop``
    (SigLIP, open_clip's "squash"). ``crop_round``: the crop offset is (size - crop) // 2 in
    transformers and round((size - crop) / 2) in torchvision (open_clip). ``resizer``: ``torch``
    resizes a uint8 tensor with antialiasing (transformers' torchvision image processors, the
    ones it picks when torchvision is installed), ``pil`` resizes the PIL image (open_clip)."""

    shortest_edge: int = 224
    crop: int = 224
    mean: tuple[float, float, float] = OPENAI_CLIP_MEAN
    std: tuple[float, float, float] = OPENAI_CLIP_STD
    mode: str = "crop"
    resample: str = "bicubic"
    crop_round: bool = False
    resizer: str = "torch"

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
            resample="bilinear" if cfg.get("resample") == 2 else "bicubic",
        )


def prepare_image(rgb: np.ndarray | Image.Image, pre: Preprocessing) -> np.ndarray:
    """One frame -> (crop, crop, 3) uint8, with the arithmetic of the model's own processor.

    ``crop`` mode as transformers' CLIPImageProcessor and torchvision's Resize + CenterCrop: long
    edge = int(edge * long / short); ``square`` mode as SiglipImageProcessor: the whole frame."""
    if isinstance(rgb, Image.Image):
        img = rgb if rgb.mode == "RGB" else rgb.convert("RGB")
        w, h = img.size
    else:
        img, (h, w) = rgb, rgb.shape[:2]
    if pre.mode == "square":
        arr = _resized(img, (pre.crop, pre.crop), pre)
        return np.ascontiguousarray(arr)
    edge = pre.shortest_edge
    size = (edge, int(edge * h / w)) if w <= h else (int(edge * w / h), edge)
    arr = _resized(img, size, pre)

    def offset(extent: int) -> int:
        return round((extent - pre.crop) / 2.0) if pre.crop_round else (extent - pre.crop) // 2

    top, left = offset(arr.shape[0]), offset(arr.shape[1])
    if top < 0 or left < 0:  # smaller than the crop: pad like the reference (centre, zeros)
        pad = np.zeros((max(pre.crop, arr.shape[0]), max(pre.crop, arr.shape[1]), 3), np.uint8)
        py, px = (pad.shape[0] - arr.shape[0]) // 2, (pad.shape[1] - arr.shape[1]) // 2
        pad[py : py + arr.shape[0], px : px + arr.shape[1]] = arr
        arr, top, left = pad, (pad.shape[0] - pre.crop) // 2, (pad.shape[1] - pre.crop) // 2
    return np.ascontiguousarray(arr[top : top + pre.crop, left : left + pre.crop])


def _resized(img: np.ndarray | Image.Image, size: tuple[int, int], pre: Preprocessing) -> np.ndarray:
    """``img`` at ``size`` (width, height) as uint8 HWC, resized the way the model's processor does."""
    if pre.resizer == "pil":
        pil = img if isinstance(img, Image.Image) else Image.fromarray(img)
        if pil.size != size:
            pil = pil.resize(size, resample=RESAMPLE[pre.resample])
        return np.asarray(pil)
    import torch  # torch loads only when a model is used
    from torchvision.transforms.v2 import InterpolationMode  # torch loads only when a model is used
    from torchvision.transforms.v2 import functional as tvF  # torch loads only when a model is used

    arr = np.asarray(img.convert("RGB") if isinstance(img, Image.Image) else img)
    arr = arr if arr.flags.writeable and arr.flags.c_contiguous else np.array(arr)  # torch wants it writable
    t = torch.from_numpy(arr).permute(2, 0, 1)
    mode = InterpolationMode.BICUBIC if pre.resample == "bicubic" else InterpolationMode.BILINEAR
    out = tvF.resize(t, [size[1], size[0]], interpolation=mode, antialias=True)
    return out.permute(1, 2, 0).numpy()


def pick_device(device: str | None = None) -> str:
    """'cuda' when a GPU is there (or asked for), else 'cpu'."""
    import torch  # torch loads only when a model is used

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


def omp_thread_limit() -> int | None:
    """The OpenMP thread limit of this process (``OMP_THREAD_LIMIT``), if one is set."""
    try:
        limit = int(os.environ.get("OMP_THREAD_LIMIT", ""))
    except ValueError:
        return None
    return limit if limit > 0 else None


def capped_threads(threads: int) -> int:
    """``threads`` for torch, never above the OpenMP thread limit. oneDNN plans a bf16 kernel's work
    for torch's thread count; under a lower limit OpenMP starts fewer threads than planned and the
    other threads' share of the output is never computed: finite, unit-length vectors of nothing
    (the Ray actor's wrong vectors: OMP_THREAD_LIMIT=1 inherited, torch at 2 threads)."""
    limit = omp_thread_limit()
    return max(1, min(threads, limit) if limit else threads)


def set_threads(threads: int) -> None:
    """``torch.set_num_threads``, capped by :func:`capped_threads` (the one way this code sets it)."""
    import torch  # torch loads only when a model is used

    torch.set_num_threads(capped_threads(threads))


def weight_dtype(precision: str):
    """The dtype weights are loaded in: that of the precision, on every device (on the CPU a bf16
    model is then never held in float32 as well; ``TorchEncoder`` widens its norms back)."""
    import torch  # torch loads only when a model is used

    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)


@dataclass
class TextEncoding:
    """Unit vectors for a list of texts, which texts were cut to the model's token limit, and of a
    cut text the words the model read (what a header shows instead of a 5 000-character query)."""

    vectors: np.ndarray
    truncated: list[bool]
    used: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Scoring:
    """A model's own score -> probability: ``softmax`` (CLIP: over the candidates, scaled by
    ``logit_scale``) or ``sigmoid`` (SigLIP: each score alone, ``logit_scale`` x s + ``logit_bias``)."""

    kind: str = "softmax"
    logit_scale: float = 100.0
    logit_bias: float = 0.0

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities of ``scores`` (cosines), as the model was trained to give them."""
        s = np.asarray(scores, np.float64)
        if self.kind == "sigmoid":
            return (1.0 / (1.0 + np.exp(-(self.logit_scale * s + self.logit_bias)))).astype(np.float32)
        finite = np.isfinite(s)
        if not finite.any():
            return np.zeros(len(s), np.float32)
        e = np.where(finite, np.exp(self.logit_scale * (np.where(finite, s, 0) - np.max(s[finite]))), 0.0)
        return (e / e.sum()).astype(np.float32)


class DualEncoder(Protocol):
    """What indexing, search and evaluation need of a model (every backend gives exactly this)."""

    model_id: str
    backend: str
    device: str
    precision: str
    dim: int
    max_tokens: int
    scoring: Scoring
    pre: Preprocessing
    clip_frames: int  # 1: scores one frame; F > 1: a video model that scores clips of F frames (encode_clips)

    def prepare(self, rgb: np.ndarray | Image.Image) -> np.ndarray: ...
    def encode_prepared(self, batch: np.ndarray) -> np.ndarray: ...
    def encode_images(self, images: list[np.ndarray | Image.Image]) -> np.ndarray: ...
    def encode_text(self, texts: list[str]) -> TextEncoding: ...


class TorchEncoder:
    """What the torch backends share: uint8 crops normalised on the model's device, bf16 under
    autocast with a float32 re-run of any unsound batch, unit vectors out. A backend supplies
    ``_image_features(model, pixels)``, ``_tokens(texts)`` and ``_text_features(model, tokens)``
    (``model``: the loaded model, or its float32 twin for a re-run)."""

    backend = "torch"
    clip_frames = 1

    def __init__(
        self, model, model_id: str, device: str, pre: Preprocessing, precision: str, dim: int, max_tokens: int, scoring
    ) -> None:
        import torch  # torch loads only when a model is used

        if torch.get_num_threads() > capped_threads(torch.get_num_threads()):
            set_threads(torch.get_num_threads())  # torch's default (the cores) may exceed the limit too
        self.model = model
        self.model_id = model_id
        self.device = device
        self.pre = pre
        self.precision = precision  # fp32, bf16 (autocast on the CPU) or fp16 (CUDA weights)
        self.fallbacks = 0  # bf16 batches computed again in float32 (a non-finite vector came out)
        self._twin = None  # the float32 twin of the model (``_float32_twin``)
        self._twin_lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        # bf16 on the CPU runs under autocast with the matrix weights held in bf16 (what autocast
        # would cast them to on every call: a fifth of a ViT-B/32 forward on one core) and the
        # rest (norms, embeddings) in float32; the input stays float32. fp16/bf16 on CUDA: all
        # weights in that dtype, no autocast.
        cpu_bf16 = precision == "bf16" and not device.startswith("cuda")
        if cpu_bf16:
            _split_precision(model, matmul_modules(model))
        self.dtype = torch.float32 if cpu_bf16 else next(model.parameters()).dtype
        self.dim = int(dim)
        self.max_tokens = int(max_tokens)
        self.scoring = scoring
        self._mean = torch.tensor(pre.mean, device=device, dtype=torch.float32).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(pre.std, device=device, dtype=torch.float32).view(1, 3, 1, 1) * 255

    @property
    def logit_scale(self) -> float:
        return self.scoring.logit_scale

    def prepare(self, rgb: np.ndarray | Image.Image) -> np.ndarray:
        """Resize and crop one image for this model (runs off the model thread)."""
        return prepare_image(rgb, self.pre)

    def encode_prepared(self, batch: np.ndarray) -> np.ndarray:
        """(B, crop, crop, 3) uint8 from ``prepare`` -> (B, D) float32 unit vectors."""
        import torch  # torch loads only when a model is used

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device, non_blocking=True)
            x = x.permute(0, 3, 1, 2).float()
            x = ((x - self._mean) / self._std).to(self.dtype)
            return self._checked(lambda model: self._image_features(model, x.float() if model is not self.model else x))

    def encode_float32(self, batch: np.ndarray) -> np.ndarray:
        """``encode_prepared`` in float32 arithmetic (the float32 twin of a reduced-precision model):
        what a spot check holds stored vectors against, and what a failed chunk is encoded with."""
        import torch  # torch loads only when a model is used

        model = self.model if self.precision == "fp32" else self._float32_twin()
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device).permute(0, 3, 1, 2).float()
            return unit(self._image_features(model, (x - self._mean) / self._std))

    def encode_images(self, images: list[np.ndarray | Image.Image]) -> np.ndarray:
        """Whole images (any size) -> (B, D) unit vectors."""
        return self.encode_prepared(np.stack([self.prepare(im) for im in images]))

    def encode_text(self, texts: list[str]) -> TextEncoding:
        """Texts -> (B, D) unit vectors; texts longer than the token limit are cut, and flagged."""
        import torch  # torch loads only when a model is used

        with self._tokenizer_lock:
            tokens, truncated = self._tokens(list(texts))
            used = [self._used(t) if cut else t for t, cut in zip(texts, truncated, strict=True)]
        with torch.inference_mode():
            return TextEncoding(self._checked(lambda model: self._text_features(model, tokens)), truncated, used)

    def _used(self, text: str) -> str:
        """The words of a cut ``text`` that fit the token limit (the most words whose tokens fit)."""
        words = text.split()
        lo, hi = 0, len(words)
        while lo < hi:  # a binary search: a few tokenizer calls even for a 200 000-character text
            mid = (lo + hi + 1) // 2
            if self._token_count(" ".join(words[:mid])) <= self.max_tokens:
                lo = mid
            else:
                hi = mid - 1
        return " ".join(words[:lo])

    def _checked(self, forward) -> np.ndarray:
        """``forward(model)`` as unit vectors: at the encoder's precision, and again in float32 on
        the float32 twin when a reduced-precision batch came out unsound."""
        with self._autocast():
            vectors = unit(forward(self.model))
        if self.precision != "fp32" and not sound(vectors):
            with self._twin_lock:
                self.fallbacks += 1
            vectors = unit(forward(self._float32_twin()))
        return vectors

    def _float32_twin(self):
        """A float32 copy of the model, made on first need and never changed after: the shared model
        itself is never widened in place (another thread may be in a forward on it)."""
        with self._twin_lock:
            if self._twin is None:
                twin = copy.deepcopy(self.model)
                self._twin = twin.float().eval()
            return self._twin

    def _autocast(self):
        import torch  # torch loads only when a model is used

        if self.precision == "bf16" and self.dtype == torch.float32:
            return torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _image_features(self, model, pixels):  # pragma: no cover - each backend defines it
        raise NotImplementedError

    def _tokens(self, texts: list[str]):  # pragma: no cover - each backend defines it
        raise NotImplementedError

    def _token_count(self, text: str) -> int:  # pragma: no cover - each backend defines it
        """Tokens of ``text`` before the tokenizer cuts it, start and end included."""
        raise NotImplementedError

    def _text_features(self, model, tokens):  # pragma: no cover - each backend defines it
        raise NotImplementedError


def clip_frames(encoder) -> int:
    """Frames a model scores together: 1 for an image model (a plugin's too), F for a video model."""
    return int(getattr(encoder, "clip_frames", 1) or 1)


def matmul_modules(model) -> list:
    """The modules whose weights feed matrix products (linear, convolution, attention projections):
    what bfloat16 autocast computes in bf16; norms and embeddings stay float32."""
    import torch  # torch loads only when a model is used

    kinds = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.MultiheadAttention)
    return [m for m in model.modules() if isinstance(m, kinds)]


def _split_precision(model, matmuls: list) -> None:
    """Matrix weights in bf16, every other floating weight and buffer in float32 (in place)."""
    import torch  # torch loads only when a model is used

    held = set(matmuls)
    for m in model.modules():
        dtype = torch.bfloat16 if m in held else torch.float32
        for p in m.parameters(recurse=False):
            if p.is_floating_point() and p.dtype != dtype:
                p.data = p.data.to(dtype)
        for name, b in m.named_buffers(recurse=False):
            if b.is_floating_point() and b.dtype != dtype:
                setattr(m, name, b.to(dtype))


def sound(vectors: np.ndarray) -> bool:
    """Finite unit vectors (what may be stored)."""
    return bool(np.all(np.isfinite(vectors)) and np.all(np.abs(np.linalg.norm(vectors, axis=1) - 1) < 1e-3))


def unit(t) -> np.ndarray:
    """A features tensor (or a model output holding one) as float32 unit rows."""
    t = getattr(t, "pooler_output", t)
    v = t.float()
    v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return v.cpu().numpy().astype(np.float32)

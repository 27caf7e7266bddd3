"""Dual text-image encoders behind one protocol (``base.DualEncoder``), the backends declared as
data (``BUILT_IN``), and any a lab installs (entry point ``framesearch.encoders``):

  transformers CLIP        any ``CLIPModel`` checkpoint             ``hf_clip``
  transformers SigLIP (2)  ``AutoModel`` + ``AutoProcessor``        ``hf_siglip``
  open_clip                PE-Core, MobileCLIP, EVA02, DFN, LAION   ``openclip``
  transformers X-CLIP      video-text, 8-frame clips                ``hf_xclip``
  transformers VideoPrism  video-text, 16-frame clips               ``hf_videoprism``

A video-text model scores clips of frames (``clip_frames`` > 1, ``encode_clips``; see ``video``).

A model is named as a user types it (:func:`resolve`): a hub id
(``openai/clip-vit-base-patch32``, ``google/siglip2-base-patch16-224``), ``open_clip:hf-hub:ORG/REPO``
or ``open_clip:ARCH/PRETRAINED``, or a local folder recognised by its files. ``load_encoder`` loads
one; ``preprocessing_for`` reads only how it prepares frames (decode workers never load weights).
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import clip_search.config as config
from clip_search.encoders.base import (
    PRECISIONS,
    DualEncoder,
    Preprocessing,
    Scoring,
    TextEncoding,
    cpu_has_bf16,
    pick_device,
    pick_precision,
    prepare_image,
)
from clip_search.encoders.hub import offline_for, quiet, read_json
from clip_search.errors import ModelLoadError
from clip_search.plugins import plugins

__all__ = [
    "PRECISIONS",
    "Backend",
    "DualEncoder",
    "ModelRef",
    "Preprocessing",
    "Scoring",
    "TextEncoding",
    "backends",
    "cpu_has_bf16",
    "load_encoder",
    "pick_device",
    "pick_precision",
    "prepare_image",
    "preprocessing_for",
    "resolve",
    "scores_clips",
]

OPEN_CLIP_PREFIX = "open_clip:"
HUB_ID = re.compile(r"^[\w.\-]+/[\w.\-]+$")
FORMS = (
    "a Hugging Face hub id (openai/clip-vit-base-patch32, google/siglip2-base-patch16-224), "
    "open_clip:hf-hub:ORG/REPO or open_clip:ARCH/PRETRAINED (open_clip:ViT-B-32/laion2b_s34b_b79k), "
    "or a local folder holding a saved model (a transformers save_pretrained folder, or an open_clip "
    "folder with open_clip_config.json and open_clip_model.safetensors)"
)
LOAD_HELP = (
    "Connect to the internet so the Hugging Face hub can provide it, or point --model (or "
    "FRAMESEARCH_MODEL) at a local folder holding the saved model. Offline, to try the tools with a "
    'random-weights CLIP (its rankings mean nothing): python -c "from clip_search.encoders.random import '
    "build_random_clip; build_random_clip('clip-random')\" then --model clip-random (scripts/demo.sh does "
    "this by itself)."
)


@dataclass(frozen=True)
class ModelRef:
    """A model name resolved: which backend loads it, and what that backend is given."""

    name: str  # as the user typed it (normalised: what films and engines are keyed by)
    backend: str
    target: str  # hub id, folder, or open_clip's own model name ("hf-hub:..." or "ARCH" + pretrained)
    pretrained: str | None = None  # open_clip's pretrained tag


@dataclass(frozen=True)
class Backend:
    """An encoder backend, as data: the module that loads it (``load(ref, device, precision, offline)``
    and ``preprocessing(ref, offline)``), and how a model name or a saved folder is recognised as its.

    ``model_types``: the transformers ``config.json`` model types it loads (a prefix matches);
    ``folder_file``: a file that marks a saved folder of it; ``prefix``: the prefix of the names it
    owns (``open_clip:``, or a plugin's own)."""

    name: str
    module: str | object
    model_types: tuple[str, ...] = ()
    folder_file: str | None = None
    prefix: str | None = None
    video: bool = False  # a video-text model: scores clips of frames (``video.VideoEncoder``)

    def loader(self):
        return importlib.import_module(self.module) if isinstance(self.module, str) else self.module


BUILT_IN = (
    Backend("transformers-clip", "clip_search.encoders.hf_clip", model_types=("clip",)),
    Backend("transformers-siglip", "clip_search.encoders.hf_siglip", model_types=("siglip",)),
    Backend("transformers-metaclip2", "clip_search.encoders.hf_metaclip2", model_types=("metaclip_2",)),
    Backend("transformers-xclip", "clip_search.encoders.hf_xclip", model_types=("xclip", "x_clip"), video=True),
    Backend("transformers-videoprism", "clip_search.encoders.hf_videoprism", model_types=("videoprism",), video=True),
    Backend("open_clip", "clip_search.encoders.openclip", folder_file="open_clip_config.json", prefix=OPEN_CLIP_PREFIX),
)


@cache
def backends() -> dict[str, Backend]:
    """Every backend by name: ours, then each installed plugin's (``framesearch.encoders``: a module
    or object with ``prefix``, ``load`` and ``preprocessing``; it owns the names that start with
    its prefix). A plugin cannot replace ours."""
    table = {b.name: b for b in BUILT_IN}
    for name, found in plugins("framesearch.encoders").items():
        prefix = getattr(found, "prefix", None)
        if prefix and name not in table:
            table[name] = Backend(name, found, prefix=prefix)
    return table


def _folder_backend(folder: Path) -> str | None:
    """The backend whose saved folder this is (its marker file, or its transformers model type)."""
    for b in backends().values():
        if b.folder_file and (folder / b.folder_file).is_file():
            return b.name
    cfg = folder / "config.json"
    if cfg.is_file():
        try:
            kind = str(json.loads(cfg.read_text()).get("model_type", ""))
        except (OSError, ValueError, AttributeError):
            return None
        return _by_model_type(kind)
    return None


def _by_model_type(kind: str) -> str | None:
    """The backend of a transformers model type (the longest type that prefixes it: metaclip_2, not clip)."""
    matches = [(len(t), b.name) for b in backends().values() for t in b.model_types if kind.startswith(t)]
    return max(matches)[1] if matches else None


def resolve(name: str | None) -> ModelRef:
    """Which backend a model name belongs to (no weights are read). ModelLoadError, one line
    naming the forms, for a name that fits none. Resolved once per name (a hub id reads its config)."""
    return _resolve(config.model_id(name).strip())


@lru_cache(maxsize=256)
def _resolve(name: str) -> ModelRef:
    for b in backends().values():  # a plugin's own names first: its prefix says they are its
        if b.prefix and b.prefix != OPEN_CLIP_PREFIX and name.startswith(b.prefix):
            return ModelRef(name, b.name, name[len(b.prefix) :])
    if name.startswith(OPEN_CLIP_PREFIX):
        rest = name[len(OPEN_CLIP_PREFIX) :]
        if rest.startswith("hf-hub:") and HUB_ID.match(rest[len("hf-hub:") :]):
            return ModelRef(name, "open_clip", rest)
        folder = Path(rest).expanduser()
        if folder.is_dir() and _folder_backend(folder) == "open_clip":
            return ModelRef(name, "open_clip", str(folder))
        arch, _, tag = rest.partition("/")
        if arch and tag and re.match(r"^[\w.\-@]+$", arch) and re.match(r"^[\w.\-]+$", tag):
            return ModelRef(name, "open_clip", arch, tag)
        raise ModelLoadError(f"'{name}' is not an open_clip model name; name a model as {FORMS}.")
    folder = Path(name).expanduser()
    if folder.is_dir():
        backend = _folder_backend(folder)
        if backend is None:
            raise ModelLoadError(f"The folder {name} holds no model this tool can load; name a model as {FORMS}.")
        return ModelRef(name, backend, str(folder))
    if folder.is_absolute() or name.startswith((".", "~")):
        why = f"Cannot load model: the folder {name} does not exist."
        raise ModelLoadError(f"{why} {LOAD_HELP}", why)
    if HUB_ID.match(name):
        cfg = read_json(name, "config.json", offline_for(name)) or {}
        kind = str(cfg.get("model_type", ""))
        if not kind:  # the config cannot be read offline: the name says what it is (the longest type first)
            low = name.lower().replace("-", "_")
            types = sorted((t for b in BUILT_IN for t in b.model_types), key=len, reverse=True)
            kind = next((t for t in types if t in low), "clip")
        return ModelRef(name, _by_model_type(kind) or _by_model_type("clip"), name)
    raise ModelLoadError(f"'{name}' fits none of the forms a model is named by; name a model as {FORMS}.")


def scores_clips(model_id: str | None) -> bool:
    """Whether a model is a video-text model (its backend's flag; no weights are read)."""
    return backends()[resolve(model_id).backend].video


def _backend(ref: ModelRef):
    """The module (or plugin object) that loads ``ref``."""
    return backends()[ref.backend].loader()


def load_encoder(
    model_id: str | ModelRef | None = None, device: str | None = None, precision: str | None = None
) -> DualEncoder:
    """Load a model by name (see :func:`resolve`) at ``precision`` (auto, fp32, bf16; see
    :func:`pick_precision`): half precision on GPU, bfloat16 on a CPU that has it.

    Raises ModelLoadError with one sentence saying why and how to fix it."""
    ref = model_id if isinstance(model_id, ModelRef) else resolve(model_id)
    device = pick_device(device)
    quiet()
    target = ref.target
    try:
        encoder = _backend(ref).load(ref, device, precision, offline_for(target))
    except ModelLoadError as e:
        raise ModelLoadError(f"Cannot load model {e}. {LOAD_HELP}", f"Cannot load model {e}.") from None
    encoder.model_id = ref.name
    return encoder


def preprocessing_for(model_id: str | None) -> Preprocessing:
    """How the model prepares frames, read from its config files without loading its weights."""
    ref = resolve(model_id)
    return _backend(ref).preprocessing(ref, offline_for(ref.target))

"""Dual text-image encoders behind one protocol (``base.DualEncoder``), three backends:

  transformers CLIP        any ``CLIPModel`` checkpoint             ``hf_clip``
  transformers SigLIP (2)  ``AutoModel`` + ``AutoProcessor``        ``hf_siglip``
  open_clip                PE-Core, MobileCLIP, EVA02, DFN, LAION   ``openclip``

A model is named as a user types it (:func:`resolve`): a hub id
(``openai/clip-vit-base-patch32``, ``google/siglip2-base-patch16-224``), ``open_clip:hf-hub:ORG/REPO``
or ``open_clip:ARCH/PRETRAINED``, or a local folder recognised by its files. ``load_encoder`` loads
one; ``preprocessing_for`` reads only how it prepares frames (decode workers never load weights).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from clip_search import config
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
from clip_search.errors import ModelLoadError

__all__ = [
    "PRECISIONS",
    "DualEncoder",
    "ModelRef",
    "Preprocessing",
    "Scoring",
    "TextEncoding",
    "cpu_has_bf16",
    "load_encoder",
    "pick_device",
    "pick_precision",
    "prepare_image",
    "preprocessing_for",
    "resolve",
]

BACKENDS = ("transformers-clip", "transformers-siglip", "open_clip")
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


def _folder_backend(folder: Path) -> str | None:
    if (folder / "open_clip_config.json").is_file():
        return "open_clip"
    cfg = folder / "config.json"
    if cfg.is_file():
        import json

        try:
            kind = str(json.loads(cfg.read_text()).get("model_type", ""))
        except (OSError, ValueError, AttributeError):
            return None
        if kind == "clip":
            return "transformers-clip"
        if kind.startswith("siglip"):
            return "transformers-siglip"
    return None


def resolve(name: str | None) -> ModelRef:
    """Which backend a model name belongs to (no weights are read). ModelLoadError, one line
    naming the three forms, for a name that fits none."""
    name = config.model_id(name).strip()
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
        raise ModelLoadError(f"Cannot load model: the folder {name} does not exist. {LOAD_HELP}")
    if HUB_ID.match(name):
        from clip_search.encoders.hub import offline_for, read_json

        cfg = read_json(name, "config.json", offline_for(name)) or {}
        kind = str(cfg.get("model_type", ""))
        siglip = kind.startswith("siglip") or (not kind and "siglip" in name.lower())
        return ModelRef(name, "transformers-siglip" if siglip else "transformers-clip", name)
    raise ModelLoadError(f"'{name}' fits none of the forms a model is named by; name a model as {FORMS}.")


def _backend(ref: ModelRef):
    if ref.backend == "open_clip":
        from clip_search.encoders import openclip as module
    elif ref.backend == "transformers-siglip":
        from clip_search.encoders import hf_siglip as module
    else:
        from clip_search.encoders import hf_clip as module
    return module


def load_encoder(model_id: str | None = None, device: str | None = None, precision: str | None = None) -> DualEncoder:
    """Load a model by name (see :func:`resolve`) at ``precision`` (auto, fp32, bf16; see
    :func:`pick_precision`): half precision on GPU, bfloat16 on a CPU that has it.

    Raises ModelLoadError with one sentence saying why and how to fix it."""
    from clip_search.encoders.hub import offline_for, quiet

    ref = resolve(model_id)
    device = pick_device(device)
    quiet()
    target = ref.target
    try:
        encoder = _backend(ref).load(ref, device, precision, offline_for(target))
    except ModelLoadError as e:
        raise ModelLoadError(f"Cannot load model {e}. {LOAD_HELP}") from None
    encoder.model_id = ref.name
    return encoder


def preprocessing_for(model_id: str | None) -> Preprocessing:
    """How the model prepares frames, read from its config files without loading its weights."""
    from clip_search.encoders.hub import offline_for

    ref = resolve(model_id)
    return _backend(ref).preprocessing(ref, offline_for(ref.target))

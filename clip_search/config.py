"""Defaults and the one place that knows about environment variables and ../shared."""

from __future__ import annotations

import os
import sys
from pathlib import Path

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".h264", ".hevc"}
PROJECT_DIR = Path(__file__).resolve().parent.parent


def model_id(override: str | None = None) -> str:
    """The CLIP model to load: explicit override, else $FRAMESEARCH_MODEL, else the hub default.

    A local folder is returned as an absolute path, so an index records the same model
    whichever directory the command ran from."""
    chosen = override or os.environ.get("FRAMESEARCH_MODEL") or DEFAULT_MODEL
    local = Path(chosen).expanduser()
    return str(local.resolve()) if local.is_dir() else chosen


def installed_share() -> Path:
    """Where ``pip install`` puts the product's data files: ``<prefix>/share/frame-search-lab``, the
    prefix being the one the package was installed into (``<prefix>/lib/pythonX.Y/site-packages``)."""
    parents = Path(__file__).resolve().parents
    for prefix in [*parents[4:5], Path(sys.prefix)]:  # no fifth parent in a shallow checkout
        if (prefix / "share" / "frame-search-lab").is_dir():
            return prefix / "share" / "frame-search-lab"
    return Path(sys.prefix) / "share" / "frame-search-lab"


def data_dir() -> Path:
    """The example query sets: ``data/`` in a checkout, or where ``pip install`` puts them."""
    here = PROJECT_DIR / "data"
    return here if here.is_dir() else installed_share() / "data"


def library_dir(override: str | os.PathLike | None = None) -> Path:
    """The library folder: explicit override, else $FRAMESEARCH_LIBRARY, else ./library."""
    return Path(override or os.environ.get("FRAMESEARCH_LIBRARY") or "library")


def shared_dir() -> Path:
    """The read-only data folder beside the checkout (films, CLIP tokenizer and config)."""
    return Path(os.environ.get("FRAMESEARCH_SHARED") or PROJECT_DIR.parent / "shared")


def shared_media_dir() -> Path:
    """Sample films offered by the dashboard and used by the tests."""
    return shared_dir() / "media"


def shared_clip_config_dir() -> Path:
    """The real tokenizer and config of openai/clip-vit-base-patch32 (no weights)."""
    return shared_dir() / "models" / "clip-vit-base-patch32"


def media_roots() -> list[Path]:
    """Folders the dashboard's path box may index from: $FRAMESEARCH_MEDIA_ROOTS (separated by
    os.pathsep), else the sample films and the user's home folder. A lab serving the dashboard to
    others sets it to its film folders, so a visitor cannot make the server read any file it can."""
    env = os.environ.get("FRAMESEARCH_MEDIA_ROOTS")
    roots = [Path(r) for r in env.split(os.pathsep) if r.strip()] if env else [shared_media_dir(), Path.home()]
    return [r.expanduser().resolve() for r in roots]


def allowed_hosts() -> list[str]:
    """Hosts or networks ($FRAMESEARCH_ALLOW_HOSTS, comma-separated names or CIDRs) that the URL box
    may fetch from although they are private (a lab's own intranet); none by default."""
    return [h.strip() for h in os.environ.get("FRAMESEARCH_ALLOW_HOSTS", "").split(",") if h.strip()]


def password() -> str | None:
    """$FRAMESEARCH_PASSWORD: when set, the dashboard asks for it before showing anything."""
    return os.environ.get("FRAMESEARCH_PASSWORD") or None

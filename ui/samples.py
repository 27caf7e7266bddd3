"""The sample films in ../shared/media, with the credit line CC BY films must carry."""

from __future__ import annotations

from pathlib import Path

from clip_search import config

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v"}
DEMO_SAMPLES = ("big-buck-bunny-30s.mp4", "popeye_p1.mkv", "tears-of-steel-battle-clip-medium.webm")
DEMO_QUERY = "a ship at sea"  # the query a first-time demo opens on

CREDITS = {
    "big-buck-bunny": "Big Buck Bunny, CC BY 3.0, (c) 2008 Blender Foundation, www.bigbuckbunny.org",
    "tears-of-steel": "Tears of Steel, CC BY 3.0, (CC) Blender Foundation, mango.blender.org",
    "intel": "Intel sample videos, CC BY 4.0, Intel Corporation (intel-iot-devkit/sample-videos)",
    "popeye": "Popeye the Sailor Meets Sinbad the Sailor (1936), public domain (US), Library of Congress",
    "closeups": "MDN shared-assets (CC0)",
}


def sample_films() -> list[Path]:
    """Video files under ../shared/media (empty when that folder is absent)."""
    root = config.shared_media_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)


def credit_for(source: str | Path) -> str | None:
    """The credit line for a film from ../shared/media, if it needs one."""
    parts = Path(source).parts
    for folder, credit in CREDITS.items():
        if folder in parts:
            return credit
    return None

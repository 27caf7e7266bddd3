"""The sample films in ../shared/media, with the credit line CC BY films must carry."""

from __future__ import annotations

from pathlib import Path

from clip_search.config import VIDEO_SUFFIXES
from framesearch.examples import sample_films

__all__ = ["VIDEO_SUFFIXES", "sample_films"]

DEMO_QUERY = "a ship at sea"  # the query a first-time demo opens on

CREDITS = {
    "big-buck-bunny": "Big Buck Bunny, CC BY 3.0, (c) 2008 Blender Foundation, www.bigbuckbunny.org",
    "tears-of-steel": "Tears of Steel, CC BY 3.0, (CC) Blender Foundation, mango.blender.org",
    "intel": "Intel sample videos, CC BY 4.0, Intel Corporation (intel-iot-devkit/sample-videos)",
    "popeye": "Popeye the Sailor Meets Sinbad the Sailor (1936), public domain (US), Library of Congress",
    "closeups": "MDN shared-assets (CC0)",
}


def credit_for(source: str | Path) -> str | None:
    """The credit line for a film from ../shared/media, if it needs one."""
    parts = Path(source).parts
    for folder, credit in CREDITS.items():
        if folder in parts:
            return credit
    return None

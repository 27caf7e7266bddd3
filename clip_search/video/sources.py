"""What a run indexes: paths and URLs, from folders, list files and single references."""

from __future__ import annotations

from pathlib import Path

import clip_search.config as config


def expand_sources(refs: list[str]) -> list[str]:
    """Paths and URLs to index: a folder gives the videos under it (recursively, sorted), a .txt
    file gives the paths or URLs it lists (one per line, # comments), anything else is itself."""
    out: list[str] = []
    for ref in refs:
        p = Path(ref).expanduser()
        if p.is_dir():
            out += [str(f) for f in sorted(p.rglob("*")) if f.suffix.lower() in config.VIDEO_SUFFIXES and f.is_file()]
        elif p.suffix.lower() == ".txt" and p.is_file():
            lines = [line.strip() for line in p.read_text(errors="replace").splitlines()]
            out += [line for line in lines if line and not line.startswith("#")]
        else:
            out.append(ref)
    return list(dict.fromkeys(out))

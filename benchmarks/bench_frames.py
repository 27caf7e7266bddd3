"""What the stored frames cost (not a timed test): the JPEG each sampled frame is kept as
(``THUMB_WIDTH`` wide, what the grid shows), in bytes per frame and per film-hour at 1 fps, for each
sample film, made exactly as indexing makes them.

    python benchmarks/bench_frames.py [--readme]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clip_search import config
from clip_search.indexing.indexer import THUMB_WIDTH, frame_thumbnail
from clip_search.video.decode import SamplingSettings, iter_frames
from scripts.readme_block import Transcript

BEGIN, END = "<!-- frames-bench:begin (benchmarks/bench_frames.py --readme) -->", "<!-- frames-bench:end -->"
FILMS = [
    "big-buck-bunny/big-buck-bunny-30s.mp4",
    "popeye/popeye_p1.mkv",
    "tears-of-steel/tears-of-steel-battle-clip-medium.webm",
    "intel/bottle-detection.mp4",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", action="store_true", help="write this run's output into README.md")
    args = ap.parse_args()
    say = Transcript()
    say(f"frames stored {THUMB_WIDTH} px wide, JPEG quality 80, sampled at 1 fps")
    total = count = 0
    for name in FILMS:
        sizes = [len(frame_thumbnail(fr)) for fr in iter_frames(config.shared_media_dir() / name, SamplingSettings())]
        total, count = total + sum(sizes), count + len(sizes)
        per = sum(sizes) / len(sizes)
        say(f"  {Path(name).name:46s} {per / 1024:5.1f} KB/frame  {per * 3600 / 2**20:5.1f} MB per film-hour")
    say(f"  {'all':46s} {total / count / 1024:5.1f} KB/frame  {total / count * 3600 / 2**20:5.1f} MB per film-hour")
    if args.readme:
        say.to_readme(BEGIN, END, "python benchmarks/bench_frames.py --readme", "what the stored frames cost")


if __name__ == "__main__":
    main()

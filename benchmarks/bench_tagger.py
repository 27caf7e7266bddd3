"""Offline tagger throughput on a 480p film sampled at 1 fps (not a timed test). Target >= 5 frames/s.

Indexes the looped 480p film with a small random CLIP (indexing is not what is measured), then
times the ``tag`` verb with the offline tagger (decode + OCR + faces + colours + brightness + cache).

    python benchmarks/bench_tagger.py [--minutes 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_index import looped_film

from clip_search.encoders import load_encoder
from clip_search.encoders.random import build_random_clip
from clip_search.store.library import Library
from framesearch import app
from tagging.taggers import local_service


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=2.0)
    args = ap.parse_args()
    film_path = looped_film(args.minutes)
    with tempfile.TemporaryDirectory() as tmp:
        encoder = load_encoder(str(build_random_clip(Path(tmp) / "clip")), "cpu")
        lib = Library(Path(tmp) / "lib")
        (film,) = app.index(lib, [film_path], [encoder.model_id], load=lambda model: encoder).films
        t0 = time.perf_counter()
        run = app.tag(lib, film, local_service())
        seconds = time.perf_counter() - t0
    print(f"film: {film_path.name} (480p, {args.minutes:g} min, 1 fps -> {run.total} frames)")
    print(f"offline tagger: {run.tagged} frames in {seconds:.1f} s = {run.tagged / seconds:.2f} frames/s   [>= 5]")


if __name__ == "__main__":
    main()

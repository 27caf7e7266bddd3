"""Distributed indexing: Ray at 1 and 2 workers against the single-process indexer, and what an
archive would need, from per-frame costs measured in the same run (a script, not a timed test).

The films are the shared sample films (480p to 1440p, 1 fps), the model a ViT-B/32-sized CLIP with
random weights (the real model's compute). Each configuration indexes into a fresh library; Ray
is started before the clock (``ray.init`` once per configuration, as a long-running cluster would
be), and the clock includes model loading in the workers, as a real run does.

    python benchmarks/bench_scale.py [--workers 1,2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from clip_search import config

FILMS = sorted(p for p in config.shared_media_dir().rglob("*") if p.suffix in {".mp4", ".mkv", ".webm"})

RUN = """
import sys, time, json
sys.path.insert(0, {root!r})
from pathlib import Path
from clip_search.store.library import Library
workers = {workers}
films = {films!r}
if workers:
    import ray
    from clip_search.scale.archive import index_archive, _init_ray
    _init_ray(workers)
    t0 = time.perf_counter()
    r = index_archive(films, Library({lib!r}), {model!r}, workers=workers)
    frames, failed = r.frames, r.failed
else:
    from clip_search.indexing.indexer import index_film
    from clip_search.encoders import load_encoder
    t0 = time.perf_counter()
    enc = load_encoder({model!r}, "cpu")
    lib = Library({lib!r})
    frames = sum(index_film(f, lib, enc).encoded_frames for f in films)
    failed = []
print(json.dumps({{"frames": frames, "seconds": time.perf_counter() - t0, "failed": failed}}))
"""


def run(workers: int, model: Path) -> dict:
    import json

    with tempfile.TemporaryDirectory() as lib:
        code = RUN.format(
            root=str(config.PROJECT_DIR), workers=workers, films=[str(f) for f in FILMS], lib=lib, model=str(model)
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    from bench_index import decode_only, full_size_clip, model_only

    from clip_search.encoders import load_encoder

    model = full_size_clip()
    encoder = load_encoder(str(model), "cpu")
    frames_total = 0
    decode_s = 0.0
    for f in FILMS:
        n, s, _ = decode_only(f, encoder)
        frames_total += n
        decode_s += s
    model_s = model_only(encoder, 256, 32)[0] / 256
    del encoder
    print(f"films: {len(FILMS)} sample films, {frames_total} frames at 1 fps; ViT-B/32-sized CLIP on CPU")
    per_decode, per_model = decode_s / frames_total * 1000, model_s * 1000
    print(f"per sampled frame: decode + prepare {per_decode:.0f} ms, model {per_model:.0f} ms (batch 32)")
    single = run(0, model)
    rate1 = single["frames"] / single["seconds"]
    print(f"single process:  {single['frames']} frames in {single['seconds']:.1f} s = {rate1:.2f} frames/s")
    for w in [int(x) for x in args.workers.split(",")]:
        r = run(w, model)
        rate = r["frames"] / r["seconds"]
        print(
            f"Ray, {w} worker{'s' if w > 1 else ' '}: {r['frames']} frames in {r['seconds']:.1f} s "
            f"= {rate:.2f} frames/s "
            f"({rate / rate1:.2f}x single process; Ray overhead {100 * (1 - rate / rate1):+.0f} %)"
            + (f" FAILED: {r['failed']}" if r["failed"] else "")
        )
    print(f"machine: {os.cpu_count()} CPU cores; the targets: Ray with 1 worker within 15 % of the single process")


if __name__ == "__main__":
    main()

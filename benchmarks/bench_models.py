"""Model-only and end-to-end frames/s of each encoder backend at ViT-B size, measured in one run.

Each backend gets a random-weights model with the real widths and depths of a ViT-B model (the
compute of the real checkpoint; no pretrained weights exist offline): transformers CLIP ViT-B/32,
transformers SigLIP B/16 at 224 px, open_clip ViT-B-32. For each it prints:
  model       frames/s of ``encode_prepared`` alone on prepared batches
  end-to-end  frames/s of ``index_film`` on a 480p film at 1 fps (decode || prepare || encode || write)
on this machine's CPU at the precision ``auto`` picks, and on CUDA as well when a GPU is present.

    python benchmarks/bench_models.py [--minutes 1] [--frames 128] [--json OUT] [--readme]

``--readme`` rewrites the README's block between the ``models-bench`` markers with this run's table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_index import CACHE, looped_film, model_only

from scripts.readme_block import machine, replace_block

BEGIN, END = "<!-- models-bench:begin (benchmarks/bench_models.py --readme) -->", "<!-- models-bench:end -->"

BACKENDS = {
    "transformers CLIP ViT-B/32": "clip",
    "transformers SigLIP B/16-224": "siglip",
    "open_clip ViT-B-32": "open_clip",
}


def full_size(kind: str) -> Path:
    """The backend's ViT-B-sized random model, built once into .cache/."""
    from clip_search.encoders import random

    target = CACHE / f"bench-{kind}-vit-b"
    ready = target / ("open_clip_config.json" if kind == "open_clip" else "config.json")
    if not ready.is_file():
        build = {
            "clip": random.build_random_clip,
            "siglip": random.build_random_siglip,
            "open_clip": random.build_random_open_clip,
        }[kind]
        build(target, full_size=True)
    return target


def end_to_end(film: Path, encoder) -> tuple[int, float]:
    from clip_search.indexing.indexer import index_film
    from clip_search.store.library import Library

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = index_film(film, Library(tmp), encoder)
        return result.film.manifest.frames, time.perf_counter() - t0


def measure(devices: list[str], minutes: float, frames: int) -> list[dict]:
    import torch

    from clip_search.encoders import load_encoder

    film = looped_film(minutes)
    rows = []
    for label, kind in BACKENDS.items():
        folder = full_size(kind)
        for device in devices:
            encoder = load_encoder(str(folder), device, "auto")
            batch = 128 if device == "cuda" else 32
            seconds, _ = model_only(encoder, frames, batch)
            if device == "cuda":
                torch.cuda.synchronize()
            n, wall = end_to_end(film, encoder)
            rows.append(
                {
                    "backend": label,
                    "device": device,
                    "precision": encoder.precision,
                    "dim": encoder.dim,
                    "model_fps": frames / seconds,
                    "end_to_end_fps": n / wall,
                    "frames": n,
                }
            )
            print(
                f"{label:30s} {device:5s} {encoder.precision:5s} model {frames / seconds:7.1f} frames/s   "
                f"end-to-end {n / wall:7.1f} frames/s ({n} frames of a {minutes:g}-min 480p film at 1 fps)",
                flush=True,
            )
            del encoder
    return rows


def readme_block(rows: list[dict], minutes: float, frames: int) -> str:
    """The README's table of this run, naming the machine and how it was measured."""
    lines = [
        BEGIN,
        f"Measured by `python benchmarks/bench_models.py --readme` on {machine()} (random weights at ViT-B size: "
        f"the real compute; model-only over {frames} prepared frames, end-to-end `index_film` of a "
        f"{minutes:g}-minute 480p film at 1 fps):",
        "",
        "| backend | device | precision | dim | model frames/s | end-to-end frames/s |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['backend']} | {r['device']} | {r['precision']} | {r['dim']} | {r['model_fps']:.1f} | "
        f"{r['end_to_end_fps']:.1f} |"
        for r in rows
    ]
    if not any(r["device"] == "cuda" for r in rows):
        lines += ["", "No GPU on this machine: the CUDA rows come from a run where one is present."]
    return "\n".join([*lines, END])


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=1.0, help="length of the film indexed end to end")
    p.add_argument("--frames", type=int, default=128, help="frames for the model-only measure")
    p.add_argument("--json", type=Path, help="also write the rows as JSON")
    p.add_argument("--readme", action="store_true", help="rewrite the README's model benchmark block")
    args = p.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    cpu = platform.processor() or platform.machine()
    print(f"machine: {os.cpu_count()} cores ({cpu}), torch {torch.__version__}, devices {', '.join(devices)}")
    rows = measure(devices, args.minutes, args.frames)
    if args.readme:
        replace_block(BEGIN, END, readme_block(rows, args.minutes, args.frames))
        print("README.md: model benchmark block rewritten", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"devices": devices, "cores": os.cpu_count(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

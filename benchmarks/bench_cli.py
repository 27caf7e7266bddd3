"""The CLI's start-up (not a timed test): a cold ``search`` (its text never searched before) against
its floor, and a repeated one (the text's vector read from the library's cache), measured in one run.

The floor is what a cold search cannot avoid: the interpreter, torch and transformers, loading a
ViT-B/32-sized CLIP (random weights), one text forward and reading the film's vectors. The library
holds one synthetic 2-hour film at 1 fps (7 200 frames). Each figure is the median of ``--runs``
runs of a new process, the three commands taken in turn.

    python benchmarks/bench_cli.py [--runs 5] [--readme]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dashboard import build_library

from clip_search.encoders.text_cache import DB
from clip_search.store.library import Library
from scripts.readme_block import Transcript

BEGIN, END = "<!-- cli-bench:begin (benchmarks/bench_cli.py --readme) -->", "<!-- cli-bench:end -->"
QUERY = "a ship at sea"
FLOOR = """
import numpy as np, torch
from transformers import CLIPModel, CLIPTokenizerFast
model, tok = CLIPModel.from_pretrained({model!r}), CLIPTokenizerFast.from_pretrained({model!r})
with torch.inference_mode():
    model.get_text_features(**tok([{query!r}], return_tensors="pt"))
print(float(np.load({emb!r}, mmap_mode="r")[:].sum()))
"""


def timed(cmd: list[str], before=None) -> float:
    if before:
        before()
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--readme", action="store_true", help="write this run's output into README.md")
    args = ap.parse_args()
    from bench_index import full_size_clip

    model = str(full_size_clip())
    with tempfile.TemporaryDirectory() as tmp:
        build_library(Path(tmp), model, 2.0)
        film = Library(tmp).films()[0]
        search = [sys.executable, "-m", "clip_search", "search", QUERY, "--library", tmp, "--model", model]
        floor = [sys.executable, "-c", FLOOR.format(model=model, query=QUERY, emb=str(film.set_dir / "embeddings.npy"))]
        cache = Path(tmp) / DB

        def forget() -> None:
            for p in (cache, cache.with_name(DB + "-wal"), cache.with_name(DB + "-shm")):
                p.unlink(missing_ok=True)

        timed(search, forget)  # warm the page cache once
        cold, repeated, bare = [], [], []
        for _ in range(args.runs):
            cold.append(timed(search, forget))
            repeated.append(timed(search))
            bare.append(timed(floor))
    c, r, f = (statistics.median(x) for x in (cold, repeated, bare))
    say = Transcript()
    say(f"cold search (text never searched): {c:.2f} s   floor (torch, model, one text forward, vectors): {f:.2f} s")
    say(f"  cold / floor = {c / f:.2f}   [~1: nothing wasted]")
    say(f"repeated search (vector from the library's cache): {r:.2f} s")
    say(f"  repeated / cold = {r / c:.2f}   [<= 0.33]")
    if args.readme:
        what = f"one 2-hour film at 1 fps, ViT-B/32-sized CLIP (random weights), medians of {args.runs} new processes"
        say.to_readme(BEGIN, END, "python benchmarks/bench_cli.py --readme", what)


if __name__ == "__main__":
    main()

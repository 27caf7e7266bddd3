"""Query latency over a 1 000 000-frame library (synthetic unit vectors, 512-d), not a timed test.

Prints p50/p90 of ``Searcher.search`` (top 10, 2 s de-duplication, moments and softmax
included) with the int8 prefilter and with exact float32 scoring, and the p50 of encoding the
query text with a ViT-B/32-sized text tower.

    python benchmarks/bench_query.py [--frames 1000000] [--films 10] [--queries 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from clip_search.library import Library, Manifest
from clip_search.search import QueryVector, Searcher
from clip_search.store import import_vectors


def synthetic_library(root: Path, frames: int, films: int, dim: int = 512, seed: int = 0) -> Library:
    """``films`` films of 1 fps vectors; clustered like real footage (nearby frames alike)."""
    lib = Library(root)
    rng = np.random.default_rng(seed)
    per = frames // films
    for i in range(films):
        scenes = rng.standard_normal((per // 50 + 1, dim)).astype(np.float32)
        emb = np.repeat(scenes, 50, axis=0)[:per] + 0.6 * rng.standard_normal((per, dim)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        m = Manifest.imported(f"synthetic-{i:02d}", "synthetic", float(per))
        import_vectors(lib, m, emb, np.arange(per, dtype=np.float64))
    return lib


def percentiles(samples: list[float]) -> str:
    ms = np.array(samples) * 1000
    return f"p50 {np.percentile(ms, 50):7.1f} ms   p90 {np.percentile(ms, 90):7.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--films", type=int, default=10)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--skip-text", action="store_true", help="skip the text-encoder timing")
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        lib = synthetic_library(Path(tmp), args.frames, args.films)
        films = lib.films()
        print(
            f"library: {sum(f.manifest.frames for f in films):,} frames in {len(films)} films "
            f"(built in {time.perf_counter() - t0:.0f} s)"
        )
        anchors = np.concatenate([np.asarray(f.embeddings[:: max(1, f.manifest.frames // 10)]) for f in films])
        queries = []
        for _ in range(args.queries):
            v = anchors[rng.integers(len(anchors))] + 0.8 * rng.standard_normal(anchors.shape[1])
            queries.append(QueryVector((v / np.linalg.norm(v)).astype(np.float32), "q"))

        fast = Searcher(films, quantize=True)
        t0 = time.perf_counter()
        fast.prepare()
        print(f"int8 copy built once per process in {time.perf_counter() - t0:.1f} s")
        exact = Searcher(films, quantize=False)
        for name, searcher, qs in (
            ("int8 prefilter + exact rerank", fast, queries),
            ("exact float32", exact, queries[:10]),
        ):
            searcher.search(qs[0])  # warm caches (memory maps)
            samples = []
            for q in qs:
                t = time.perf_counter()
                searcher.search(q, top_k=10, gap=2.0)
                samples.append(time.perf_counter() - t)
            print(f"  {name:32s} {percentiles(samples)}   [p50 < 100 ms]")
        checked = queries[:10]
        same = sum(
            [(h.film_id, h.frame) for h in fast.search(q)] == [(h.film_id, h.frame) for h in exact.search(q)]
            for q in checked
        )
        print(f"  identical top-10 (int8 vs exact): {same}/{len(checked)} queries")
    if not args.skip_text:
        from bench_index import full_size_clip

        from clip_search.model import load_encoder

        enc = load_encoder(str(full_size_clip()), "auto")
        enc.encode_text(["warm up"])
        samples = []
        for i in range(20):
            t = time.perf_counter()
            enc.encode_text([f"a man hanging from a boom barrier {i}"])
            samples.append(time.perf_counter() - t)
        print(f"  {'text encoding (ViT-B/32 size)':32s} {percentiles(samples)}")


if __name__ == "__main__":
    main()

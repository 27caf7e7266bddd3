"""Soak: the scenario of ``tests/test_distributed.py::test_ray_adds_another_backends_vectors_to_an_indexed_film``
run many times in a row (not CI): a film indexed with CLIP in this process, a SigLIP set added by a
one-worker Ray at the machine's own precision (bf16 where the CPU has it), each time compared with
the single-process float32 SigLIP vectors. Ray's workers inherit ``OMP_THREAD_LIMIT=1``, the
condition that made the actor store wrong vectors (the offline tagger once left it in the
environment), unless ``--no-thread-limit``. Prints each run's least cosine and ``N/N exact`` at the
end: every vector at cosine >= 0.9999 of the reference, as the actor computed it (no chunk mended
by the spot check's float32 re-encode).

    python benchmarks/soak_ray.py [--runs 30] [--no-thread-limit] [--readme]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from clip_search import config
from scripts.readme_block import Transcript

BEGIN, END = "<!-- soak-bench:begin (benchmarks/soak_ray.py --readme) -->", "<!-- soak-bench:end -->"

FILM = config.shared_media_dir() / "closeups" / "flower.mp4"
EXACT = 0.9999


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--readme", action="store_true", help="write this run's output into README.md")
    ap.add_argument("--no-thread-limit", action="store_true", help="do not give Ray's workers OMP_THREAD_LIMIT=1")
    args = ap.parse_args()
    say = Transcript()
    if not args.no_thread_limit:
        os.environ["OMP_THREAD_LIMIT"] = "1"  # read by the Ray workers started below, not by this process

    import ray

    from clip_search.encoders import cpu_has_bf16, load_encoder
    from clip_search.encoders.random import build_random_clip, build_random_siglip
    from clip_search.indexing.indexer import index_film
    from clip_search.scale.archive import index_archive
    from clip_search.store.library import Library

    root = Path(tempfile.mkdtemp(prefix="soak-ray-"))
    clip_dir, siglip_dir = build_random_clip(root / "clip"), build_random_siglip(root / "siglip" / "model")
    clip = load_encoder(str(clip_dir), "cpu", "fp32")
    reference = index_film(FILM, Library(root / "single"), load_encoder(str(siglip_dir), "cpu", "fp32")).film
    limit = "none" if args.no_thread_limit else "OMP_THREAD_LIMIT=1"
    say(f"Ray actor precision: {'bf16' if cpu_has_bf16() else 'fp32'} (auto); workers' thread limit: {limit}")
    exact = 0
    for run in range(1, args.runs + 1):
        lib = Library(root / f"lib-{run}")
        index_film(FILM, lib, clip)
        t0 = time.perf_counter()
        result = index_archive([str(FILM)], lib, str(siglip_dir), workers=1)
        ray.shutdown()  # as the test's fixture does: each run starts its own local Ray
        film = lib.films()[0].view(str(siglip_dir))
        cos = np.sum(np.asarray(film.embeddings) * np.asarray(reference.embeddings), axis=1)
        redone = film.vector_set.float32_chunks
        ok = not result.failed and film.times.tolist() == reference.times.tolist() and cos.min() >= EXACT
        ok = ok and redone == 0
        exact += ok
        say(
            f"run {run:2d}: min cosine {cos.min():.6f}, chunks encoded again in float32 {redone}, "
            f"{time.perf_counter() - t0:.1f} s -> {'exact' if ok else 'WRONG'}"
        )
    say(f"{exact}/{args.runs} exact")
    if args.readme:
        what = "the Ray test's scenario repeated: SigLIP added on a one-worker local Ray to a film indexed with CLIP"
        say.to_readme(BEGIN, END, "python benchmarks/soak_ray.py --readme", what)
    return 0 if exact == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())

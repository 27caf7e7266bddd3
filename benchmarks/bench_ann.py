"""Archive search with the FAISS index: recall against exact search, latency, memory, build time.

Two synthetic libraries (clip_search.search.synthetic), each imported through the same writer as real
films: one shaped like video (films as shots around recurring content, 512-d unit vectors) and a
less clustered one (wide Gaussian mixtures with a random walk inside each film), queried with
vectors from another distribution (a constant "modality gap" offset, as text queries sit apart
from frames). ``nprobe auto`` is what ``ann build`` chose by measuring recall itself, given held-out
queries of the test queries' distribution as a lab gives its own (``ann build --queries``).
Recall@10 compares the top 10 hits after de-duplication (2 s gap) with exact float32 search of
every frame; latency is the whole ``Searcher.search`` (candidates, exact re-scoring, hits with
moments), single query, on this machine. Filters: 1 film, 1 % and 10 % of the films.

    python benchmarks/bench_ann.py [--frames 1000000] [--films 200] [--queries 300] [--held-out 300]
                                   [--sets video-like,loose] [--readme]

``--readme`` puts this run's output in the README's block between the ``ann-bench`` markers (for
1 M frames) or the ``ann-bench-10m`` markers (for 10 M, ``--frames 10000000 --films 1000 --sets loose``).
From ``MAPPED_FRAMES`` on, the float32 vectors no longer fit this machine's memory beside everything
else: they stay memory-mapped on disk, the exact answers are computed in one streamed pass for all test
queries at once (the same top 10 as exact search, as calibration computes them), and single-query exact
search is timed on a few queries only (each reads every vector from disk).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import psutil

from clip_search.search.ann import EXACT_MAX_FRAMES, AnnIndex, _exact_top
from clip_search.search.scoring import QueryVector, Searcher
from clip_search.search.synthetic import LooseVectors, VideoLikeVectors
from clip_search.store.library import Library, Manifest
from clip_search.store.writer import import_vectors
from scripts.readme_block import Transcript, replace_block

say = Transcript()

SETS = {"video-like": ("video-like (clustered)", VideoLikeVectors), "loose": ("loose (wide mixtures)", LooseVectors)}
MAPPED_FRAMES = 2_000_000  # from here on, exact answers come from one streamed pass (see the docstring)
EXACT_TIMED = 5  # single-query exact searches timed at that scale


def markers(frames: int) -> tuple[str, str, str]:
    """The README block a run of ``frames`` frames fills, and the command that fills it."""
    name, options = (
        ("ann-bench-10m", " --frames 10000000 --films 1000 --sets loose") if frames == 10_000_000 else ("ann-bench", "")
    )
    script = f"benchmarks/bench_ann.py{options} --readme"
    return f"<!-- {name}:begin ({script}) -->", f"<!-- {name}:end -->", f"python {script}"


def build(root: Path, frames: int, films: int, dim: int, kind=VideoLikeVectors) -> Library:
    lib = Library(root)
    gen = kind(dim=dim, clusters=1000, seed=0)
    per = frames // films
    for i in range(films):
        import_vectors(
            lib, Manifest.imported(f"film{i:04d}", "synthetic", 0.0), gen.film(per), np.arange(per, dtype=float)
        )
    return lib


def resident_mb(index_file: Path) -> float:
    """What loading the index adds to a fresh process's RSS (this process's allocator would hide it)."""
    code = (
        "import sys, faiss, psutil; p = psutil.Process(); r = p.memory_info().rss; "
        "i = faiss.read_index(sys.argv[1]); print((p.memory_info().rss - r) / 2**20)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(index_file)], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def keys(hits) -> set:
    return {(h.film_id, h.frame) for h in hits}


def exact_answers(lib: Library, films, queries, mapped: bool) -> tuple[list[set], list[float], str]:
    """Each query's exact top 10 (film id, frame), single-query exact search times, and a note on how.

    Below ``MAPPED_FRAMES`` every query is one exact ``Searcher.search``; above it, the answers come
    from one streamed pass for all queries (``_exact_top``, what calibration trusts) and only
    ``EXACT_TIMED`` single-query searches are timed."""
    exact = Searcher(films, lib, exact=True)
    if not mapped:
        t_exact, truth = [], []
        for q in queries:
            t0 = time.perf_counter()
            truth.append(keys(exact.search(q, top_k=10)))
            t_exact.append(time.perf_counter() - t0)
        return truth, t_exact, ""
    t0 = time.perf_counter()
    ordered = exact.films  # _exact_top's film indices are into this order
    top = _exact_top(ordered, np.stack([q.vector for q in queries]), 10)
    truth = [{(ordered[fi].id, r) for fi, r in answer} for answer in top]
    streamed = time.perf_counter() - t0
    t_exact = []
    for q in queries[:EXACT_TIMED]:
        t0 = time.perf_counter()
        exact.search(q, top_k=10)
        t_exact.append(time.perf_counter() - t0)
    return truth, t_exact, f" ({EXACT_TIMED} timed; all {len(queries)} answers in one streamed pass, {streamed:.0f} s)"


def run(lib: Library, films, queries, exact_hits, nprobe: int | None) -> tuple[float, float, float, float]:
    searcher = Searcher(films, lib, nprobe=nprobe)
    assert searcher.mode == "ann" or sum(f.manifest.frames for f in films) <= EXACT_MAX_FRAMES
    searcher.search(queries[0], top_k=10)  # warm-up
    times, recall = [], []
    for q, truth in zip(queries, exact_hits, strict=True):
        t0 = time.perf_counter()
        hits = searcher.search(q, top_k=10)
        times.append(time.perf_counter() - t0)
        recall.append(len(keys(hits) & truth) / 10)
    ms = np.array(times) * 1000
    se = float(np.std(recall, ddof=1) / np.sqrt(len(recall))) if len(recall) > 1 else 0.0
    return float(np.mean(recall)), se, float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--films", type=int, default=200)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=300, help="test queries (recall is printed with its standard error)")
    ap.add_argument("--held-out", type=int, default=300, help="queries of the same kind given to calibration")
    ap.add_argument("--nprobe", default="8,16,32,48,96")
    ap.add_argument("--sets", default="video-like,loose", help="which synthetic libraries: video-like, loose")
    ap.add_argument("--readme", action="store_true", help="put this run's output in the README")
    args = ap.parse_args()
    if args.readme and args.frames not in (1_000_000, 10_000_000):
        ap.error("--readme keeps the 1 M and 10 M frame runs only")
    for key in args.sets.split(","):
        name, kind = SETS[key.strip()]
        say(f"\n=== {name} ===")
        one_set(args, kind)
    ram = psutil.virtual_memory().total
    say(f"\nmachine: {os.cpu_count()} CPU cores, {ram / 2**30:.0f} GiB; one query at a time")
    say("recall@10: mean over the test queries ± its standard error; nprobe auto: what calibration chose")
    say("targets at 1 M frames: recall@10 >= 0.98, p50 <= 10 ms, resident index <= 150 MB")
    if args.frames >= MAPPED_FRAMES:
        on_disk = args.frames * args.dim * 4
        say(
            f"float32 vectors: {on_disk / 2**30:.1f} GiB on disk, memory-mapped ({on_disk / ram:.0%} of RAM): "
            "search re-scores its candidates from them, so what the page cache does not hold is read from disk"
        )
    if args.readme:
        begin, end, command = markers(args.frames)
        what = (
            f"{args.frames} synthetic {args.dim}-d frames in {args.films} films, {args.queries} text-like test "
            f"queries, {args.held_out} more given to calibration"
        )
        replace_block(begin, end, say.block(begin, end, command, what))


def one_set(args, kind) -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        t0 = time.perf_counter()
        lib = build(Path(tmp), args.frames, args.films, args.dim, kind)
        took = time.perf_counter() - t0
        say(f"library: {args.frames} frames x {args.dim}-d in {args.films} films, imported in {took:.0f} s")
        # held-out draws of the test queries' distribution, given to calibration as a lab gives its
        # own queries (`ann build --queries`): "nprobe auto" is then chosen for that distribution
        held_out = kind(dim=args.dim, clusters=1000, seed=0)
        held_out.queries(args.queries)  # the test queries' draws: skipped, not reused
        t0 = time.perf_counter()
        status = AnnIndex.update(lib, queries=held_out.queries(args.held_out))
        say(f"index build (train + add + calibration): {time.perf_counter() - t0:.1f} s; {status.describe()}")
        ann = AnnIndex.load(lib)
        index_file = AnnIndex.folder(lib) / ann.meta["file"]
        del ann
        on_disk = index_file.stat().st_size / 2**20
        say(f"index resident memory: {resident_mb(index_file):.0f} MB (file {on_disk:.0f} MB)   [<= 150 MB]")
        films = lib.films()
        gen = kind(dim=args.dim, clusters=1000, seed=0)
        queries = [QueryVector(v, "q") for v in gen.queries(args.queries)]
        subsets = {
            "all films": films,
            "1 film": films[:1],
            "1 % of films": films[: max(1, len(films) // 100)],
            "10 % of films": films[: max(1, len(films) // 10)],
        }
        for label, chosen in subsets.items():
            truth, t_exact, how = exact_answers(lib, chosen, queries, mapped=args.frames >= MAPPED_FRAMES)
            frames = sum(f.manifest.frames for f in chosen)
            say(f"\n{label} ({frames} frames): exact float32 p50 {np.median(t_exact) * 1000:.1f} ms{how}")
            for nprobe in [None, *(int(n) for n in args.nprobe.split(","))]:
                recall, se, p50, p95 = run(lib, chosen, queries, truth, nprobe)
                shown = "auto" if nprobe is None else f"{nprobe:4d}"
                say(f"  nprobe {shown}: recall@10 {recall:.3f} ± {se:.3f}   p50 {p50:6.1f} ms   p95 {p95:6.1f} ms")
                if label != "all films" and frames <= EXACT_MAX_FRAMES:
                    say("  (scored exactly: the filter chooses few enough frames)")
                    break


if __name__ == "__main__":
    main()

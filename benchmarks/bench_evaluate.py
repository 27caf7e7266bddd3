"""How long an evaluation takes (not a timed test): the example query set (``data/queries.csv``,
4 engines, the 8 sample films indexed with a ViT-B/32-sized random CLIP and tagged offline) as a
user runs it, first and repeated, then the time split between ranking by the engines and the
statistics (chance, intervals, paired tests), and a synthetic 1 500-query set made from the
example one (each query asked again in other words), to show the cost grows linearly.

    python benchmarks/bench_evaluate.py [--readme]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clip_search import config
from scripts.readme_block import Transcript

BEGIN, END = "<!-- evaluate-bench:begin (benchmarks/bench_evaluate.py --readme) -->", "<!-- evaluate-bench:end -->"
ENGINES = "clip,tags:offline,dialogue,clip+dialogue"
WORDS = ("a shot of", "footage of", "the moment with", "a scene where", "look for", "find", "show me", "when")


def prepare(work: Path) -> tuple[Path, Path]:
    """The example library and its model, as the README's example evaluation makes them."""
    from clip_search.encoders import load_encoder
    from clip_search.encoders.random import build_random_clip
    from clip_search.store.library import Library
    from framesearch.examples import example_films, prepare

    model = build_random_clip(work / "clip", full_size=True)
    library = Library(work / "lib")
    prepare(library, load_encoder(str(model), "cpu"), example_films())
    return model, library.root


def synthetic(target: Path, n: int) -> None:
    """A query set of at least ``n`` queries: the example set again and again, each time in other
    words (a query's rows stay one query)."""
    rows = list(csv.DictReader(config.PROJECT_DIR.joinpath("data", "queries.csv").open()))
    queries = len({(r["film"], r["query"]) for r in rows})
    out = []
    for b in range(-(-n // queries)):
        for row in rows:
            said = row["query"] if b == 0 else f"{WORDS[b % len(WORDS)]} {row['query']}"
            out.append({**row, "query": said if b < len(WORDS) else f"{said} (take {b // len(WORDS) + 1})"})
    with target.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(out)


def run(queries: Path, library: Path, env: dict) -> float:
    t0 = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "comparisons",
        "evaluate",
        str(queries),
        "--library",
        str(library),
        "--engines",
        ENGINES,
    ]
    subprocess.run(cmd, env=env, check=True, capture_output=True, cwd=config.PROJECT_DIR)
    return time.perf_counter() - t0


def split(queries: Path, library: Path) -> tuple[float, float, int]:
    """(seconds ranking by the engines, seconds of statistics, queries) of one evaluation in this process."""
    import comparisons.evaluate as evaluation
    from comparisons.cli import main

    spent = [0.0]
    real = evaluation.rank_query

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0

    evaluation.rank_query = timed
    try:
        t0 = time.perf_counter()
        with open(os.devnull, "w") as quiet:
            stdout, sys.stdout = sys.stdout, quiet
            try:
                main(["evaluate", str(queries), "--library", str(library), "--engines", ENGINES])
            finally:
                sys.stdout = stdout
        total = time.perf_counter() - t0
    finally:
        evaluation.rank_query = real
    with queries.open() as f:
        n = len({(r["film"], r["query"]) for r in csv.DictReader(f)})  # a query's rows are one query
    return spent[0], total - spent[0], n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", action="store_true", help="write this run's output into README.md")
    ap.add_argument("--large", type=int, default=1500, help="queries in the synthetic set")
    args = ap.parse_args()
    say = Transcript()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model, library = prepare(work)
        env = {
            **os.environ,
            "FRAMESEARCH_MODEL": str(model),
            "HF_HUB_OFFLINE": "1",
            "FRAMESEARCH_CACHE": str(work / "cache"),
        }
        os.environ.update({k: env[k] for k in ("FRAMESEARCH_MODEL", "HF_HUB_OFFLINE", "FRAMESEARCH_CACHE")})
        example = config.PROJECT_DIR / "data" / "queries.csv"
        first, again = run(example, library, env), run(example, library, env)
        say(f"example set ({ENGINES}), a new process each time:")
        say(f"  first run (models loaded, texts encoded): {first:6.1f} s")
        say(f"  repeated (query texts read from the caches): {again:6.1f} s   target < 10 s")
        rank, stats, n = split(example, library)
        say(f"  in one process: engines ranking {rank:5.1f} s, statistics {stats:5.1f} s, {n} queries")
        synthetic(work / "large.csv", args.large)
        run(work / "large.csv", library, env)  # its new texts encoded once
        rank_l, stats_l, large = split(work / "large.csv", library)
        per_small, per_large = (rank + stats) / n, (rank_l + stats_l) / large
        say(f"synthetic set of {large} queries: engines {rank_l:6.1f} s, statistics {stats_l:6.1f} s")
        say(f"  per query: {per_small * 1000:.0f} ms at {n} queries, {per_large * 1000:.0f} ms at {large}")
        say(f"  ratio {per_large / per_small:.2f} (1.00: linear)")
    if args.readme:
        say.to_readme(BEGIN, END, "python benchmarks/bench_evaluate.py --readme", "the example evaluation's time")


if __name__ == "__main__":
    main()

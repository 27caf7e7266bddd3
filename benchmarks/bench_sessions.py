"""Four dashboard sessions querying at once (not a timed test): do they get the CLI's hits, and
what does Enter -> frames cost beside one session alone?

Builds a library of three synthetic 20-minute films at 1 fps (vectors in a ViT-B/32-sized CLIP's
space, real JPEG thumbnails), asks the CLI (``search --json``) for each query's top 12, then drives
the dashboard in headless Chromium: first one session alone, then four sessions (each its own
browser) typing the same queries at once. Every hit card (rank, time, film, score) of every session
is compared with the CLI's list, and p50/p95 of Enter -> 12 thumbnails + strip rendered are printed
for both, measured in one run.

    python benchmarks/bench_sessions.py [--sessions 4] [--queries 6] [--readme]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from bench_dashboard import QUERIES, ask, open_search, thumbnails

from clip_search.store.library import Library, Manifest
from clip_search.store.writer import import_vectors
from clip_search.timecode import fmt_time
from scripts.readme_block import Transcript
from ui.launch import launch_chromium, start_dashboard

BEGIN, END = "<!-- sessions-bench:begin (benchmarks/bench_sessions.py --readme) -->", "<!-- sessions-bench:end -->"

TOP_K = 12  # the dashboard's default top-k
CARDS = """() => {
  const ranks = [...document.querySelectorAll('[data-testid="stMarkdownContainer"] p')]
    .map(p => p.innerText.match(/^#(\\d+) · (\\S+)/)).filter(Boolean).map(m => m[2]);
  const films = [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
    .map(c => c.innerText.match(/^(.*) · score (-?\\d+\\.\\d{3})$/)).filter(Boolean).map(m => [m[1], m[2]]);
  return ranks.map((t, i) => [films[i] ? films[i][0] : null, t, films[i] ? films[i][1] : null]);  // rank order
}"""


def build_library(root: Path, model_dir: str, films: int = 3, minutes: float = 20.0) -> None:
    from clip_search.encoders import load_encoder

    enc = load_encoder(model_dir, "cpu")
    n = int(minutes * 60)
    rng = np.random.default_rng(0)
    thumbs = thumbnails(n)
    for k in range(films):
        emb = rng.standard_normal((n, enc.dim)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        m = Manifest.imported(f"film-{k + 1}", enc.model_id, float(n), logit_scale=enc.logit_scale)
        import_vectors(Library(root), m, emb, np.arange(n, dtype=np.float64), thumbs)


def cli_hits(library: str, model: str, query: str) -> list[list]:
    """The CLI's top hits for ``query``, as a card shows them: film, time, score to 3 places."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "clip_search",
            "search",
            query,
            "--library",
            library,
            "--model",
            model,
            "--top-k",
            str(TOP_K),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [[h["film"], fmt_time(h["time"]), f"{h['score']:.3f}"] for h in json.loads(out)]


def session(url: str, queries: list[str], start: threading.Barrier | None, out: dict) -> None:
    """One browser session: each query typed, Enter -> frames timed, the cards read."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        box = open_search(page, url, 300_000)
        ask(page, box, "warm-up", 300_000)
        if start:
            start.wait()  # every session types its queries at the same time
        for q in queries:
            out.setdefault("seconds", []).append(ask(page, box, q, 300_000))
            out.setdefault("cards", {})[q] = page.evaluate(CARDS)
        browser.close()


def figures(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return f"p50 {np.percentile(ms, 50):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms over {len(ms)} queries"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--queries", type=int, default=6)
    ap.add_argument("--readme", action="store_true", help="write this run's output into README.md")
    args = ap.parse_args()
    from bench_index import full_size_clip

    queries = QUERIES[: args.queries]
    model_dir = str(full_size_clip())
    with tempfile.TemporaryDirectory() as tmp:
        build_library(Path(tmp), model_dir)
        expected = {q: cli_hits(tmp, model_dir, q) for q in queries}
        proc, url = start_dashboard(tmp, model_dir, timeout=300)
        try:
            alone: dict = {}
            session(url, queries, None, alone)
            runs = [{} for _ in range(args.sessions)]
            barrier = threading.Barrier(args.sessions)
            threads = [threading.Thread(target=session, args=(url, queries, barrier, r)) for r in runs]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            proc.terminate()
    same = sum(r.get("cards", {}).get(q) == expected[q] for r in [alone, *runs] for q in queries)
    total = len(queries) * (1 + args.sessions)
    say = Transcript()
    say(f"one session alone:        {figures(alone['seconds'])}")
    say(f"{args.sessions} sessions at once:     {figures([s for r in runs for s in r.get('seconds', [])])}")
    say(f"hits equal to the CLI's (film, time, score to 3 places, in rank order): {same}/{total} result pages")
    for k, r in enumerate([alone, *runs]):
        for q in queries:
            if r.get("cards", {}).get(q) != expected[q]:
                print(f"  session {k} {q!r}: page {r.get('cards', {}).get(q)} != CLI {expected[q]}")
    if args.readme:
        what = (
            "three 20-minute films at 1 fps, ViT-B/32-sized CLIP (random weights), Enter -> 12 thumbnails + "
            "strip rendered in headless Chromium at 1920x1080, each session its own browser"
        )
        say.to_readme(BEGIN, END, "python benchmarks/bench_sessions.py --readme", what)
    return 0 if same == total else 1


if __name__ == "__main__":
    sys.exit(main())

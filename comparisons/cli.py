"""Command line: ``python -m comparisons tag|search|evaluate``.

tag FILM --service offline|azure|rekognition   tag an indexed film's frames (cached; resumable)
search "QUERY" --engine ENGINE --json          same hit fields as ``clip_search search --json``
evaluate QUERIES.csv --engines clip,dialogue   metrics per engine on labelled queries
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clip_search import config
from clip_search.errors import FrameSearchError
from clip_search.library import Film, Library
from clip_search.search import DEFAULT_GAP
from clip_search.timecode import fmt_time
from comparisons.engines import FUSION_WEIGHT, Engine, EngineUnavailable, engine_names
from comparisons.evaluate import DEFAULT_KS, DEFAULT_TOLERANCE, evaluate, load_query_set, metric_names, write_csv
from comparisons.pricing import estimate, price_table
from comparisons.taggers import SERVICES, FatalTaggerError, default_service, make_tagger
from comparisons.tagging import frames_to_tag, tag_film


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(prog="python -m comparisons", description="CLIP versus tagging services.")
    sub = parser.add_subparsers(dest="command", required=True)
    lib_help = "library folder (default $FRAMESEARCH_LIBRARY or ./library)"

    p = sub.add_parser("tag", help="tag an indexed film's sampled frames with a service")
    p.add_argument("film", metavar="FILM")
    p.add_argument(
        "--service",
        choices=SERVICES,
        default=None,
        help="default: a cloud service whose credentials are set, else offline",
    )
    p.add_argument("--library", help=lib_help)
    p.add_argument("--yes", action="store_true", help="run a paid service without asking")
    p.add_argument("--workers", type=int, default=2, help="frames in flight at once")

    p = sub.add_parser("search", help="search with one engine")
    p.add_argument("query", metavar="QUERY")
    p.add_argument("--engine", default="clip", help=", ".join(engine_names()))
    p.add_argument("--library", help=lib_help)
    p.add_argument("--film", action="append", default=[])
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--gap", type=float, default=DEFAULT_GAP)
    p.add_argument("--fusion-weight", type=float, default=FUSION_WEIGHT, help="CLIP's share in clip+dialogue")
    p.add_argument("--model", help="CLIP model (default: the one the films were indexed with)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("evaluate", help="metrics per engine on a labelled query set (CSV film,query,start,end)")
    p.add_argument("queries", metavar="QUERIES.csv")
    p.add_argument("--library", help=lib_help)
    p.add_argument("--engines", default="clip,tags:offline,dialogue,clip+dialogue")
    p.add_argument("--k", default=",".join(map(str, DEFAULT_KS)), help="cut-offs, e.g. 1,5,10")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="seconds around an interval")
    p.add_argument("--fusion-weight", type=float, default=FUSION_WEIGHT)
    p.add_argument("--model", help="CLIP model (default: the one the films were indexed with)")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="write everything (incl. ranked hits) as JSON")
    p.add_argument("--csv", dest="csv_out", metavar="OUT", help="write the per-engine table as CSV")
    return parser


def _library(args: argparse.Namespace) -> Library:
    return Library(config.library_dir(args.library))


def _encoder_for(names: list[str], films: list[Film], model: str | None):
    """Load CLIP only if an engine needs it; a load failure makes those engines unavailable."""
    if not any(n in ("clip", "clip+dialogue") for n in names):
        return None
    from clip_search.errors import ModelLoadError
    from clip_search.model import load_encoder

    models = sorted({f.manifest.model for f in films})
    try:
        return load_encoder(model or (models[0] if models else None))
    except ModelLoadError as e:
        print(f"warning: {e}", file=sys.stderr)
        return None


def cmd_tag(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    library = _library(args)
    matches = library.find(args.film)
    if len(matches) > 1:
        raise FrameSearchError(f"'{args.film}' matches several films ({', '.join(f.id for f in matches)}); use an id.")
    film = matches[0]
    service = args.service or default_service()
    tagger = make_tagger(service)
    todo = frames_to_tag(library, film, tagger)
    cost = estimate(service, todo, price_table(library.root))
    print(cost.sentence(), file=sys.stderr)
    if tagger.paid and todo and not args.yes:
        if not sys.stdin.isatty():
            raise FrameSearchError("This is a paid service: add --yes to confirm the estimate above.")
        if input("Proceed? [y/N] ").strip().lower() not in ("y", "yes"):
            print("cancelled", file=sys.stderr)
            return 1
    bar = tqdm(total=film.manifest.frames, desc=f"{film.name} / {service}", unit="frame", file=sys.stderr)

    def show(done: int, total: int) -> None:
        bar.n = done
        bar.refresh()

    try:
        run = tag_film(library, film, tagger, workers=args.workers, progress=show)
    finally:
        bar.close()
    print(run.summary())
    for t, msg in run.errors[:10]:
        print(f"error: {film.name} at {fmt_time(t)}: {msg}", file=sys.stderr)
    if run.fatal:
        print(f"error: {run.fatal}", file=sys.stderr)
        return 2
    return 1 if run.errors else 0


def cmd_search(args: argparse.Namespace) -> int:
    library = _library(args)
    films = library.select(args.film)
    if not films:
        raise FrameSearchError(f"The library {library.root} has no indexed films.")
    engine = Engine(args.engine, library, _encoder_for([args.engine], films, args.model), args.fusion_weight)
    hits = engine.search(films, args.query, top_k=args.top_k, gap=args.gap)
    rows = []
    for h in hits:
        row = h.to_dict()
        row["engine"] = engine.name
        if engine.name.startswith("tags:"):
            film = next(f for f in films if f.id == h.film_id)
            row["matched"] = [t.to_dict() for t in engine.tag_index(film).matched(h.frame, args.query)]
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for rank, r in enumerate(rows, 1):
        why = "; ".join(t["text"] for t in r.get("matched", []))
        print(f"{rank:3d}. {r['film']:36.36s} {fmt_time(r['time']):>10s}  score {r['score']:.4f}  {why}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    library = _library(args)
    try:
        queries = load_query_set(args.queries)
        ks = tuple(sorted({int(k) for k in args.k.split(",") if k.strip()}))
    except (ValueError, OSError) as e:
        raise FrameSearchError(str(e)) from None
    names = [n.strip() for n in args.engines.split(",") if n.strip()]
    films = [library.find(q.film)[0] for q in queries]
    encoder = _encoder_for(names, films, args.model)
    try:
        engines = [Engine(n, library, encoder, args.fusion_weight) for n in names]
    except ValueError as e:
        raise FrameSearchError(str(e)) from None
    result = evaluate(
        library,
        queries,
        engines,
        ks,
        args.tolerance,
        progress=lambda i, n: print(f"engine {i}/{n} done", file=sys.stderr),
    )
    cols = metric_names(ks)
    print(f"{len(queries)} queries, tolerance {args.tolerance:g} s")
    print(f"{'engine':16s} " + " ".join(f"{c:>9s}" for c in cols))
    for row in result.table():
        if row["status"] != "ok":
            print(f"{row['engine']:16s} skipped: {row['reason']}")
            continue
        print(f"{row['engine']:16s} " + " ".join(f"{row[c]:9.3f}" for c in cols))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result.to_dict(), indent=2))
    if args.csv_out:
        write_csv(result, args.csv_out)
    return 0


COMMANDS = {"tag": cmd_tag, "search": cmd_search, "evaluate": cmd_evaluate}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 partial failure, 2 fatal error)."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (FrameSearchError, FatalTaggerError, EngineUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; frames tagged so far are kept", file=sys.stderr)
        return 130

"""Command line: ``python -m comparisons tag|search|evaluate``.

tag FILM --service offline|azure|rekognition   tag an indexed film's frames (cached; resumable)
search "QUERY" --engine ENGINE --json          same hit fields as ``clip_search search --json``
evaluate QUERIES --engines clip,dialogue       metrics per engine on labelled queries (CSV, QVHighlights, Charades-STA)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

import clip_search.config as config
from clip_search.arguments import (
    Parser,
    add_temporal,
    fraction,
    non_negative_float,
    output_file,
    positive_int,
    positive_ints,
    query_text,
)
from clip_search.cli import MOMENTS_HELP, answer, when_of
from clip_search.encoders import load_encoder
from clip_search.encoders.text_cache import cached_loader
from clip_search.errors import FrameSearchError, one_line
from clip_search.search.scoring import DEFAULT_GAP
from clip_search.store.library import Film, Library
from clip_search.store.writer import open_library
from clip_search.timecode import fmt_time
from comparisons import report
from comparisons.benchmarks import Benchmark
from comparisons.benchmarks import load as load_benchmark
from comparisons.evaluate import (
    DEFAULT_KS,
    DEFAULT_SCOPE,
    DEFAULT_TOLERANCE,
    SCOPES,
    evaluate,
    load_query_set,
    metric_names,
    resolve_films,
    write_csv,
)
from comparisons.moment_retrieval import (
    evaluate_benchmark,
    films_of,
    report_lines,
    videos_to_index,
    write_predictions,
)
from comparisons.robustness import robustness
from engines import (
    DEFAULT,
    FUSION_WEIGHT,
    Encoders,
    EngineUnavailable,
    default_engine,
    engine_names,
    make_engine,
    parse_engine,
    split_names,
)
from tagging.pricing import estimate, price_table
from tagging.run import check_source, check_writable, tag_film, work_left
from tagging.taggers import FatalTaggerError, default_service, make_tagger, services


def _engine(text: str) -> str:
    try:
        return parse_engine(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _engines(text: str) -> list[str]:
    names = split_names(text)
    if not names:
        raise argparse.ArgumentTypeError("needs at least one engine")
    return [_engine(n) for n in names]


ENGINE_HELP = f"{', '.join(engine_names())}, or a model name (a hub id, open_clip:..., a local folder)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = Parser(prog="python -m comparisons", description="CLIP versus tagging services.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    lib_help = "library folder (default $FRAMESEARCH_LIBRARY or ./library)"

    p = sub.add_parser("tag", help="tag an indexed film's sampled frames with a service")
    p.add_argument("film", metavar="FILM")
    p.add_argument(
        "--service",
        choices=list(services()),
        default=None,
        help="default: a cloud service whose credentials are set, else offline",
    )
    p.add_argument("--library", help=lib_help)
    p.add_argument("--yes", action="store_true", help="run a paid service without asking")
    p.add_argument("--workers", type=positive_int, default=2, help="frames in flight at once")

    p = sub.add_parser("search", help="search with one engine")
    p.add_argument("query", metavar="QUERY", type=query_text)
    p.add_argument("--engine", default=DEFAULT, type=_engine, help=ENGINE_HELP)
    p.add_argument("--library", help=lib_help)
    p.add_argument("--film", action="append", default=[])
    p.add_argument("--top-k", type=positive_int, default=10)
    p.add_argument("--gap", type=non_negative_float, default=DEFAULT_GAP)
    p.add_argument("--fusion-weight", type=fraction, default=FUSION_WEIGHT, help="CLIP's share in clip+dialogue")
    p.add_argument("--model", help="the model the clip engine means (default: the library's default model)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--explain", action="store_true", help="add the evidence for each hit (tags, cues, CLIP measures)")
    p.add_argument("--moments", action="store_true", help=MOMENTS_HELP)
    add_temporal(p)

    p = sub.add_parser(
        "evaluate",
        help="metrics per engine on labelled queries: a CSV query set (film,query,start,end), a QVHighlights "
        "jsonl or a Charades-STA file (recognised from the content)",
    )
    p.add_argument("queries", metavar="QUERIES")
    p.add_argument("--library", help=lib_help)
    p.add_argument(
        "--engines",
        type=_engines,
        default=_engines("clip,tags:offline,dialogue,clip+dialogue"),
        help=f"comma-separated: {ENGINE_HELP}",
    )
    p.add_argument("--k", type=positive_ints, default=DEFAULT_KS, help="cut-offs, e.g. 1,5,10")
    p.add_argument("--tolerance", type=non_negative_float, default=DEFAULT_TOLERANCE, help="seconds around an interval")
    p.add_argument("--fusion-weight", type=fraction, default=FUSION_WEIGHT)
    p.add_argument(
        "--scope",
        choices=list(SCOPES),
        default=DEFAULT_SCOPE,
        help="library: each query searches all films of the set (a hit in another film is wrong); "
        "film: each query searches its own film",
    )
    p.add_argument("--metric", default="mrr", help="headline metric for the paired tests (mrr, map, hit@K, ...)")
    p.add_argument(
        "--machine-usd-per-hour",
        type=non_negative_float,
        default=None,
        help="price of the machine CLIP and the offline tagger ran on (default: the price table's)",
    )
    p.add_argument("--model", help="the model the clip engine means (default: the library's default model)")
    p.add_argument(
        "--robustness",
        action="store_true",
        help="also re-run every query with typos, case/punctuation changes, swapped words, and the set's "
        "paraphrases and translations; report each engine's drop with a paired test",
    )
    p.add_argument(
        "--predictions",
        type=Path,
        metavar="DIR",
        help="benchmarks: write <engine>.jsonl per engine in the QVHighlights submission format",
    )
    p.add_argument(
        "--videos", type=Path, metavar="DIR", help="benchmarks: index the videos the library lacks from here"
    )
    p.add_argument("--json", dest="json_out", type=output_file, metavar="OUT", help="write everything as JSON")
    p.add_argument("--csv", dest="csv_out", type=output_file, metavar="OUT", help="write the per-engine table as CSV")
    p.add_argument("--markdown", dest="md_out", type=output_file, metavar="OUT", help="write the tables as Markdown")
    return parser


def _library(args: argparse.Namespace) -> Library:
    return open_library(config.library_dir(args.library), config.model_id())


def _make_engines(library: Library, names: list[str], films: list[Film], args: argparse.Namespace) -> list:
    """The engines named, sharing one cache of models: each model loads when an engine first needs
    it, and one that cannot be loaded makes its engines unavailable (named), not the run."""
    encoders = Encoders(loader=cached_loader(library, load_encoder))  # texts seen before: no model loaded
    default = default_engine(library.model_for(films, args.model), encoders)
    return [make_engine(n, library, encoders, args.fusion_weight, default=default) for n in names]


def cmd_tag(args: argparse.Namespace) -> int:
    library = _library(args)
    film = library.find_one(args.film)
    check_writable(library)
    check_source(film)  # before the estimate: a changed film is not offered for payment
    service = args.service or default_service()
    tagger = make_tagger(service)
    todo = work_left(library, film, tagger)
    cost = estimate(service, todo.frames, price_table(library.root), calls=todo.calls)
    print(cost.sentence(), file=sys.stderr)
    if tagger.paid and todo.frames and not args.yes:
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
        print("error: " + one_line(f"{film.name} at {fmt_time(t)}: {msg}"), file=sys.stderr)
    if run.fatal:
        print(f"error: {one_line(run.fatal)}", file=sys.stderr)
        return 2
    return 1 if run.errors else 0


def cmd_search(args: argparse.Namespace) -> int:
    library = _library(args)
    films = library.select(args.film)
    if not films:
        raise FrameSearchError(f"The library {library.root} has no indexed films.")
    (engine,) = _make_engines(library, [args.engine], films, args)
    when = when_of(args)
    if args.moments or when is not None:
        return answer(engine, films, args.query, args, when)
    result = engine.run(films, args.query, top_k=args.top_k, gap=args.gap)
    by_id = {f.id: f for f in films}
    rows = []
    for h in result.hits:
        row = h.to_dict()
        row["engine"] = engine.name
        if args.explain or engine.evidence_in_listing:
            # an explanation's score is the hit's: scored over the same films, on one scale
            why = result.explain(by_id[h.film_id], h.frame, crops=args.explain)
            if engine.evidence_in_listing:
                row["matched"] = [{"kind": e.kind, "text": e.text, "confidence": e.confidence} for e in why.evidence]
            if args.explain:
                row["explanation"] = why.to_dict()
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for rank, r in enumerate(rows, 1):
        why = "; ".join(t["text"] for t in r.get("matched", []))
        print(f"{rank:3d}. {r['film']:36.36s} {fmt_time(r['time']):>10s}  score {r['score']:.4f}  {why}")
    return 0


def cmd_benchmark(args: argparse.Namespace, library: Library, bench: Benchmark) -> int:
    """``evaluate`` on a QVHighlights or Charades-STA file: moments scored as the benchmark scores them."""
    if args.videos:
        paths = videos_to_index(bench, library, args.videos)
        if paths:
            from framesearch import app  # an entry point: indexing is the application layer's verb

            model = library.model_for(library.films(), args.model)
            for item in app.index(library, paths, [model]).failed:
                print(f"warning: {one_line(item.error)}", file=sys.stderr)
    films, _ = films_of(library, bench)
    engines = _make_engines(library, args.engines, list({f.id: f for f in films.values()}.values()), args)
    result = evaluate_benchmark(
        library, bench, engines, progress=lambda i, n: print(f"engine {i}/{n} done", file=sys.stderr)
    )
    for w in result.warnings:
        print(f"warning: {one_line(w)}", file=sys.stderr)
    print("\n".join(report_lines(result)))
    if args.predictions:
        for path in write_predictions(result, bench, args.predictions):
            print(f"predictions: {path}", file=sys.stderr)
    if args.json_out:
        args.json_out.write_text(json.dumps(result.to_dict(), indent=2))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    library = _library(args)
    try:
        bench = load_benchmark(args.queries)
    except (ValueError, OSError) as e:
        raise FrameSearchError(str(e)) from None
    if bench is not None:
        return cmd_benchmark(args, library, bench)
    try:
        queries = load_query_set(args.queries)
    except (ValueError, OSError) as e:
        raise FrameSearchError(str(e)) from None
    films, _ = resolve_films(library, queries)
    engines = _make_engines(library, args.engines, list({f.id: f for f in films.values()}.values()), args)
    cols = metric_names(args.k)
    if args.metric not in cols:
        raise FrameSearchError(f"--metric must be one of {', '.join(cols)}, not {args.metric!r}")
    result = evaluate(
        library,
        queries,
        engines,
        args.k,
        args.tolerance,
        progress=lambda i, n: print(f"engine {i}/{n} done", file=sys.stderr),
        headline=args.metric,
        machine_usd=args.machine_usd_per_hour,
        scope=args.scope,
    )
    for w in result.warnings:
        print(f"warning: {one_line(w)}", file=sys.stderr)
    print("\n".join(report.text_lines(result)))
    drops = None
    if args.robustness:
        drops = robustness(
            library, queries, engines, result, progress=lambda i, n: print(f"robustness {i}/{n}", file=sys.stderr)
        )
        print("\n".join(report.robustness_lines(drops)))
    print(f"quality per dollar ({args.metric} against cost per film-hour at the films' sampling):")
    metric_of = {r["engine"]: r.get(args.metric) for r in result.table()}
    for name, cost in result.costs.items():
        usd = "not measured" if cost["usd_per_film_hour"] is None else f"${cost['usd_per_film_hour']:.4f}"
        value = metric_of.get(name)
        shown = "skipped" if value is None else f"{value:.3f}"
        queries = cost.get("usd_per_1000_queries", 0.0)
        paid = f" + ${queries:.4f} per 1 000 queries" if queries else ""
        print(f"  {name:16s} {args.metric} {shown:>7s}  {usd:>13s} per film-hour{paid}")
        print(f"  {'':16s} {cost['basis']}"[: report.WIDTH])
    if args.json_out:
        data = result.to_dict()
        if drops is not None:
            data["robustness"] = [d.to_dict() for d in drops]
        args.json_out.write_text(json.dumps(data, indent=2))
    if args.csv_out:
        write_csv(result, args.csv_out)
    if args.md_out:
        tagged = report.tagging_state(library, list({f.id: f for f in films.values()}.values()))
        args.md_out.write_text(report.markdown(result, drops, tagged))
    return 0


COMMANDS = {"tag": cmd_tag, "search": cmd_search, "evaluate": cmd_evaluate}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 partial failure, 2 fatal error)."""
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except SystemExit as e:
        return int(e.code or 0)
    except (FrameSearchError, FatalTaggerError, EngineUnavailable) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; frames tagged so far are kept", file=sys.stderr)
        return 130

"""Command line: ``python -m clip_search index|search|films|export``.

The dashboard and the benchmarks call the same library functions; this module only parses
arguments, shows progress and prints results. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

import clip_search.config as config
from clip_search.arguments import (
    Parser,
    add_temporal,
    device,
    fraction,
    non_negative_float,
    output_file,
    positive_int,
    sampling_fps,
    text,
)
from clip_search.encoders import load_encoder, spot_check
from clip_search.encoders import text_cache as text_vectors
from clip_search.errors import FrameSearchError, ModelLoadError, VideoError, one_line
from clip_search.indexing.indexer import IndexOptions, Progress
from clip_search.search import scenes
from clip_search.search.ann import AnnIndex
from clip_search.search.scoring import (
    DEFAULT_GAP,
    DEFAULT_NEGATIVE_WEIGHT,
    Searcher,
    build_query,
)
from clip_search.store.atomic import atomic_savez
from clip_search.store.library import Damaged, Film, Library, Manifest, VectorSet, check_record, fingerprint
from clip_search.store.writer import import_vectors, open_library
from clip_search.timecode import fmt_time
from clip_search.video.decode import SamplingSettings
from clip_search.video.patches import PatchSettings
from framesearch.app import Watch, merge_duplicates, refresh_archive
from tagging.embedders import CLOUD, embedding_service
from tagging.taggers.base import TaggerError

MOMENTS_HELP = (
    "list ranked moments instead of frames: stretches of film proposed from the scores (cut at several "
    "levels, de-duplicated), each with start, end, score and peak"
)
MODEL_HELP = (
    "a hub id (openai/clip-vit-base-patch32, google/siglip2-base-patch16-224), open_clip:hf-hub:ORG/REPO, "
    "open_clip:ARCH/PRETRAINED or a local folder"
)


def _library_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--library", help="library folder (default $FRAMESEARCH_LIBRARY or ./library)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and --help in the README)."""
    parser = Parser(prog="python -m clip_search", description="Search films by what you saw.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("index", help="index films (paths, folders, .txt lists of paths, video URLs)")
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help="a film, a folder (searched recursively), a .txt list, a URL"
    )
    _library_arg(p)
    p.add_argument(
        "--model",
        action="append",
        help=f"{MODEL_HELP} (default $FRAMESEARCH_MODEL or {config.DEFAULT_MODEL}); repeat it to encode one "
        "decode with several models; on a film indexed with another model only this model's vectors are added; "
        "cloud:titan, cloud:nova, cloud:marengo, cloud:gemini or cloud:azure buys a cloud service's vectors of "
        "the frames (the calls and their price are shown first)",
    )
    p.add_argument("--yes", action="store_true", help="buy a cloud service's vectors without asking")
    p.add_argument("--device", type=device, default="auto", help="auto (CUDA if present), cpu or cuda")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="auto: fp16 on CUDA, bf16 on a CPU with AVX-512 BF16/AMX (about 3x faster), else fp32",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--fps", type=sampling_fps, default=None, help="frames per second to sample (default 1)")
    mode.add_argument("--every-frame", action="store_true", help="sample every frame")
    mode.add_argument("--shots", action="store_true", help="shot-aware: a frame from each detected shot")
    p.add_argument("--patches", action="store_true", help="also encode overlapping crops (small details)")
    p.add_argument(
        "--batch-size", type=positive_int, default=0, help="frames per model batch (default 32 CPU, 128 GPU)"
    )
    p.add_argument("--chunk-frames", type=positive_int, default=256, help="frames per saved chunk (resume granularity)")
    p.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="index on Ray with this many encode workers (local Ray, or the cluster at $RAY_ADDRESS)",
    )

    p = sub.add_parser("search", help="search indexed films by text and/or image")
    p.add_argument("query", nargs="?", default="", type=text, metavar="QUERY")
    _library_arg(p)
    p.add_argument("--model", help=f"search this model's vectors: {MODEL_HELP} (default: the library's default model)")
    p.add_argument("--device", type=device, default="auto")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="auto: fp16 on CUDA, bf16 on a CPU with AVX-512 BF16/AMX (about 3x faster), else fp32",
    )
    p.add_argument("--film", action="append", default=[], help="restrict to this film (repeatable)")
    p.add_argument("--top-k", type=positive_int, default=10)
    p.add_argument("--gap", type=non_negative_float, default=DEFAULT_GAP, help="min seconds between hits of one film")
    p.add_argument("--negative", type=text, help="push results away from this description")
    p.add_argument("--negative-weight", type=fraction, default=DEFAULT_NEGATIVE_WEIGHT)
    p.add_argument("--image", help="an image file to search with (alone or with QUERY)")
    p.add_argument("--json", action="store_true", help="print hits as a JSON array")
    p.add_argument("--exact", action="store_true", help="score every frame (bypass the archive index)")
    p.add_argument("--moments", action="store_true", help=MOMENTS_HELP)
    add_temporal(p)

    p = sub.add_parser("films", help="list indexed films (and damaged ones)")
    _library_arg(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--check", action="store_true", help="verify every film's files in full (exit 1 if any is damaged)")
    p.add_argument(
        "--deep",
        action="store_true",
        help="with --check: also decode a sample of each film's frames and encode them again in float32 with "
        "every model it has (exit 1 if a set disagrees with its film)",
    )
    p.add_argument(
        "--dedupe",
        action="store_true",
        help="merge film folders that hold the same content (indexed from two paths by an older version) into one",
    )

    p = sub.add_parser("export", help="write a film's vectors and times to .npz")
    p.add_argument("film", metavar="FILM")
    _library_arg(p)
    p.add_argument("--model", help="whose vectors (default: the library's default model)")
    p.add_argument("-o", "--output", required=True, type=output_file, metavar="OUT.npz")

    p = sub.add_parser("import", help="add vectors computed elsewhere (.npz with embeddings, times) as a film")
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--npz", required=True, help="file with 'embeddings' (N x D) and 'times' (N, seconds), as export writes"
    )
    _library_arg(p)
    p.add_argument(
        "--model", help="the model the vectors came from (default: the one the .npz names, else the default)"
    )
    p.add_argument("--source", help="the film file the vectors describe (for the player and tagging)")

    p = sub.add_parser("ann", help="the archive index (FAISS) for libraries of 200 000 frames or more")
    p.add_argument("action", choices=["build", "status"])
    _library_arg(p)
    p.add_argument("--rebuild", action="store_true", help="retrain from scratch instead of updating")
    p.add_argument("--model", help="whose vectors (default: the library's default model)")
    p.add_argument(
        "--queries",
        type=Path,
        help="calibrate on your own queries too: a .txt file (one query a line, encoded by the model) or a "
        ".npy of query vectors; the first 300 are kept for later updates (give a few hundred: 100 measure "
        "recall only to about +-0.007)",
    )
    return parser


def _err(msg: str) -> None:
    print(f"error: {one_line(msg)}", file=sys.stderr)


def _warn(msg: str) -> None:
    print(f"warning: {one_line(msg)}", file=sys.stderr)


def _note(msg: str) -> None:
    print(f"note: {one_line(msg)}", file=sys.stderr)


def _warn_damaged(library: Library) -> None:
    for d in library.damaged():
        _warn(d.describe())


def cmd_index(args: argparse.Namespace) -> int:
    from framesearch import app  # the CLI is an entry point: indexing is the application layer's verb

    if args.every_frame:
        sampling = SamplingSettings(mode="every")
    elif args.shots:
        sampling = SamplingSettings(mode="shots")
    else:
        sampling = SamplingSettings(mode="fps", fps=args.fps if args.fps is not None else 1.0)
    options = IndexOptions(
        sampling=sampling,
        patches=PatchSettings() if args.patches else None,
        batch_size=args.batch_size,
        chunk_frames=args.chunk_frames,
    )
    library = open_library(config.library_dir(args.library), config.model_id())
    try:
        local, cloud = app.split_models(args.model or [])
    except ValueError as e:
        raise FrameSearchError(str(e)) from None
    # without a model that runs here: the library's own model when it has films (an offline library
    # stays usable); a cloud service's vectors are bought for the frames that model indexes
    chosen = local or [library.default_model() if library.films() else None]
    models = list(dict.fromkeys(config.model_id(m) for m in chosen))
    explicit = args.fps is not None or args.every_frame or args.shots or args.patches

    def loaded(encoder) -> None:
        print(
            f"model {encoder.model_id} on {encoder.device} ({encoder.precision}); "
            f"sampling {sampling.describe()}" + (" + patches" if options.patches else ""),
            file=sys.stderr,
        )

    watch = app.Watch(film=_FilmBar, loaded=loaded, ray=_ray_bar(), archive=_stderr)
    report = app.index(
        library,
        args.paths,
        models,
        options,
        keep_sampling=not explicit,
        load=app.default_loader(args.device, args.precision),
        watch=watch,
        workers=args.workers,
        device=args.device,
    )
    watch.ray(None)
    for item in report.items:
        if item.error:
            _err(item.error)
            continue
        m = item.film.manifest
        seconds = f", {item.result.seconds:.1f} s" if item.result and not item.result.reused else ""
        print(f"{m.name}: {m.frames} frames, {fmt_time(m.duration)} ({item.describe()}{seconds}) -> {m.id}")
        if m.dialogue and m.dialogue.get("warning") and not (item.result and item.result.reused):
            _warn(m.dialogue["warning"])
    for service in cloud:
        if not _buy_vectors(library, report.films, service, args.yes):
            return 1
    if args.workers:
        rate = report.frames / report.seconds if report.seconds else 0.0
        done = [i for i in report.items if not i.error]
        print(
            f"{sum(1 for i in done if not i.result)} indexed, {sum(1 for i in done if i.result)} reused, "
            f"{len(report.failed)} failed; {report.frames} frames in {report.seconds:.1f} s "
            f"({rate:.1f} frames/s) with {args.workers} workers",
            file=sys.stderr,
        )
    return 1 if report.failed else 0


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


class _FilmBar:
    """One film's bar on stderr: decoding and encoding, then (for many lines) its dialogue."""

    def __init__(self, name: str) -> None:
        self.name = name[:40]
        self.bar = None

    def _open(self, **kwargs):
        if self.bar is None:
            self.bar = tqdm(desc=self.name, file=sys.stderr, **kwargs)
        return self.bar

    def indexing(self, p: Progress) -> None:
        bar = self._open(
            total=1.0, unit="film", bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]"
        )
        bar.n = p.fraction
        bar.set_postfix_str(f"{p.frames} frames", refresh=False)
        bar.refresh()

    def dialogue(self, done: int, total: int) -> None:
        if self.bar is None and total <= 2048:  # a few cues take no time worth a bar
            return
        bar = self._open(total=total, unit="cue")
        bar.n = done
        bar.refresh()

    def waiting(self) -> None:
        print(f"{self.name} is being indexed by another process; waiting for it to finish", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _ray_bar():
    """``index --workers N``: one bar for the whole archive; called with None at the end to close it."""
    bar = None

    def show(p) -> None:
        nonlocal bar
        if p is None:
            if bar is not None:
                bar.close()
            return
        if bar is None:
            bar = tqdm(total=1, desc="archive", unit="film", file=sys.stderr)
        bar.total, bar.n = p.films_total, p.films_done
        eta = p.eta_seconds
        left = f", {fmt_time(eta)[:-2]} left" if eta is not None else ""
        bar.set_postfix_str(f"{p.frames} frames, {p.rate:.1f} frames/s{left}", refresh=False)
        bar.refresh()

    return show


def _buy_vectors(library: Library, films: list[Film], service: str, yes: bool) -> bool:
    """``index --model cloud:X``: the estimate, the user's yes (or --yes), then the vectors bought
    film by film with a progress bar; False when anything failed or was declined."""
    from framesearch import app  # the CLI is an entry point: buying vectors is the application layer's verb

    offered = embedding_service(service)
    print(f"{service}: {offered.provider}, {offered.model_id} ({offered.status})", file=sys.stderr)
    cost = app.embed_estimate(library, films, service)
    print(cost.sentence(), file=sys.stderr)
    if cost.frames and not yes:
        if not sys.stdin.isatty():
            raise FrameSearchError(f"{service} is a paid service: add --yes to confirm the estimate above.")
        if input("Proceed? [y/N] ").strip().lower() not in ("y", "yes"):
            print("cancelled: nothing was paid for", file=sys.stderr)
            return False
    bar = tqdm(total=0, desc=service, unit="frame", file=sys.stderr)

    def show(done: int, total: int) -> None:
        bar.total, bar.n = total, done
        bar.refresh()

    try:
        done = app.embed(library, films, service, progress=show)
    except TaggerError as e:
        raise FrameSearchError(f"{service}: {e}") from None
    finally:
        bar.close()
    ok = True
    for item in done:
        print(item.describe())
        if item.run is not None:
            for t, msg in item.run.errors[:10]:
                _err(f"{item.film.name} at {fmt_time(t)}: {msg}")
            if item.run.fatal:
                _err(item.run.fatal)
        ok = ok and item.added is not None
    return ok


def _search_films(library: Library, refs: list[str]) -> list[Film]:
    _warn_damaged(library)
    films = library.select(refs)
    if not films:
        raise FrameSearchError(
            f"The library {library.root} has no indexed films; run `python -m clip_search index` first."
        )
    return films


def cmd_search(args: argparse.Namespace) -> int:
    library = open_library(config.library_dir(args.library), config.model_id())
    films = _search_films(library, args.film)
    if not args.query.strip() and not args.image:
        raise FrameSearchError("Give a QUERY text or --image to search with.")
    model = library.model_for(films, args.model)
    films, missing = Library.through(films, model)
    for line in missing:
        _warn(line)
    if not films:
        raise FrameSearchError(f"No film chosen has {model} vectors; {missing[0].split('; ', 1)[1]}")
    if model.startswith(CLOUD):  # a cloud service embeds the query (kept: a repeated one costs nothing)
        from engines.cloud import CloudQueries  # the CLI is an entry point: a service's queries are an engine's

        encoder = CloudQueries(library, embedding_service(model))
    else:  # a text already searched with this model is read from the library's cache: no torch, no model
        key = text_vectors.model_key(model, args.device, args.precision)
        encoder = text_vectors.CachedTextEncoder(
            library, model, key, lambda: load_encoder(model, args.device, args.precision)
        )
    try:
        query = build_query(encoder, args.query, args.negative, args.image, args.negative_weight)
    except ValueError as e:
        raise FrameSearchError(str(e)) from None
    for note in query.notices:
        _note(note)
    when = when_of(args)
    if args.moments or when is not None:
        return _answer(films, model, encoder, args, when)
    searcher = Searcher(films, library, exact=args.exact)
    if searcher.notice:
        _note(searcher.notice)
    hits = searcher.search(query, top_k=args.top_k, gap=args.gap)
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], indent=2))
        return 0
    for rank, h in enumerate(hits, 1):
        print(
            f"{rank:3d}. {h.film:40.40s} {fmt_time(h.time):>10s}  score {h.score:.4f}  "
            f"moment {fmt_time(h.start)}-{fmt_time(h.end)}"
        )
    return 0


def when_of(args: argparse.Namespace):
    """The temporal options given (``engines.temporal.When``), or None when none was."""
    if not (args.then or args.after is not None or args.before is not None or args.every):
        return None
    from engines.temporal import When  # an entry point: temporal queries are the engines' layer

    try:
        return When(tuple(args.then), args.within, args.after, args.before, args.every)
    except ValueError as e:
        raise FrameSearchError(str(e)) from None


def answer(engine, films: list[Film], query, args: argparse.Namespace, when) -> int:
    """Print what ``search`` answers through an engine: ranked moments (--moments, --then, --all) or
    frames (inside --after/--before), each note on stderr first."""
    from engines.temporal import When, search  # an entry point: temporal queries are the engines' layer

    found = search(engine, films, query, when or When(), args.top_k, args.gap)
    for note in found.notes:
        _note(note)
    if args.moments or found.moments is not None:
        unshot = [f.name for f in found.result.films if f.shots() is None]
        if unshot:  # said, not hidden: such a film's moments may run across a cut
            _note(
                f"{len(unshot)} film(s) have no shots yet ({', '.join(unshot[:3])}{' …' if len(unshot) > 3 else ''}): "
                "their moments are not cut at shots; `python -m clip_search index` on them finds the shots"
            )
        moments = found.moments if found.moments is not None else found.result.moments(args.top_k)
        return print_moments(moments, args.json, engine.name)
    hits = found.result.hits
    if args.json:
        print(json.dumps([{**h.to_dict(), "engine": engine.name} for h in hits], indent=2))
        return 0
    for rank, h in enumerate(hits, 1):
        print(f"{rank:3d}. {h.film:40.40s} {fmt_time(h.time):>10s}  score {h.score:.4f}")
    return 0


def _answer(films: list[Film], model: str, encoder, args: argparse.Namespace, when) -> int:
    """Moments and temporal queries through the model's engine: its view of the same scores."""
    from engines import Query, default_engine  # an entry point: moments are what every engine proposes

    query = Query(args.query, args.negative or "", args.negative_weight, args.image)
    return answer(default_engine(model, encoder), films, query, args, when)


def print_moments(moments: list, as_json: bool, engine: str | None = None) -> int:
    """Moments as JSON (film, film_id, source, start, end, score, peak; and the engine) or one line each."""
    if as_json:
        rows = [{**m.to_dict(), **({"engine": engine} if engine else {})} for m in moments]
        print(json.dumps(rows, indent=2))
        return 0
    for rank, m in enumerate(moments, 1):
        span = f"{fmt_time(m.start)}-{fmt_time(m.end)} ({m.end - m.start:.1f} s)"
        print(f"{rank:3d}. {m.film:36.36s} {span:>28s}  score {m.score:.4f}  peak {fmt_time(m.peak)}")
    return 0


def cmd_films(args: argparse.Namespace) -> int:
    library = open_library(config.library_dir(args.library), config.model_id())
    if args.dedupe:
        lines = merge_duplicates(library, Watch(archive=_stderr))
        for line in lines:
            print(line)
        print(f"{len(lines)} duplicate film folders" if lines else "no duplicate films", file=sys.stderr)
    duplicates = library.duplicates()
    if duplicates:
        _note(
            f"{len(duplicates)} film folders hold the same content as another and are listed once "
            "(merge them with: python -m clip_search films --dedupe)"
        )
    films, damaged = library.scan()
    if args.check:  # the full check: every vector of every set read
        healthy = []
        damaged = [d for d in damaged if d.dir.parent.name != "vectors"]  # each set is checked again below
        for f in films:
            try:
                record = check_record(f.dir, deep=True)
            except FrameSearchError as e:
                damaged.append(Damaged(f.id, f.dir, str(e)))
                continue
            healthy.append(Film(f.dir, record))
            for model, (set_dir, vs) in record.sets.items():
                if isinstance(vs, FrameSearchError):
                    damaged.append(Damaged(f"{f.id} [{model.lstrip('?')}]", set_dir, str(vs)))
        films = healthy
        if args.deep:
            damaged += _reencoded(films)
    if args.json:
        rows = [
            dict(f.record.manifest.to_dict(), path=str(f.dir), status="complete", models=_models_of(f))
            | {"shots": None if f.shots() is None else [[round(a, 3), round(b, 3)] for a, b in f.shots()]}
            for f in films
        ]
        rows += [{"id": d.id, "path": str(d.dir), "status": "damaged", "problem": d.problem} for d in damaged]
        print(json.dumps(rows, indent=2))
    else:
        if not films and not damaged:
            print(f"no films indexed in {library.root}")
        for f in films:
            m = f.manifest
            print(
                f"{m.name:40.40s} {m.frames:7d} frames  {fmt_time(m.duration):>10s}  "
                f"{m.sampling_settings().describe():12s} id={m.id}"
            )
            for other in f.manifest.sources:
                print(f"    also at {other}")
            for row in _models_of(f):
                per_frame = f", {row['seconds_per_frame'] * 1000:.1f} ms/frame" if row["seconds_per_frame"] else ""
                print(f"    {row['model']}  ({row['dim']}-d on {row['device'] or '?'}{per_frame})")
        for d in damaged:
            _warn(d.describe())
        if args.check:
            print(
                f"checked {len(films) + len(damaged)} films: {len(films)} ok, {len(damaged)} damaged", file=sys.stderr
            )
    return 1 if args.check and damaged else 0


def _reencoded(films: list[Film]) -> list[Damaged]:
    """``films --check --deep``: each film's sets against a sample of its frames decoded again and
    encoded in float32; a set that disagrees is damaged, a source or model that cannot be had is a warning."""
    encoders: dict[str, object] = {}
    found = []
    for f in films:
        for model in f.models:
            if f.record.sound()[model][1].service_model:
                _warn(f"{f.name} [{model}]: bought from a cloud service, not re-encoded (that would be paid for)")
                continue
            try:
                if model not in encoders:
                    encoders[model] = load_encoder(model, "auto", "fp32")
                worst = spot_check.sample_agreement(f.view(model), encoders[model])
            except (VideoError, ValueError, OSError, ModelLoadError) as e:
                _warn(f"{f.name} [{model}]: not re-encoded ({e})")
                continue
            if worst < spot_check.SPOT_MIN_COSINE:
                problem = f"its vectors disagree with the film's frames encoded again (min cosine {worst:.4f})"
                found.append(Damaged(f"{f.id} [{model}]", f.view(model).set_dir, problem))
    return found


def _models_of(film: Film) -> list[dict]:
    """Each model a film has, with what its set records (``films`` prints them)."""
    rows = []
    for model in film.models:
        vs = film.view(model).vector_set
        rows.append({"model": model, "dim": vs.dim, "device": vs.device, "seconds_per_frame": vs.seconds_per_frame})
    return rows


def cmd_export(args: argparse.Namespace) -> int:
    library = open_library(config.library_dir(args.library), config.model_id())
    film = library.find_one(args.film)
    model = library.model_for([film], args.model)
    damaged = {m: vs for m, (_, vs) in check_record(film.dir, deep=True).sets.items() if not isinstance(vs, VectorSet)}
    if model in damaged:  # every vector read, as films --check does: a damaged set is never exported
        raise FrameSearchError(f"{film.name} [{model}]: damaged ({damaged[model]}); re-index its source to repair it.")
    film = film.view(model)
    out = args.output
    arrays = {
        "embeddings": np.asarray(film.embeddings, np.float32),
        "times": np.asarray(film.times, np.float64),
        "model": np.array(film.model),
    }
    clips = film.vectors().clips
    if clips is not None:  # a video model: each row's clip and the frames its vector was computed from
        arrays["segments"], arrays["frame_times"] = clips.per_frame()
    atomic_savez(out, arrays)  # exactly OUT, and no partial file there on a full disk
    what = ", with each row's clip (segments, frame_times)" if clips is not None else ""
    print(f"{film.name}: {film.manifest.frames} vectors of {film.manifest.dim} ({film.model}){what} -> {out}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    library = open_library(config.library_dir(args.library), config.model_id())
    try:
        with np.load(args.npz) as z:
            emb, times = np.asarray(z["embeddings"]), np.asarray(z["times"], np.float64)
            named = str(z["model"]) if "model" in z.files and z["model"].dtype.kind == "U" else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise FrameSearchError(f"{Path(args.npz).name}: not an .npz with 'embeddings' and 'times' ({reason})") from None
    # vectors belong to the model named (--model, else the .npz's own), else the library's default:
    # their size is checked against that model's other films
    m = Manifest.imported(args.name, library.model_for(library.films(), args.model or named), 0.0, source=args.source)
    if args.source and Path(args.source).is_file():
        m.source, m.fingerprint = str(Path(args.source).resolve()), fingerprint(args.source)
    film = import_vectors(library, m, emb, times)
    print(f"{film.name}: {film.manifest.frames} vectors of {film.manifest.dim} ({film.model}) imported -> {film.id}")

    for line in refresh_archive(library, [film.model]):
        _stderr(line)
    return 0


def _calibration_queries(path: Path, model: str, args: argparse.Namespace):
    """``ann build --queries``: vectors from a .npy file, or the lines of a text file encoded by the model."""
    if not path.is_file():
        raise FrameSearchError(f"--queries: {path} is not a file.")
    if path.suffix == ".npy":
        try:
            return np.load(path)
        except (OSError, ValueError) as e:
            raise FrameSearchError(f"--queries: {path.name} is not a readable .npy file ({e}).") from None
    try:
        lines = [t.strip() for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise FrameSearchError(f"--queries: {path.name} cannot be read as UTF-8 text ({e}).") from None
    if not lines:
        raise FrameSearchError(f"--queries: {path.name} has no queries (one a line).")

    encoder = load_encoder(model, getattr(args, "device", "auto") or "auto")
    return encoder.encode_text(lines).vectors


def _scene_texts(model: str, args: argparse.Namespace) -> np.ndarray | None:
    """The model's vectors of the built-in scene descriptions, what ``ann build`` calibrates text
    recall on (None, said in one line, when the model cannot be loaded here; a cloud service's
    queries would be paid for, so its kept ones, if any, are measured instead)."""
    if model.startswith(CLOUD):
        return None
    try:
        encoder = load_encoder(model, getattr(args, "device", "auto") or "auto")
    except ModelLoadError as e:
        _warn(f"text recall not calibrated: {e}")
        return None
    return encoder.encode_text(scenes.descriptions()).vectors


def cmd_ann(args: argparse.Namespace) -> int:
    library = open_library(config.library_dir(args.library), config.model_id())
    model = library.model_for(library.films(), args.model)
    if args.action == "status":
        print(f"{model}: {AnnIndex.status(library, model=model).describe()}")
        return 0
    if not library.films():
        raise FrameSearchError(f"The library {library.root} has no films to index.")
    bar = tqdm(desc="adding films", unit="film", file=sys.stderr)

    def show(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    queries = _calibration_queries(args.queries, model, args) if args.queries else None
    texts = _scene_texts(model, args)
    try:
        status = AnnIndex.update(
            library, progress=show, rebuild=args.rebuild, model=model, queries=queries, texts=texts
        )
    finally:
        bar.close()
    print(status.describe())
    return 0


COMMANDS = {
    "index": cmd_index,
    "search": cmd_search,
    "films": cmd_films,
    "export": cmd_export,
    "import": cmd_import,
    "ann": cmd_ann,
}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 some films failed, 2 usage or fatal error)."""
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except SystemExit as e:
        return int(e.code or 0)
    except FrameSearchError as e:
        _err(str(e))
        return 2
    except KeyboardInterrupt:
        _err("interrupted; run the same command again to continue where it stopped")
        return 130
    except OSError as e:
        _err(f"{e.strerror or e} ({e.filename})" if getattr(e, "filename", None) else str(e))
        return 2

"""The verbs, the only orchestration: index films, add a model, tag and search (evaluation is
``comparisons.evaluate`` and ``comparisons.moment_retrieval``, which rank through the same search).

Both command lines, the dashboard, the example evaluation and the benchmarks call these, so what
one front end does after indexing (embed the dialogue, find the shots, refresh the archive index)
every front end does. Each verb takes the library and what the user chose (the edge decides defaults); progress
and waiting are told through a ``Watch`` the front end passes (a bar in a terminal, in a page)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from clip_search.encoders import load_encoder
from clip_search.errors import FrameSearchError, ModelLoadError
from clip_search.indexing.indexer import (
    IndexOptions,
    IndexResult,
    Progress,
    cached_index,
    existing_film,
    index_film,
    options_of,
    upgrade_thumbnails,
)
from clip_search.search.ann import AnnIndex
from clip_search.search.scoring import DEFAULT_GAP
from clip_search.store.library import Film, Library
from clip_search.store.writer import merge_duplicates as merge
from clip_search.store.writer import save_derived
from clip_search.video import shots
from clip_search.video.fetch import download, is_url
from clip_search.video.sources import expand_sources
from tagging.dialogue import prepare_cues
from tagging.embedders import CLOUD, embedding_service, make_embedder
from tagging.embedders.sets import current, publish_vectors
from tagging.pricing import Estimate, estimate, price_table
from tagging.run import TagRun, tag_film, work_left
from tagging.taggers import make_tagger

if TYPE_CHECKING:  # torch stays off the light paths: a model is loaded only when a film needs encoding
    from clip_search.encoders import DualEncoder
    from clip_search.scale.archive import ArchiveProgress


class FilmWatch:
    """What a front end is told about one film being indexed (override what you show)."""

    def indexing(self, p: Progress) -> None:
        """Decoding and encoding, with frames and time left."""

    def dialogue(self, done: int, total: int) -> None:
        """Embedding the film's lines of dialogue."""

    def waiting(self) -> None:
        """Another process is indexing this film; this run waits for it."""

    def close(self) -> None:
        """The film is done (or failed): put the bar away."""


@dataclass
class Watch:
    """A front end's progress hooks: ``film(name)`` gives one film's ``FilmWatch``; ``loaded`` is told
    each model as it loads; ``ray`` a Ray run's progress over the whole archive; ``archive`` each
    line about the archive index."""

    film: Callable[[str], FilmWatch] = lambda name: FilmWatch()
    loaded: Callable[[DualEncoder], None] = lambda encoder: None
    ray: Callable[[ArchiveProgress], None] = lambda progress: None
    archive: Callable[[str], None] = lambda line: None


@dataclass
class Indexed:
    """One source's outcome: its film and how it was made, or the one line that says why it failed."""

    source: str
    film: Film | None = None
    result: IndexResult | None = None
    error: str | None = None

    def describe(self) -> str:
        """How the film was made, in words (reused, models added, resumed, encoded)."""
        r = self.result
        if r is None:
            return "indexed on Ray"
        if r.reused:
            return "already indexed, reused"
        if r.added_to:
            return f"added {', '.join(r.added_to)} to its {r.film.manifest.frames} frames"
        if r.resumed_frames:
            return f"resumed after {r.resumed_frames} frames, encoded {r.encoded_frames}"
        return f"encoded {r.encoded_frames} frames"


@dataclass
class IndexReport:
    """What an index run did, source by source, and what it said about the archive index."""

    items: list[Indexed] = field(default_factory=list)
    archive: list[str] = field(default_factory=list)
    frames: int = 0  # frames encoded by a Ray run
    seconds: float = 0.0

    @property
    def films(self) -> list[Film]:
        return [i.film for i in self.items if i.film is not None]

    @property
    def failed(self) -> list[Indexed]:
        return [i for i in self.items if i.error]


Loader = Callable[[str], "DualEncoder"]


def default_loader(device: str | None = None, precision: str | None = None) -> Loader:
    """Loads a model by name on ``device`` (torch is imported only then)."""

    def load(model: str) -> DualEncoder:
        return load_encoder(model, device, precision)

    return load


def index(
    library: Library,
    sources: Sequence[str | Path],
    models: Sequence[str],
    options: IndexOptions | None = None,
    *,
    keep_sampling: bool = False,
    load: Loader | None = None,
    watch: Watch | None = None,
    wait: float | None = None,
    workers: int = 0,
    device: str = "auto",
) -> IndexReport:
    """Index every source (a file, a folder of videos, a .txt list, a URL) with ``models`` (one decode
    for all), then embed each film's dialogue and bring each model's archive index up to date.

    ``keep_sampling``: a film the library already has keeps its own frames (adding a model must, or
    the frames would differ). A model loads only when some film needs encoding. ``workers``: run
    the plan on Ray with that many encode workers instead of this process's threads. A source that
    cannot be indexed is one line in the report and the rest go on; a model that cannot load raises
    ModelLoadError (no film could be indexed)."""
    watch = watch or Watch()
    options = options or IndexOptions()
    models = list(dict.fromkeys(models))
    report = IndexReport()
    refs = [str(s) for s in sources]
    for ref in refs:
        if Path(ref).expanduser().is_dir() and not expand_sources([ref]):
            report.items.append(Indexed(ref, error=f"no videos found in {ref}"))
    if workers:
        _on_ray(library, refs, models, options, workers, device, watch, report)
    else:
        _here(library, refs, models, options, keep_sampling, load or default_loader(), watch, wait, report)
    for film in report.films:
        _dialogue(library, film, watch)
        upgrade_thumbnails(library, film)  # a film indexed when frames were stored smaller
        find_shots(library, film)
    report.archive = refresh_archive(library, models, watch)
    return report


def _here(
    library: Library,
    refs: list[str],
    models: list[str],
    options: IndexOptions,
    keep_sampling: bool,
    load: Loader,
    watch: Watch,
    wait: float | None,
    report: IndexReport,
) -> None:
    """The plan run by this process's decoder thread and encoder threads, film after film."""
    encoders: list[DualEncoder] = []
    for ref in expand_sources(refs):
        film_watch = watch.film(Path(ref).name)
        try:
            path = download(ref, library.downloads_dir) if is_url(ref) else Path(ref)
            known = existing_film(path, library) if keep_sampling else None
            film_options = options_of(known, options) if known else options  # a model added: the film's frames
            film = cached_index(path, library, models, film_options)  # needs no model: a re-run returns at once
            if film is not None:
                result = _reused(film)
            else:
                if not encoders:  # loaded only when some film needs encoding
                    for model in models:
                        encoders.append(load(model))
                        watch.loaded(encoders[-1])
                result = index_film(
                    path, library, encoders, film_options, film_watch.indexing, wait, film_watch.waiting
                )
            report.items.append(Indexed(ref, result.film, result))
        except ModelLoadError:
            raise  # no film can be indexed without the model: fatal
        except FrameSearchError as e:
            report.items.append(Indexed(ref, error=str(e)))
        except OSError as e:  # unreadable file, permission denied, disk full: this file fails, the batch goes on
            report.items.append(Indexed(ref, error=f"{Path(ref).name}: {e.strerror or e}"))
        finally:
            film_watch.close()


def _on_ray(
    library: Library,
    refs: list[str],
    models: list[str],
    options: IndexOptions,
    workers: int,
    device: str,
    watch: Watch,
    report: IndexReport,
) -> None:
    """The same plan run by Ray Data's decode tasks and encode actors (a cluster, or this machine)."""
    from clip_search.scale.archive import index_archive  # Ray is imported only for a Ray run

    if options.patches:
        raise FrameSearchError("Patch mode is not available on Ray; index without --workers to add patches.")
    for model in models:
        run = index_archive(refs, library, model, options, workers, device, progress=watch.ray)
        report.items += [Indexed(f.manifest.source, f, _reused(f)) for f in run.reused]
        report.items += [Indexed(f.manifest.source, f) for f in run.indexed]
        report.items += [Indexed("", error=line) for line in run.failed]
        report.frames += run.frames
        report.seconds += run.seconds


def _reused(film: Film) -> IndexResult:
    return IndexResult(film, reused=True, resumed_frames=0, encoded_frames=0, seconds=0.0)


def _dialogue(library: Library, film: Film, watch: Watch) -> None:
    """The film's dialogue embedded now, told as it goes, so that no query has to."""
    film_watch = watch.film(film.name)
    try:
        prepare_cues(library, film, film_watch.dialogue)
    finally:
        film_watch.close()


def find_shots(library: Library, film: Film) -> bool:
    """The film's shots, found from its stored thumbnails and kept with it, when it has none yet
    (a film indexed before shots existed gets them here, without encoding anything again)."""
    if film.shots() is not None:
        return False
    return save_derived(library, film, shots.SHOTS, {"shots": shots.of_film(film)})


def add_model(
    library: Library, films: Sequence[Film], model: str, *, load: Loader | None = None, watch: Watch | None = None
) -> IndexReport:
    """``model``'s vectors for films already indexed, on exactly their frames (each film keeps its
    sampling), then the archive index refreshed: what the sidebar's *Add a model* and
    ``index --model`` over indexed films both do."""
    sources = [f.manifest.source for f in films]
    return index(library, sources, [model], keep_sampling=True, load=load, watch=watch, wait=0)


def refresh_archive(library: Library, models: Sequence[str | None] = (None,), watch: Watch | None = None) -> list[str]:
    """After films were added, merged or removed: bring each model's archive index up to date (when
    the library has or needs one). The one place that does; returns what it said."""
    lines = []
    for model in models or [None]:
        try:
            status = AnnIndex.keep_current(library, model)
        except FrameSearchError as e:  # no FAISS here: the films are kept, searched exactly
            lines.append(str(e))
        else:
            if status:
                lines.append(status.describe())
        if watch and lines:
            watch.archive(lines[-1])
    return lines


def merge_duplicates(library: Library, watch: Watch | None = None) -> list[str]:
    """Film folders of one content merged into one (nothing lost), one line each, and the archive
    index refreshed (its lines told to ``watch``)."""
    lines = merge(library)
    if lines:
        refresh_archive(library, library.models(), watch)
    return lines


def tag(library: Library, film: Film, service: str, workers: int = 2, progress=None):
    """Tag ``film``'s frames with ``service`` (cached per frame, resumable); the caller has shown the
    estimate and, for a paid service, had it confirmed."""
    return tag_film(library, film, make_tagger(service), workers=workers, progress=progress)


def split_models(models: Sequence[str]) -> tuple[list[str], list[str]]:
    """(models that run here, cloud embedding services) among the models a user named."""
    cloud = [m for m in models if m.startswith(CLOUD)]
    for name in cloud:
        embedding_service(name)  # ValueError naming the services
    return [m for m in models if not m.startswith(CLOUD)], cloud


@dataclass
class Embedded:
    """One film's outcome of buying a cloud service's vectors: the run, and the film with its new
    set (None while some frame still lacks a vector: the next run asks only for those)."""

    film: Film
    run: TagRun | None = None
    added: Film | None = None

    def describe(self) -> str:
        if self.run is None:
            return f"{self.film.name}: its {self.added.model if self.added else ''} vectors are current, reused"
        done = f"; {self.run.total} vectors made a vector set" if self.added is not None else ""
        return self.run.summary() + done


def embed_estimate(library: Library, films: Sequence[Film], service: str) -> Estimate:
    """The calls and dollars buying ``service``'s vectors of ``films`` would take: only frames the
    library does not hold yet are counted (nothing is paid twice). Needs no credentials."""
    cls = embedding_service(service).embedder_class()
    frames = sum(work_left(library, f, cls).frames for f in films if not current(f, cls))
    return estimate(service, frames, price_table(library.root))


def embed(library: Library, films: Sequence[Film], service: str, workers: int = 2, progress=None) -> list[Embedded]:
    """Buy ``service``'s vector of every frame of ``films`` it lacks (each answer kept as it arrives,
    at most ``workers`` calls at once; the caller has shown ``embed_estimate`` and had it confirmed),
    then add each complete film's vector set. FatalTaggerError when the credentials are missing."""
    embedder = make_embedder(service)
    out = []
    for film in films:
        if current(film, embedder):
            out.append(Embedded(film, added=film.view(service)))
            continue
        run = tag_film(library, film, embedder, workers=workers, progress=progress)
        added = None if run.fatal else publish_vectors(library, film, embedder, run.seconds)
        out.append(Embedded(film, run, added))
    return out


def search(engine, films: Sequence[Film], query, top_k: int = 10, gap: float | None = None):
    """One engine's ``Result`` for ``query`` over ``films``: what every view lists and evaluation scores."""
    return engine.run(films, query, top_k, DEFAULT_GAP if gap is None else gap)


__all__ = [
    "Embedded",
    "FilmWatch",
    "IndexReport",
    "Indexed",
    "Watch",
    "add_model",
    "default_loader",
    "embed",
    "embed_estimate",
    "index",
    "merge_duplicates",
    "refresh_archive",
    "search",
    "split_models",
    "tag",
]

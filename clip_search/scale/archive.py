"""Distributed indexing on Ray Data: many films, many workers, the same vectors and the same store.

The unit of work is a *segment* of a film (``SEGMENT_SECONDS``, about 10 minutes), so one long film
spreads over workers and memory stays bounded. The pipeline:

  segments (driver) -> decode tasks: our PyAV decoder and samplers, frames resized/cropped to the
  model's input and thumbnailed *before* they enter Ray's object store -> an actor pool of CLIP
  encoders (the model loaded once per actor; ``num_gpus=1`` per actor when there are GPUs) ->
  the driver, which writes each finished segment atomically into the film's staging folder and
  publishes a film (one rename, through ``clip_search.store.writer``) once all its segments are there.

Locally ``ray.init()`` starts a private Ray with the encode workers plus one CPU kept for decoding
(actors holding every CPU starve the decode tasks and hang the dataset); with ``RAY_ADDRESS`` it
joins a cluster (the library on a shared filesystem). Faults: Ray retries a task or restarts an
actor that died and resubmits its work; a rerun after the driver died skips the segments already
written. A film that fails is reported alone; the others complete.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import clip_search.config as config
from clip_search.encoders import load_encoder, prepare_image, preprocessing_for, scores_clips, spot_check
from clip_search.encoders.base import set_threads
from clip_search.errors import FrameSearchError
from clip_search.indexing.indexer import FilmPlan, IndexOptions, frame_thumbnail, new_manifest, vector_set_for
from clip_search.store.library import Film, Library
from clip_search.store.locks import FilmBusy, film_lock
from clip_search.store.writer import StagedFilm
from clip_search.video.decode import iter_frames
from clip_search.video.fetch import download, is_url
from clip_search.video.sources import expand_sources
from clip_search.video.subtitles import load_dialogue

SEGMENT_SECONDS = float(os.environ.get("FRAMESEARCH_SEGMENT_SECONDS", 600))  # the unit of work
ACTOR_MEMORY = 1 << 30  # bytes reserved per encode actor (ViT-B/32 in fp32 with activations: < 1 GiB)
DECODE_BATCH = 32  # frames per block leaving a decode task (about 5 MB at 224 px)


@dataclass(frozen=True)
class Segment:
    """Frames of one film with times in (start, end]; the first segment also takes time 0."""

    film_id: str
    path: str
    index: int
    start: float
    end: float


def segments_of(film_id: str, path: str, duration: float, shots: bool, seconds: float | None = None) -> list[Segment]:
    """About ``seconds`` (default ``SEGMENT_SECONDS``) each; shot-aware sampling needs a whole film."""
    seconds = seconds or SEGMENT_SECONDS
    n = 1 if shots or duration <= 0 else max(1, math.ceil(duration / seconds))
    bounds = [i * seconds for i in range(n)] + [math.inf]
    return [Segment(film_id, path, i, bounds[i], bounds[i + 1]) for i in range(n)]


def decode_segment(batch: dict, options: IndexOptions, model_id: str) -> Iterator[dict]:
    """Ray task: decode one segment with our PyAV code; yield blocks of model-sized frames."""
    pre = preprocessing_for(model_id)
    (film_id,), (path,), (k,), (start,), (end,) = (batch[c] for c in ("film_id", "path", "index", "start", "end"))
    rows: dict[str, list] = {"film_id": [], "seg": [], "time": [], "pixels": [], "thumb": []}
    count = 0

    def block(last: bool) -> dict:
        out = {key: np.array(v, dtype=object if key in ("film_id", "thumb") else None) for key, v in rows.items()}
        out["seg_total"] = np.full(len(rows["time"]), count if last else -1)
        for v in rows.values():
            v.clear()
        return out

    after = None if k == 0 else float(start)
    for fr in iter_frames(path, options.sampling, start_after=after, until=float(end)):
        rows["film_id"].append(film_id)
        rows["seg"].append(int(k))
        rows["time"].append(fr.time)
        rows["pixels"].append(prepare_image(fr.image, pre))
        rows["thumb"].append(frame_thumbnail(fr))
        count += 1
        if len(rows["time"]) == DECODE_BATCH:
            yield block(last=False)
    if not rows["time"]:  # every segment reports its total, even an empty one: a marker row
        size = pre.crop
        rows.update(film_id=[film_id], seg=[int(k)], time=[-1.0], pixels=[np.zeros((size, size, 3), np.uint8)])
        rows["thumb"].append(b"")
    yield block(last=True)


class ClipActor:
    """Ray actor: loads CLIP once, encodes blocks of prepared frames into unit vectors."""

    def __init__(self, model_id: str, device: str, threads: int) -> None:
        set_threads(threads)  # never above an inherited OMP_THREAD_LIMIT (see capped_threads)
        self.encoder = load_encoder(model_id, device)
        self.calls = 0

    def __call__(self, batch: dict) -> dict:
        pixels = np.stack(batch["pixels"])
        vecs, redone = spot_check.checked(self.encoder, pixels, self.encoder.encode_prepared(pixels))
        self.calls += 1
        # a call whose spot check failed is named, so the driver counts each such chunk once per film
        tag = f"{os.getpid()}-{self.calls}" if redone else ""
        return {
            "film_id": batch["film_id"],
            "seg": batch["seg"],
            "time": batch["time"],
            "thumb": batch["thumb"],
            "seg_total": batch["seg_total"],
            "embedding": vecs,
            "float32_chunk": np.full(len(vecs), tag, dtype=object),
        }


@dataclass
class ArchiveProgress:
    """Where an archive run is: films done of total, frames encoded, rate, time left."""

    films_done: int
    films_total: int
    frames: int
    frames_expected: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.frames / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        return (self.frames_expected - self.frames) / self.rate if self.rate > 0 else None


@dataclass
class ArchiveResult:
    """What an archive run did: films indexed now, reused, and failures (one line each)."""

    indexed: list[Film] = field(default_factory=list)
    reused: list[Film] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0


class _FilmJob:
    """The driver's view of one film: its staged folder, lock, and the segments still arriving."""

    def __init__(self, staged: StagedFilm, path: Path, segments: list[Segment], lock) -> None:
        self.staged, self.path, self.lock = staged, path, lock
        self.todo = {s.index for s in segments} - staged.segments_done()
        self.rows: dict[int, list] = {k: [] for k in self.todo}
        self.totals: dict[int, int] = {}
        self.float32_chunks: set[str] = set()  # encode calls whose spot check failed (``spot_check``)

    def add(self, seg: int, t: float, emb: np.ndarray, thumb: bytes, total: int) -> bool:
        """Take one encoded frame; returns True when its segment became complete (and was written)."""
        if seg not in self.todo:
            return False
        if total >= 0:
            self.totals[seg] = total
        if t >= 0:
            self.rows[seg].append((t, emb, thumb))
        if seg in self.totals and len(self.rows[seg]) == self.totals[seg]:
            rows = sorted(self.rows.pop(seg), key=lambda r: r[0])
            dim = self.staged.sets[0].dim
            emb_arr = np.array([r[1] for r in rows], np.float32).reshape(len(rows), dim)
            self.staged.write_segment(seg, emb_arr, [r[0] for r in rows], [r[2] for r in rows])
            self.todo.discard(seg)
            return True
        return False


def _init_ray(workers: int) -> None:
    try:
        import ray  # Ray starts only for a Ray run
        import ray.data  # Ray starts only for a Ray run
    except ImportError:
        raise FrameSearchError(
            "index --workers runs on Ray, which is not installed (pip install 'frame-search-lab[scale]')."
        ) from None

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the CLI shows one bar for the whole archive
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:  # the encode workers plus one CPU kept for decoding
        ray.init(num_cpus=workers + 1, include_dashboard=False, log_to_driver=False)


def index_archive(
    refs: list[str],
    library: Library,
    model_id: str | None,
    options: IndexOptions | None = None,
    workers: int = 2,
    device: str = "auto",
    progress: Callable[[ArchiveProgress], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> ArchiveResult:
    """Index many films with Ray Data; returns what was indexed, reused and what failed (by name)."""
    if scores_clips(model_id):  # a clip spans a segment's edge: Ray's segments are encoded apart
        raise FrameSearchError(
            f"{config.model_id(model_id)} is a video model: its clips follow the film's shots across the whole "
            "film, so it is indexed without --workers."
        )
    _init_ray(workers)  # first: without Ray installed, one line saying how to install it
    import ray  # Ray starts only for a Ray run
    import ray.data  # Ray starts only for a Ray run

    t0 = time.perf_counter()
    options = options or IndexOptions()
    result = ArchiveResult()
    model_id = config.model_id(model_id)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    device = "cuda" if device in ("auto", "cuda") and gpus else "cpu"

    probe_encoder = None  # the dimension and logit scale of the model, read once on the driver
    jobs: dict[str, _FilmJob] = {}
    segments: list[Segment] = []
    expected = 0
    for ref in expand_sources(refs):
        path = Path(ref)
        try:
            path = download(ref, library.downloads_dir) if is_url(ref) else path
            manifest = new_manifest(path, options, library)
            lock = film_lock(library, manifest.id, wait=0)
            lock.__enter__()
        except FilmBusy as e:
            result.failed.append(str(e))
            continue
        except (FrameSearchError, OSError) as e:
            result.failed.append(f"{path.name}: {e}" if isinstance(e, OSError) else str(e))
            continue
        plan = FilmPlan.of(library, path, manifest, options, [model_id])
        existing, manifest = plan.existing, plan.manifest
        if plan.reused:
            result.reused.append(existing.view(model_id))
            lock.__exit__(None, None, None)
            continue
        if probe_encoder is None:
            probe_encoder = load_encoder(model_id, "cpu")
        vs = vector_set_for(probe_encoder)
        vs.device = device
        staged = StagedFilm(library, manifest, [vs], segmented=True, film=existing)
        segs = segments_of(manifest.id, str(path), manifest.duration, options.sampling.mode == "shots")
        job = _FilmJob(staged, path, segs, lock)
        jobs[manifest.id] = job
        segments += [s for s in segs if s.index in job.todo]
        fps = options.sampling.fps if options.sampling.mode == "fps" else (manifest.fps or 1.0)
        expected += int(manifest.duration * fps)
    del probe_encoder

    def finish(job: _FilmJob) -> None:
        try:
            dialogue = load_dialogue(job.path) if job.staged.film is None else None
            job.staged.sets[0].float32_chunks += len(job.float32_chunks)
            film = job.staged.publish(dialogue, indexing_seconds=round(time.perf_counter() - t0, 3))
            result.indexed.append(film)
        except FrameSearchError as e:
            result.failed.append(str(e))
        finally:
            job.lock.__exit__(None, None, None)

    for job in [j for j in jobs.values() if not j.todo]:  # every segment already written by an earlier run
        finish(job)
        del jobs[job.staged.manifest.id]
    if segments:
        ds = ray.data.from_items([s.__dict__ for s in segments], override_num_blocks=len(segments))
        ds = ds.map_batches(
            decode_segment,
            batch_size=1,
            fn_kwargs={"options": options, "model_id": model_id},
            num_cpus=1,
        )  # a decode task that dies is retried by Ray (3 times by default)
        threads = max(1, (os.cpu_count() or 2) // max(1, workers)) if device == "cpu" else 2
        ds = ds.map_batches(
            ClipActor,
            fn_constructor_kwargs={"model_id": model_id, "device": device, "threads": threads},
            batch_size=options.batch_size or (128 if device == "cuda" else 32),
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=0 if device == "cuda" else 1,
            num_gpus=1 if device == "cuda" else 0,
            # the model's memory, reserved per actor; it also keeps Ray Data from fusing the decode
            # tasks into the actors (fused, decoding and encoding would take turns instead of overlapping)
            memory=ACTOR_MEMORY,
        )  # Ray Data restarts a dead actor and resubmits its blocks (max_restarts=-1 by default)
        frames = 0
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for fid, seg, t, emb, thumb, total, redone in zip(
                    batch["film_id"],
                    batch["seg"],
                    batch["time"],
                    batch["embedding"],
                    batch["thumb"],
                    batch["seg_total"],
                    batch["float32_chunk"],
                    strict=True,
                ):
                    job = jobs.get(str(fid))
                    if job is None:
                        continue
                    if redone:
                        job.float32_chunks.add(str(redone))
                    frames += int(t >= 0)
                    if job.add(int(seg), float(t), emb, bytes(thumb), int(total)) and not job.todo:
                        finish(job)
                        del jobs[str(fid)]
                if progress:
                    progress(
                        ArchiveProgress(
                            len(result.indexed),
                            len(result.indexed) + len(jobs),
                            frames,
                            max(expected, frames),
                            time.perf_counter() - t0,
                        )
                    )
        except Exception as e:  # noqa: BLE001 - a film whose decode failed for good fails the stream: say which
            reason = str(e).strip().splitlines()[-1][:300] if str(e).strip() else type(e).__name__
            if warn:
                warn(f"the distributed run stopped ({reason}); segments written so far are kept")
        result.frames = frames
    for job in jobs.values():  # films whose segments did not all arrive
        result.failed.append(f"{job.path.name}: not all segments could be indexed; run again to finish it")
        job.lock.__exit__(None, None, None)
    result.seconds = time.perf_counter() - t0
    return result

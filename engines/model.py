"""A dual encoder's vectors as an engine: CLIP, SigLIP, open_clip, any model a film has vectors of.

Films are seen through the engine's model (``film.view``); a film without its vectors is named
with the command that adds them. Query vectors and searchers are kept in small locked LRUs, so
one engine object can serve concurrent dashboard sessions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clip_search.errors import FrameSearchError, ModelLoadError
from clip_search.search.scoring import (
    DEFAULT_GAP,
    QueryVector,
    Searcher,
    Timeline,
    build_query,
    frame_scores,
    scores_for,
    timeline,
    top_frames,
)
from clip_search.store.library import Film, add_model_command, in_order
from clip_search.timecode import fmt_time
from clip_search.video.decode import frame_at
from clip_search.video.patches import PatchSettings
from engines.base import Engine, EngineUnavailable, Evidence, Explanation, LockedLRU, Query, as_query
from engines.cost import CostContext, EngineCost
from engines.result import Result

EXPLAIN_CROPS = PatchSettings(size=0.5, overlap=0.5)  # crops for a model's "where in the frame" map
QUERY_VECTORS = 64  # text query vectors remembered per engine
SEARCHERS = 4  # film sets whose Searcher (and archive index) is kept per engine


class ModelEngine(Engine):
    """A model's cosine between the query (text, image, negative) and each frame, via ``Searcher``.

    ``encoder`` is the loaded model, or a callable that loads it on first use (the registry's
    bounded cache): an engine that is only listed costs no model load."""

    text_only = False
    score_label = "cosine"
    logit_scale = None
    evidence = ("cosine", "rank", "crops")
    model_scores = True
    timeline_row = True

    def __init__(self, model: str, encoder, name: str | None = None) -> None:
        self.model = model
        self.name = name or model
        self.description = f"{model}: what is seen"
        self._encoder = encoder
        self._vectors = LockedLRU(QUERY_VECTORS)
        self._searchers = LockedLRU(SEARCHERS)

    @property
    def encoder(self):
        """The loaded model (loaded now if the engine was given a loader)."""
        if callable(self._encoder) and not hasattr(self._encoder, "encode_text"):
            try:
                self._encoder = self._encoder(self.model)
            except ModelLoadError as e:
                raise EngineUnavailable(f"{self.name}: {e}") from None
        if self._encoder is None:
            raise EngineUnavailable(f"{self.name}: the model {self.model} is not loaded")
        return self._encoder

    def usable(self, films: Sequence[Film]) -> list[Film]:
        have = [f.view(self.model) for f in films if f.has(self.model)]
        if not have:
            raise self._missing(films)
        return have

    def check(self, films: Sequence[Film]) -> None:
        """Every film must have this model's vectors (an evaluation over some films would mislead)."""
        lacking = [f for f in films if not f.has(self.model)]
        if lacking:
            raise self._missing(lacking)

    def _missing(self, films: Sequence[Film]) -> EngineUnavailable:
        names = ", ".join(f.name for f in films[:4]) + (" …" if len(films) > 4 else "")
        example = add_model_command(films[0].manifest.source, self.model) if films else ""
        return EngineUnavailable(f"{self.name}: no {self.model} vectors for {names}; add them with: {example}")

    def vector(self, query: str | Query) -> QueryVector:
        """The query's vector (the last ``QUERY_VECTORS`` text queries are remembered)."""
        query = as_query(query)

        def make() -> QueryVector:
            try:
                return build_query(self.encoder, query.text, query.negative, query.image, query.negative_weight)
            except ValueError as e:
                raise FrameSearchError(str(e)) from None

        if query.image is not None:
            return make()
        return self._vectors.get_or_make((query.text, query.negative, query.negative_weight), make)

    def notices(self, query: str | Query) -> list[str]:
        return self.vector(query).notices

    def label(self, query: str | Query) -> str:
        return self.vector(query).label

    def timeline(self, film: Film, query: str | Query) -> Timeline:
        """Every frame's score and probability for one query, and the film's moments."""
        return timeline(film.view(self.model), self.vector(query))

    def searcher(self, films: Sequence[Film]) -> Searcher:
        """A Searcher kept for this exact set of film versions (the last ``SEARCHERS`` sets)."""
        films = self.usable(films)
        return self._searchers.get_or_make(tuple(f.version for f in films), lambda: Searcher(films))

    def scores(self, film: Film, query: str | Query) -> np.ndarray:
        return frame_scores(film.view(self.model), self.vector(query).vector)

    def scores_of(self, films: Sequence[Film], query: str | Query) -> list[np.ndarray]:
        """Scores over ``films`` together: patch films on the footing of the others (see ``scores_for``)."""
        return scores_for([f.view(self.model) for f in films], self.vector(query).vector)

    def run(self, films: Sequence[Film], query: str | Query, top_k: int = 10, gap: float = DEFAULT_GAP) -> Result:
        """Through the kept ``Searcher``: the archive index's candidates re-scored exactly when the
        library is archive-sized, every frame scored otherwise."""
        query = as_query(query)
        searcher, vector = self.searcher(in_order(films)), self.vector(query)
        per_film, picks, make = searcher.ranked(vector, top_k, gap)

        def choose(rng: np.random.Generator | None, draws: int | None = None) -> list:
            if per_film is not None:  # the scores are kept: only the tie order is drawn again
                return top_frames(searcher.films, per_film, top_k, gap, rng, draws)
            if draws is None:
                return searcher.ranked(vector, top_k, gap, rng)[1]
            return [searcher.ranked(vector, top_k, gap, rng)[1] for _ in range(draws)]

        return Result(self, query, searcher.films, picks, make, choose, per_film, top_k=top_k, gap=gap)

    def explain(self, film: Film, frame: int, query: str | Query, crops: bool = False) -> Explanation:
        """Cosine and rank; with ``crops``, where in the frame the query matches: the cosine of each
        overlapping crop (the film's patch vectors in patch mode, else crops encoded now)."""
        query = as_query(query)
        film = film.view(self.model)
        scores = self.scores(film, query)
        rank = int(np.sum(scores > scores[frame])) + 1
        clips = film.vectors().clips
        if clips is None:
            evidence = [Evidence("cosine", f"cosine {scores[frame]:.4f} between the query and this frame")]
        else:  # a video model: the frame's vector is its clip's
            c = int(clips.clip_of[frame])
            start, end = clips.segments[c]
            seen = ", ".join(fmt_time(t) for t in dict.fromkeys(clips.frame_times[c].tolist()))
            evidence = [
                Evidence(
                    "cosine",
                    f"cosine {scores[frame]:.4f} between the query and the clip {fmt_time(start)}–{fmt_time(end)} "
                    f"this frame is in ({clips.frame_times.shape[1]} frames, from those at {seen})",
                )
            ]
        evidence.append(Evidence("rank", f"rank {rank} of {len(scores)} frames of {film.name}"))
        out = self._explanation(film, frame, query, evidence, score=float(scores[frame]))
        if crops and clips is not None:
            out.note = "no crop map: a video model scores whole clips, not parts of a frame"
        elif crops:
            try:
                out.grid, out.frame_size = self.crop_scores(film, frame, query)
            except FrameSearchError as e:  # the source file is gone or unreadable: the rest still explains
                out.note = f"no crop map: {e}"
        return out

    def crop_scores(self, film: Film, frame: int, query: str | Query) -> tuple[list[dict], tuple[int, int]]:
        """Cosine of the query with overlapping crops of one frame, and the frame size they refer to."""
        film = film.view(self.model)
        q = self.vector(query).vector
        m = film.manifest
        if m.patches_per_frame and m.patches:
            boxes = PatchSettings(**m.patches).boxes(m.width, m.height)
            vecs = np.asarray(film.patch_embeddings[frame * m.patches_per_frame : (frame + 1) * m.patches_per_frame])
            size = (m.width, m.height)
        else:
            image = frame_at(m.source, float(film.times[frame]))
            size = (image.shape[1], image.shape[0])
            boxes = EXPLAIN_CROPS.boxes(*size)
            vecs = self.encoder.encode_images([image[t:b, left:r] for left, t, r, b in boxes])
        return [{"box": list(map(int, box)), "score": float(v @ q)} for box, v in zip(boxes, vecs, strict=True)], size

    def cost(self, films: Sequence[Film], ctx: CostContext) -> EngineCost:
        """The model's measured indexing time per frame x the price of the machine it ran on."""
        measured = [f.view(self.model) for f in films if f.has(self.model)]
        measured = [f for f in measured if f.manifest.indexing_seconds]
        if not measured:
            return EngineCost(self.name, None, f"no indexing time measured for {self.model} on these films")
        spf = sum(f.manifest.indexing_seconds for f in measured) / sum(f.manifest.frames for f in measured)
        device = measured[0].manifest.device or "cpu"
        return EngineCost(
            self.name,
            ctx.per_film_hour(spf, device),
            f"indexing measured: {spf * 1000:.0f} ms/frame on {device} x ${ctx.machine_price(device):.2f}/h, "
            f"{ctx.frames_per_hour:.0f} frames/film-hour",
        )

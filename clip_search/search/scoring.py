"""Search: score every frame of the chosen films against a query, pick de-duplicated top hits.

A frame's score is the cosine of unit vectors (in patch mode, the best of the frame and its
patches). Archive-sized libraries (``ANN_MIN_FRAMES``) take candidates from the FAISS index in
``clip_search.search.ann`` and re-score them exactly from the float32 vectors on disk, so hits carry exact
cosines; smaller libraries, small film filters and ``exact=True`` score every frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from clip_search.encoders.base import Scoring
from clip_search.errors import FrameSearchError
from clip_search.search import ann  # its thresholds read when a search starts (a lab may tune them)
from clip_search.search.moments import Moment, find_moments, moment_around
from clip_search.search.ranking import DEFAULT_GAP as DEFAULT_GAP  # engines, views and the CLI take it from here
from clip_search.search.ranking import LEADING, at, distinct_top
from clip_search.store.library import Film, Library, in_order

DEFAULT_NEGATIVE_WEIGHT = 0.5
MAX_IMAGE_PIXELS = 40_000_000  # a query image larger than this is refused before it is decoded
ANN_WINDOW = 256  # in archive mode a hit's moment and softmax use the frames this close to it

if TYPE_CHECKING:  # torch is imported only when a model is really needed
    from clip_search.encoders import DualEncoder


@dataclass
class QueryVector:
    """A query as one unit vector, with a label and any notices for the user."""

    vector: np.ndarray
    label: str
    notices: list[str] = field(default_factory=list)


def build_query(
    encoder: DualEncoder,
    text: str | None = None,
    negative: str | None = None,
    image: str | Path | np.ndarray | None = None,
    negative_weight: float = DEFAULT_NEGATIVE_WEIGHT,
) -> QueryVector:
    """Turn text and/or an image (plus an optional negative text) into one query vector.

    Text and image are averaged; a negative description is subtracted with ``negative_weight``
    (score = cos(q) - w cos(neg), up to a constant factor, so the ranking is exactly that)."""
    text = (text or "").strip()
    negative = (negative or "").strip()
    if not text and image is None:
        raise ValueError("Type a query (or give an image to search with).")
    parts, notices, labels = [], [], []
    texts = [t for t in (text, negative) if t]
    enc = encoder.encode_text(texts) if texts else None
    if text:
        parts.append(enc.vectors[0])
        labels.append(f"{enc.used[0]} …" if enc.truncated[0] and enc.used else text)  # the words the model read
        if enc.truncated[0]:
            notices.append(
                f"The query is longer than {encoder.model_id}'s {encoder.max_tokens} tokens; "
                "only its beginning was used."
            )
    if image is not None:
        parts.append(encoder.encode_images([_load_image(image)])[0])
        labels.append(f"[image {Path(image).name}]" if isinstance(image, (str, Path)) else "[image]")
    q = np.mean(parts, axis=0)
    q /= np.linalg.norm(q)
    if negative:
        q = q - negative_weight * enc.vectors[-1]
        if enc.truncated[-1]:
            notices.append(
                f"The negative query is longer than {encoder.max_tokens} tokens; only its beginning was used."
            )
        labels.append(f"not {negative}")
        q /= max(np.linalg.norm(q), 1e-12)
    return QueryVector(q.astype(np.float32), " | ".join(labels), notices)


def _load_image(image: str | Path | np.ndarray) -> np.ndarray:
    if isinstance(image, np.ndarray):
        return image
    try:
        with Image.open(image) as im:  # opening reads the header only: the size is known before decoding
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise ValueError(
                    f"{Path(image).name}: {w} x {h} pixels is too large for a query image "
                    f"(at most {MAX_IMAGE_PIXELS // 1_000_000} megapixels; a decompression bomb is refused)"
                )
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise ValueError(f"{Path(image).name}: not an image that can be read ({e.__class__.__name__})") from None


def frame_scores(film: Film, q: np.ndarray, footing: bool = False) -> np.ndarray:
    """Exact score of every sampled frame of ``film`` (best patch in patch mode).

    ``footing``: the film is searched beside films without patches. The best of a frame and its
    crops is the maximum of many cosines, so it runs higher than a frame's own cosine for no reason
    but the count; then the patch film's scores take the values of its own frame-only scores, in
    the order the crops give (a rank-preserving map onto the frame-only distribution): crops still
    decide which of its frames match best, but not how its frames compare with other films'."""
    s = np.asarray(film.embeddings @ q, dtype=np.float32)
    patches = film.patch_embeddings
    if patches is not None:
        ppf = film.manifest.patches_per_frame
        best = np.maximum(s, np.asarray(patches @ q, dtype=np.float32).reshape(-1, ppf).max(axis=1))
        s = _onto(_plausible(best), _plausible(s)) if footing else best
    return _plausible(s)


def scores_for(films: Sequence[Film], q: np.ndarray) -> list[np.ndarray]:
    """Every film's frame scores for one search over ``films``: patch films are put on the footing
    of the others when the set mixes films with and without patches (see :func:`frame_scores`)."""
    mixed = len({bool(f.manifest.patches_per_frame) for f in films}) > 1
    return [frame_scores(f, q, footing=mixed) for f in films]


def _onto(order_by: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values``' sorted values placed in the order of ``order_by`` (NaN stays NaN, last in both)."""
    out = np.full(len(order_by), np.nan, np.float32)
    ok = np.isfinite(order_by)
    pool = np.sort(values[np.isfinite(values)])[::-1][: int(ok.sum())]
    rows = np.flatnonzero(ok)[np.argsort(-order_by[ok], kind="stable")][: len(pool)]
    out[rows] = pool
    return out


def _plausible(s: np.ndarray) -> np.ndarray:
    """Cosines of unit vectors lie in [-1, 1]: a frame whose vector was damaged in place (NaN, or
    scaled) scores NaN, which ranking never serves (``films --check`` names the film)."""
    bad = ~(np.abs(s) <= 1.001)
    if bad.any():
        s = s.copy()
        s[bad] = np.nan
    return s


def probabilities(film: Film, scores: np.ndarray, logit_scale: float | None = None) -> np.ndarray:
    """The film's model's own probabilities of its frame scores: CLIP's softmax over the frames
    (``logit_scale`` overrides the model's), SigLIP's sigmoid of each frame alone."""
    m = film.manifest
    if m.scoring == "sigmoid" and logit_scale is None:
        return Scoring("sigmoid", m.logit_scale, m.logit_bias).probabilities(scores)
    return softmax_over_frames(scores, logit_scale if logit_scale is not None else m.logit_scale)


def softmax_over_frames(scores: np.ndarray, logit_scale: float) -> np.ndarray:
    """CLIP's view: softmax of logit_scale x cosine over the frames of one film."""
    z = logit_scale * (scores.astype(np.float64) - float(np.max(scores)))
    e = np.exp(z)
    return (e / e.sum()).astype(np.float32)


@dataclass
class Hit:
    """One result: a frame of a film, its exact score, and the moment around it."""

    film: str
    film_id: str
    source: str
    frame: int
    time: float
    score: float
    softmax: float  # the model's own probability: softmax over the film's frames (CLIP), sigmoid (SigLIP)
    start: float
    end: float
    moment_peak: float
    percentile: float = 0.0  # share of the film's frames scoring at most this (near it, in archive search)
    label: str | None = None  # what the hit is, in words, where an engine knows (the dialogue line)

    def to_dict(self) -> dict:
        return asdict(self)


class Searcher:
    """Searches a set of films; keeps per-film state (and the archive index) between queries.

    ``mode`` is ``exact`` (every frame scored) or ``ann`` (FAISS candidates, exact re-scoring);
    ``notice`` says why an archive-sized library is scored exactly (no index yet, or a stale one)."""

    def __init__(
        self,
        films: Sequence[Film],
        library: Library | None = None,
        exact: bool = False,
        nprobe: int | None = None,
    ) -> None:
        self.films = in_order(films)  # ties go to the earlier film, whoever lists them
        self.total = sum(f.manifest.frames for f in self.films)
        self.nprobe = nprobe
        self.ann: ann.AnnIndex | None = None
        self.notice: str | None = None
        has_patches = any(f.manifest.patches_per_frame for f in self.films)
        if not exact and not has_patches and self.films:
            lib = library or Library(self.films[0].dir.parent.parent)
            library_films = lib.films(self.films[0].model)  # checked once, for the size and the index's freshness
            if sum(f.manifest.frames for f in library_films) >= ann.ANN_MIN_FRAMES:
                try:
                    ann.faiss_module()
                    self.ann = ann.AnnIndex.load(lib, library_films)
                except FrameSearchError as e:  # no FAISS here: every frame is scored, said
                    self.notice = f"{e} Scoring every frame exactly (slower)."
                if self.ann is None and self.notice is None:
                    self.notice = (
                        f"{ann.AnnIndex.status(lib, library_films).describe()}; scoring every frame exactly "
                        "(slower). `python -m clip_search ann build` makes searches fast."
                    )
        self.mode = "ann" if self.ann is not None else "exact"

    def search(self, query: QueryVector, top_k: int = 10, gap: float = DEFAULT_GAP) -> list[Hit]:
        """Top ``top_k`` frames, best first, no two from one film closer than ``gap`` seconds."""
        _, picks, make = self.ranked(query, top_k, gap)
        return [make(f, i, sc) for f, i, sc in picks]

    def ranked(
        self, query: QueryVector, top_k: int = 10, gap: float = DEFAULT_GAP, rng: np.random.Generator | None = None
    ) -> tuple[list[np.ndarray] | None, list[tuple[int, int, float]], Callable[[int, int, float], Hit]]:
        """The exact scores of every film (None when the archive index gave the candidates), the
        chosen (film index, frame, score), best first (ties in the order ``rng`` draws), and the
        builder of each one's hit."""
        q = query.vector
        if self.total == 0 or top_k <= 0:
            return [np.zeros(0, np.float32) for _ in self.films], [], hit_maker(self.films, [])
        if self.scans_all():
            per_film = scores_for(self.films, q)
            return per_film, top_frames(self.films, per_film, top_k, gap, rng), hit_maker(self.films, per_film)
        return None, self.ann_top(q, top_k, gap, rng), lambda f, i, sc: _windowed_hit(self.films[f], i, sc, q)

    def scans_all(self) -> bool:
        """Whether a search scores every frame (no index, a small set, or the index would scan it all)."""
        if self.ann is None or self.total <= ann.EXACT_MAX_FRAMES:
            return True
        return self.ann.scans_all(self.films, self.nprobe or self.ann.nprobe)

    def ann_top(
        self, q: np.ndarray, top_k: int, gap: float, rng: np.random.Generator | None = None
    ) -> list[tuple[int, int, float]]:
        """The best frames from the archive index's candidates, re-scored exactly."""
        nprobe = self.nprobe or self.ann.nprobe
        k = min(self.total, max(top_k * LEADING, self.ann.candidates_k))
        while True:
            film_idx, local, score = self.ann.rescored(q, self.films, k, nprobe)
            chosen = distinct_top(self.films, _plausible(score), at(film_idx, local), top_k, gap, rng)
            if len(chosen) == top_k or k >= self.total:
                return chosen
            k = min(self.total, k * 4)


def _windowed_hit(film: Film, i: int, score: float, q: np.ndarray) -> Hit:
    """A hit of archive search: its moment and softmax from the exact scores of nearby frames."""
    lo, hi = max(0, i - ANN_WINDOW), min(film.manifest.frames, i + ANN_WINDOW + 1)
    near = np.asarray(film.embeddings[lo:hi] @ q, np.float32)
    return _hit(film, i, score, near, probabilities(film, near), float(np.median(near)), lo)


def top_frames(
    films: Sequence[Film],
    per_film: list[np.ndarray],
    top_k: int = 10,
    gap: float = DEFAULT_GAP,
    rng: np.random.Generator | None = None,
    draws: int | None = None,
) -> list:
    """(film index, frame, score) of the top ``top_k`` frames over films, best first, no two from one
    film closer than ``gap`` seconds. Ties go to the earlier frame, or are broken at random by ``rng``;
    with ``draws``, a list of that many rankings, each in its own random order of the ties."""
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in per_film])]).astype(np.int64)
    if offsets[-1] == 0:
        return [] if draws is None else [[] for _ in range(draws)]
    flat = np.concatenate(per_film) if len(per_film) > 1 else per_film[0]

    def where(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        film_idx = np.searchsorted(offsets, positions, side="right") - 1
        return film_idx, positions - offsets[film_idx]

    return distinct_top(films, flat, where, top_k, gap, rng, draws)


def rank_frames(
    films: Sequence[Film],
    per_film: list[np.ndarray],
    top_k: int = 10,
    gap: float = DEFAULT_GAP,
    logit_scale: float | None = None,
) -> list[Hit]:
    """Top ``top_k`` frames over films from per-film score arrays (any engine), best first, no two
    from one film closer than ``gap`` seconds, each with its moment.

    ``logit_scale`` for the softmax column (default: each film's model's own probability)."""
    make = hit_maker(films, per_film, logit_scale)
    return [make(f, i, sc) for f, i, sc in top_frames(films, per_film, top_k, gap)]


def hit_maker(
    films: Sequence[Film], per_film: list[np.ndarray], logit_scale: float | None = None
) -> Callable[[int, int, float], Hit]:
    """Builds the hit of (film index, frame, score) from the films' exact scores: its moment, its
    softmax and its standing among its film's frames, each film's statistics computed once."""
    stats: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}  # per film: scores, softmax, median score

    def make(f: int, i: int, score: float) -> Hit:
        if f not in stats:
            s = per_film[f]
            s = s if np.all(np.isfinite(s)) else np.where(np.isfinite(s), s, -np.inf)  # damaged frames weigh 0
            stats[f] = s, probabilities(films[f], s, logit_scale), float(np.median(s))
        return _hit(films[f], i, score, *stats[f])

    return make


def _hit(film: Film, i: int, score: float, scores: np.ndarray, soft: np.ndarray, median: float, lo: int = 0) -> Hit:
    """Frame ``i``'s hit; ``scores`` and ``soft`` are of the film's frames from ``lo`` on (all of them,
    or the window archive search scored)."""
    times = film.times[lo : lo + len(scores) + 1]  # one frame past a window: when its last frame ends
    m = moment_around(times, scores, i - lo, film.manifest.duration, median=median)
    finite = scores[np.isfinite(scores)]
    below = float(np.mean(finite <= score)) if len(finite) else 0.0
    return Hit(
        film=film.name,
        film_id=film.id,
        source=film.manifest.source,
        frame=i,
        time=round(float(film.times[i]), 3),
        score=round(score, 6),
        softmax=float(soft[i - lo]),
        start=round(m.start, 3),
        end=round(m.end, 3),
        moment_peak=round(m.peak_score, 6),
        percentile=round(below, 4),
    )


@dataclass
class Timeline:
    """One film's scores over time for one query: what the heatmap draws."""

    film: Film
    times: np.ndarray
    scores: np.ndarray
    softmax: np.ndarray
    moments: list[Moment]


def timeline(film: Film, query: QueryVector) -> Timeline:
    """Exact scores of every frame of ``film``, their softmax, and the film's moments."""
    s = frame_scores(film, query.vector)
    return Timeline(
        film,
        film.times,
        s,
        probabilities(film, s),
        find_moments(film.times, s, film.manifest.duration),
    )

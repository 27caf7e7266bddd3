"""Search: score every frame of the chosen films against a query, pick de-duplicated top hits.

A frame's score is the cosine of unit vectors (in patch mode, the best of the frame and its
patches). Large libraries (a million frames) are first scored with an int8 copy of the vectors
through PyTorch's quantised linear kernel, then the best candidates are re-scored exactly, so
hits carry exact cosines and a query stays well under 100 ms on two CPU cores.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clip_search.library import Film
from clip_search.moments import Moment, find_moments, moment_around

DEFAULT_GAP = 2.0
DEFAULT_NEGATIVE_WEIGHT = 0.5
QUANTIZE_MIN_FRAMES = 200_000

if TYPE_CHECKING:  # torch is imported only when a model is really needed
    from clip_search.model import ClipEncoder


@dataclass
class QueryVector:
    """A query as one unit vector, with a label and any notices for the user."""

    vector: np.ndarray
    label: str
    notices: list[str] = field(default_factory=list)


def build_query(
    encoder: ClipEncoder,
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
        labels.append(text)
        if enc.truncated[0]:
            notices.append("The query is longer than CLIP's 77 tokens; only its beginning was used.")
    if image is not None:
        parts.append(encoder.encode_images([_load_image(image)])[0])
        labels.append(f"[image {Path(image).name}]" if isinstance(image, (str, Path)) else "[image]")
    q = np.mean(parts, axis=0)
    q /= np.linalg.norm(q)
    if negative:
        q = q - negative_weight * enc.vectors[-1]
        if enc.truncated[-1]:
            notices.append("The negative query is longer than 77 tokens; only its beginning was used.")
        labels.append(f"not {negative}")
        q /= max(np.linalg.norm(q), 1e-12)
    return QueryVector(q.astype(np.float32), " | ".join(labels), notices)


def _load_image(image: str | Path | np.ndarray) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, np.ndarray):
        return image
    try:
        with Image.open(image) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as e:
        raise ValueError(f"{Path(image).name}: not an image that can be read ({e.__class__.__name__})") from None


def frame_scores(film: Film, q: np.ndarray) -> np.ndarray:
    """Exact score of every sampled frame of ``film`` (best patch in patch mode)."""
    s = np.asarray(film.embeddings @ q, dtype=np.float32)
    patches = film.patch_embeddings
    if patches is not None:
        ppf = film.manifest.patches_per_frame
        s = np.maximum(s, np.asarray(patches @ q, dtype=np.float32).reshape(-1, ppf).max(axis=1))
    return s


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
    softmax: float
    start: float
    end: float
    moment_peak: float

    def to_dict(self) -> dict:
        return asdict(self)


class _Quantized:
    """An int8 copy of many films' vectors behind PyTorch's quantised linear kernel (fbgemm)."""

    def __init__(self, films: Sequence[Film]) -> None:
        import torch

        blocks, scales = [], []
        for film in films:
            e = film.embeddings
            for lo in range(0, len(e), 65536):
                block = np.asarray(e[lo : lo + 65536], np.float32)
                sc = np.maximum(np.abs(block).max(axis=1), 1e-12) / 127.0
                blocks.append(np.round(block / sc[:, None]).astype(np.int8))
                scales.append(sc)
        w = torch.from_numpy(np.concatenate(blocks))
        sc = torch.from_numpy(np.concatenate(scales).astype(np.float64))
        qw = torch._make_per_channel_quantized_tensor(w, sc, torch.zeros(len(sc), dtype=torch.long), 0)
        self.packed = torch.ops.quantized.linear_prepack(qw, None)

    def scores(self, q: np.ndarray) -> np.ndarray:
        import torch

        return torch.ops.quantized.linear_dynamic(torch.from_numpy(q)[None], self.packed)[0].numpy()


class Searcher:
    """Searches a set of films; keeps per-film state (and the int8 copy) between queries."""

    def __init__(self, films: Sequence[Film], quantize: bool | None = None) -> None:
        self.films = list(films)
        sizes = [f.manifest.frames for f in self.films]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.total = int(self.offsets[-1])
        has_patches = any(f.manifest.patches_per_frame for f in self.films)
        self.quantize = (self.total >= QUANTIZE_MIN_FRAMES and not has_patches) if quantize is None else quantize
        self._quantized: _Quantized | None = None
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Build the int8 copy now (it is otherwise built on the first query)."""
        if self.quantize and self._quantized is None:
            with self._lock:
                if self._quantized is None:
                    try:
                        with warnings.catch_warnings():  # quantised tensors are deprecated upstream
                            warnings.simplefilter("ignore", UserWarning)
                            self._quantized = _Quantized(self.films)
                    except (RuntimeError, AttributeError):  # a torch without the kernel: exact scoring
                        self.quantize = False

    def all_scores(self, q: np.ndarray) -> list[np.ndarray]:
        """Per-film score arrays: exact, or int8-approximate (error about 0.002) for huge libraries."""
        self.prepare()
        if self.quantize:
            s = self._quantized.scores(q)
            return [s[self.offsets[i] : self.offsets[i + 1]] for i in range(len(self.films))]
        return [frame_scores(f, q) for f in self.films]

    def search(self, query: QueryVector, top_k: int = 10, gap: float = DEFAULT_GAP) -> list[Hit]:
        """Top ``top_k`` frames, best first, no two from one film closer than ``gap`` seconds."""
        if self.total == 0 or top_k <= 0:
            return []
        q = query.vector
        rescore = None
        if self.quantize:

            def rescore(f: int, rows: np.ndarray) -> np.ndarray:
                order = np.argsort(rows)  # memmap reads in file order
                out = np.empty(len(rows), np.float32)
                out[order] = np.asarray(self.films[f].embeddings[rows[order]]) @ q
                return out

        return rank_frames(self.films, self.all_scores(q), top_k, gap, rescore)


def rank_frames(
    films: Sequence[Film],
    per_film: list[np.ndarray],
    top_k: int = 10,
    gap: float = DEFAULT_GAP,
    rescore: Callable[[int, np.ndarray], np.ndarray] | None = None,
    logit_scale: float | None = None,
) -> list[Hit]:
    """Top ``top_k`` frames over films from per-film score arrays (any engine), best first, no two
    from one film closer than ``gap`` seconds, each with its moment.

    ``rescore(film_index, frame_rows)`` replaces approximate scores of candidates with exact ones;
    ``logit_scale`` for the softmax column (default: each film's CLIP logit scale)."""
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in per_film])]).astype(np.int64)
    total = int(offsets[-1])
    if total == 0 or top_k <= 0:
        return []
    flat = np.concatenate(per_film) if len(per_film) > 1 else per_film[0]
    m = min(total, max(top_k * 64, 2048))
    while True:
        cand = np.argpartition(-flat, m - 1)[:m] if m < total else np.arange(total)
        film_idx = np.searchsorted(offsets, cand, side="right") - 1
        local = cand - offsets[film_idx]
        score = flat[cand].astype(np.float32)
        if rescore is not None:
            for f in np.unique(film_idx):
                sel = film_idx == f
                score[sel] = rescore(int(f), local[sel])
        chosen: list[tuple[int, int, float]] = []
        taken: dict[int, list[float]] = {}
        for j in np.argsort(-score, kind="stable"):
            f, i = int(film_idx[j]), int(local[j])
            t = float(films[f].times[i])
            if any(abs(t - u) < gap for u in taken.get(f, ())):
                continue
            taken.setdefault(f, []).append(t)
            chosen.append((f, i, float(score[j])))
            if len(chosen) == top_k:
                break
        if len(chosen) == top_k or m >= total:
            break
        m = min(total, m * 4)
    stats: dict[int, tuple[np.ndarray, float]] = {}  # per film: softmax, median score
    for f, _, _ in chosen:
        if f not in stats:
            scale = logit_scale if logit_scale is not None else films[f].manifest.logit_scale
            stats[f] = softmax_over_frames(per_film[f], scale), float(np.median(per_film[f]))
    return [_hit(films[f], i, sc, per_film[f], *stats[f]) for f, i, sc in chosen]


def _hit(film: Film, i: int, score: float, scores: np.ndarray, soft: np.ndarray, median: float) -> Hit:
    m = moment_around(film.times, scores, i, film.manifest.duration, median=median)
    return Hit(
        film=film.name,
        film_id=film.id,
        source=film.manifest.source,
        frame=i,
        time=round(float(film.times[i]), 3),
        score=round(score, 6),
        softmax=float(soft[i]),
        start=round(m.start, 3),
        end=round(m.end, 3),
        moment_peak=round(m.peak_score, 6),
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
        softmax_over_frames(s, film.manifest.logit_scale),
        find_moments(film.times, s, film.manifest.duration),
    )

"""Indexing verifies what it stores: a few frames of every chunk encoded at reduced precision are
encoded again in float32 and compared. A chunk whose check fails is encoded again whole in float32
(and counted in its vector set's record), so a fault that gives plausible unit vectors of the wrong
image (no NaN, nothing else would flag it) never reaches the library."""

from __future__ import annotations

import numpy as np

from clip_search.video.decode import iter_frames

SPOT_FRAMES = 3  # frames re-encoded per chunk: its first, middle and last
SPOT_MIN_COSINE = 0.999  # bf16 against float32 is >= 0.9999 on every backend; a wrong image is far below


def needs_check(encoder) -> bool:
    """Whether ``encoder``'s vectors are worth checking: reduced precision, with a float32 path."""
    return getattr(encoder, "precision", "fp32") != "fp32" and hasattr(encoder, "encode_float32")


def agreement(encoder, pixels: np.ndarray, vectors: np.ndarray) -> float:
    """The least cosine between ``vectors`` (of the frames ``pixels``) and float32 vectors of
    ``SPOT_FRAMES`` of those frames: the first, middle and last."""
    n = len(vectors)
    picks = np.unique(np.linspace(0, n - 1, min(n, SPOT_FRAMES)).round().astype(np.int64))
    exact = encoder.encode_float32(pixels[picks])
    return float(np.min(np.sum(exact * vectors[picks], axis=1)))


def checked(encoder, pixels: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, bool]:
    """``vectors`` (what ``encoder`` gave for ``pixels``) if a spot check agrees, else ``pixels``
    encoded again in float32; and whether that happened."""
    if not needs_check(encoder) or not len(vectors) or agreement(encoder, pixels, vectors) >= SPOT_MIN_COSINE:
        return vectors, False
    return encoder.encode_float32(pixels), True


def sample_agreement(film, encoder, groups: int = 3, per_group: int = 2) -> float:
    """The least cosine between ``film``'s stored vectors (seen through ``encoder``'s model) and its
    frames decoded again from the source and encoded in float32: ``groups`` runs of ``per_group``
    frames at its start, middle and end (``films --check --deep``). VideoError if the source is
    unreadable; ValueError if a sampled time is no longer among the frames the source gives."""
    times = film.times
    n = len(times)
    settings = film.manifest.sampling_settings()
    whole = settings.mode == "shots"  # shot sampling needs the film from its start: its first frames only
    starts = [0] if whole else sorted({0, max(0, (n - per_group) // 2), max(0, n - per_group)})[:groups]
    worst = 1.0
    for s in starts:
        want = times[s : s + per_group]
        after = None if s == 0 or whole else float(times[s - 1])
        found = {}
        for fr in iter_frames(film.manifest.source, settings, start_after=after, until=float(want[-1])):
            j = int(np.argmin(np.abs(want - fr.time)))
            if abs(want[j] - fr.time) <= 1e-6:
                found[s + j] = fr.image
        if len(found) < len(want):
            raise ValueError(f"frames at {', '.join(f'{t:.3f}' for t in want)} s are no longer in the source")
        rows = sorted(found)
        pixels = np.stack([encoder.prepare(found[i]) for i in rows])
        exact = (
            encoder.encode_float32(pixels) if hasattr(encoder, "encode_float32") else encoder.encode_prepared(pixels)
        )
        worst = min(worst, float(np.min(np.sum(exact * np.asarray(film.embeddings)[rows], axis=1))))
    return worst

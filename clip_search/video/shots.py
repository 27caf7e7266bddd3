"""Shots: where a film cuts, found once from the frames indexing already decoded (their stored
thumbnails, so no second decode, and a film indexed before shots existed gets them without being
encoded again), kept with the film as [start, end] pairs in seconds that cover it."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

SHOTS = "shots.npz"  # in the film's folder: "shots", an (n, 2) array of [start, end] seconds
THRESHOLD = 27.0  # PySceneDetect ContentDetector's default


def detect(times: np.ndarray, images, duration: float, threshold: float = THRESHOLD) -> np.ndarray:
    """Shots from consecutive sampled frames (RGB arrays, in time order): a cut wherever
    PySceneDetect's ContentDetector sees the content change between two of them."""
    from scenedetect import ContentDetector  # PySceneDetect loads only when shots are found
    from scenedetect.common import FrameTimecode  # PySceneDetect loads only when shots are found

    detector = ContentDetector(threshold=threshold, min_scene_len=1)
    starts = [0.0]
    for i, rgb in enumerate(images):
        if rgb is None:
            continue
        cuts = detector.process_frame(FrameTimecode(i, fps=1.0), np.ascontiguousarray(rgb[:, :, ::-1]))
        starts += [float(times[c.frame_num]) for c in cuts if 0 < c.frame_num < len(times)]
    starts = sorted(set(starts))
    ends = [*starts[1:], max(float(duration), starts[-1])]
    return np.array(list(zip(starts, ends, strict=True)), np.float64).reshape(-1, 2)


def thumbnails(film) -> list[np.ndarray | None]:
    """The film's stored thumbnails as RGB arrays (None for one that cannot be read)."""
    out: list[np.ndarray | None] = []
    for i in range(len(film.times)):
        try:
            with Image.open(io.BytesIO(film.thumbnail(i))) as im:
                out.append(np.asarray(im.convert("RGB")))
        except (OSError, UnidentifiedImageError):
            out.append(None)
    return out


def of_film(film) -> np.ndarray:
    """The film's shots, found from its thumbnails."""
    return detect(film.times, thumbnails(film), film.manifest.duration)

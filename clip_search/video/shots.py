"""Shots: where a film cuts, found once from the frames indexing already decoded (their stored
thumbnails, so no second decode, and a film indexed before shots existed gets them without being
encoded again), kept with the film as [start, end] pairs in seconds that cover it."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

SHOTS = "shots.npz"  # in the film's folder: "shots", an (n, 2) array of [start, end] seconds
THRESHOLD = 27.0  # PySceneDetect ContentDetector's default


class CutFinder:
    """PySceneDetect's ContentDetector fed one sampled frame at a time, in time order: whether a new
    shot starts at that frame. What ``detect`` runs over a film, and what indexing runs while it
    decodes (so a video model's clips break where the film's shots will)."""

    def __init__(self, threshold: float = THRESHOLD) -> None:
        from scenedetect import ContentDetector  # PySceneDetect loads only when shots are found

        self.detector = ContentDetector(threshold=threshold, min_scene_len=1)
        self.frame = 0

    def cut(self, rgb: np.ndarray | None) -> bool:
        """Whether the content changed between the last frame seen and this one (None: unreadable, no cut)."""
        from scenedetect.common import FrameTimecode  # PySceneDetect loads only when shots are found

        i, self.frame = self.frame, self.frame + 1
        if rgb is None:
            return False
        cuts = self.detector.process_frame(FrameTimecode(i, fps=1.0), np.ascontiguousarray(rgb[:, :, ::-1]))
        return i > 0 and any(c.frame_num == i for c in cuts)


def detect(times: np.ndarray, images, duration: float, threshold: float = THRESHOLD) -> np.ndarray:
    """Shots from consecutive sampled frames (RGB arrays, in time order): a cut wherever
    PySceneDetect's ContentDetector sees the content change between two of them."""
    finder = CutFinder(threshold)
    starts = [0.0] + [float(t) for t, rgb in zip(times, images, strict=False) if finder.cut(rgb)]
    starts = sorted(set(starts))
    ends = [*starts[1:], max(float(duration), starts[-1])]
    return np.array(list(zip(starts, ends, strict=True)), np.float64).reshape(-1, 2)


def decoded(jpeg: bytes) -> np.ndarray | None:
    """A stored thumbnail as an RGB array (None for one that cannot be read)."""
    try:
        with Image.open(io.BytesIO(jpeg)) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError):
        return None


def thumbnails(film) -> list[np.ndarray | None]:
    """The film's stored thumbnails as RGB arrays (None for one that cannot be read)."""
    return [decoded(film.thumbnail(i)) for i in range(len(film.times))]


def of_film(film) -> np.ndarray:
    """The film's shots, found from its thumbnails."""
    return detect(film.times, thumbnails(film), film.manifest.duration)

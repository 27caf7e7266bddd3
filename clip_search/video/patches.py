"""Patch mode: overlapping square crops of a frame, encoded beside the whole frame.

CLIP sees a frame at 224 px, so a small detail in an HD frame is lost. Crops of a fraction of
the frame's short side, overlapping by half, let a frame score by its best patch (as in the
ClipIndex article)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PatchSettings:
    """Square crops of ``size`` x the short side, stepping by ``(1 - overlap)`` x their size."""

    size: float = 0.6
    overlap: float = 0.3

    def __post_init__(self) -> None:
        if not 0.1 <= self.size < 1.0 or not 0.0 <= self.overlap < 0.9:
            raise ValueError("patch size must be in [0.1, 1) of the short side and overlap in [0, 0.9)")

    def boxes(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        """(left, top, right, bottom) of every crop, row by row."""
        side = max(1, round(min(width, height) * self.size))
        step = max(1, round(side * (1 - self.overlap)))

        def starts(length: int) -> list[int]:
            n = max(1, math.ceil((length - side) / step) + 1)
            if n == 1:
                return [(length - side) // 2]
            return [round(i * (length - side) / (n - 1)) for i in range(n)]

        return [(x, y, x + side, y + side) for y in starts(height) for x in starts(width)]

    def count(self, width: int, height: int) -> int:
        """How many crops a frame of this size gives."""
        return len(self.boxes(width, height))


def crop_patches(rgb: np.ndarray, settings: PatchSettings | None) -> list[np.ndarray]:
    """The crops of one (H, W, 3) frame; none when patch mode is off."""
    if settings is None:
        return []
    h, w = rgb.shape[:2]
    return [rgb[t:b, left:r] for left, t, r, b in settings.boxes(w, h)]

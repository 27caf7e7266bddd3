"""Clips for video models, made while indexing from the frames sampled for every model: a clip per
shot, a long shot cut every ``CLIP_SECONDS``; each clip's vector comes from ``clip_frames`` of its
frames spread evenly, and every frame of the clip is stored with it (so a video model is searched,
compared and evaluated on the film's frame times like any other), beside the clip's [start, end]
and the times of the frames it was computed from (``ClipRows``, kept in the set's ``clips.npz``).

``ClipStarts`` decides where clips start: at the film's stored shots when it has them (a model
added to an indexed film), else where ``shots.CutFinder`` sees a cut in the thumbnails as they are
made (a new film: the same cuts its shots will have). ``ClipStage`` holds one video model's open
clip and its finished frames until a chunk takes them."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from clip_search.encoders import spot_check
from clip_search.encoders.base import clip_frames
from clip_search.encoders.video import CLIP_SECONDS, clip_picks
from clip_search.video.shots import CutFinder, decoded


@dataclass
class ClipRows:
    """Clips of a run of frames: ``segments`` (C, 2) [start, end] seconds, ``frame_times`` (C, F)
    the times of the frames each clip vector was computed from, ``clip_of`` (N,) each frame's clip."""

    segments: np.ndarray
    frame_times: np.ndarray
    clip_of: np.ndarray


def expected_clips(film, seconds: float = CLIP_SECONDS) -> int:
    """How many clips a video model will cut ``film`` into: per shot, one per ``seconds`` begun (a
    film without shots yet: one per ``seconds`` of its length)."""
    shots = film.shots()
    if shots is None:
        return max(1, int(np.ceil(film.manifest.duration / seconds)))
    return int(np.sum(np.maximum(1, np.ceil((shots[:, 1] - shots[:, 0]) / seconds - 1e-9))))


class ClipStarts:
    """Frame by frame, in time order: does a new clip start here? At a shot boundary (``shots``,
    the film's stored shots; else a cut ``CutFinder`` sees in the frame's thumbnail) or when the
    open clip has lasted ``seconds``. The first frame of a run always starts one."""

    def __init__(self, shots: np.ndarray | None, seconds: float = CLIP_SECONDS) -> None:
        self.shot_starts = None if shots is None else np.asarray(shots, np.float64)[:, 0]
        self.finder = CutFinder() if shots is None else None
        self.seconds = seconds
        self.opened: float | None = None
        self.shot = -1  # the stored shot the last frame was in

    def __call__(self, t: float, thumb: bytes = b"") -> bool:
        if self.shot_starts is not None:
            shot = int(np.searchsorted(self.shot_starts, t + 1e-6, side="right")) - 1
            cut, self.shot = shot != self.shot, shot
        else:
            cut = self.finder.cut(decoded(thumb) if thumb else None)
        if self.opened is None or cut or t - self.opened >= self.seconds - 1e-6:
            self.opened = t
            return True
        return False


class ClipStage:
    """One video model's frames while indexing: the open clip's crops, then, once the next clip
    starts, one vector for all its frames. ``ready`` frames wait for a chunk (``take``)."""

    def __init__(self, encoder) -> None:
        self.encoder = encoder
        self.frames = clip_frames(encoder)
        self.check = spot_check.needs_check(encoder)  # the first clip of each chunk is checked in float32
        self.float32 = False  # a check failed: the rest of the run is encoded in float32
        self.failed_checks = 0
        self.seconds = 0.0
        self._crops: list[np.ndarray] = []
        self._times: list[float] = []
        self._rows: list[np.ndarray] = []
        self._segments: list[tuple[float, float]] = []
        self._frame_times: list[np.ndarray] = []
        self._sizes: list[int] = []

    @property
    def ready(self) -> int:
        """Frames whose clip is finished and not yet taken."""
        return len(self._rows)

    def add(self, t: float, crop: np.ndarray, starts_clip: bool) -> None:
        """One more frame (in time order); ``starts_clip`` closes the open clip at ``t``."""
        if starts_clip and self._times:
            self.close(t)
        self._crops.append(crop)
        self._times.append(t)

    def close(self, end: float) -> None:
        """Finish the open clip (it lasts until ``end``): one vector, given to each of its frames."""
        if not self._times:
            return
        picks = clip_picks(len(self._times), self.frames)
        clip = np.stack([self._crops[i] for i in picks])[None]
        t0 = time.perf_counter()
        vector = self._encode(clip)[0]
        self.seconds += time.perf_counter() - t0
        self._rows.extend([vector] * len(self._times))
        self._segments.append((self._times[0], max(end, self._times[-1])))
        self._frame_times.append(np.asarray(self._times, np.float64)[picks])
        self._sizes.append(len(self._times))
        self._crops, self._times = [], []

    def _encode(self, clip: np.ndarray) -> np.ndarray:
        if self.float32:
            return self.encoder.encode_clips_float32(clip)
        vector = self.encoder.encode_clips(clip)
        if self.check:
            self.check = False
            exact = self.encoder.encode_clips_float32(clip)
            if float(np.sum(exact * vector)) < spot_check.SPOT_MIN_COSINE:
                self.float32, self.failed_checks = True, self.failed_checks + 1
                return exact
        return vector

    def take(self, n: int) -> tuple[np.ndarray, ClipRows]:
        """The first ``n`` finished frames' vectors and their clips (``n`` ends a clip)."""
        clips = int(np.searchsorted(np.cumsum(self._sizes), n, side="right"))
        if sum(self._sizes[:clips]) != n:
            raise ValueError(f"{n} frames do not end a clip")
        rows = ClipRows(
            np.asarray(self._segments[:clips], np.float64).reshape(-1, 2),
            np.asarray(self._frame_times[:clips], np.float64).reshape(clips, self.frames),
            np.repeat(np.arange(clips, dtype=np.int64), self._sizes[:clips]),
        )
        vectors = np.asarray(self._rows[:n], np.float32).reshape(n, -1)
        del self._rows[:n], self._segments[:clips], self._frame_times[:clips], self._sizes[:clips]
        self.check = spot_check.needs_check(self.encoder)  # the next chunk's first clip is checked again
        return vectors, rows

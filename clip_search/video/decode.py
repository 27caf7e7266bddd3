"""Video decoding and frame sampling.

One sequential decode per film through PyAV (no per-frame seeks). Every sampled frame carries
its presentation time in seconds, taken from the stream's PTS relative to the stream start, so
the time we print is the time a player shows, also for variable-frame-rate files. Rotation
metadata is applied to the pixels. Samplers decide which decoded frames to keep; they share
one small interface so new strategies plug in without touching the decoder.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import av
import numpy as np
from PIL import Image

from clip_search.errors import VideoError
from clip_search.timecode import parse_time

SAMPLING_MODES = ("fps", "every", "shots")


@dataclass(frozen=True)
class SamplingSettings:
    """How frames are chosen: ``fps`` (N per second), ``every`` frame, or ``shots``-aware."""

    mode: str = "fps"
    fps: float = 1.0
    shot_threshold: float = 27.0  # PySceneDetect ContentDetector default
    shot_max_gap: float = 10.0  # long shots get one frame per this many seconds

    def __post_init__(self) -> None:
        if self.mode not in SAMPLING_MODES:
            raise ValueError(f"sampling mode must be one of {SAMPLING_MODES}, not {self.mode!r}")
        if self.mode == "fps" and not (self.fps > 0 and math.isfinite(self.fps)):
            raise ValueError(f"--fps must be a positive number, not {self.fps}")

    @classmethod
    def from_key(cls, key: dict) -> SamplingSettings:
        """The settings a manifest stored with :meth:`key` (unknown fields are ignored)."""
        if not isinstance(key, dict):
            raise ValueError(f"sampling must be a JSON object, not {type(key).__name__}")
        known = {"mode", "fps", "shot_threshold", "shot_max_gap"}
        return cls(**{k: v for k, v in key.items() if k in known})

    def key(self) -> dict:
        """The settings that change the result (what a cached index is compared on)."""
        if self.mode == "fps":
            return {"mode": "fps", "fps": self.fps}
        if self.mode == "shots":
            return {k: v for k, v in asdict(self).items() if k != "fps"}
        return {"mode": "every"}

    def describe(self) -> str:
        """A short human label, e.g. '1 fps', 'every frame', 'shots'."""
        if self.mode == "fps":
            return f"{self.fps:g} fps"
        return "every frame" if self.mode == "every" else "shot-aware"


@dataclass(frozen=True)
class VideoInfo:
    """What a player would tell you about the video stream."""

    path: str
    duration: float
    width: int
    height: int
    fps: float
    rotation: int
    codec: str

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) after rotation."""
        if self.rotation % 180:
            return self.height, self.width
        return self.width, self.height


@dataclass
class DecodedFrame:
    """A decoded frame; pixels are converted lazily so samplers only pay for frames they keep."""

    time: float
    index: int
    _frame: av.VideoFrame
    _rotation: int

    def rgb(self) -> np.ndarray:
        """The frame as an (H, W, 3) uint8 RGB array, rotation applied."""
        return _rotate(self._frame.to_ndarray(format="rgb24"), self._rotation)

    def small_bgr(self, width: int = 256) -> np.ndarray:
        """A downscaled BGR copy for shot detection (cheap: scaled inside swscale)."""
        f = self._frame
        height = max(2, round(f.height * width / f.width / 2) * 2)
        return _rotate(f.reformat(width=width, height=height, format="bgr24").to_ndarray(), self._rotation)

    def small(self, width: int) -> np.ndarray:
        """An RGB copy ``width`` pixels wide once rotated, scaled inside swscale (area-averaged)."""
        f = self._frame
        turned = self._rotation % 180 != 0
        src_w, src_h = (f.height, f.width) if turned else (f.width, f.height)
        height = max(1, round(src_h * width / src_w))
        w, h = (height, width) if turned else (width, height)
        scaled = f.reformat(width=w, height=h, format="rgb24", interpolation="AREA")
        return _rotate(scaled.to_ndarray(), self._rotation)


class SampledFrame:
    """A frame that was kept: its true time and its RGB pixels.

    Made from a decoded frame, the pixels are converted on first use of ``image`` (on whichever
    thread asks: the indexer's preparing thread, not the decoder's), and ``small`` scales the
    decoded picture itself, so a thumbnail never needs the full-size RGB frame."""

    __slots__ = ("_decoded", "_image", "time")

    def __init__(self, time: float, image: np.ndarray | None = None, decoded: DecodedFrame | None = None) -> None:
        self.time, self._image, self._decoded = time, image, decoded

    @property
    def image(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB, rotation applied."""
        if self._image is None:
            self._image = self._decoded.rgb()
        return self._image

    def small(self, width: int) -> np.ndarray:
        """An RGB copy ``width`` pixels wide (for thumbnails, not for the models): scaled in
        swscale from the decoded picture, else ``scale_rgb`` of the pixels."""
        return self._decoded.small(width) if self._decoded is not None else scale_rgb(self._image, width)


def scale_rgb(rgb: np.ndarray, width: int) -> np.ndarray:
    """An RGB array ``width`` pixels wide, its aspect kept (PIL, bilinear)."""
    img = Image.fromarray(rgb)
    height = max(1, round(img.height * width / img.width))
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR))


def _rotate(img: np.ndarray, rotation: int) -> np.ndarray:
    # PyAV reports the display matrix rotation in degrees counter-clockwise.
    turns = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(img, k=turns)) if turns else img


def _open(path: str | os.PathLike) -> av.container.InputContainer:
    p = Path(path)
    name = p.name
    if not p.exists():
        raise VideoError(f"{name}: file not found ({p})")
    if p.is_dir():
        raise VideoError(f"{name}: is a folder, not a video file")
    if p.stat().st_size == 0:
        raise VideoError(f"{name}: file is empty (0 bytes)")
    try:
        container = av.open(str(p))
    except av.error.FFmpegError as e:
        if _looks_like_video_container(p):
            raise VideoError(f"{name}: file is truncated or damaged ({_reason(e)})") from None
        raise VideoError(f"{name}: not a video FFmpeg can read ({_reason(e)})") from None
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        container.close()
        raise VideoError(f"{name}: has no video stream (only {', '.join(kinds)})")
    return container


def _looks_like_video_container(p: Path) -> bool:
    """The first bytes of an MP4/MOV ('ftyp' box) or Matroska/WebM (EBML) file."""
    with open(p, "rb") as f:
        head = f.read(12)
    return head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3"


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e).split(":")[0] or type(e).__name__


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read a video's header (and its first frame, for rotation); raise VideoError if unusable."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rotation = 0
        try:
            for frame in container.decode(stream):
                rotation = int(frame.rotation or 0)
                break
            else:
                raise VideoError(f"{Path(path).name}: no decodable video frames")
        except av.error.FFmpegError as e:
            raise VideoError(f"{Path(path).name}: video stream cannot be decoded ({_reason(e)})") from None
        return VideoInfo(
            path=str(path),
            duration=_duration(container, stream),
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=float(stream.guessed_rate or stream.average_rate or 0) or 0.0,
            rotation=rotation % 360,
            codec=stream.codec_context.name,
        )
    finally:
        container.close()


def _stream_duration(stream: av.video.stream.VideoStream) -> float | None:
    """The video stream's own length: from its header, or Matroska's per-stream DURATION tag."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION")
    if tag:
        try:
            return parse_time(tag)
        except ValueError:
            return None
    return None


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    own = _stream_duration(stream)
    if own:
        return own
    if container.duration:
        return container.duration / av.time_base
    return 0.0


class Sampler(Protocol):
    """Decides which decoded frames to keep. ``offer`` sees every frame in order; ``finish``
    flushes what a sampler held back (shot-aware sampling keeps a shot's frames until it ends)."""

    def offer(self, frame: DecodedFrame) -> list[SampledFrame]: ...
    def finish(self) -> list[SampledFrame]: ...


class FpsSampler:
    """Keep the first frame at or after each point of a fixed time grid (k / fps seconds).

    The grid is absolute, so the kept frames depend only on the film, never on where a
    (resumed) decode started."""

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self.next_time = 0.0

    def wants(self, t: float) -> bool:
        """Whether the frame at ``t`` (frames offered in presentation order) is kept; advances the grid."""
        if t + 1e-6 < self.next_time:
            return False
        self.next_time = (math.floor(t * self.fps + 1e-6) + 1) / self.fps
        return True

    def offer(self, frame: DecodedFrame) -> list[SampledFrame]:
        return [SampledFrame(frame.time, decoded=frame)] if self.wants(frame.time) else []

    def finish(self) -> list[SampledFrame]:
        return []


class EveryFrameSampler:
    """Keep every decoded frame."""

    def offer(self, frame: DecodedFrame) -> list[SampledFrame]:
        return [SampledFrame(frame.time, decoded=frame)]

    def finish(self) -> list[SampledFrame]:
        return []


class ShotSampler:
    """One frame from the middle of each shot (PySceneDetect's ContentDetector finds the cuts),
    plus one per ``max_gap`` seconds inside long shots.

    Candidates are held at 2 per second for the current shot only, and a long shot is flushed
    every ``max_gap`` seconds, so memory stays bounded whatever the film's length."""

    CANDIDATE_STEP = 0.5

    def __init__(self, threshold: float, max_gap: float, fps: float = 24.0) -> None:
        from scenedetect import ContentDetector  # PySceneDetect loads only for shot-aware sampling
        from scenedetect.common import FrameTimecode  # PySceneDetect loads only for shot-aware sampling

        self._timecode = FrameTimecode
        self.detector = ContentDetector(threshold=threshold, min_scene_len=8)
        self.fps = fps
        self.max_gap = max_gap
        self.candidates: list[SampledFrame] = []
        self.last_candidate_time = -math.inf

    def offer(self, frame: DecodedFrame) -> list[SampledFrame]:
        cuts = self.detector.process_frame(self._timecode(frame.index, fps=self.fps), frame.small_bgr())
        out: list[SampledFrame] = []
        if (cuts and self.candidates) or (self.candidates and frame.time - self.candidates[0].time >= self.max_gap):
            out.append(self._middle())
            self.candidates = []
        if not self.candidates or frame.time - self.last_candidate_time >= self.CANDIDATE_STEP:
            self.candidates.append(SampledFrame(frame.time, frame.rgb()))
            self.last_candidate_time = frame.time
        return out

    def _middle(self) -> SampledFrame:
        return self.candidates[len(self.candidates) // 2]

    def finish(self) -> list[SampledFrame]:
        return [self._middle()] if self.candidates else []


def make_sampler(settings: SamplingSettings, stream_fps: float = 24.0) -> Sampler:
    """The sampler for these settings (``stream_fps`` sets shot detection's frame clock)."""
    if settings.mode == "fps":
        return FpsSampler(settings.fps)
    if settings.mode == "every":
        return EveryFrameSampler()
    return ShotSampler(settings.shot_threshold, settings.shot_max_gap, stream_fps)


REORDER_SPAN = 2.0  # seconds: decode order never strays further than this from presentation order


def _seek_for_resume(container, stream, settings: SamplingSettings, start_after: float | None) -> bool:
    """Seek to the keyframe before ``start_after`` where that is safe; whether it seeked.

    Shot detection needs the frames before, and a raw elementary stream (.h264, .hevc) has no
    timestamps to seek by, so those decode from the start and only drop the output."""
    if start_after is None or settings.mode == "shots" or start_after <= 1.0 or stream.start_time is None:
        return False
    if "mpegts" in container.format.name:  # its timestamps may start again mid-file: a time names no one place
        return False
    container.seek(int((start_after - 1.0) / stream.time_base) + stream.start_time, stream=stream, backward=True)
    return True


def _resumed_grid(settings: SamplingSettings, start_after: float) -> float:
    """The fps grid's next point after ``start_after`` (the sampler's state where a resume begins)."""
    return (math.floor(start_after * settings.fps + 1e-6) + 1) / settings.fps


def _time_of(pts: int, stream) -> float:
    return max(0.0, float((pts - (stream.start_time or 0)) * stream.time_base))


@dataclass
class _Plan:
    """Which packets an fps-sampled decode needs: ``wanted`` (the PTS of the frames the sampler
    keeps) and ``dropped`` (the PTS of packets never sent to the decoder at all)."""

    wanted: set[int]
    dropped: set[int]


def _decode_plan(
    path: str | os.PathLike, settings: SamplingSettings, start_after: float | None, until: float | None
) -> _Plan | None:
    """What to decode, read from the packets alone (no decoding).

    The sampler keeps the first frame at or after each grid point in presentation order, so the
    packets' timestamps, sorted, decide the wanted frames exactly; ``iter_frames`` then decodes
    those frames and the references they need, and lets the decoder drop the other non-reference
    frames. Beyond that, the packets of a GOP after its last wanted one (in decode order) are
    dropped when the next keyframe starts a closed GOP (``_closed``): nothing from there on is
    predicted from them. None where this does not apply (other samplers, streams without
    timestamps)."""
    if settings.mode != "fps":
        return None
    container = _open(path)
    try:
        stream = container.streams.video[0]
        if stream.start_time is None:
            return None
        grid = FpsSampler(settings.fps)
        if _seek_for_resume(container, stream, settings, start_after):
            grid.next_time = _resumed_grid(settings, start_after)
        order: list[int] = []  # PTS in decode order
        gop_starts: list[int] = []  # where in ``order`` each closed GOP begins
        prefix = _length_prefix(stream)
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            if order and _time_of(packet.pts, stream) < _time_of(order[-1], stream) - REORDER_SPAN:
                return None  # timestamps start again (joined MPEG-TS files): PTS name no frame alone
            if packet.is_keyframe and _closed(packet, stream.codec_context.name, prefix):
                gop_starts.append(len(order))
            order.append(packet.pts)
            if until is not None and _time_of(packet.pts, stream) > until + REORDER_SPAN:
                break
        # while the container is open: a closed stream's time_base reads freed memory (None or garbage)
        wanted = {p for p in sorted(order) if grid.wants(_time_of(p, stream))}
        dropped: set[int] = set()
        for a, b in itertools.pairwise(gop_starts):  # a GOP followed by a closed one
            needed = [i for i in range(a, b) if order[i] in wanted]
            dropped.update(order[(needed[-1] + 1 if needed else a) : b])  # after its last wanted packet
        return _Plan(wanted, dropped)
    except av.error.FFmpegError:
        return None  # the decoding pass says what is wrong with the file
    finally:
        container.close()


def _length_prefix(stream) -> int:
    """Bytes of the NAL length prefix of an MP4/Matroska H.264 or HEVC stream (0: Annex B start codes)."""
    extra = stream.codec_context.extradata or b""
    name = stream.codec_context.name
    if name == "h264" and len(extra) > 4 and extra[0] == 1:
        return (extra[4] & 3) + 1
    if name == "hevc" and len(extra) > 21 and extra[0] == 1:
        return (extra[21] & 3) + 1
    return 0


def _closed(packet, codec: str, prefix: int) -> bool:
    """Whether this keyframe starts a closed GOP: no later frame is predicted from an earlier one.
    True for an H.264 IDR, an HEVC IDR, a VP8/VP9 keyframe; False where unsure (open-GOP I-frames,
    HEVC CRA, other codecs), which only costs decoding."""
    if codec in ("vp8", "vp9"):
        return True  # a keyframe resets every reference
    if codec not in ("h264", "hevc"):
        return False
    data = bytes(packet)
    idr = (lambda b: (b & 0x1F) == 5) if codec == "h264" else (lambda b: (b >> 1) & 0x3F in (19, 20))
    return any(idr(data[i]) for i in _nal_starts(data, prefix))


def _nal_starts(data: bytes, prefix: int) -> Iterator[int]:
    """Offsets of the NAL unit headers in a packet (length-prefixed, or Annex B start codes)."""
    if prefix:
        i = 0
        while i + prefix < len(data):
            yield i + prefix
            i += prefix + int.from_bytes(data[i : i + prefix], "big")
        return
    i = data.find(b"\x00\x00\x01")
    while 0 <= i < len(data) - 3:
        yield i + 3
        i = data.find(b"\x00\x00\x01", i + 3)


def iter_frames(
    path: str | os.PathLike,
    settings: SamplingSettings,
    start_after: float | None = None,
    on_decoded: Callable[[float], None] | None = None,
    until: float | None = None,
) -> Iterator[SampledFrame]:
    """Decode ``path`` once, in order, and yield the sampled frames with their PTS times.

    Sampling at a fixed fps decodes only what it needs: every frame the sampler keeps, and the
    reference frames they are predicted from; the decoder skips the other non-reference frames
    (FFmpeg's ``skip_frame``) and never sees a GOP's frames after its last wanted one when a
    closed GOP follows, so the kept frames, their pixels and their times are exactly those of a
    full decode, at about half the decoding work on typical H.264/HEVC films.
    ``start_after``: skip frames at or before this time (resuming an interrupted index). For
    grid samplers the decoder seeks once to the keyframe before it.
    ``until``: stop at the first frame after this time (one segment of a film).
    ``on_decoded`` is called with each decoded frame's time (progress reporting).
    Raises VideoError for unreadable, undecodable or truncated files."""
    name = Path(path).name
    plan = _decode_plan(path, settings, start_after, until)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame/slice threads inside FFmpeg
        codec = stream.codec_context
        duration = _duration(container, stream)
        rate = float(stream.guessed_rate or stream.average_rate or 0)
        sampler = make_sampler(settings, rate or 24.0)
        # A raw elementary stream (.h264, .hevc) has no timestamps: frames are timed by their
        # decode order and the stream's rate.
        untimed = stream.start_time is None
        if _seek_for_resume(container, stream, settings, start_after) and isinstance(sampler, FpsSampler):
            sampler.next_time = _resumed_grid(settings, start_after)
        index = 0
        last_time = -1.0
        rotation = None
        raw_last, shift = None, 0.0
        try:
            for frame in _decode(container, stream, codec, plan):
                if frame.pts is not None and not untimed:
                    t = _time_of(frame.pts, stream)  # the very arithmetic that chose the wanted frames
                    if raw_last is not None and t < raw_last - REORDER_SPAN:
                        # a timestamp discontinuity (MPEG-TS files joined, a broadcast's counter reset):
                        # the film goes on, so its times go on, one frame after the last one
                        shift = last_time + 1.0 / (rate or 24.0) - t
                    raw_last = t
                    t += shift
                elif rate:
                    t = index / rate
                else:
                    continue
                if until is not None and t > until:
                    break
                if rotation is None:
                    rotation = int(frame.rotation or 0) % 360
                if on_decoded:
                    on_decoded(t)
                last_time = t
                for kept in sampler.offer(DecodedFrame(t, index, frame, rotation)):
                    if start_after is None or kept.time > start_after + 1e-6:
                        yield kept
                index += 1
        except av.error.FFmpegError as e:
            raise VideoError(f"{name}: decoding failed after {max(last_time, 0):.1f} s ({_reason(e)})") from None
        for kept in sampler.finish():
            if start_after is None or kept.time > start_after + 1e-6:
                yield kept
        if index == 0 and start_after is None:
            raise VideoError(f"{name}: no decodable video frames")
        # The header's duration may include other streams (subtitles, audio) that run a little
        # longer than the picture, so only a clear shortfall counts as truncation.
        slack = max(1.0, 0.01 * duration) if _stream_duration(stream) else max(3.0, 0.02 * duration)
        if until is None and duration > 0 and last_time >= 0 and last_time + slack < duration:
            raise VideoError(f"{name}: file is truncated: video stops at {last_time:.1f} s of {duration:.1f} s")
    finally:
        container.close()


def _decode(container, stream, codec, plan: _Plan | None) -> Iterator[av.VideoFrame]:
    """The stream's frames in presentation order; with a ``plan``, a packet it drops is never
    decoded, and one whose frame is not wanted is decoded only if other frames are predicted
    from it (a reference frame)."""
    if plan is None:
        yield from container.decode(stream)
        return
    for packet in container.demux(stream):
        if packet.pts in plan.dropped:  # (None never is)
            continue
        codec.skip_frame = "DEFAULT" if packet.pts is None or packet.pts in plan.wanted else "NONREF"
        yield from packet.decode()


def frame_at(path: str | os.PathLike, t: float) -> np.ndarray:
    """The RGB frame shown at time ``t`` (seconds), decoded on demand (one seek, a few frames)."""
    for fr in iter_frames(path, SamplingSettings(mode="every"), start_after=max(0.0, t - 0.002) if t > 0 else None):
        return fr.image
    raise VideoError(f"{Path(path).name}: no frame at {t:.2f} s")

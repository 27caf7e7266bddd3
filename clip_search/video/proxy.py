"""Browser-playable proxies: an H.264/AAC MP4 of a film a browser cannot play (HEVC, MKV, ProRes,
MPEG-2, AVI, ...), made with the libx264 PyAV ships, so no new system dependency.

A hit plays within seconds whatever the film's length: ``ensure_window`` makes only what is about
to be watched, a short excerpt from just before the hit (``WINDOW`` seconds, or the whole moment),
seeking to the keyframe before it and encoding at ``ultrafast``; the whole film's proxy is made in
the background and, once there, is what plays. An excerpt starts at ``start`` of the source: the
player seeks to ``hit - start`` in it, so the hit's frame is the source's frame at the hit.

A proxy is made once per film content (``library/proxies/<fingerprint>.mp4``) under a lock, into a
temporary file renamed into place, so a reader sees no proxy or a whole one, never half a file.
Frames keep their presentation times, so the player seeks a proxy to a hit's time exactly as it
would the source. At most 720 lines (``HEIGHT``), CRF 26: measured, 7.8 MB for the 62 s Popeye p1
(1440x1074 HEVC animation), so about 7.5 MB per film-minute of such footage."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

from clip_search.errors import VideoError
from clip_search.store.library import Film, Library
from clip_search.store.locks import film_lock

PLAYABLE_CONTAINERS = {"mp4", "mov", "webm", "m4v"}
PLAYABLE_VIDEO = {"h264", "vp8", "vp9", "av1"}
PLAYABLE_AUDIO = {"aac", "mp3", "opus", "vorbis", "flac"}
HEIGHT = 720
CRF = "26"
WINDOW = 20.0  # seconds of an excerpt made for a play (measured: a 10 s excerpt of 1440x1074 HEVC in 1.5 s)
LEAD = 2.0  # seconds of an excerpt before the hit, so the hit is not its very first frame
WINDOW_HEIGHT = 480  # lines of an excerpt: made at once, watched beside the results
MAX_WINDOW = 120.0  # a long moment's excerpt is cut here
WINDOWS_KEPT = 12  # excerpts kept per film (the oldest go)


def _excerpts(library: Library, film: Film) -> Path:
    return library.root / "proxies" / "excerpts" / film.manifest.fingerprint.replace(":", "-")


def needs_proxy(source: str | os.PathLike) -> bool:
    """Whether browsers cannot play ``source`` as it is (its container or a codec)."""
    path = Path(source)
    if path.suffix.lower().lstrip(".") not in PLAYABLE_CONTAINERS:
        return True
    try:
        st = path.stat()
    except OSError:
        return False  # gone: the player says so itself
    video, audio = _codecs(str(path), st.st_size, st.st_mtime_ns)
    return any(v not in PLAYABLE_VIDEO for v in video) or any(a not in PLAYABLE_AUDIO for a in audio)


@lru_cache(maxsize=256)
def _codecs(path: str, size: int, mtime_ns: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A file's video and audio codec names, probed once per file version (the player asks on every
    rerun while a film plays)."""
    import av  # PyAV loads only when a video is read

    try:
        with av.open(path) as c:
            return tuple(s.codec_context.name for s in c.streams.video), tuple(
                s.codec_context.name for s in c.streams.audio
            )
    except (av.FFmpegError, OSError):
        return (), ()  # unreadable: the player says so itself


def proxy_path(library: Library, film: Film) -> Path:
    """Where ``film``'s proxy lives (by content: two copies of one film share it)."""
    return library.root / "proxies" / f"{film.manifest.fingerprint.replace(':', '-')}.mp4"


def playable(library: Library, film: Film) -> Path | None:
    """What the player should play: the source when browsers can, else its proxy if made (None:
    not made yet)."""
    source = Path(film.manifest.source)
    if not needs_proxy(source):
        return source
    proxy = proxy_path(library, film)
    return proxy if proxy.is_file() else None


def ensure_proxy(library: Library, film: Film, progress: Callable[[float], None] | None = None) -> Path:
    """The film's proxy, made now if missing (under its lock: two sessions make it once)."""
    target = proxy_path(library, film)
    with film_lock(library, f"proxy-{target.stem}", busy=f"{film.name}'s playable copy is being made"):
        if not target.is_file():
            make_proxy(film.manifest.source, target, progress, film.manifest.duration)
    return target


_making: set[Path] = set()  # proxies this process is making in the background
_making_lock = threading.Lock()


def proxy_in_background(library: Library, film: Film) -> bool:
    """Start making the film's whole proxy on a background thread (once per process and film; two
    processes make it once, under its lock); True when it is being made, False when it exists."""
    target = proxy_path(library, film)
    if target.is_file():
        return False
    with _making_lock:
        if target in _making:
            return True
        _making.add(target)

    def make() -> None:
        try:
            ensure_proxy(library, film)
        except (VideoError, OSError):  # a play still has its excerpts; the next play tries again
            pass
        finally:
            with _making_lock:
                _making.discard(target)

    threading.Thread(target=make, name=f"proxy-{film.name}", daemon=True).start()
    return True


def ensure_window(library: Library, film: Film, t: float, end: float | None = None) -> tuple[Path, float]:
    """A playable excerpt of ``film`` around time ``t`` (to ``end`` for a moment) and the source time
    it starts at: made now in a few seconds if not kept already, under the film's excerpt lock."""
    start = max(0.0, float(t) - LEAD)
    length = min(MAX_WINDOW, max(WINDOW, (float(end) - start + 1.0) if end else 0.0))
    folder = _excerpts(library, film)
    target = folder / f"{round(start * 1000)}-{int(length)}.mp4"
    with film_lock(library, f"excerpt-{folder.name}", busy=f"{film.name}'s excerpt is being made"):
        if not target.is_file():
            make_proxy(film.manifest.source, target, start=start, max_seconds=start + length, excerpt=True)
            for old in sorted(folder.glob("*.mp4"), key=lambda p: p.stat().st_mtime)[:-WINDOWS_KEPT]:
                old.unlink(missing_ok=True)
    return target, start


def make_proxy(
    source: str | os.PathLike,
    target: Path,
    progress: Callable[[float], None] | None = None,
    duration: float = 0.0,
    max_seconds: float | None = None,
    start: float = 0.0,
    excerpt: bool = False,
) -> Path:
    """Transcode ``source`` to an H.264 (and AAC, if it has sound) MP4 at ``target``, atomically:
    the source's times from ``start`` (seeking to the keyframe before it) to ``max_seconds``, at
    time 0 of the file from ``start``; ``excerpt``: smaller and at once (``WINDOW_HEIGHT`` lines,
    libx264 ``ultrafast``), for a play that should start now. Raises VideoError naming the file."""
    import av  # PyAV loads only when a video is read

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp.mp4")
    try:
        faststart = {"movflags": "faststart"}  # the index first: a browser plays before the whole file arrives
        with av.open(str(source)) as src, av.open(str(tmp), "w", format="mp4", options=faststart) as dst:
            _transcode(src, dst, progress, duration, max_seconds, start, excerpt)
        os.replace(tmp, target)
    except (av.FFmpegError, OSError, ValueError) as e:
        tmp.unlink(missing_ok=True)
        raise VideoError(f"{Path(source).name}: no playable copy could be made ({e})") from None
    return target


def _transcode(
    src, dst, progress, duration: float, max_seconds: float | None, start: float = 0.0, excerpt: bool = False
) -> None:
    import av  # PyAV loads only when a video is read

    vin = src.streams.video[0]
    vin.thread_type = "AUTO"
    rate = vin.average_rate or Fraction(24)
    width, height = vin.codec_context.width, vin.codec_context.height
    scale = min(1.0, (WINDOW_HEIGHT if excerpt else HEIGHT) / height)
    w, h = max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)
    preset = {"crf": "28", "preset": "ultrafast"} if excerpt else {"crf": CRF, "preset": "veryfast"}
    vout = dst.add_stream("libx264", rate=rate, options=preset)
    vout.width, vout.height, vout.pix_fmt = w, h, "yuv420p"
    streams = [vin]
    aout = resampler = None
    if src.streams.audio:
        ain = src.streams.audio[0]
        aout = dst.add_stream("aac", rate=48000)
        aout.layout = "stereo"
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=48000)
        streams.append(ain)
    if start > 0:  # to the keyframe before ``start``; the frames before it are decoded, not written
        src.seek(int(start / vin.time_base), stream=vin, backward=True)
    last = -1
    for packet in src.demux(*streams):
        frames = packet.decode()
        if max_seconds is not None and frames and frames[0].time is not None and frames[0].time > max_seconds:
            break
        for frame in frames:
            t = float(frame.time) if frame.time is not None else 0.0
            if t < start:
                continue
            t -= start
            if isinstance(frame, av.VideoFrame):
                pts = round(t * rate)
                if pts <= last:  # a duplicate or reordered timestamp: dropped, times stay increasing
                    continue
                last = pts
                out = frame.reformat(w, h, "yuv420p")
                out.pts, out.time_base = pts, Fraction(1, 1) / rate
                dst.mux(vout.encode(out))
                if progress and duration:
                    progress(min(1.0, t / duration))
            elif aout is not None:
                frame.pts = None
                for chunk in resampler.resample(frame):
                    dst.mux(aout.encode(chunk))
    dst.mux(vout.encode(None))
    if aout is not None:
        dst.mux(aout.encode(None))

"""Every hit playable: films browsers cannot play get an H.264 MP4 proxy, made once, atomically,
with the source's frame times (so the player's seek lands on the hit)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from clip_search.video.proxy import ensure_proxy, make_proxy, needs_proxy, playable, proxy_path
from tests.conftest import BUNNY, POPEYE1


def _hevc_with_sound(path, seconds: float = 2.0):
    """A short HEVC + MP2 Matroska file (what Chromium refuses), made here with PyAV."""
    with av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream("libx265", rate=25)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        audio = out.add_stream("mp2", rate=48000)
        audio.layout = "stereo"
        for i in range(int(seconds * 25)):
            img = np.full((240, 320, 3), (i * 5) % 255, np.uint8)
            out.mux(video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        samples = np.zeros((2, 1152), np.int16)
        for k in range(int(seconds * 48000 / 1152)):
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = 48000, k * 1152, Fraction(1, 48000)
            out.mux(audio.encode(frame))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return path


def test_what_browsers_cannot_play_is_told_apart():
    assert needs_proxy(POPEYE1)  # HEVC in Matroska
    assert not needs_proxy(BUNNY)  # H.264 in MP4


def test_a_proxy_is_h264_and_aac_with_the_sources_frame_times(tmp_path):
    src = _hevc_with_sound(tmp_path / "clip.mkv")
    out = make_proxy(src, tmp_path / "proxy.mp4")
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.audio[0].codec_context.name == "aac"
        times = [float(f.time) for f in c.decode(video=0)]
    with av.open(str(src)) as c:
        source_times = [float(f.time) for f in c.decode(video=0)]
    assert times == pytest.approx(source_times, abs=0.021)  # seeking to a hit's time lands on its frame
    assert not needs_proxy(out) and not list(tmp_path.glob(".*.tmp.mp4"))


def test_a_failed_proxy_leaves_no_half_file(tmp_path):
    bad = tmp_path / "broken.mkv"
    bad.write_bytes(b"\x1aE\xdf\xa3 not really a film")
    with pytest.raises(Exception, match="no playable copy could be made"):
        make_proxy(bad, tmp_path / "p.mp4")
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*.mp4"))


def test_the_player_plays_an_hevc_film_through_its_proxy_made_once(tmp_path, encoder, monkeypatch):
    import clip_search.video.proxy as proxy
    from clip_search.indexing.indexer import index_film
    from clip_search.store.library import Library

    lib = Library(tmp_path / "lib")
    film = index_film(_hevc_with_sound(tmp_path / "film.mkv"), lib, encoder).film
    assert playable(lib, film) is None  # not made yet
    made = []
    real = proxy.make_proxy
    monkeypatch.setattr(proxy, "make_proxy", lambda *a, **k: made.append(1) or real(*a, **k))
    path = ensure_proxy(lib, film)
    assert path == proxy_path(lib, film) and playable(lib, film) == path
    ensure_proxy(lib, film)
    assert made == [1]  # once per film


def test_a_hit_plays_from_an_excerpt_made_at_once_that_starts_at_the_hit(tmp_path, encoder):
    """What ▶ plays while a film has no whole copy: a short H.264 excerpt from just before the hit,
    made by seeking (not by transcoding the film up to the hit), whose frame at the hit's offset is
    the source's frame at the hit; the whole copy is then made in the background."""
    import time

    import av

    from clip_search.indexing.indexer import index_film
    from clip_search.store.library import Library
    from clip_search.video.decode import frame_at
    from clip_search.video.proxy import LEAD, WINDOW, ensure_window, proxy_in_background

    lib = Library(tmp_path / "lib")
    film = index_film(POPEYE1, lib, encoder).film
    hit = 45.0
    path, start = ensure_window(lib, film, hit)
    assert start == hit - LEAD and playable(lib, film) is None  # the whole copy is not needed to play
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    assert frames[0][0] == 0.0 and frames[-1][0] == pytest.approx(min(WINDOW, film.manifest.duration - start), abs=0.2)
    at_hit = min(frames, key=lambda f: abs(f[0] - (hit - start)))[1]
    source = frame_at(POPEYE1, hit)
    from PIL import Image

    small = np.asarray(Image.fromarray(source).resize(at_hit.shape[1::-1]), np.float32)
    other = np.asarray(Image.fromarray(frame_at(POPEYE1, 5.0)).resize(at_hit.shape[1::-1]), np.float32)
    near = np.abs(small - at_hit).mean()
    assert near < 12 and near < np.abs(other - at_hit).mean() / 2  # the hit's own frame, not another
    assert ensure_window(lib, film, hit) == (path, start)  # kept: a second ▶ makes nothing
    assert proxy_in_background(lib, film)
    for _ in range(600):
        if playable(lib, film) is not None:
            break
        time.sleep(0.5)
    assert playable(lib, film) == proxy_path(lib, film)

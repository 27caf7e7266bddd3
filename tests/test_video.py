"""Decoding and sampling on real films and on small videos with known content."""

from __future__ import annotations

import itertools
import math
import shutil

import av
import numpy as np
import pytest

from clip_search.errors import VideoError
from clip_search.video.decode import SamplingSettings, iter_frames, probe
from clip_search.video.patches import PatchSettings, crop_patches
from tests.conftest import BUNNY, FLOWER, MEDIA, POPEYE1, TEARS, level_frame, write_video


def times(path, **kw):
    return [f.time for f in iter_frames(path, SamplingSettings(**kw))]


@pytest.mark.parametrize(("path", "codec", "frames"), [(BUNNY, "h264", 30), (POPEYE1, "hevc", 60), (TEARS, "vp8", 71)])
def test_reads_h264_hevc_and_vp8_at_one_frame_per_second(path, codec, frames):
    info = probe(path)
    assert info.codec == codec
    t = times(path)
    assert len(t) == frames
    assert t[0] == 0.0
    assert all(b > a for a, b in itertools.pairwise(t))


def test_times_are_pts_not_count_over_fps():
    # flower.mp4 runs at 30000/1001 fps: the frame kept for "second 1" is shown at 1.001 s.
    t = times(FLOWER)
    assert t[:3] == pytest.approx([0.0, 1.001, 2.002], abs=1e-6)


def test_variable_frame_rate_times_come_from_pts(tmp_path):
    pts = [0, 100, 150, 900, 1000, 2500, 2600, 4000]  # milliseconds, irregular
    path = write_video(tmp_path / "vfr.mp4", [level_frame(20 + 25 * i) for i in range(len(pts))], pts=pts)
    every = list(iter_frames(path, SamplingSettings(mode="every")))
    assert [f.time for f in every] == pytest.approx([p / 1000 for p in pts], abs=1e-3)
    # the brightness encodes which source frame this is: frame and time belong together
    assert [round((f.image.mean() - 20) / 25) for f in every] == list(range(len(pts)))
    # 1 fps keeps the first frame at or after 0, 1, 2, 3, 4 s (a count/fps rule would not)
    assert times(path) == pytest.approx([0.0, 1.0, 2.5, 4.0], abs=1e-3)
    assert times(path, fps=2.0) == pytest.approx([0.0, 0.9, 1.0, 2.5, 4.0], abs=1e-3)


def test_rotation_metadata_is_applied(tmp_path):
    img = np.zeros((48, 64, 3), np.uint8)
    img[:12, :12] = (255, 0, 0)  # red mark in the top-left corner
    path = write_video(tmp_path / "rot.mp4", [img] * 5, rotation=90)
    assert probe(path).rotation == 90
    assert probe(path).display_size == (48, 64)
    frame = next(iter(iter_frames(path, SamplingSettings())))
    assert frame.image.shape == (64, 48, 3)
    # 90 degrees counter-clockwise (FFmpeg's autorotate shows the same): top-left -> bottom-left
    assert frame.image[-4, 4, 0] > 200 and frame.image[-4, 4, 1] < 80
    assert frame.image[4, 4, 0] < 80


def test_shot_aware_sampling_takes_a_frame_from_each_shot(tmp_path):
    rng = np.random.default_rng(0)
    colours = [(220, 40, 40), (20, 90, 20), (60, 120, 250)]  # hue and brightness both jump
    frames = []
    for c in colours:  # three 2-second shots with a little noise
        for _ in range(48):
            frames.append(np.clip(np.array(c) + rng.integers(-5, 5, (96, 128, 3)), 0, 255).astype(np.uint8))
    path = write_video(tmp_path / "shots.mp4", frames)
    shots = list(iter_frames(path, SamplingSettings(mode="shots")))
    assert len(shots) == 3
    for f, c in zip(shots, colours, strict=True):
        assert np.argmax(f.image.reshape(-1, 3).mean(0)) == np.argmax(c)
    assert [math.floor(f.time / 2) for f in shots] == [0, 1, 2]  # one inside each shot


def test_shot_sampling_splits_long_shots(tmp_path):
    path = write_video(tmp_path / "long.mp4", [level_frame(128)] * (24 * 25))  # one 25 s shot
    t = times(path, mode="shots", shot_max_gap=10.0)
    assert len(t) == 3 and t == sorted(t)


def test_every_frame_mode_keeps_all_frames():
    assert len(times(BUNNY, mode="every")) == 720


def test_start_after_resumes_on_the_same_grid():
    full = times(TEARS)
    assert [f.time for f in iter_frames(TEARS, SamplingSettings(), start_after=full[40])] == full[41:]


def _full_decode(path, fps: float, after: float = -1.0, until: float = math.inf) -> list[tuple[float, np.ndarray]]:
    """The reference: every frame decoded (no skipping), timed by its own PTS, the fps grid
    applied in presentation order: what sampling picked before decoding learned to skip."""
    kept, next_time = [], 0.0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        for f in c.decode(s):
            t = max(0.0, float((f.pts - (s.start_time or 0)) * s.time_base))
            if t + 1e-6 >= next_time:
                next_time = (math.floor(t * fps + 1e-6) + 1) / fps
                if after + 1e-6 < t <= until:
                    kept.append((t, f.to_ndarray(format="rgb24")))
    return kept


@pytest.mark.parametrize(
    ("path", "resume", "until"), [(BUNNY, None, None), (POPEYE1, None, None), (BUNNY, 12.3, None), (BUNNY, 5.0, 17.5)]
)
def test_fps_sampling_skips_frames_it_does_not_need_yet_keeps_the_very_same_frames(path, resume, until):
    decoded: list[float] = []
    kw = {"start_after": resume, "until": until, "on_decoded": decoded.append}  # resume; a Ray segment
    got = list(iter_frames(path, SamplingSettings(fps=1.0), **kw))
    want = _full_decode(path, 1.0, after=-1.0 if resume is None else resume, until=until or math.inf)
    assert [f.time for f in got] == [t for t, _ in want]  # true PTS of the frames encoded
    assert all(np.array_equal(f.image, img) for f, (_, img) in zip(got, want, strict=True))
    with av.open(str(path)) as c:
        packets = sum(1 for p in c.demux(c.streams.video[0]) if p.size)
    # the decoder skipped non-reference frames no sample needs (B-frames in these H.264/HEVC films)
    assert len(decoded) < (0.9 if resume is None else 0.6) * packets


@pytest.mark.parametrize("gop", ["closed", "open"])
def test_fps_sampling_leaves_out_the_ends_of_closed_gops_and_still_keeps_the_very_same_frames(tmp_path, gop):
    """Short GOPs (x264, 12 frames, B-frames): after a GOP's last sampled frame nothing is decoded
    up to the next IDR frame; an open GOP's I-frame is no such boundary (later frames may be
    predicted across it), so there only non-reference frames are skipped."""
    rng = np.random.default_rng(0)
    frames = [
        np.clip(level_frame(20 + i) + rng.integers(0, 30, (48, 64, 3)), 0, 255).astype(np.uint8) for i in range(96)
    ]
    params = "keyint=12:min-keyint=12:scenecut=0:bframes=2" + (":open-gop=1" if gop == "open" else "")
    path = write_video(tmp_path / f"{gop}.mp4", frames, options={"x264-params": params})
    decoded: list[float] = []
    got = list(iter_frames(path, SamplingSettings(fps=1.0), on_decoded=decoded.append))
    want = _full_decode(path, 1.0)
    assert [f.time for f in got] == [t for t, _ in want] == [0.0, 1.0, 2.0, 3.0]
    assert all(np.array_equal(f.image, img) for f, (_, img) in zip(got, want, strict=True))
    if gop == "closed":  # each sampled frame starts its GOP: the rest of it is never decoded (but
        # the last GOP's: no IDR frame follows it)
        assert [t for t in decoded if t < 3.5] == [0.0, 1.0, 2.0, 3.0]
    else:
        assert len(decoded) > 30


def test_a_short_gop_film_decodes_a_fraction_of_its_frames():
    # one-by-one-person-detection.mp4: a keyframe every second, at 10 fps; sampled at 1 fps
    path = MEDIA / "intel" / "one-by-one-person-detection.mp4"
    decoded: list[float] = []
    got = list(iter_frames(path, SamplingSettings(fps=1.0), on_decoded=decoded.append))
    want = _full_decode(path, 1.0)
    assert [f.time for f in got] == [t for t, _ in want]
    assert all(np.array_equal(f.image, img) for f, (_, img) in zip(got, want, strict=True))
    assert len(decoded) < 0.2 * 1394


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("this is not a video\n" * 100), "not a video"),
        (lambda p: p.write_bytes(BUNNY.read_bytes()[: BUNNY.stat().st_size // 2]), "truncated"),
    ],
    ids=["zero-bytes", "text-file", "truncated"],
)
def test_bad_files_raise_a_one_line_error_naming_the_file(tmp_path, make, reason):
    path = tmp_path / "bad-film.mp4"
    make(path)
    with pytest.raises(VideoError) as err:
        probe(path)
        list(iter_frames(path, SamplingSettings()))
    msg = str(err.value)
    assert msg.startswith("bad-film.mp4: ") and "\n" not in msg
    assert reason in msg


def test_audio_only_file_is_refused(tmp_path):
    path = tmp_path / "song.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(VideoError, match=r"song.m4a: has no video stream \(only audio\)"):
        probe(path)


def test_truncated_mkv_is_detected(tmp_path):
    path = tmp_path / "cut.mkv"
    shutil.copy(POPEYE1, path)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.raises(VideoError, match="cut.mkv: file is truncated"):
        list(iter_frames(path, SamplingSettings()))


def test_patches_cover_the_whole_frame():
    img = np.zeros((480, 854, 3), np.uint8)
    settings = PatchSettings()
    boxes = settings.boxes(854, 480)
    covered = np.zeros((480, 854), bool)
    for left, top, right, bottom in boxes:
        assert right - left == bottom - top  # square
        covered[top:bottom, left:right] = True
    assert covered.all()
    assert len(crop_patches(img, settings)) == len(boxes) == settings.count(854, 480)

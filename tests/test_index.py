"""The library: cache reuse, re-indexing on change, atomic writes and resume after a kill."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from clip_search.cli import main
from clip_search.indexing.indexer import THUMB_WIDTH, IndexOptions, frame_thumbnail, index_film, make_thumbnail
from clip_search.store.library import Library
from clip_search.video.decode import SamplingSettings, iter_frames
from clip_search.video.patches import PatchSettings
from tests.conftest import BUNNY, FLOWER, TEARS, write_video


class CountingEncoder:
    """The real encoder, counting how many frames reach the model."""

    def __init__(self, encoder) -> None:
        self._enc, self.frames = encoder, 0

    def __getattr__(self, name):
        return getattr(self._enc, name)

    def encode_prepared(self, batch):
        self.frames += len(batch)
        return self._enc.encode_prepared(batch)


def test_index_stores_vectors_times_thumbnails_and_manifest(tmp_path, encoder):
    lib = Library(tmp_path)
    film = index_film(BUNNY, lib, encoder).film
    m = json.loads((film.dir / "manifest.json").read_text())  # readable without the app
    assert m["status"] == "complete" and m["frames"] == 30 and m["format_version"] == 2
    assert m["sampling"] == {"mode": "fps", "fps": 1.0} and m["source"] == str(BUNNY.resolve())
    (vs,) = (film.dir / "vectors").iterdir()  # the model's own vector set
    assert json.loads((vs / "vectors.json").read_text())["model"] == encoder.model_id
    emb = np.load(vs / "embeddings.npy")
    assert emb.shape == (30, encoder.dim) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert np.load(film.dir / "times.npy").tolist() == [float(i) for i in range(30)]
    assert film.thumbnail(3)[:2] == b"\xff\xd8"  # JPEG
    assert not list((tmp_path / "staging").glob("*/parts/*"))


@pytest.mark.parametrize("rotation", [None, 90])
def test_thumbnails_scaled_from_the_decoded_picture_show_the_frame_as_a_player_does(tmp_path, rotation):
    """The indexer's thumbnail (scaled inside swscale from the decoded picture) is the frame's own
    picture, turned as the player turns it, THUMB_WIDTH wide, like one scaled from its RGB pixels."""
    img = np.zeros((48, 64, 3), np.uint8)
    img[:24, :32] = (250, 30, 30)  # a red quarter, top left
    path = write_video(tmp_path / "t.mp4", [img] * 30, rotation=rotation)
    fr = next(iter(iter_frames(path, SamplingSettings())))
    fast = np.asarray(Image.open(io.BytesIO(frame_thumbnail(fr))), float)
    slow = np.asarray(Image.open(io.BytesIO(make_thumbnail(fr.image))), float)
    assert fast.shape == slow.shape and fast.shape[1] == THUMB_WIDTH
    assert fast.shape[0] > fast.shape[1] if rotation else fast.shape[0] < fast.shape[1]
    assert np.abs(fast - slow).mean() < 6


def test_reindex_same_settings_does_no_encoding(tmp_path, encoder):
    lib = Library(tmp_path)
    counting = CountingEncoder(encoder)
    first = index_film(FLOWER, lib, counting)
    assert counting.frames == 5 and not first.reused
    again = index_film(FLOWER, lib, counting)
    assert again.reused and counting.frames == 5
    # a changed setting is a different index: encoded again, replacing the old one
    two = index_film(FLOWER, lib, counting, IndexOptions(sampling=SamplingSettings(fps=2.0)))
    assert not two.reused and two.film.manifest.frames == 10 and counting.frames == 15
    assert [f.manifest.frames for f in lib.films()] == [10]


def test_changed_file_is_reindexed_and_films_live_side_by_side(tmp_path, encoder):
    lib = Library(tmp_path / "lib")
    copy = tmp_path / "clip.mp4"
    shutil.copy(FLOWER, copy)
    before = index_film(copy, lib, encoder).film.manifest.fingerprint
    bunny = index_film(BUNNY, lib, encoder).film
    shutil.copy(TEARS, copy)  # same path, content the library does not have
    after = index_film(copy, lib, encoder)
    assert not after.reused and after.film.manifest.fingerprint != before
    assert after.film.manifest.frames == 71
    assert sorted(f.name for f in lib.films()) == ["big-buck-bunny-30s", "clip"]
    shutil.copy(BUNNY, copy)  # same path, content the library has: a film is its content, reused
    again = index_film(copy, lib, encoder)
    assert again.reused and again.film.id == bunny.id and str(copy.resolve()) in again.film.manifest.sources


def test_patch_mode_stores_patch_vectors(tmp_path, encoder):
    lib = Library(tmp_path)
    film = index_film(FLOWER, lib, encoder, IndexOptions(patches=PatchSettings())).film
    ppf = film.manifest.patches_per_frame
    assert ppf == PatchSettings().count(960, 540) > 1
    assert film.patch_embeddings.shape == (5 * ppf, encoder.dim)


def _cli(*args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "clip_search", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.slow
def test_kill_mid_index_then_resume_gives_the_uninterrupted_result(tmp_path, tiny_clip_dir, encoder):
    env = dict(os.environ, FRAMESEARCH_LIBRARY=str(tmp_path / "lib"), FRAMESEARCH_MODEL=str(tiny_clip_dir))
    args = ("index", str(TEARS), "--chunk-frames", "8", "--batch-size", "4", "--fps", "2", "--precision", "fp32")
    proc = _cli(*args, env=env)
    parts = tmp_path / "lib" / "staging"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("*/parts/part-*.npz"))) < 3:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    lib = Library(tmp_path / "lib")
    assert lib.films() == []  # nothing looks complete after a kill
    done = len(list(parts.glob("*/parts/part-*.npz"))) * 8
    assert 0 < done < 141

    out, err = _cli(*args, env=env).communicate()
    assert f"resumed after {done} frames" in out, (out, err)
    resumed = Library(tmp_path / "lib").films()[0]

    options = IndexOptions(sampling=SamplingSettings(fps=2.0))
    straight = index_film(TEARS, Library(tmp_path / "straight"), encoder, options).film
    assert resumed.times.tolist() == straight.times.tolist()
    assert np.allclose(resumed.embeddings, straight.embeddings, atol=1e-5)
    assert not list(parts.iterdir())  # staging cleaned once published


def test_cli_bad_files_are_reported_and_the_rest_indexed(tmp_path, tiny_clip_dir, capsys, monkeypatch):
    monkeypatch.setenv("FRAMESEARCH_MODEL", str(tiny_clip_dir))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mkv"
    text.write_text("not a film")
    lib = tmp_path / "lib"
    code = main(["index", str(empty), str(FLOWER), str(text), str(tmp_path / "missing.webm"), "--library", str(lib)])
    err = capsys.readouterr().err
    assert code == 1
    assert "error: empty.mp4: file is empty (0 bytes)" in err
    assert "error: notes.mkv: not a video FFmpeg can read" in err
    assert "error: missing.webm: file not found" in err
    assert "Traceback" not in err
    assert [f.name for f in Library(lib).films()] == ["flower"]


def test_cli_url_without_network_is_a_clear_error(tmp_path, capsys):
    code = main(["index", "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "--library", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().startswith("error: Could not download https://www.youtube.com/watch?v=dQw4w9WgXcQ: ")
    assert "Traceback" not in err


def test_a_bf16_model_on_a_small_cpu_leaves_the_decoder_a_core_and_gives_it_back(monkeypatch):
    """torch's thread count is the process's: indexing changes it only for a bf16 model on the CPU
    of a small machine, and restores it after, also when a second run in the process overlaps."""
    import torch

    from clip_search.indexing.indexer import CoreSplit

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})  # a 2-core machine
    before = torch.get_num_threads()

    def model(device: str, precision: str) -> SimpleNamespace:
        return SimpleNamespace(device=device, precision=precision)

    with CoreSplit([model("cpu", "bf16")]):
        assert torch.get_num_threads() == 1
        with CoreSplit([model("cpu", "bf16")]):  # a second run meanwhile leaves it alone
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with CoreSplit([model("cpu", "bf16")]):  # the overlapping run is over: a later run splits again
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    for others in ([model("cpu", "fp32")], [model("cuda", "fp16")], [model("cpu", "bf16"), model("cpu", "fp32")]):
        with CoreSplit(others):
            assert torch.get_num_threads() == before


def test_the_split_gives_the_model_every_core_back_when_the_decoder_waits_on_it(monkeypatch):
    """Where a bf16 model is the slower side (a CPU without AMX, a larger model), leaving the
    decoder a core only makes it idle on a full queue: after the first batches the model gets
    every core back; a decoder that keeps the model busy keeps its core. The clock and the
    decoder's waiting seconds are given, as the indexer reads them after each batch."""
    import torch

    from clip_search.indexing.indexer import SPLIT_SETTLE, SPLIT_WATCH, CoreSplit

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    before = torch.get_num_threads()
    bf16 = [SimpleNamespace(device="cpu", precision="bf16")]

    def run(waiting_share: float) -> tuple[list[int], CoreSplit]:
        threads = []
        with CoreSplit(bf16) as split:
            for batch in range(1, SPLIT_SETTLE + SPLIT_WATCH + 3):
                split.watch(blocked=waiting_share * batch, now=float(batch))  # one second a batch
                threads.append(torch.get_num_threads())
        return threads, split

    threads, split = run(0.5)  # the decoder waited half the time: the model is the bottleneck
    assert not split.active  # the model has every core again
    assert threads[: SPLIT_SETTLE + SPLIT_WATCH - 1] == [1] * (SPLIT_SETTLE + SPLIT_WATCH - 1)
    assert threads[SPLIT_SETTLE + SPLIT_WATCH - 1 :] == [before] * 3  # and it stays so
    assert torch.get_num_threads() == before
    threads, split = run(0.05)  # a little slack only: the decoder needs its core
    assert split.active and threads == [1] * len(threads)
    assert torch.get_num_threads() == before


def test_frames_indexed_smaller_are_stored_again_larger_on_the_next_index_without_encoding(tmp_path, encoder):
    """A library indexed when frames were stored 256 px wide: the next ``index`` stores them at
    THUMB_WIDTH from the source (no vector touched), and a reader that opened the film before keeps
    reading whole frames while it happens."""
    import io

    from PIL import Image

    from clip_search.indexing.indexer import thumbnail_width
    from clip_search.store.library import Film, Library, check_record
    from framesearch import app

    lib = Library(tmp_path / "lib")
    (film,) = app.index(lib, [BUNNY], [encoder.model_id], load=lambda m: encoder).films
    small = []
    for i in range(len(film.times)):  # as an older version stored them
        with Image.open(io.BytesIO(film.thumbnail(i))) as im:
            small.append(make_thumbnail(np.asarray(im.convert("RGB")), 256))
    (film.dir / "thumbs.bin").write_bytes(b"".join(small))
    np.save(film.dir / "thumb_offsets.npy", np.concatenate([[0], np.cumsum([len(b) for b in small])]))
    before = Film(film.dir)
    assert thumbnail_width(before) == 256
    vectors = before.vectors().dir / "embeddings.npy"
    stamp = vectors.stat().st_mtime_ns

    def no_model(model):
        raise AssertionError("no model is needed to store frames again")

    app.index(lib, [BUNNY], [encoder.model_id], load=no_model)
    after = Library(lib.root).films()[0]
    assert thumbnail_width(after) == THUMB_WIDTH and vectors.stat().st_mtime_ns == stamp
    check_record(after.dir, deep=True)  # the film is whole
    with Image.open(io.BytesIO(before.thumbnail(len(before.times) - 1))) as im:  # the old offsets: old frames, whole
        assert im.width == 256

"""Distributed indexing on a local 2-worker Ray: the same vectors and times as the single-process
indexer, segments spread over workers, a killed worker's segment retried, a killed driver resumed,
a bad film failing alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import psutil
import pytest

import clip_search.scale.archive as distributed
from clip_search.scale.archive import index_archive, segments_of
from clip_search.store.library import Library, check_film
from clip_search.video.sources import expand_sources
from tests.conftest import BUNNY, FLOWER, TEARS

pytestmark = pytest.mark.slow


@pytest.fixture
def ray_local():
    """The local Ray that index_archive starts, shut down after the test (it holds CPUs)."""
    import ray

    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tears_8fps(tmp_path_factory, encoder):
    """Tears of Steel at 8 fps by the single-process indexer: long enough (564 frames, 8 segments of
    10 s) that a fault can be injected while segments are still arriving."""
    from clip_search.indexing.indexer import IndexOptions, index_film
    from clip_search.video.decode import SamplingSettings

    lib = Library(tmp_path_factory.mktemp("tears-8fps"))
    return index_film(TEARS, lib, encoder, IndexOptions(SamplingSettings(fps=8.0))).film


def _same_as_single_process(film, reference) -> None:
    assert film.times.tolist() == reference.times.tolist()
    cos = np.sum(np.asarray(film.embeddings) * np.asarray(reference.embeddings), axis=1)
    assert cos.min() >= 0.9999
    check_film(film.dir, deep=True)


def test_segments_cover_a_film_without_gaps():
    segs = segments_of("f", "f.mp4", 1500.0, shots=False)
    assert [(s.start, s.end) for s in segs] == [(0.0, 600.0), (600.0, 1200.0), (1200.0, float("inf"))]
    assert len(segments_of("f", "f.mp4", 1500.0, shots=True)) == 1  # shot detection needs the whole film


def test_sources_from_folders_and_list_files(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/one.mp4", "a/b/two.mkv", "a/notes.txt.bak"):
        (tmp_path / name).write_bytes(b"x")
    listing = tmp_path / "films.txt"
    listing.write_text(f"# my archive\n{FLOWER}\nhttps://example.com/trailer.mp4\n\n")
    assert expand_sources([str(tmp_path / "a"), str(listing)]) == [
        str(tmp_path / "a" / "b" / "two.mkv"),
        str(tmp_path / "a" / "one.mp4"),
        str(FLOWER),
        "https://example.com/trailer.mp4",
    ]


def test_two_workers_give_the_single_process_vectors_and_a_bad_film_fails_alone(
    ray_local, tmp_path, tiny_clip_dir, indexed_library, monkeypatch
):
    monkeypatch.setattr(distributed, "SEGMENT_SECONDS", 20.0)  # Tears of Steel (70 s) in 4 segments
    bad = tmp_path / "films" / "broken.mp4"
    bad.parent.mkdir()
    bad.write_text("not a film")
    lib = Library(tmp_path / "lib")
    result = index_archive([str(TEARS), str(BUNNY), str(bad.parent)], lib, str(tiny_clip_dir), workers=2)
    assert sorted(f.name for f in result.indexed) == ["big-buck-bunny-30s", "tears-of-steel-battle-clip-medium"]
    assert len(result.failed) == 1 and "broken.mp4" in result.failed[0]
    for film in lib.films():
        _same_as_single_process(film, indexed_library.find(film.name)[0])
    again = index_archive([str(TEARS)], lib, str(tiny_clip_dir), workers=2)
    assert [f.name for f in again.reused] == ["tears-of-steel-battle-clip-medium"] and not again.indexed


def _clip_actor_pids() -> list[int]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "ClipActor" in cmd:
            found.append(p.pid)
    return found


def test_a_killed_worker_gets_its_segment_retried(ray_local, tmp_path, tiny_clip_dir, tears_8fps, monkeypatch):
    from clip_search.indexing.indexer import IndexOptions
    from clip_search.video.decode import SamplingSettings

    monkeypatch.setattr(distributed, "SEGMENT_SECONDS", 10.0)
    lib = Library(tmp_path / "lib")
    killed = []

    def kill_one_worker() -> None:
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            pids = _clip_actor_pids()
            if pids and list(lib.staging_dir.glob("*/parts/seg-*.npz")):  # mid-run: some segments written
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    options = IndexOptions(SamplingSettings(fps=8.0))
    result = index_archive([str(TEARS)], lib, str(tiny_clip_dir), options, workers=2)
    killer.join(timeout=5)
    assert killed, "no encode worker was found to kill"
    assert [f.name for f in result.indexed] == ["tears-of-steel-battle-clip-medium"], result.failed
    _same_as_single_process(lib.films()[0], tears_8fps)


def test_a_killed_driver_is_resumed_with_only_the_missing_segments(tmp_path, tiny_clip_dir, tears_8fps):
    env = dict(os.environ, FRAMESEARCH_SEGMENT_SECONDS="5")  # 15 segments, finishing over a few seconds
    args = [sys.executable, "-m", "clip_search", "index", str(TEARS), "--workers", "2", "--fps", "8"]
    args += ["--library", str(tmp_path / "lib"), "--model", str(tiny_clip_dir)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    parts = tmp_path / "lib" / "staging"
    deadline = time.time() + 180
    while time.time() < deadline and not list(parts.glob("*/parts/seg-*.npz")):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started: as a crash would
    proc.wait()
    done = len(list(parts.glob("*/parts/seg-*.npz")))
    assert 1 <= done < 15 and Library(tmp_path / "lib").films() == []  # nothing partial is visible
    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    frames = int(rerun.stderr.split(" frames in ")[0].rsplit(" ", 1)[-1])
    assert 0 < frames < tears_8fps.manifest.frames  # only the missing segments were decoded and encoded again
    _same_as_single_process(Library(tmp_path / "lib").films()[0], tears_8fps)


def test_ray_adds_another_backends_vectors_to_an_indexed_film(tmp_path, encoder, siglip_dir, ray_local):
    """Any model runs on Ray: SigLIP's set is added to a film indexed with CLIP, on its frames."""
    from clip_search.encoders import load_encoder
    from clip_search.indexing.indexer import index_film

    lib = Library(tmp_path / "lib")
    film = index_film(FLOWER, lib, encoder).film
    result = index_archive([str(FLOWER)], lib, str(siglip_dir), workers=1)
    assert not result.failed and len(result.indexed) == 1
    film = lib.get(film.id)
    assert set(film.models) == {encoder.model_id, str(siglip_dir)}
    reference = index_film(FLOWER, Library(tmp_path / "single"), load_encoder(str(siglip_dir), "cpu", "fp32")).film
    _same_as_single_process(film.view(str(siglip_dir)), reference)
    assert film.view(str(siglip_dir)).vector_set.float32_chunks == 0  # right as computed, not mended by the check

"""Nothing lost, nothing corrupted: one writer per film, verified publish, damaged films isolated.

The damaged inputs are made here, by the tests, from healthy films (no committed binaries)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from clip_search.cli import main
from clip_search.indexing.indexer import index_film, make_thumbnail
from clip_search.store.library import DamagedFilm, Library, Manifest, VectorSet, check_film
from clip_search.store.locks import FilmBusy, film_lock
from clip_search.store.writer import StagedFilm, import_vectors, open_library
from tests.conftest import BUNNY, FLOWER, TEARS, assert_no_error

THUMB = make_thumbnail(np.full((48, 64, 3), 90, np.uint8))


def _vectors(n: int, dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def three_films(tmp_path, encoder, tiny_clip_dir):
    """A library of three small films whose vectors were made elsewhere (imported), searchable with
    the tiny CLIP: a damage test breaks one and checks the other two keep working."""
    lib = Library(tmp_path / "lib")
    for i, name in enumerate(("alpha", "bravo", "charlie")):
        m = Manifest.imported(name, model=encoder.model_id, duration=20.0)
        import_vectors(lib, m, _vectors(20, encoder.dim, i), np.arange(20, dtype=float), [THUMB] * 20)
    (lib.film_dir("bravo") / "dialogue.json").write_text(json.dumps({"cues": [], "origin": None, "warning": None}))
    return lib


def _write(path, data: bytes | str) -> None:
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def _set(d):
    """The folder of a film's only vector set."""
    (only,) = (d / "vectors").iterdir()
    return only


DAMAGE = {
    "embeddings deleted": lambda d: (_set(d) / "embeddings.npy").unlink(),
    "times truncated": lambda d: _write(d / "times.npy", (d / "times.npy").read_bytes()[:100]),
    "thumbnails deleted": lambda d: (d / "thumbs.bin").unlink(),
    "manifest not JSON": lambda d: _write(d / "manifest.json", "{not json"),
    "manifest is []": lambda d: _write(d / "manifest.json", "[]"),
    "manifest lacks fields": lambda d: _write(
        d / "manifest.json",
        json.dumps({k: v for k, v in json.loads((d / "manifest.json").read_text()).items() if k != "fingerprint"}),
    ),
    "dialogue.json corrupt": lambda d: _write(d / "dialogue.json", "{{{"),
    "times not increasing": lambda d: np.save(d / "times.npy", np.zeros(20)),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_film_is_named_and_skipped_everywhere_else_works(three_films, damage, capsys, tiny_clip_dir):
    lib = three_films
    DAMAGE[damage](lib.film_dir("bravo"))
    films, damaged = lib.scan()
    assert [f.name for f in films] == ["alpha", "charlie"]
    assert [d.id for d in damaged] == ["bravo"] and "re-index" in damaged[0].describe()

    root = str(lib.root)
    assert main(["films", "--library", root]) == 0
    out, err = capsys.readouterr()
    assert "alpha" in out and "charlie" in out and "warning: bravo: damaged (" in err
    assert main(["films", "--library", root, "--check"]) == 1
    assert "1 damaged" in capsys.readouterr().err

    assert main(["search", "a ship", "--library", root, "--json", "--model", str(tiny_clip_dir)]) == 0
    out, err = capsys.readouterr()
    assert {h["film"] for h in json.loads(out)} <= {"alpha", "charlie"} and "Traceback" not in err
    assert main(["export", "alpha", "--library", root, "-o", str(lib.root / "alpha.npz")]) == 0
    assert main(["export", "bravo", "--library", root, "-o", str(lib.root / "b.npz")]) == 2
    assert "damaged" in capsys.readouterr().err

    from comparisons.cli import main as compare

    assert compare(["search", "a ship", "--library", root, "--engine", "clip", "--json"]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_the_dashboard_shows_the_damaged_film_and_searches_the_rest(three_films, monkeypatch, tiny_clip_dir):
    from streamlit.testing.v1 import AppTest

    from tests.test_dashboard import APP

    DAMAGE["manifest is []"](three_films.film_dir("bravo"))
    thumbs = three_films.film_dir("charlie") / "thumbs.bin"
    thumbs.write_bytes(bytes(thumbs.stat().st_size))  # same size, so only drawing it can tell
    monkeypatch.setenv("FRAMESEARCH_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("FRAMESEARCH_LIBRARY", str(three_films.root))
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert_no_error(at)
    assert any("bravo: damaged" in w.value for w in at.sidebar.warning)
    at.text_input(key="query").input("a ship").run()
    assert not at.exception
    assert set(at.dataframe[0].value["film"]) <= {"alpha", "charlie"}
    assert any("thumbnail damaged" in c.value for c in at.caption)  # a caption, not a crash


def test_index_of_a_damaged_film_reindexes_it(tmp_path, encoder):
    lib = Library(tmp_path)
    film = index_film(FLOWER, lib, encoder).film
    (film.dir / "thumbs.bin").write_bytes(b"")
    assert lib.films() == [] and lib.damaged()[0].id == film.id
    again = index_film(FLOWER, lib, encoder)
    assert not again.reused and again.film.manifest.frames == 5
    assert lib.damaged() == [] and [f.id for f in lib.films()] == [film.id]


def test_deep_check_finds_vectors_that_are_not_unit_length(three_films):
    from clip_search.store.library import SAMPLED_ROWS

    d = three_films.film_dir("alpha")
    v = _set(d)
    emb = np.load(v / "embeddings.npy")
    n = len(emb)
    sampled = set(np.linspace(0, n - 1, min(n, SAMPLED_ROWS)).astype(int))
    unsampled = [i for i in range(n) if i not in sampled]
    if unsampled:  # between the rows the quick check reads: only the deep check sees it
        emb[unsampled[0]] *= 7
        np.save(v / "embeddings.npy", emb)
        check_film(d)
        with pytest.raises(DamagedFilm, match="not unit length"):
            check_film(d, deep=True)
    emb[0] *= 7  # a row the quick check reads: caught on load already
    np.save(v / "embeddings.npy", emb)
    with pytest.raises(DamagedFilm, match="sampled rows .* not unit length"):
        check_film(d)


def test_publish_verifies_and_an_inconsistent_film_never_appears(tmp_path, encoder):
    lib = Library(tmp_path)
    m = Manifest.imported("broken", model=encoder.model_id, duration=4.0)
    m.dim = encoder.dim
    with film_lock(lib, m.id):
        staged = StagedFilm(lib, m, [VectorSet(m.model, m.dim)])
        staged.write_chunk(_vectors(2, m.dim, 0), [0.0, 1.0], [b"ab", b"cd"])
        with pytest.raises(ValueError, match="strictly increase"):
            staged.write_chunk(_vectors(2, m.dim, 1), [1.0, 2.0], [b"ef", b"gh"])  # 1.0 again
        staged.write_chunk(_vectors(2, m.dim, 1), [2.0, 3.0], [b"ef", b"gh"])
        part = sorted(staged.parts.glob("part-*.npz"))[1]
        with np.load(part) as z:  # a chunk whose thumbnail lengths disagree with its bytes
            arrays = dict(z)
        arrays["thumb_lens"] = np.array([2, 5])
        np.savez(part, **arrays)
        with pytest.raises(DamagedFilm, match="not published"):
            staged.publish()
    assert lib.films() == [] and lib.damaged() == [] and not lib.film_dir(m.id).exists()


def test_import_export_round_trip_through_the_one_writer(three_films, tmp_path):
    out = tmp_path / "alpha.npz"
    assert main(["export", "alpha", "--library", str(three_films.root), "-o", str(out)]) == 0
    with np.load(out) as z:
        emb, times = z["embeddings"], z["times"]
    lib2 = Library(tmp_path / "lib2")
    film = import_vectors(lib2, Manifest.imported("alpha", model="m", duration=20.0), emb, times)
    assert np.array_equal(np.asarray(film.embeddings), emb) and np.array_equal(film.times, times)


def test_a_second_process_on_a_busy_film_is_told_or_waits(tmp_path, encoder):
    lib = Library(tmp_path)
    with film_lock(lib, "flower-x"):
        with pytest.raises(FilmBusy, match="being indexed by another process"):
            with film_lock(lib, "flower-x", wait=0):
                pass
        seen = []
        with pytest.raises(FilmBusy):
            with film_lock(lib, "flower-x", wait=0.2, on_wait=lambda: seen.append(1)):
                pass
        assert seen == [1]


def _index_cli(lib, model, *paths):
    env = dict(os.environ, FRAMESEARCH_LIBRARY=str(lib), FRAMESEARCH_MODEL=str(model))
    return subprocess.Popen(
        [sys.executable, "-m", "clip_search", "index", *map(str, paths), "--chunk-frames", "4", "--batch-size", "4"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_two_processes_indexing_one_film_publish_it_once_and_intact(tmp_path, tiny_clip_dir, encoder):
    lib = tmp_path / "lib"
    first, second = _index_cli(lib, tiny_clip_dir, TEARS), _index_cli(lib, tiny_clip_dir, TEARS)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    assert any("being indexed by another process; waiting" in err for _, err in outs), outs
    assert any("reused" in out for out, _ in outs), outs
    (film,) = Library(lib).films()
    straight = index_film(TEARS, Library(tmp_path / "straight"), encoder).film
    assert film.manifest.frames == straight.manifest.frames == len(film.times)
    assert np.all(np.diff(film.times) > 0)
    assert film.times.tolist() == straight.times.tolist()
    check_film(film.dir, deep=True)


def test_uploads_are_stored_by_content_and_a_rejected_one_removes_only_itself(tmp_path, encoder):
    lib = Library(tmp_path)
    first, new1 = lib.store_upload("clip.mp4", FLOWER.read_bytes())
    second, new2 = lib.store_upload("clip.mp4", BUNNY.read_bytes())  # same name, other film
    assert new1 and new2 and first != second and first.name == second.name == "clip.mp4"
    index_film(first, lib, encoder)
    index_film(second, lib, encoder)
    assert sorted(f.manifest.frames for f in lib.films()) == [5, 30]  # neither replaced the other
    again, new = lib.store_upload("clip.mp4", FLOWER.read_bytes())
    assert again == first and not new  # the same bytes are the same upload (and film)
    junk, _ = lib.store_upload("clip.mp4", b"not a film")
    lib.discard_upload(junk)
    assert not junk.exists() and first.is_file() and second.is_file()
    assert len(lib.films()) == 2


def test_a_crash_mid_swap_is_repaired_only_under_the_films_lock(three_films):
    live = three_films.film_dir("alpha")
    old = live.with_name("alpha.old")
    os.replace(live, old)  # as if killed between the two renames of a publish
    with film_lock(three_films, "alpha"):
        assert "alpha" in [f.name for f in Library(three_films.root).films()]  # read from alpha.old meanwhile
        open_library(three_films.root)  # another process mid-publish holds the lock: hands off
        assert old.exists() and not live.exists()
    open_library(three_films.root)
    assert live.exists() and not old.exists()
    assert [f.name for f in Library(three_films.root).films()] == ["alpha", "bravo", "charlie"]


def test_a_raw_h264_stream_is_indexed(tmp_path, encoder):
    import av

    raw = tmp_path / "camera.h264"
    with av.open(str(raw), "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(72):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 3, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    film = index_film(raw, Library(tmp_path / "lib"), encoder).film
    assert film.times.tolist() == [0.0, 1.0, 2.0] and film.manifest.duration == pytest.approx(3.0)


def test_shared_films_are_never_written(tmp_path, encoder):
    before = {p: p.stat().st_mtime_ns for p in FLOWER.parent.iterdir()}
    index_film(FLOWER, Library(tmp_path), encoder)
    assert {p: p.stat().st_mtime_ns for p in FLOWER.parent.iterdir()} == before

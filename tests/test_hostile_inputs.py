"""The last hostile inputs: each is one clear line, nothing lost, nothing silent (export of a damaged
film, export's file name and a full disk, an empty folder, a subtitle cue with a broken timing
line, a name with a newline)."""

from __future__ import annotations

import errno

import numpy as np
import pytest

from clip_search.cli import main
from clip_search.indexing.indexer import index_film
from clip_search.store.library import Library
from tests.conftest import FLOWER


@pytest.fixture
def flower(tmp_path, encoder):
    lib = Library(tmp_path / "lib")
    return lib, index_film(FLOWER, lib, encoder).film


def test_exporting_a_film_with_damaged_vectors_refuses_and_names_the_damage(flower, tmp_path, capsys):
    lib, film = flower
    emb = np.load(film.set_dir / "embeddings.npy")
    emb[2] = np.nan  # a row the cheap load-time check does not sample
    np.save(film.set_dir / "embeddings.npy", emb)
    out = tmp_path / "out.npz"
    assert main(["export", film.name, "--library", str(lib.root), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "damaged" in err and "non-finite" in err and err.count("\n") == 1
    assert not out.exists()


def test_export_writes_exactly_the_path_it_prints(flower, tmp_path, capsys):
    lib, film = flower
    out = tmp_path / "vectors-without-suffix"
    assert main(["export", film.name, "--library", str(lib.root), "-o", str(out)]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"-> {out}")
    with np.load(out) as z:  # numpy would have written vectors-without-suffix.npz
        assert z["embeddings"].shape == (film.manifest.frames, film.manifest.dim)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(("vectors", ".vectors"))] == [out.name]


def test_export_on_a_full_disk_leaves_no_partial_file(flower, tmp_path, monkeypatch, capsys):
    lib, film = flower
    out = tmp_path / "out.npz"

    def full_disk(file, **arrays):  # stands for the write that fails half way when the disk fills up
        file.write(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    assert main(["export", film.name, "--library", str(lib.root), "-o", str(out)]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert list(tmp_path.glob("*out.npz*")) == []


def test_indexing_an_empty_folder_says_so_and_fails(tmp_path, capsys):
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    (empty / "notes.txt").write_text("no films here")
    assert main(["index", str(empty), "--library", str(tmp_path / "lib")]) == 1
    assert f"error: no videos found in {empty}" in capsys.readouterr().err


def test_a_subtitle_cue_with_a_broken_timing_line_is_dropped_not_glued_to_its_neighbour(tmp_path):
    from clip_search.video.subtitles import read_sidecar

    srt = tmp_path / "film.srt"
    srt.write_text(
        "1\n00:00:01,000 --> 00:00:02,000\nHello there\n\n"
        "2\n00:00:03,000 --> 00:00:0x,000\nA line whose time is broken\n\n"
        "3\n00:00:05,000 --> 00:00:06,000\nThird line\n"
    )
    dialogue = read_sidecar(srt)
    assert [c.text for c in dialogue.cues] == ["Hello there", "Third line"]
    assert "1 cue(s) with broken timestamps were dropped" in dialogue.warning


def test_a_film_name_with_a_newline_gives_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "two\nlines.mp4"
    bad.write_bytes(b"not a film")
    assert main(["index", str(bad), "--library", str(tmp_path / "lib")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "two\\nlines.mp4" in err


def test_joined_mpeg_ts_files_index_whole_with_times_that_go_on(tmp_path, encoder):
    """Two 4-second TS files joined byte for byte: the second's timestamps start again at zero (a
    discontinuity TS allows); all 8 seconds are indexed, in order, not the first half alone."""
    from tests.conftest import write_video

    parts = []
    for name, shade in (("a", 40), ("b", 200)):
        frames = [np.full((120, 160, 3), shade, np.uint8) for _ in range(96)]
        for i, f in enumerate(frames):
            f[:, (i * 3) % 160] = 255
        parts.append(write_video(tmp_path / f"{name}.ts", frames, rate=24).read_bytes())
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(parts))
    film = index_film(joined, Library(tmp_path / "lib"), encoder).film
    assert len(film.times) == 8 and np.allclose(film.times, np.arange(8.0), atol=0.05)  # ms timestamps
    assert film.manifest.duration >= 8.0
    second_half = film.embeddings[4:]  # the bright frames: another picture than the first half's
    assert np.min(np.sum(second_half * film.embeddings[0], axis=1)) < 0.999


def test_index_without_a_model_uses_the_librarys_own(tmp_path, tiny_clip_dir, monkeypatch, capsys):
    """Offline, the hub model cannot load: a library indexed with a local model keeps indexing with it."""
    from tests.conftest import BUNNY

    monkeypatch.delenv("FRAMESEARCH_MODEL", raising=False)
    lib = str(tmp_path / "lib")
    assert main(["index", str(FLOWER), "--library", lib, "--model", str(tiny_clip_dir)]) == 0
    assert main(["index", str(BUNNY), "--library", lib]) == 0
    assert f"model {tiny_clip_dir} on" in capsys.readouterr().err
    assert all(f.models == [str(tiny_clip_dir)] for f in Library(lib).films())

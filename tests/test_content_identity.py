"""A film is its content: a second path to the same bytes (a copy under another name, an upload of
a file also typed in the path box) is the same film, reused without encoding, listing both paths;
a library that already holds such duplicates lists them once and ``films --dedupe`` merges them."""

from __future__ import annotations

import json
import shutil

import pytest

from clip_search.cli import main
from clip_search.store.library import Library
from tests.conftest import FLOWER


@pytest.fixture
def copies(tmp_path):
    """The flower film at two more paths: a copy under another name, and one in another folder."""
    other = tmp_path / "elsewhere"
    other.mkdir()
    return shutil.copy(FLOWER, tmp_path / "renamed.mp4"), shutil.copy(FLOWER, other / "flower.mp4")


def test_a_second_path_to_the_same_content_is_reused_and_listed_as_a_source(tmp_path, tiny_clip_dir, copies, capsys):
    lib = str(tmp_path / "lib")
    model = ["--library", lib, "--model", str(tiny_clip_dir)]
    assert main(["index", str(FLOWER), *model]) == 0
    capsys.readouterr()
    for copy in copies:
        assert main(["index", str(copy), *model]) == 0
        assert "already indexed, reused" in capsys.readouterr().out
    assert main(["films", "--json", "--library", lib]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1
    assert {rows[0]["source"], *rows[0]["sources"]} == {str(FLOWER.resolve()), *(str(c.resolve()) for c in copies)}
    assert main(["films", "--library", lib]) == 0
    assert capsys.readouterr().out.count("also at") == 2


def test_an_upload_of_an_indexed_file_is_the_same_film(tmp_path, encoder):
    from clip_search.indexing.indexer import index_film

    lib = Library(tmp_path / "lib")
    first = index_film(FLOWER, lib, encoder).film
    uploaded, _ = lib.store_upload("flower.mp4", FLOWER.read_bytes())
    again = index_film(uploaded, lib, encoder)
    assert again.reused and again.film.id == first.id and len(lib.films()) == 1


def test_duplicates_of_an_older_library_are_listed_once_and_merged_without_loss(
    tmp_path, tiny_clip_dir, siglip_dir, copies, monkeypatch, capsys
):
    from clip_search.encoders import load_encoder
    from clip_search.indexing.indexer import index_film

    lib = Library(tmp_path / "lib")
    index_film(FLOWER, lib, load_encoder(str(tiny_clip_dir), "cpu", "fp32"))
    with monkeypatch.context() as m:  # as an older version did: films found by path, not content
        m.setattr(Library, "by_content", lambda self, fingerprint: None)
        index_film(copies[0], lib, load_encoder(str(siglip_dir), "cpu", "fp32"))
    assert len(list(lib.films_dir.iterdir())) == 2
    assert len(lib.films()) == 1 and len(lib.duplicates()) == 1
    ((extra, kept),) = lib.duplicates()
    assert main(["films", "--library", str(lib.root)]) == 0
    assert "films --dedupe" in capsys.readouterr().err
    assert main(["films", "--dedupe", "--library", str(lib.root)]) == 0
    assert f"{extra.id}: merged into {kept.id}" in capsys.readouterr().out
    (film,) = lib.films()
    assert not lib.duplicates() and len(list(lib.films_dir.iterdir())) == 1
    assert set(film.models) == {str(tiny_clip_dir), str(siglip_dir)}  # the extra's vectors moved, not lost
    assert str(copies[0].resolve()) in film.manifest.sources


def test_the_sidebar_lists_duplicates_once_and_merges_them(tmp_path, tiny_clip_dir, copies, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from clip_search import config
    from clip_search.encoders import load_encoder
    from clip_search.indexing.indexer import index_film
    from tests.conftest import assert_no_error

    lib = Library(tmp_path / "lib")
    clip = load_encoder(str(tiny_clip_dir), "cpu", "fp32")
    index_film(FLOWER, lib, clip)
    with monkeypatch.context() as m:  # as an older version did: films found by path, not content
        m.setattr(Library, "by_content", lambda self, fingerprint: None)
        index_film(copies[1], lib, clip)
    monkeypatch.setenv("FRAMESEARCH_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("FRAMESEARCH_LIBRARY", str(lib.root))
    at = AppTest.from_file(str(config.PROJECT_DIR / "dashboard.py"), default_timeout=120)
    at.run()
    assert_no_error(at)
    assert any("hold the same content as another" in i.value for i in at.info)
    assert any("Library (1 films)" in h.value for h in at.subheader)
    at.button(key="merge_duplicates").click().run()
    assert_no_error(at)
    assert not lib.duplicates() and len(list(lib.films_dir.iterdir())) == 1


def test_a_copy_on_a_read_only_library_is_still_reused(tmp_path, tiny_clip_dir, copies, monkeypatch, capsys):
    import errno

    import clip_search.store.writer as store

    lib = str(tmp_path / "lib")
    assert main(["index", str(FLOWER), "--library", lib, "--model", str(tiny_clip_dir)]) == 0

    def read_only(path, obj):  # stands for a library on a read-only mount
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(store, "atomic_write_json", read_only)
    assert main(["index", str(copies[0]), "--library", lib, "--model", str(tiny_clip_dir)]) == 0
    assert "already indexed, reused" in capsys.readouterr().out

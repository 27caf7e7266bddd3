"""Several models over the same frames: vector sets added to indexed films, one decode for many
models, search / export / import by model, and the in-place migration of format-1 libraries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from clip_search.cli import main
from clip_search.encoders import load_encoder
from clip_search.indexing.indexer import index_film
from clip_search.store.library import Library, Manifest, MissingVectors
from clip_search.store.writer import migrate, open_library
from tests.conftest import FLOWER, assert_no_error

V1_LIBRARY = Path(__file__).parent / "data" / "library-v1"  # written by the format-1 writer (commit 182a353)


@pytest.fixture(scope="module")
def siglip(siglip_dir):
    return load_encoder(str(siglip_dir), "cpu", "fp32")


@pytest.fixture(scope="module")
def open_clip_encoder(open_clip_dir):
    return load_encoder(str(open_clip_dir), "cpu", "fp32")


def test_adding_a_model_encodes_the_same_frames_and_keeps_the_film(tmp_path, encoder, siglip, capsys):
    lib = Library(tmp_path / "lib")
    first = index_film(FLOWER, lib, encoder).film
    thumbs_before = (first.dir / "thumbs.bin").read_bytes()
    added = index_film(FLOWER, lib, siglip)
    assert added.added_to == [siglip.model_id] and not added.reused
    film = lib.get(first.id)
    assert film.models == [encoder.model_id, siglip.model_id]
    assert np.array_equal(film.view(siglip.model_id).times, first.times)  # the film's own frames, re-decoded
    assert (film.dir / "thumbs.bin").read_bytes() == thumbs_before  # the film's files are untouched
    clip_vectors = np.asarray(film.view(encoder.model_id).embeddings)
    assert np.array_equal(clip_vectors, np.asarray(first.embeddings))
    sig = film.view(siglip.model_id)
    assert sig.manifest.dim == siglip.dim and sig.manifest.scoring == "sigmoid"
    assert sig.vector_set.seconds_per_frame and sig.vector_set.device == "cpu"
    assert index_film(FLOWER, lib, siglip).reused  # the second time: nothing to do

    root = str(lib.root)
    assert main(["films", "--library", root, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert [m["model"] for m in row["models"]] == [encoder.model_id, siglip.model_id]
    assert main(["films", "--library", root, "--check"]) == 0
    capsys.readouterr()

    # fp32 like the reference vectors below: `auto` would pick bf16 on a CPU that has it
    assert (
        main(["search", "a flower", "--library", root, "--model", siglip.model_id, "--precision", "fp32", "--json"])
        == 0
    )
    hits = json.loads(capsys.readouterr().out)
    q = siglip.encode_text(["a flower"]).vectors[0]
    assert hits and hits[0]["score"] == pytest.approx(float(np.max(np.asarray(sig.embeddings) @ q)), abs=1e-5)

    out = tmp_path / "flower-siglip.npz"
    assert main(["export", film.id, "--library", root, "--model", siglip.model_id, "-o", str(out)]) == 0
    with np.load(out) as z:
        assert str(z["model"]) == siglip.model_id and np.array_equal(z["embeddings"], np.asarray(sig.embeddings))
    other = tmp_path / "other"
    assert main(["import", "flower-copy", "--npz", str(out), "--library", str(other)]) == 0
    (copy,) = Library(other).films()
    assert copy.model == siglip.model_id  # the model name travels with the vectors


def test_several_models_share_one_decode(tmp_path, encoder, siglip, open_clip_encoder, monkeypatch):
    import clip_search.indexing.indexer as indexer

    decodes = []
    real = indexer.iter_frames
    monkeypatch.setattr(indexer, "iter_frames", lambda *a, **k: decodes.append(1) or real(*a, **k))
    lib = Library(tmp_path / "lib")
    result = index_film(FLOWER, lib, [encoder, siglip, open_clip_encoder])
    assert len(decodes) == 1
    film = lib.get(result.film.id)
    assert set(film.models) == {encoder.model_id, siglip.model_id, open_clip_encoder.model_id}
    for enc in (encoder, siglip, open_clip_encoder):  # each set is that model's own vectors of the frames
        view = film.view(enc.model_id)
        frames = [f.image for f in indexer.iter_frames(FLOWER, indexer.IndexOptions().sampling)]
        cos = (np.asarray(view.embeddings) * enc.encode_images(frames)).sum(axis=1)
        assert cos.min() > 0.9999


def test_a_film_without_a_models_vectors_is_named_with_the_command(tmp_path, encoder, siglip, capsys):
    lib = Library(tmp_path / "lib")
    film = index_film(FLOWER, lib, encoder).film
    with pytest.raises(MissingVectors, match=f"add them with: python -m clip_search index .*--model {siglip.model_id}"):
        film.view(siglip.model_id)
    assert main(["search", "a flower", "--library", str(lib.root), "--model", siglip.model_id]) == 2
    err = capsys.readouterr().err
    assert "has no" in err and "--model" in err and "Traceback" not in err


def _v1_copy(tmp_path: Path) -> Path:
    root = tmp_path / "old"
    shutil.copytree(V1_LIBRARY, root)
    return root


def test_a_format_1_library_is_migrated_in_place_without_re_encoding(tmp_path):
    root = _v1_copy(tmp_path)
    before = {d.name: np.load(d / "embeddings.npy") for d in (root / "films").iterdir()}
    thumbs = {d.name: (d / "thumbs.bin").read_bytes() for d in (root / "films").iterdir()}
    lib = open_library(root)  # opening it for use migrates it
    films = lib.films()
    assert sorted(f.name for f in films) == ["harbour", "meadow"] and lib.damaged() == []
    for f in films:
        m = json.loads((f.dir / "manifest.json").read_text())
        assert m["format_version"] == 2 and not (f.dir / "embeddings.npy").exists()
        assert f.models == ["openai/clip-vit-base-patch32"] and f.manifest.logit_scale == 42.0
        assert np.array_equal(np.asarray(f.embeddings), before[f.name])  # the same vectors, not re-encoded
        assert f.thumbnail(0) == thumbs[f.name][: len(f.thumbnail(0))]
    assert migrate(Library(root)) == 0  # once only


def test_an_interrupted_migration_leaves_the_old_library_readable(tmp_path, monkeypatch):
    import clip_search.store.writer as store

    root = _v1_copy(tmp_path)
    real = store.atomic_write_json

    def crash_on_manifest(path, obj):  # stands for a power cut just before the manifest is replaced
        if Path(path).name == "manifest.json":
            raise OSError("simulated crash")
        return real(path, obj)

    monkeypatch.setattr(store, "atomic_write_json", crash_on_manifest)
    open_library(root)
    for d in (root / "films").iterdir():  # the format-1 layout is whole: what the old version reads
        m = json.loads((d / "manifest.json").read_text())
        assert m["format_version"] == 1 and m["model"] == "openai/clip-vit-base-patch32"
        assert np.load(d / "embeddings.npy").shape == (m["frames"], 16)
    assert len(Library(root).films()) == 2  # and this version reads it as it is
    monkeypatch.setattr(store, "atomic_write_json", real)
    assert migrate(Library(root)) == 2  # the next open finishes the job
    assert all(not (d / "embeddings.npy").exists() for d in (root / "films").iterdir())


def test_imports_refuse_vectors_of_another_size_for_the_same_model(tmp_path, encoder, capsys):
    lib = Library(tmp_path / "lib")
    index_film(FLOWER, lib, encoder)
    npz = tmp_path / "odd.npz"
    np.savez(npz, embeddings=np.eye(3, encoder.dim + 1, dtype=np.float32), times=np.arange(3.0), model=encoder.model_id)
    assert main(["import", "odd", "--npz", str(npz), "--library", str(lib.root)]) == 2
    assert "dimensions" in capsys.readouterr().err
    assert Manifest.imported("x", "m", 1.0).key()["format_version"] == 2


def test_add_a_model_loads_in_the_background_and_says_why_a_model_cannot_be_loaded(
    tmp_path, monkeypatch, tiny_clip_dir
):
    """A model that cannot be loaded is named with the reason in whole words and advice for the
    dashboard (not the command line's flags); the next model typed replaces that error at once."""
    from streamlit.testing.v1 import AppTest

    from tests.test_dashboard import APP
    from ui.state import model_loads

    lib = Library(tmp_path / "lib")
    index_film(FLOWER, lib, load_encoder(str(tiny_clip_dir), "cpu", "fp32"))
    monkeypatch.setenv("FRAMESEARCH_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("FRAMESEARCH_LIBRARY", str(lib.root))
    at = AppTest.from_file(APP, default_timeout=120).run()
    missing = str(tmp_path / "no-such-model")
    at.sidebar.text_input(key="add-model").input(missing).run()
    model_loads().start(missing).future.exception(timeout=60)  # the load fails in the background
    at.run()
    (error,) = [e.value for e in at.sidebar.error]
    assert "does not exist" in error and "folder of a saved model" in error and "--model" not in error
    at.sidebar.text_input(key="add-model").input(str(tiny_clip_dir)).run()
    model_loads().start(str(tiny_clip_dir)).future.result(timeout=60)
    at.run()
    assert not at.sidebar.error  # the last model's error is gone with it
    assert any("Every film has" in s.value for s in at.sidebar.success)


def test_a_long_error_is_cut_at_a_word():
    from clip_search.encoders.hub import first_line

    message = "An error happened while trying to locate the file " * 10
    cut = first_line(RuntimeError(message), limit=60)
    assert len(cut) <= 60 and cut.endswith("…") and cut[:-1].split()[-1] in message.split()  # no "trying to l"


def test_the_dashboard_adds_a_model_and_offers_it_as_an_engine(tmp_path, monkeypatch, tiny_clip_dir, siglip_dir):
    from streamlit.testing.v1 import AppTest

    from tests.test_dashboard import APP

    lib = Library(tmp_path / "lib")
    index_film(FLOWER, lib, load_encoder(str(tiny_clip_dir), "cpu", "fp32"))
    monkeypatch.setenv("FRAMESEARCH_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("FRAMESEARCH_LIBRARY", str(lib.root))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.sidebar.text_input(key="add-model").input(str(siglip_dir)).run()
    assert not at.exception
    # the model loads in the background (the page stays usable); once loaded, the next run offers it
    from ui.state import model_loads

    model_loads().start(str(siglip_dir)).future.result(timeout=120)
    at.run()
    assert any("ms/frame measured now on cpu" in c.value for c in at.sidebar.caption)  # the time, before it starts
    at.sidebar.button(key="add-model-run").click().run()
    assert_no_error(at)
    (film,) = Library(lib.root).films()
    assert set(film.models) == {str(tiny_clip_dir), str(siglip_dir)}
    assert f"{siglip_dir.name} (local)" in at.selectbox(key="search-engine").options  # the new model is an engine
    at.selectbox(key="search-engine").select(str(siglip_dir)).run()
    at.text_input(key="query").input("a flower").run()
    assert_no_error(at)
    assert any("hits" in m.value for m in at.markdown)
    at.session_state["tab"] = "Timeline"
    at.run()
    rows = [t["y"][0] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    from ui.charts import short_label

    local = f"{tiny_clip_dir.name} (local)"  # a local model by its folder's name, not its whole path
    labels = [f"a flower · clip · {local}", f"a flower · {siglip_dir.name} (local)"]
    assert rows == [short_label(t) for t in labels]  # a row per model (the whole label is hovered)
    at.session_state["tab"] = "Compare engines"
    at.run()
    assert not at.exception
    headers = {m.value for m in at.markdown}
    from ui.text import md

    assert (
        f"**clip · {md(local)}**" in headers and f"**{md(siglip_dir.name)} (local)**" in headers
    )  # a column per model


def test_models_are_evaluated_side_by_side_with_paired_tests_and_costs(tmp_path, encoder, siglip, capsys):
    from comparisons.cli import main as compare

    lib = Library(tmp_path / "lib")
    index_film(FLOWER, lib, [encoder, siglip])
    csv = tmp_path / "q.csv"
    csv.write_text("film,query,start,end\nflower,a red flower,0,2\nflower,a flower in the wind,2,4\n")
    out = tmp_path / "eval.json"
    engines = f"clip,{siglip.model_id}"
    args = ["evaluate", str(csv), "--library", str(lib.root), "--engines", engines, "--json", str(out)]
    assert compare([*args, "--model", encoder.model_id]) == 0
    result = json.loads(out.read_text())
    names = {r["engine"] for r in result["engines"]}
    assert {"clip", siglip.model_id, "random"} <= names
    pairs = {(c["a"], c["b"]) for c in result["comparisons"]} | {(c["b"], c["a"]) for c in result["comparisons"]}
    assert ("clip", siglip.model_id) in pairs  # a paired test between the two models
    cost = result["costs"][siglip.model_id]
    assert cost["usd_per_film_hour"] > 0 and "ms/frame on cpu" in cost["basis"]  # its own measured time
    assert compare(["evaluate", str(csv), "--library", str(lib.root), "--engines", "clip,no such model"]) == 2
    assert "unknown engine" in capsys.readouterr().err


def test_films_check_verifies_every_set_and_names_a_damaged_one(tmp_path, encoder, siglip, capsys):
    lib = Library(tmp_path / "lib")
    film = index_film(FLOWER, lib, [encoder, siglip]).film
    sig = Library(lib.root).get(film.id).view(siglip.model_id)
    vectors = np.load(sig.set_dir / "embeddings.npy")
    vectors[-1] *= 3  # no longer unit length
    np.save(sig.set_dir / "embeddings.npy", vectors)
    assert main(["films", "--library", str(lib.root), "--check"]) == 1
    err = capsys.readouterr().err
    assert f"[{siglip.model_id}]" in err and "1 damaged" in err
    (kept,) = Library(lib.root).films()  # the film and its sound set stay usable
    assert kept.models == [encoder.model_id]


def test_a_model_engine_explains_with_its_own_crop_map(tmp_path, encoder, siglip, capsys):
    from comparisons.cli import main as compare

    lib = Library(tmp_path / "lib")
    index_film(FLOWER, lib, [encoder, siglip])
    args = ["search", "a red flower", "--engine", siglip.model_id, "--library", str(lib.root), "--json", "--explain"]
    assert compare(args) == 0
    rows = json.loads(capsys.readouterr().out)
    why = rows[0]["explanation"]
    assert why["engine"] == siglip.model_id and why["grid"]  # where in the frame, by SigLIP's own crops
    assert why["score"] == pytest.approx(rows[0]["score"], abs=1e-5)


def test_loaded_models_are_shared_bounded_and_loaded_once():
    import threading

    from engines import Encoders

    loads = []

    def loader(model, device, precision):  # stands for load_encoder: records each real load
        loads.append(model)
        return type("Enc", (), {"model_id": model, "encode_text": None})()

    cache = Encoders(capacity=2, loader=loader)
    threads = [threading.Thread(target=cache, args=("a",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == ["a"]  # eight sessions asking at once: one load
    cache("b")
    cache("a")  # a used again: b is now the least recently used
    cache("c")
    assert cache.resident() == 2 and loads == ["a", "b", "c"]
    cache("a")
    assert loads == ["a", "b", "c"]  # still resident
    cache("b")
    assert loads[-1] == "b"  # evicted, so loaded again

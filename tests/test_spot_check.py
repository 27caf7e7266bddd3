"""Indexing verifies what it stores: a chunk whose reduced-precision vectors disagree with float32
on a few frames is encoded again in float32 and counted, in the single-process indexer and in the
Ray encode actor; ``films --check --deep`` re-encodes a sample of every set."""

from __future__ import annotations

import json

import numpy as np

from clip_search.encoders import load_encoder
from clip_search.indexing.indexer import IndexOptions, index_film
from clip_search.store.library import Library
from clip_search.video.decode import SamplingSettings
from tests.conftest import FLOWER, TEARS


def _swapping(encoder, bad_calls: set[int]):
    """``encoder`` whose calls numbered in ``bad_calls`` give each frame the vector of the next frame
    of its batch: plausible unit vectors of the wrong image, as the Ray actor's fault once stored."""
    real = encoder.encode_prepared
    calls = [0]

    def encode_prepared(batch):
        calls[0] += 1
        out = real(batch)
        return np.roll(out, 1, axis=0) if calls[0] in bad_calls else out

    encoder.encode_prepared = encode_prepared
    return encoder


def _cosines(a, b) -> np.ndarray:
    return np.sum(np.asarray(a) * np.asarray(b), axis=1)


def test_a_chunk_of_wrong_vectors_is_encoded_again_in_float32_and_counted(tmp_path, tiny_clip_dir, encoder):
    options = IndexOptions(SamplingSettings(fps=4.0), batch_size=8, chunk_frames=32)  # 282 frames, 9 chunks
    reference = index_film(TEARS, Library(tmp_path / "ref"), encoder, options).film
    # a fault that lasts (the Ray actor gave the same wrong vectors every time): the second chunk
    faulty = _swapping(load_encoder(str(tiny_clip_dir), "cpu", "bf16"), bad_calls={5, 6, 7, 8})
    film = index_film(TEARS, Library(tmp_path / "lib"), faulty, options).film
    assert film.vector_set.float32_chunks == 1
    assert _cosines(film.embeddings, reference.embeddings).min() >= 0.999
    record = json.loads((film.set_dir / "vectors.json").read_text())
    assert record["float32_chunks"] == 1


def test_sound_chunks_are_kept_as_encoded(tmp_path, tiny_clip_dir):
    fast = load_encoder(str(tiny_clip_dir), "cpu", "bf16")
    film = index_film(FLOWER, Library(tmp_path / "lib"), fast).film
    assert film.vector_set.float32_chunks == 0 and film.vector_set.precision == "bf16"


def test_the_ray_actor_checks_each_call_too(tiny_clip_dir, encoder):
    from clip_search.scale.archive import ClipActor
    from clip_search.video.decode import iter_frames

    actor = ClipActor(str(tiny_clip_dir), "cpu", 1)  # the class Ray Data instantiates, called in-process
    _swapping(actor.encoder, bad_calls={2})
    frames = [f.image for f in iter_frames(FLOWER, SamplingSettings(fps=2.0))]
    pixels = [actor.encoder.prepare(f) for f in frames]
    batch = {
        "film_id": np.array(["f"] * len(pixels), dtype=object),
        "seg": np.zeros(len(pixels), int),
        "time": np.arange(len(pixels), dtype=float),
        "thumb": np.array([b""] * len(pixels), dtype=object),
        "seg_total": np.full(len(pixels), -1),
        "pixels": pixels,
    }
    truth = encoder.encode_prepared(np.stack(pixels))
    first, second = actor(batch), actor(batch)
    assert not any(first["float32_chunk"]) and len(set(second["float32_chunk"])) == 1 and second["float32_chunk"][0]
    for out in (first, second):
        assert _cosines(out["embedding"], truth).min() >= 0.999


def test_films_check_deep_encodes_a_sample_again_and_names_a_set_that_disagrees(tmp_path, tiny_clip_dir, capsys):
    from clip_search.cli import main

    lib = str(tmp_path / "lib")
    assert main(["index", str(FLOWER), "--library", lib, "--model", str(tiny_clip_dir)]) == 0
    assert main(["films", "--check", "--deep", "--library", lib]) == 0
    film = Library(lib).films()[0]
    emb = np.load(film.set_dir / "embeddings.npy")
    np.save(film.set_dir / "embeddings.npy", np.roll(emb, 1, axis=0))  # unit vectors, each of another frame
    assert main(["films", "--check", "--library", lib]) == 0  # the files alone look sound
    capsys.readouterr()
    assert main(["films", "--check", "--deep", "--library", lib]) == 1
    err = capsys.readouterr().err
    assert "disagree with the film's frames encoded again" in err and film.id in err

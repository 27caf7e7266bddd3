"""Archive search: a FAISS index over a library past the threshold, built with `import` from
synthetic video-like vectors; candidates re-scored exactly, film filters, staleness, updates."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clip_search.cli import main
from clip_search.search import ann as ann_module
from clip_search.search.ann import (
    ANN_MIN_FRAMES,
    CALIBRATION_MARGIN,
    EXACT_MAX_FRAMES,
    PQ_BYTES,
    TARGET_RECALL,
    AnnIndex,
)
from clip_search.search.scoring import QueryVector, Searcher
from clip_search.search.synthetic import LooseVectors, VideoLikeVectors
from clip_search.store.library import Library

DIM = 128
FILMS = 4
PER_FILM = ANN_MIN_FRAMES // FILMS + 2_000  # together just past the threshold


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """A library of 4 films (208 000 frames) imported from .npz files, as a lab would bring them."""
    tmp = tmp_path_factory.mktemp("archive")
    gen = VideoLikeVectors(dim=DIM, clusters=100, seed=3)
    lib = tmp / "lib"
    for i in range(FILMS):
        npz = tmp / f"reel{i}.npz"
        np.savez(npz, embeddings=gen.film(PER_FILM), times=np.arange(PER_FILM, dtype=np.float64))
        assert main(["import", f"reel{i}", "--npz", str(npz), "--library", str(lib), "--model", "synthetic"]) == 0
    return Library(lib), gen


def _keys(hits):
    return [(h.film_id, h.frame) for h in hits]


def test_import_past_the_threshold_builds_the_index_and_search_uses_it(archive, capsys):
    lib, gen = archive
    status = AnnIndex.status(lib)
    assert status.exists and status.fresh and status.frames == FILMS * PER_FILM
    films = lib.films()
    searcher = Searcher(films, lib)
    assert searcher.mode == "ann" and searcher.notice is None
    exact = Searcher(films, lib, exact=True)
    assert exact.mode == "exact"
    found = []
    for v in gen.queries(20):
        q = QueryVector(v, "q")
        fast, slow = searcher.search(q, top_k=10, gap=3.0), exact.search(q, top_k=10, gap=3.0)
        found.append(len(set(_keys(fast)) & set(_keys(slow))) / 10)
        assert all(
            h.score == pytest.approx(float(np.asarray(lib.get(h.film_id).embeddings[h.frame]) @ v), abs=1e-5)
            for h in fast
        )
        assert all(h.start <= h.time < h.end for h in fast)
    assert np.mean(found) >= 0.98  # recall@10 after de-dup against exact search


def test_ann_build_measures_recall_and_latency_and_search_uses_what_it_chose(archive, capsys):
    lib, _ = archive
    c = AnnIndex.status(lib).calibration
    reached = TARGET_RECALL + CALIBRATION_MARGIN  # asked of its own queries, so that new ones reach the target
    assert c and c["recall_library"] >= reached and c["recall_text_like"] >= reached and c["latency_ms_p50"] > 0
    ann = AnnIndex.load(lib)
    assert (ann.nprobe, ann.candidates_k) == (c["nprobe"], c["candidates"])
    # fast-scan codes: 4 bits per sub-quantiser, within the bytes per frame the memory budget allows
    import faiss

    index = faiss.downcast_index(ann.index)
    assert isinstance(index, faiss.IndexIVFPQFastScan) and index.code_size <= PQ_BYTES and index.pq.nbits == 4
    assert main(["ann", "status", "--library", str(lib.root)]) == 0
    line = capsys.readouterr().out
    assert f"nprobe {c['nprobe']} measured at recall@10" in line and "ms per search (p50)" in line


def test_film_filters_use_an_id_selector_or_exact_scoring(archive, monkeypatch):
    lib, gen = archive
    films = lib.films()
    q = QueryVector(gen.queries(1)[0], "q")
    alone = Searcher(films[2:3], lib)
    assert alone.total <= EXACT_MAX_FRAMES and alone.scans_all()  # a 52 000-frame film alone: scored exactly
    # the selector path, on this fixture's films: as if the exact limit were below one film (a larger library's)
    monkeypatch.setattr(ann_module, "EXACT_MAX_FRAMES", 20_000)
    one = Searcher(films[2:3], lib)
    assert one.total > 20_000 and one.mode == "ann"
    hits = one.search(q, top_k=10, gap=3.0)
    assert {h.film_id for h in hits} == {films[2].id}
    assert _keys(hits) == _keys(Searcher(films[2:3], lib, exact=True).search(q, top_k=10, gap=3.0))
    two = Searcher([films[0], films[3]], lib).search(q, top_k=10, gap=3.0)
    assert {h.film_id for h in two} <= {films[0].id, films[3].id}
    # a filter keeping a quarter of the frames probes four times the lists
    ann = one.ann
    assert (ann.probes(films, 4), ann.probes(films[2:3], 4)) == (4, 16)
    # ...and one that would probe every list is scored exactly from its films' vectors, not the index
    wide = Searcher(films[2:3], lib, nprobe=ann.meta["nlist"])
    assert wide.ann.scans_all(films[2:3], ann.meta["nlist"])

    def unused(*a, **k):  # the index's candidate search: must not run for this filter
        raise AssertionError("the index was searched")

    wide.ann.candidates = unused
    assert _keys(wide.search(q, top_k=10, gap=3.0)) == _keys(
        Searcher(films[2:3], lib, exact=True).search(q, top_k=10, gap=3.0)
    )


def test_a_stale_index_is_never_read_and_an_update_adds_without_retraining(archive, tmp_path, capsys):
    lib, gen = archive
    before = json.loads((AnnIndex.folder(lib) / "meta.json").read_text())
    npz = tmp_path / "late.npz"
    np.savez(npz, embeddings=gen.film(3000), times=np.arange(3000, dtype=np.float64))
    # another process adds a film behind the index's back (the import CLI would update it)
    from clip_search.store.library import Manifest
    from clip_search.store.writer import import_vectors

    with np.load(npz) as z:
        import_vectors(lib, Manifest.imported("late", "synthetic", 0.0), z["embeddings"], z["times"])
    status = AnnIndex.status(lib)
    assert status.exists and not status.fresh and "1 film(s) added" in status.reason
    searcher = Searcher(lib.films(), lib)
    assert searcher.mode == "exact" and "STALE" in searcher.notice
    assert (
        main(["search", "--library", str(lib.root), "--image", "/nonexistent.png"]) == 2
    )  # a stale index breaks nothing
    capsys.readouterr()
    assert main(["ann", "build", "--library", str(lib.root)]) == 0
    after = json.loads((AnnIndex.folder(lib) / "meta.json").read_text())
    assert after["trained_on"] == before["trained_on"] and after["nlist"] == before["nlist"]  # no retraining
    assert [f["id"] for f in after["films"]][-1] == "late"
    assert not (AnnIndex.folder(lib) / before["file"]).exists() and (AnnIndex.folder(lib) / after["file"]).is_file()
    assert "fresh" in capsys.readouterr().out
    assert Searcher(lib.films(), lib).mode == "ann"


def test_a_library_that_outgrew_its_training_is_retrained(tmp_path):
    gen = VideoLikeVectors(dim=32, clusters=20, seed=1)
    lib = Library(tmp_path)
    from clip_search.store.library import Manifest
    from clip_search.store.writer import import_vectors

    import_vectors(lib, Manifest.imported("a", "m", 0.0), gen.film(20_000), np.arange(20_000.0))
    first = AnnIndex.update(lib)
    assert first.fresh and first.trained_on == 20_000
    import_vectors(lib, Manifest.imported("b", "m", 0.0), gen.film(70_000), np.arange(70_000.0))
    second = AnnIndex.update(lib)
    assert second.fresh and second.trained_on == 90_000 and second.frames == 90_000


def test_ann_build_calibrates_on_the_labs_own_queries_and_keeps_them(archive, tmp_path, capsys):
    """Queries far from every frame (as text sits apart from images) need more probes than the
    built-in sets show: given as --queries, they are measured, and the setting is raised for them."""
    lib, gen = archive
    before = AnnIndex.status(lib).calibration
    rng = np.random.default_rng(7)
    hard = gen.queries(60) + rng.normal(size=(60, DIM)).astype(np.float32) * (3.0 / np.sqrt(DIM))
    np.save(tmp_path / "q.npy", hard)
    assert main(["ann", "build", "--library", str(lib.root), "--queries", str(tmp_path / "q.npy")]) == 0
    line = capsys.readouterr().out
    c = AnnIndex.status(lib).calibration
    assert "of your queries" in line and c["own_queries"] == 60
    assert (c["nprobe"], c["candidates"]) >= (before["nprobe"], before["candidates"])
    assert c["recall_own"] >= 0.98 or c["nprobe"] == AnnIndex.status(lib).nlist
    # measured against exact search by the test itself, at the setting search now uses
    films, exact = lib.films(), Searcher(lib.films(), lib, exact=True)
    fast = Searcher(films, lib)
    got = [
        len(set(_keys(fast.search(QueryVector(v, "q")))) & set(_keys(exact.search(QueryVector(v, "q"))))) / 10
        for v in hard[:20]
    ]
    assert np.mean(got) >= min(0.95, c["recall_own"] - 0.05)
    # kept: a later update (after an import, say) measures them again without being told
    assert main(["ann", "build", "--library", str(lib.root)]) == 0
    assert "of your queries" in capsys.readouterr().out
    # vectors of another size, or a text file a model that cannot load would encode: one line each
    np.save(tmp_path / "bad.npy", np.ones((3, DIM + 1), np.float32))
    assert main(["ann", "build", "--library", str(lib.root), "--queries", str(tmp_path / "bad.npy")]) == 2
    assert f"vectors of {DIM} dimensions" in capsys.readouterr().err


def test_the_loose_set_wanders_around_its_mixture_and_stays_less_clustered():
    """bench_ann's harder library: a film's frames stay as close to their content at its end as at
    its start (its walk is bounded), yet sit much further from it than the video-like set's do."""
    loose, video = LooseVectors(dim=128, clusters=50, seed=2), VideoLikeVectors(dim=128, clusters=50, seed=2)
    frames = loose.film(6000)
    near = (frames @ loose.centres.T).max(axis=1)
    assert abs(near[:500].mean() - near[-500:].mean()) < 0.05
    assert near.mean() < (video.film(6000) @ video.centres.T).max(axis=1).mean() - 0.2


class _TextVectors:
    """Stands for a model of the archive's vectors: its text encoder turns a query into one of the
    archive's query vectors (no real model made these synthetic vectors)."""

    model_id, max_tokens = "synthetic", 77

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def encode_text(self, texts):
        from clip_search.encoders.base import TextEncoding

        return TextEncoding(np.stack([self.vectors[t] for t in texts]), [False] * len(texts), list(texts))


def test_evaluation_scores_the_archive_index_hits_search_serves(archive):
    """The model engine searches an archive through its index, and evaluation ranks through the
    same run: the listed hits are the served hits, candidates and exact re-scoring included."""
    from comparisons.evaluate import Task, rank_query
    from engines import ModelEngine

    lib, gen = archive
    films = lib.films()
    texts = {f"query {n}": v for n, v in enumerate(gen.queries(5))}
    engine = ModelEngine("synthetic", _TextVectors(texts))
    for text in texts:
        result = engine.run(films, text, top_k=10, gap=3.0)
        assert result.per_film is None  # the index gave the candidates
        ranked = rank_query(engine, Task("", text, films, [(films[0].id, 0.0, 5.0)]), (1, 10), 0.0, 3.0, 10, None)
        assert [(h.film, h.time, h.score) for h in ranked.hits] == [(h.film_id, h.time, h.score) for h in result.hits]


def test_ann_build_calibrates_on_the_models_own_text_vectors_and_says_text_and_frame_recall_apart(
    tmp_path, encoder, capsys
):
    """What users type is text, and a text vector sits apart from the frames' (CLIP's modality gap):
    `ann build` encodes the built-in scene descriptions with the library's model and calibrates on
    them too; `ann status` says frame and text recall separately, and later updates keep measuring them."""
    from clip_search.search import scenes
    from clip_search.store.library import Manifest
    from clip_search.store.writer import import_vectors

    lib = Library(tmp_path / "lib")
    gen = LooseVectors(dim=encoder.dim, seed=5)
    for i in range(2):
        import_vectors(lib, Manifest.imported(f"reel{i}", encoder.model_id, 0.0), gen.film(12_000), np.arange(12_000.0))
    assert main(["ann", "build", "--library", str(lib.root), "--model", encoder.model_id]) == 0
    c = AnnIndex.status(lib, model=encoder.model_id).calibration
    assert c["text_queries"] == len(scenes.descriptions()) == 300
    assert c["recall_text"] >= TARGET_RECALL + CALIBRATION_MARGIN or c["nprobe"] == AnnIndex.status(lib).nlist
    capsys.readouterr()
    assert main(["ann", "status", "--library", str(lib.root), "--model", encoder.model_id]) == 0
    line = capsys.readouterr().out
    assert "(frames: library vectors)" in line and "(text: 300 scene descriptions the model encoded)" in line
    # other texts than the ones calibrated on, measured by the test against exact search
    others = encoder.encode_text(scenes.descriptions(60, seed=9)).vectors
    films = lib.films(encoder.model_id)
    fast, exact = Searcher(films, lib), Searcher(films, lib, exact=True)
    got = [
        len(set(_keys(fast.search(QueryVector(v, "q")))) & set(_keys(exact.search(QueryVector(v, "q"))))) / 10
        for v in others
    ]
    assert np.mean(got) >= 0.95
    import_vectors(lib, Manifest.imported("late", encoder.model_id, 0.0), gen.film(2_000), np.arange(2_000.0))
    assert AnnIndex.update(lib, model=encoder.model_id).calibration["text_queries"] == 300  # kept, measured again

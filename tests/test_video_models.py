"""Models that see motion: X-CLIP and VideoPrism behind the encoder protocol, proven equal to
transformers' own processor + ``get_video_features`` on the same decoded frames (random weights
from each library's own config; no pretrained weights exist here), and indexed as clips per shot
(long shots in windows) whose [start, end] and frame times are stored and exported, so anyone can
recompute a clip's vector."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from clip_search.encoders import load_encoder, scores_clips
from clip_search.encoders.video import CLIP_SECONDS
from clip_search.errors import FrameSearchError
from clip_search.store.library import Library
from clip_search.video.decode import SamplingSettings, iter_frames
from framesearch import app
from tests.conftest import BUNNY, QUERY_SET, TEARS


@pytest.fixture(scope="module")
def xclip_dir(tmp_path_factory):
    from clip_search.encoders.random import build_random_xclip

    return build_random_xclip(tmp_path_factory.mktemp("xclip") / "model")


@pytest.fixture(scope="module")
def videoprism_dir(tmp_path_factory):
    from clip_search.encoders.random import build_random_videoprism

    return build_random_videoprism(tmp_path_factory.mktemp("videoprism") / "model")


def _decoded(path, count: int) -> list[np.ndarray]:
    """The first ``count`` frames sampled at 1 fps, as the indexer decodes them."""
    frames = []
    for fr in iter_frames(path, SamplingSettings(fps=1.0)):
        frames.append(fr.image)
        if len(frames) == count:
            return frames
    raise AssertionError(f"{path.name} has fewer than {count} sampled frames")


def _unit(out) -> np.ndarray:
    """A model output's pooled vectors, one row each, L2-normalised (the reference's vectors)."""
    t = out.pooler_output
    t = t.reshape(t.shape[0], -1)
    return (t / t.norm(dim=-1, keepdim=True)).float().numpy()


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))


def test_xclip_vectors_equal_its_processor_and_get_video_features(xclip_dir):
    from transformers import XCLIPModel, XCLIPProcessor

    ours = load_encoder(str(xclip_dir), "cpu", "fp32")
    assert ours.clip_frames == 8 and scores_clips(str(xclip_dir))
    model, processor = XCLIPModel.from_pretrained(xclip_dir).eval(), XCLIPProcessor.from_pretrained(xclip_dir)
    clips = [_decoded(BUNNY, 16)[:8], _decoded(TEARS, 8)]  # two films, two frame sizes
    with torch.no_grad():
        ref = np.concatenate(
            [_unit(model.get_video_features(**processor(videos=c, return_tensors="pt"))) for c in clips]
        )
        texts = ["a rabbit in a meadow", "a soldier in a ruined lab " * 20]  # the second is cut at 77 tokens
        ref_text = _unit(
            model.get_text_features(**processor(text=texts, padding=True, truncation=True, return_tensors="pt"))
        )
    got = ours.encode_clips(np.stack([np.stack([ours.prepare(f) for f in c]) for c in clips]))
    assert _min_cosine(got, ref) >= 0.999
    text = ours.encode_text(texts)
    assert _min_cosine(text.vectors, ref_text) >= 0.999 and text.truncated == [False, True]
    bf16 = load_encoder(str(xclip_dir), "cpu", "bf16").encode_clips(np.stack([[ours.prepare(f) for f in clips[0]]]))
    assert _min_cosine(bf16, ref[:1]) >= 0.999  # reduced precision stays the same vector


def test_videoprism_vectors_equal_its_processor_and_get_video_features(videoprism_dir):
    from transformers import AutoProcessor, VideoPrismClipModel

    ours = load_encoder(str(videoprism_dir), "cpu", "fp32")
    assert ours.clip_frames == 16 and ours.pre.crop == 288 and scores_clips(str(videoprism_dir))
    model = VideoPrismClipModel.from_pretrained(videoprism_dir).eval()
    processor = AutoProcessor.from_pretrained(videoprism_dir)
    frames = _decoded(BUNNY, 16)
    with torch.no_grad():
        ref = _unit(model.get_video_features(**processor(videos=[np.stack(frames)], return_tensors="pt")))
        texts = ["a rabbit in a meadow", "a bird on a branch"]
        ref_text = _unit(model.get_text_features(**processor(text=texts, return_tensors="pt")))
    got = ours.encode_clips(np.stack([[ours.prepare(f) for f in frames]]))
    assert _min_cosine(got, ref) >= 0.999
    assert _min_cosine(ours.encode_text(texts).vectors, ref_text) >= 0.999


@pytest.fixture(scope="module")
def clip_library(tmp_path_factory, xclip_dir):
    """Tears of Steel (many short shots, a few long ones) indexed with the random X-CLIP alone."""
    lib = Library(tmp_path_factory.mktemp("video-lib"))
    encoder = load_encoder(str(xclip_dir), "cpu")
    report = app.index(lib, [TEARS], [encoder.model_id], load=lambda m: encoder)
    assert not report.failed, report.failed
    return Library(lib.root), encoder


def test_clips_follow_the_shots_and_cut_long_shots_into_windows(clip_library):
    lib, encoder = clip_library
    film = lib.films()[0]
    clips = film.vectors(encoder.model_id).clips
    assert clips is not None and clips.frame_times.shape[1] == 8
    seg = clips.segments
    assert seg[0, 0] == film.times[0] and np.all(seg[1:, 0] == seg[:-1, 1])  # they follow each other
    assert seg[-1, 1] == pytest.approx(film.manifest.duration)
    assert set(np.round(film.shots()[1:, 0], 6)) <= set(np.round(seg[:, 0], 6))  # a clip starts at every cut
    spacing = float(np.median(np.diff(film.times)))
    assert np.all(seg[:, 1] - seg[:, 0] <= CLIP_SECONDS + spacing + 1e-6)  # long shots are cut into windows
    starts = seg[clips.clip_of, 0]
    assert np.all(film.times >= starts - 1e-9) and np.all(film.times < seg[clips.clip_of, 1] + 1e-9)
    emb = film.vectors(encoder.model_id).embeddings
    for c in np.unique(clips.clip_of):  # every frame is stored with its clip's vector
        rows = emb[clips.clip_of == c]
        assert np.allclose(rows, rows[0])


def test_a_stored_clip_vector_is_recomputed_from_its_frame_times(clip_library, xclip_dir):
    from transformers import XCLIPModel, XCLIPProcessor

    lib, encoder = clip_library
    film = lib.films()[0]
    vectors = film.vectors(encoder.model_id)
    clips = vectors.clips
    c = int(np.argmax(np.bincount(clips.clip_of)))  # the clip with most frames (several distinct ones)
    wanted = clips.frame_times[c]
    decoded = {round(fr.time, 6): fr.image for fr in iter_frames(TEARS, SamplingSettings(fps=1.0))}
    frames = [decoded[round(t, 6)] for t in wanted]
    model, processor = XCLIPModel.from_pretrained(xclip_dir).eval(), XCLIPProcessor.from_pretrained(xclip_dir)
    with torch.no_grad():
        ref = _unit(model.get_video_features(**processor(videos=frames, return_tensors="pt")))
    stored = np.asarray(vectors.embeddings[np.flatnonzero(clips.clip_of == c)[0]])[None]
    assert _min_cosine(stored, ref) >= 0.999


def test_export_writes_each_rows_clip_and_frame_times(clip_library, tmp_path, capsys):
    from clip_search.cli import main

    lib, encoder = clip_library
    out = tmp_path / "x.npz"
    assert main(["export", "tears", "--library", str(lib.root), "--model", encoder.model_id, "-o", str(out)]) == 0
    assert "segments, frame_times" in capsys.readouterr().out
    with np.load(out) as z:
        emb, segments, frame_times, times = z["embeddings"], z["segments"], z["frame_times"], z["times"]
    n = len(emb)
    assert segments.shape == (n, 2) and frame_times.shape == (n, 8)
    assert np.all((segments[:, 0] <= times + 1e-9) & (times < segments[:, 1] + 1e-9))
    assert np.all((frame_times >= segments[:, :1] - 1e-9) & (frame_times < segments[:, 1:] + 1e-9))


def test_a_video_model_is_searched_explained_and_costed_like_any_model(clip_library, capsys):
    from comparisons.cli import main as compare
    from comparisons.costs import engine_costs
    from engines import make_engine

    lib, encoder = clip_library
    films = lib.films()
    engine = make_engine(encoder.model_id, lib, encoder)
    result = engine.run(films, "a soldier in a ruined lab", top_k=5)
    assert len(result.hits) == 5 and result.moments
    why = result.explain(films[0], result.hits[0].frame, crops=True)
    assert "clip" in why.evidence[0].text and "no crop map" in why.note
    cost = engine_costs(lib, films, [engine])[engine.name]
    assert cost.usd_per_film_hour is not None and cost.usd_per_film_hour > 0  # measured while indexing
    assert compare(["search", "--library", str(lib.root), "--engine", encoder.model_id, "--json", "soldier"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and rows[0]["engine"] == encoder.model_id


def test_evaluate_scores_a_video_model_beside_pooled_frames_with_their_costs(clip_library, tmp_path):
    from comparisons.cli import main as compare

    lib, encoder = clip_library
    queries = tmp_path / "q.csv"
    lines = [line for line in QUERY_SET.read_text().splitlines() if line.startswith(("film,", "tears-of-steel"))]
    queries.write_text("\n".join(lines) + "\n")
    out = tmp_path / "eval.json"
    engines = f"{encoder.model_id},pooled:{encoder.model_id}"
    assert (
        compare(["evaluate", str(queries), "--library", str(lib.root), "--engines", engines, "--json", str(out)]) == 0
    )
    report = json.loads(out.read_text())
    rows = {r["engine"]: r for r in report["engines"]}
    for name in (encoder.model_id, f"pooled:{encoder.model_id}"):
        assert rows[name]["status"] == "ok" and rows[name]["queries"] == rows["random"]["queries"] > 0
        assert "mr-r1@0.5" in rows[name] and report["costs"][name]["usd_per_film_hour"] > 0
    (pair,) = [c for c in report["comparisons"] if {c["a"], c["b"]} == set(rows) - {"random"}]
    assert pair["queries"] == rows["random"]["queries"]  # paired on the same queries and frames


def test_a_video_model_added_to_an_indexed_film_cuts_clips_at_its_stored_shots(tmp_path, encoder, xclip_dir):
    lib = Library(tmp_path / "lib")
    app.index(lib, [BUNNY], [encoder.model_id], load=lambda m: encoder)
    video = load_encoder(str(xclip_dir), "cpu")
    report = app.index(lib, [BUNNY], [video.model_id], load=lambda m: video)
    assert not report.failed and report.items[0].result.added_to == [video.model_id]
    film = Library(lib.root).films()[0]
    clips = film.vectors(video.model_id).clips
    assert set(np.round(film.shots()[:, 0], 6)) <= set(np.round(clips.segments[:, 0], 6))
    assert film.has(encoder.model_id) and len(film.vectors(video.model_id).embeddings) == len(film.times)


def test_video_models_refuse_patch_crops_and_ray_in_one_line(tmp_path, xclip_dir):
    from clip_search.indexing.indexer import IndexOptions, index_film
    from clip_search.scale.archive import index_archive
    from clip_search.video.patches import PatchSettings

    video = load_encoder(str(xclip_dir), "cpu")
    lib = Library(tmp_path / "lib")
    with pytest.raises(FrameSearchError, match="not patch crops"):
        index_film(BUNNY, lib, video, IndexOptions(patches=PatchSettings()))
    with pytest.raises(FrameSearchError, match="without --workers"):
        index_archive([str(BUNNY)], lib, str(xclip_dir))
    assert not lib.films()

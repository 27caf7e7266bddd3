"""Every hit explains itself: CLIP's crop map (patch vectors reused in patch mode), tag evidence,
dialogue cues; the Search tab shows grid and score strips together and a "Why?" panel."""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from clip_search.indexing.indexer import IndexOptions, index_film
from clip_search.store.library import Library
from clip_search.video.patches import PatchSettings
from comparisons.cli import main
from engines import make_engine
from tests.conftest import FLOWER
from tests.test_dashboard import APP, texts


def test_clip_crop_map_is_the_cosine_of_each_crop(indexed_library, encoder):
    film = indexed_library.find("tears-of-steel")[0]
    clip = make_engine("clip", Library(film.dir.parent.parent), encoder)
    why = clip.explain(film, 6, "a young man close-up", crops=True)
    assert why.frame_size == (800, 332) and len(why.grid) >= 6
    q = clip.vector("a young man close-up").vector
    from clip_search.video.decode import frame_at

    image = frame_at(film.manifest.source, float(film.times[6]))
    left, top, right, bottom = why.grid[0]["box"]
    expected = float(encoder.encode_images([image[top:bottom, left:right]])[0] @ q)
    assert why.grid[0]["score"] == pytest.approx(expected, abs=1e-5)
    assert why.score == pytest.approx(float(np.asarray(film.embeddings[6]) @ q), abs=1e-5)


def test_patch_mode_reuses_the_stored_patch_vectors(tmp_path, encoder):
    film = index_film(FLOWER, Library(tmp_path), encoder, IndexOptions(patches=PatchSettings())).film
    clip = make_engine("clip", Library(film.dir.parent.parent), encoder)
    grid, size = clip.crop_scores(film, 2, "a red flower")
    ppf = film.manifest.patches_per_frame
    q = clip.vector("a red flower").vector
    stored = np.asarray(film.patch_embeddings[2 * ppf : 3 * ppf]) @ q
    assert size == (960, 540) and [g["score"] for g in grid] == pytest.approx(stored.tolist(), abs=1e-6)


def test_cli_explain_gives_evidence_per_hit(indexed_library, capsys):
    root = str(indexed_library.root)
    assert main(["search", "help me Popeye", "--engine", "dialogue", "--library", root, "--json", "--explain"]) == 0
    rows = json.loads(capsys.readouterr().out)
    top = rows[0]["explanation"]
    assert top["engine"] == "dialogue" and top["evidence"] and top["evidence"][0]["kind"] == "cue"
    assert top["evidence"][0]["start"] <= rows[0]["time"] + 0.5
    assert (
        main(
            [
                "search",
                "a ship",
                "--engine",
                "clip",
                "--film",
                "popeye_p1",
                "--library",
                root,
                "--json",
                "--explain",
                "--top-k",
                "2",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert all(r["explanation"]["grid"] and r["explanation"]["frame_size"] for r in rows)


def test_a_tag_hit_with_a_positive_score_always_names_its_evidence(indexed_library):
    from tagging.tag_search import TagIndex
    from tagging.taggers import Tag

    times = np.arange(3, dtype=float)
    index = TagIndex(times, {0: [Tag("label", "vessel", 0.9)], 1000: [Tag("label", "grass", 0.9)], 2000: []})
    scores = index.scores("a boat")
    for frame in range(3):
        assert bool(index.matched(frame, "a boat")) == (scores[frame] > 0)


def test_search_tab_shows_grid_and_strips_together_and_explains_a_hit(monkeypatch, tiny_clip_dir, indexed_library):
    monkeypatch.setenv("FRAMESEARCH_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("FRAMESEARCH_LIBRARY", str(indexed_library.root))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.text_input(key="query").input("a ship at sea").run()
    assert not at.exception
    search = at.tabs[0]
    assert len(search.get("image")) == 12  # the grid
    strip = json.loads(search.get("plotly_chart")[0].proto.spec)  # and the score strip, on the same screen
    assert len(strip["data"]) == min(6, len(indexed_library.films()))
    assert strip["data"][0]["showscale"]  # with a colour bar
    at.button(key="why-0").click().run()
    assert not at.exception
    assert "matched** (clip)" in texts(at)
    assert any("where in the frame the query matches" in c.value for c in at.caption)


def test_an_explanation_gives_the_hits_own_score_when_several_films_are_searched(indexed_library, capsys):
    """clip+dialogue scales over all films searched: the explanation used to rescale over its one film."""
    root = str(indexed_library.root)
    args = ["search", "help me Popeye", "--engine", "clip+dialogue", "--library", root, "--json", "--explain"]
    assert main([*args, "--top-k", "5"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len({r["film"] for r in rows}) >= 1 and rows
    for r in rows:
        assert r["explanation"]["score"] == pytest.approx(r["score"], abs=1e-5)

"""Offline tagger on real frames, never paying twice, tag search, dialogue and fused engines."""

from __future__ import annotations

import numpy as np
import pytest

from clip_search.indexing.indexer import index_film
from clip_search.store.library import Library
from comparisons.cli import main
from engines import EngineUnavailable, make_engine
from tagging.pricing import estimate
from tagging.run import tag_film, work_left
from tagging.tag_search import TagIndex
from tagging.tag_store import load_tags, tagged_services
from tagging.taggers import Tag, make_tagger
from tagging.taggers.azure import AzureTagger
from tests.conftest import POPEYE1, TEARS, text_video
from tests.fake_cloud import FakeCloud, Scripted


@pytest.fixture(scope="module")
def text_library(tmp_path_factory, encoder):
    tmp = tmp_path_factory.mktemp("text-film")
    lib = Library(tmp / "lib")
    film = index_film(text_video(tmp / "captions.mp4"), lib, encoder).film
    return lib, film


def test_offline_ocr_finds_burned_in_text_at_the_right_times(text_library):
    lib, film = text_library
    run = tag_film(lib, film, make_tagger("offline"))
    assert run.tagged == 8 and not run.errors
    tags = load_tags(lib, film, "offline")
    text_at = {t: " ".join(tag.text for tag in tags[t] if tag.kind == "text") for t in sorted(tags)}
    assert text_at == {  # keys: frame times in ms
        0: "",
        1000: "",
        2000: "HELLO WORLD",
        3000: "HELLO WORLD",
        4000: "",
        5000: "FRAME SEARCH",
        6000: "FRAME SEARCH",
        7000: "",
    }
    assert any(tag.text in ("dark", "night") for tag in tags[0])  # a near-black frame


def test_offline_tagger_finds_faces_in_tears_of_steel(indexed_library):
    film = indexed_library.find("tears-of-steel-battle-clip-medium")[0]
    from clip_search.video.decode import SamplingSettings, iter_frames

    tagger = make_tagger("offline")
    frames = {round(f.time): f.image for f in iter_frames(film.manifest.source, SamplingSettings())}
    tags = tagger.tag_batch([frames[t] for t in (6, 14, 25)])  # frames where a face is plainly visible
    faces = [[t for t in frame if t.kind == "face"] for frame in tags]
    assert all(faces)
    scales = {t.text for frame in tags for t in frame if t.text in ("close-up", "medium shot", "wide shot")}
    assert scales


def test_cloud_results_are_cached_never_paid_twice_and_resumed(text_library, tmp_path):
    lib, film = text_library
    with FakeCloud() as cloud:
        # three frames succeed, then the key is revoked: the run stops, keeping those three
        cloud.then(Scripted(), Scripted(), Scripted(), *[Scripted(401, {"error": {"code": "401"}})] * 10)
        tagger = AzureTagger(endpoint=cloud.url, key="k-123", backoff=0.01)
        first = tag_film(lib, film, tagger, workers=1)
        assert first.fatal and "rejected the credentials" in first.fatal
        assert first.tagged == 3 and work_left(lib, film, tagger).frames == 5
        cloud.script.clear()
        seen = len(cloud.requests)
        second = tag_film(lib, film, tagger, workers=2)
        assert second.tagged == 5 and second.reused == 3
        assert len(cloud.requests) - seen == 5  # only the frames that were missing
        third = tag_film(lib, film, tagger)
        assert third.tagged == 0 and third.reused == 8 and len(cloud.requests) - seen == 5
    assert "azure" in tagged_services(lib, film)
    stored = (lib.root / "tags.sqlite").read_bytes()
    wal = lib.root / "tags.sqlite-wal"
    stored += wal.read_bytes() if wal.exists() else b""
    assert b"k-123" not in stored and b"2023-10-01" in stored  # no credentials; the served model version is kept


def test_cost_estimate_before_paid_runs():
    e = estimate("azure", 120)
    assert (e.calls, e.transactions) == (120, 600) and e.usd == pytest.approx(0.6)
    assert "about $0.60" in e.sentence()
    assert estimate("offline", 120).sentence().endswith("no cost")


def test_cli_refuses_a_paid_run_without_confirmation(indexed_library, monkeypatch, capsys):
    monkeypatch.setenv("AZURE_VISION_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("AZURE_VISION_KEY", "k")
    code = main(["tag", "big-buck-bunny-30s", "--service", "azure", "--library", str(indexed_library.root)])
    err = capsys.readouterr().err
    assert code == 2 and "30 calls" in err and "add --yes" in err


def test_tag_search_blends_bm25_and_meaning():
    times = np.arange(4, dtype=float)
    tags = {  # keyed by frame time in ms, as the tag store gives them
        0: [Tag("label", "tree", 0.9), Tag("label", "grass", 0.8)],
        1000: [Tag("caption", "a ship sailing on the ocean", 0.8), Tag("label", "water", 0.9)],
        2000: [Tag("text", "SINBAD THE SAILOR", 0.95)],
        3000: [],
    }
    index = TagIndex(times, tags)
    boat = index.scores("a boat at sea")
    assert int(np.argmax(boat)) == 1  # no shared word with the caption: meaning carries it
    assert int(np.argmax(index.scores("Sinbad"))) == 2  # exact word from OCR text
    assert boat[3] == 0.0
    assert [t.text for t in index.matched(2, "Sinbad")] == ["SINBAD THE SAILOR"]


def test_tag_search_over_two_films_ranks_the_film_that_holds_the_answer_first(tmp_path):
    """Scaled film by film, the film without the answer would get a top-scoring frame of its own (its
    best partial match scaled to 1) and the two films would tie: BM25 runs over both as one corpus."""
    from clip_search.store.library import Manifest
    from clip_search.store.writer import import_vectors
    from tagging.tag_store import TagStore

    lib = Library(tmp_path / "lib")
    rng = np.random.default_rng(0)
    films = [
        import_vectors(lib, Manifest.imported(name, "m", 6.0), rng.normal(size=(6, 8)), np.arange(6.0))
        for name in ("harbour", "meadow")
    ]
    store = TagStore(lib)  # the offline tagger's stored responses, as tagging writes them
    for film, tagged in zip(films, (["a red boat at sea", "sea"], ["sea"]), strict=True):
        for t in film.times:
            store.put(film, float(t), "offline", "tags", "v1", [Tag("label", "grass", 0.9)])
        for t, text in enumerate(tagged, start=2):
            store.put(film, float(t), "offline", "tags", "v1", [Tag("caption", text, 0.9)])
    store.close()
    engine = make_engine("tags:offline", lib)
    alone = [engine.scores(f, "a red boat at sea").max() for f in films]
    hits = engine.search(films, "a red boat at sea", top_k=3, gap=0.0)
    assert hits[0].film == "harbour" and hits[0].time == 2.0
    together = engine.scores_of(films, "a red boat at sea")
    assert together[0].max() > together[1].max()  # one scale: the partial match in meadow stays lower
    assert together[1].max() < alone[1]  # searched alone, meadow's best frame takes the top of the scale


def test_dialogue_paraphrase_finds_the_cue(indexed_library):
    film = indexed_library.find("popeye_p1")[0]
    assert film.manifest.dialogue["origin"] == "subtitle file popeye_p1.eng.srt"
    hits = make_engine("dialogue", indexed_library).search([film], "he lives on an island on a whale's back", top_k=1)
    assert 16.6 - 0.5 <= hits[0].time <= 21.6 + 0.5  # the cues about the whale island


def test_fused_engine_is_the_documented_blend(indexed_library, encoder):
    film = indexed_library.find("popeye_p1")[0]
    q = "Sinbad the sailor"

    def mm(s):
        return (s - s.min()) / (s.max() - s.min())

    clip = make_engine("clip", indexed_library, encoder).scores(film, q)
    said = make_engine("dialogue", indexed_library).scores(film, q)
    fused = make_engine("clip+dialogue", indexed_library, encoder, fusion_weight=0.3).scores(film, q)
    assert np.allclose(fused, 0.3 * mm(clip) + 0.7 * mm(said), atol=1e-5)


def test_fused_search_over_several_films_scales_them_together(indexed_library, encoder):
    """Across films the blend is scaled over all films searched: the film whose subtitles say the line
    comes first. (Scaled film by film, each film's best frame would score 1 and tie at the top.)"""
    films = [indexed_library.find(n)[0] for n in ("popeye_p1", "popeye_p2", "popeye_p4", "big-buck-bunny-30s")]
    q = "that's not a bad joke"  # a line of popeye_p1 at 21.6-23.6 s
    fused = make_engine("clip+dialogue", indexed_library, encoder, fusion_weight=0.3)
    hits = fused.search(films, q, top_k=3)
    assert hits[0].film == "popeye_p1" and 21.6 - 1 <= hits[0].time <= 23.6 + 1
    said_only = make_engine("clip+dialogue", indexed_library, encoder, fusion_weight=0.0).scores_of(films, q)
    assert float(said_only[0].max()) == pytest.approx(1.0)
    assert max(float(s.max()) for s in said_only[1:]) < 0.9  # other films' best cues stay below the line itself


def test_engines_that_cannot_run_say_why(indexed_library):
    film = indexed_library.find("big-buck-bunny-30s")[0]
    with pytest.raises(EngineUnavailable, match="not tagged yet"):
        make_engine("tags:rekognition", indexed_library).search([film], "a bird")
    with pytest.raises(EngineUnavailable, match="no subtitles or on-screen text"):
        make_engine("dialogue", indexed_library).search([film], "hello")


def test_bad_subtitle_file_is_a_warning_and_the_film_still_indexes(tmp_path, encoder):
    import shutil

    video = tmp_path / "clip.webm"
    shutil.copy(TEARS, video)
    (tmp_path / "clip.srt").write_bytes(b"\xff\xfe\x00garbage 00:00 --> nonsense\n")
    film = index_film(video, Library(tmp_path / "lib"), encoder).film
    assert film.manifest.frames == 71
    assert "clip.srt" in film.manifest.dialogue["warning"] and film.manifest.dialogue["cues"] == 0


def test_latin1_subtitles_are_read_with_a_warning(tmp_path):
    from clip_search.video.subtitles import load_dialogue

    video = tmp_path / "film.mkv"
    video.write_bytes(POPEYE1.read_bytes())
    (tmp_path / "film.fr.srt").write_bytes("1\n00:00:01,000 --> 00:00:02,000\nCafé crème\n".encode("latin-1"))
    d = load_dialogue(video)
    assert d.cues[0].text == "Café crème" and "not UTF-8" in d.warning


def test_on_screen_text_counts_as_dialogue_without_subtitles(text_library):
    lib, film = text_library
    tag_film(lib, film, make_tagger("offline"))  # cached after the OCR test: no work twice
    hits = make_engine("dialogue", lib).search([film], "frame search", top_k=1)
    assert 5.0 <= hits[0].time <= 6.0


def test_webvtt_sidecar_is_read(tmp_path):
    from clip_search.video.subtitles import load_dialogue

    video = tmp_path / "talk.webm"
    video.write_bytes(TEARS.read_bytes())
    (tmp_path / "talk.en.vtt").write_text("WEBVTT\n\n00:00:03.000 --> 00:00:05.500\n<v Celia>Inconceivable!\n")
    d = load_dialogue(video)
    assert d.origin == "subtitle file talk.en.vtt" and d.warning is None
    assert [(c.start, c.end, c.text) for c in d.cues] == [(3.0, 5.5, "Inconceivable!")]

"""Dashboard page logic through Streamlit's AppTest (no browser): state, messages, bad input."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from clip_search import config
from clip_search.store.library import Library
from comparisons.evaluate import load_query_set
from tagging.tag_store import load_tags
from tests.conftest import FLOWER, QUERY_SET, assert_no_error

APP = str(config.PROJECT_DIR / "dashboard.py")


@pytest.fixture
def app(monkeypatch, tiny_clip_dir, indexed_library):
    monkeypatch.setenv("FRAMESEARCH_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("FRAMESEARCH_LIBRARY", str(indexed_library.root))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    return at


def open_tab(at, name: str) -> None:
    """Select a tab as a click would (tabs are lazy: only the open one runs)."""
    at.session_state["tab"] = name
    at.run()
    assert not at.exception


def shown(markdown: str) -> str:
    """Markdown source as the viewer reads it: outside text is escaped (ui/text.py), the characters stay."""
    return re.sub(r"\\(.)", r"\1", markdown)


def texts(at) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.error] + [w.value for w in at.warning] + [i.value for i in at.info]
    return "\n".join(shown(str(p)) for p in parts)


def test_query_shows_a_grid_of_hits_and_moments(app):
    app.text_input(key="query").input("a ship at sea").run()
    assert not app.exception
    assert "**12 hits** for *a ship at sea*" in texts(app)
    assert len(app.tabs[0].get("image")) == 12  # a thumbnail per hit, in the Search tab
    moments = app.dataframe[0].value
    assert list(moments.columns[:4]) == ["film", "start", "end", "peak"]
    assert moments["hits"].sum() == 12 and moments.shape[0] <= 12  # each moment once, every hit counted
    assert not moments.duplicated(["film", "start"]).any()


def test_hovering_the_score_strip_has_a_thumbnail_for_each_row(app, indexed_library):
    """The page sends the strip's hover thumbnails in the chart's row order (the browser picks one by
    row and point index, see test_browser), a bounded number, each small and of the frame it names."""
    import base64
    import io

    from PIL import Image

    from clip_search.timecode import fmt_time
    from ui.strip_pointer import PREVIEW_WIDTH, PREVIEWS

    app.text_input(key="query").input("a ship at sea").run()
    strip = json.loads(app.get("plotly_chart")[0].proto.spec)
    (preview,) = [e for e in app.get("bidi_component") if e.proto.component_name == "strip_pointer"]
    data = json.loads(preview.proto.json)
    assert data["chart"] == "search-strip"
    rows = data["rows"]
    assert [r["film"] for r in rows] == [t["name"] for t in strip["data"]]
    assert sum(len(r["picks"]) for r in rows) <= PREVIEWS
    for row in rows:
        film = indexed_library.find_one(row["film"])
        assert len(row["picks"]) == len(row["images"]) == len(row["times"])
        if len(film.times) <= 60:  # a short film: every frame has its own thumbnail
            assert row["picks"] == list(range(len(film.times)))
        assert row["picks"][0] == 0 and row["picks"][-1] == len(film.times) - 1
        assert row["times"] == [fmt_time(film.times[i]) for i in row["picks"]]
    k = len(rows[0]["picks"]) // 2
    head, b64 = rows[0]["images"][k].split(",", 1)
    assert head == "data:image/jpeg;base64"
    shown = Image.open(io.BytesIO(base64.b64decode(b64)))
    film = indexed_library.find_one(rows[0]["film"])
    stored = Image.open(io.BytesIO(film.thumbnail(rows[0]["picks"][k])))
    assert shown.width <= PREVIEW_WIDTH
    small = np.asarray(stored.convert("L").resize(shown.size), float)
    assert np.abs(np.asarray(shown.convert("L"), float) - small).mean() < 12  # the same frame, made small


def test_play_button_plays_the_film_from_the_hit(app):
    app.text_input(key="query").input("a soldier").run()
    app.button(key="play-0").click().run()
    assert not app.exception
    play = app.session_state["play"]
    assert play["time"] >= 0 and play["film_id"]
    assert "Playing" in texts(app)
    assert app.get("video")


def test_the_score_strips_and_the_timeline_can_be_used_from_the_keyboard(app, indexed_library):
    """A select box beside each chart lists its best moments: choosing one with the keyboard does
    what a click on a square does (the frame, its time and ▶ from there)."""
    app.text_input(key="query").input("a ship at sea").run()
    jump = app.selectbox(key="strip-jump")
    assert jump.options and all(" · " in o for o in jump.options)
    choice = jump.options[-1]
    jump.set_value(choice).run()
    assert not app.exception
    name, at = choice.rsplit(" · ", 1)
    assert f"**{name}** at `{at}`" in texts(app)
    assert app.button(key="strip-play").label == f"▶ Play from {at}"
    open_tab(app, "Timeline")
    film = indexed_library.find_one(app.selectbox(key="tl-film").value)
    jump = app.selectbox(key=f"tl-jump-{film.id}")
    jump.set_value(jump.options[0]).run()
    at = jump.options[0].rsplit(" · ", 1)[1]
    assert f"### Frame at `{at}`" in texts(app)
    app.button(key="tl-play").click().run()
    assert app.get("video")


def test_empty_query_gets_a_message_not_an_error(app):
    app.text_input(key="query").input("   ").run()
    assert not app.exception
    assert "The query is empty" in texts(app)
    assert not app.error


def test_top_k_and_film_choice_narrow_the_results(app):
    app.text_input(key="query").input("a bird").run()
    app.number_input(key="top-k").set_value(3).run()
    app.multiselect(key="search-films").select("popeye_p1").run()
    assert "**3 hits**" in texts(app)
    assert set(app.dataframe[0].value["film"]) == {"popeye_p1"}


def test_timeline_has_a_row_per_query(app):
    app.text_input(key="query").input("a ship").run()
    open_tab(app, "Timeline")
    app.text_area(key="tl-queries").input("a giant bird\nSinbad").run()
    assert not app.exception
    chart = app.get("plotly_chart")[0]
    fig = json.loads(chart.proto.spec)
    assert [t["y"][0] for t in fig["data"]] == ["a ship", "a giant bird", "Sinbad"]
    app.toggle(key="tl-softmax").set_value(True).run()
    fig = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert "probability" in fig["data"][0]["hovertemplate"]


def test_bad_path_and_non_video_are_clear_errors_and_nothing_is_lost(app, tmp_path, indexed_library, monkeypatch):
    monkeypatch.setenv("FRAMESEARCH_MEDIA_ROOTS", str(tmp_path))  # the folder a lab lets the path box read
    before = [f.id for f in indexed_library.films()]
    app.sidebar.text_input(key="add-path").input(str(tmp_path / "nope.mp4")).run()
    app.sidebar.button(key="index-path").click().run()
    assert not app.exception
    assert any("nope.mp4: no such file" in e.value for e in app.error)
    notes = tmp_path / "notes.mp4"
    notes.write_text("shopping list")
    app.sidebar.text_input(key="add-path").input(str(notes)).run()
    app.sidebar.button(key="index-path").click().run()
    assert any("notes.mp4: not a video" in e.value for e in app.error)
    assert [f.id for f in Library(indexed_library.root).films()] == before


def test_index_a_film_from_a_path(monkeypatch, tiny_clip_dir, tmp_path):
    monkeypatch.setenv("FRAMESEARCH_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("FRAMESEARCH_LIBRARY", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert "Add a film in the sidebar" in texts(at)
    # the sample films from ../shared/media are offered, Big Buck Bunny chosen by default
    assert at.sidebar.button_group(key="samples").value == ["big-buck-bunny-30s.mp4"]
    at.sidebar.text_input(key="add-path").input(str(FLOWER)).run()
    at.sidebar.button(key="index-path").click().run()
    assert not at.exception
    assert [f.name for f in Library(tmp_path).films()] == ["flower"]
    assert any("flower: indexed 5 frames" in s.value for s in at.success)
    # a folder indexes the films under it, as the CLI does; a path outside the media roots is refused
    at.sidebar.text_input(key="add-path").input(str(FLOWER.parent)).run()
    at.sidebar.button(key="index-path").click().run()
    assert sorted(f.name for f in Library(tmp_path).films()) == ["bug_video_640", "flower"]
    at.sidebar.text_input(key="add-path").input("/etc/passwd").run()
    at.sidebar.button(key="index-path").click().run()
    assert any("outside the media folders" in e.value for e in at.error)


def test_a_dashboard_with_a_password_shows_nothing_before_it(monkeypatch, tiny_clip_dir, indexed_library):
    monkeypatch.setenv("FRAMESEARCH_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("FRAMESEARCH_LIBRARY", str(indexed_library.root))
    monkeypatch.setenv("FRAMESEARCH_PASSWORD", "open sesame")
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception and [t.label for t in at.text_input] == ["Password"] and not at.sidebar.markdown
    at.text_input(key="password").input("guess").run()
    assert any("Wrong password" in e.value for e in at.error) and "query" not in at.session_state
    at.text_input(key="password").input("open sesame").run()
    assert not at.exception and at.text_input(key="query") is not None  # the dashboard itself


def _streamlit_settings() -> dict:
    """The product's Streamlit settings, as ``streamlit run`` and ``framesearch-dashboard`` read them."""
    import tomllib

    return tomllib.loads((config.PROJECT_DIR / ".streamlit" / "config.toml").read_text())


def test_the_dashboard_listens_on_this_machine_only_by_default():
    assert _streamlit_settings()["server"]["address"] == "localhost"


def test_a_query_does_not_wait_for_a_full_garbage_collection():
    """Streamlit collects all generations after each run by default; with torch loaded that held the
    GIL for 200 ms or more after every query, and the results' last messages waited (bench_dashboard.py)."""
    assert _streamlit_settings()["runner"]["postScriptGC"] is False


def test_model_that_cannot_load_says_why_and_offers_a_way_out(monkeypatch, tmp_path):
    monkeypatch.setenv("FRAMESEARCH_MODEL", str(tmp_path / "no-model-here"))
    monkeypatch.setenv("FRAMESEARCH_LIBRARY", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("Cannot load model" in e.value and "local folder" in e.value for e in at.sidebar.error)
    assert at.sidebar.button(key="use-random-model")


def test_compare_tab_shows_a_column_per_engine_and_the_tagging_cost(app, indexed_library, tiny_clip_dir):
    app.text_input(key="query").input("Sinbad the sailor").run()
    open_tab(app, "Compare engines")
    app.selectbox(key="cmp-film").select("popeye_p1").run()
    assert not app.exception
    page = texts(app)
    clip = f"**clip · {tiny_clip_dir.name} (local)**"  # the column names the model clip is, by its folder's name
    for engine in (clip, "**dialogue**", f"**clip+dialogue · {tiny_clip_dir.name} (local)**"):
        assert engine in page
    assert "runs locally, no cost" in page  # the estimate is shown before any tagging run
    assert "Scores are not comparable across engines" in page
    assert "★ also dialogue" in page  # clip+dialogue and dialogue agree on the cue frames: marked
    app.selectbox(key="tag-service").set_value("azure").run()
    assert any("AZURE_VISION_ENDPOINT" in shown(w.value) for w in app.warning)  # no credentials: said, not crashed
    frames = indexed_library.find("popeye_p1")[0].manifest.frames
    assert f"azure: {frames} frames -> {frames} calls" in texts(app)  # and first what it would cost


def test_evaluate_tab_runs_the_example_query_set(app):
    open_tab(app, "Evaluate")
    app.button(key="eval-run").click().run(timeout=300)
    assert not app.exception
    result = app.session_state["evaluation"]
    table = {r["engine"]: r for r in result.table()}
    assert table["clip"]["status"] == "ok" and table["tags:offline"]["status"] == "skipped"
    assert any("tags:offline skipped" in c.value for c in app.caption)
    assert table["random"]["status"] == "ok" and 0 < table["random"]["hit@5"] < 0.2  # chance, always shown
    assert result.scope == "library" and any("Each query searched all films of the set" in c.value for c in app.caption)
    bars = json.loads(app.get("plotly_chart")[0].proto.spec)
    chance_lines = [s for s in bars["layout"]["shapes"] if s.get("line", {}).get("dash") == "dash"]
    metrics = bars["data"][0]["x"]
    engines = len(bars["data"])
    own = sum(1 for m in metrics if m == "r1@iou0.5" or m.startswith("mr-"))  # chance of the engine's own moments
    assert own == 4 and len(chance_lines) == len(metrics) - own + own * engines  # one per group, or per bar
    assert "random" not in {t["name"] for t in bars["data"]}  # a line, not a bar
    said = [m.value for m in app.success] + [c.value for c in app.caption]
    assert any("clip vs random" in t or "beats random" in t for t in said)  # whether an engine beats chance
    assert any("tie-aware" in c.value for c in app.caption)
    (verdict,) = [shown(m.value) for m in app.markdown if m.value.startswith("**Verdict.**")]
    assert verdict.startswith("**Verdict.** On MRR: ") and "chance" in verdict  # the whole result in one line
    assert any(m.value.startswith("**Quality per dollar**") for m in app.markdown)
    cost_chart = [json.loads(c.proto.spec) for c in app.get("plotly_chart") if '"USD per film-hour' in c.proto.spec]
    ticks = cost_chart[0]["layout"]["xaxis"]["tickvals"]
    assert 2 <= len(ticks) <= 13  # a few labelled ticks (1, 2, 5 per decade at most), not one per digit
    assert all(round(t / 10 ** math.floor(math.log10(t)), 6) in (1, 2, 5) for t in ticks)
    (costs,) = [d.value for d in app.dataframe if "USD per film-hour" in d.value.columns]
    by_engine = dict(zip(costs["engine"], costs["USD per film-hour"], strict=True))
    assert by_engine["tags:azure"] > 0 and by_engine["tags:rekognition"] > 0  # estimated without credentials
    (drill,) = [d.value for d in app.dataframe if "query" in d.value.columns and "clip" in d.value.columns]
    assert set(drill["clip"]) <= {"✓", "✗", ""} and len(drill) >= 40  # a row per query, ✓/✗ per engine
    assert drill["relevant"].str.match(r"^(\S+ )?\d\d:\d\d–\d\d:\d\d|\(no answer\)").all()  # [film] mm:ss
    marks = [c.value for c in app.caption if c.value[:1] in "✓✗"]
    assert marks  # the chosen query's top hits, marked right or wrong
    assert app.get("download_button")  # the whole evaluation can be exported
    # a query labelled on two films (all films searched at once): pick which film's timeline to see
    app.selectbox(key="eval-query").set_value(("big-buck-bunny-30s + popeye_p4", "a car driving on a highway")).run()
    assert not app.exception
    assert app.selectbox(key="eval-film").options == ["big-buck-bunny-30s", "popeye_p4"]
    app.selectbox(key="eval-film").set_value("popeye_p4").run()
    assert not app.exception and any(shown(c.value).startswith("popeye_p4 · shaded") for c in app.caption)
    timeline = json.loads(app.get("plotly_chart")[-1].proto.spec)
    assert {t["name"] for t in timeline["data"] if t.get("name")} >= {"dialogue"}
    app.multiselect(key="eval-rows").set_value(["dialogue"]).run()  # plot the engine chosen, not CLIP
    timeline = json.loads(app.get("plotly_chart")[-1].proto.spec)
    assert {t["name"] for t in timeline["data"] if t.get("name")} == {"dialogue"}


def test_evaluate_tab_shows_robustness_to_how_people_type(app, tmp_path, monkeypatch):
    import ui.evaluate_tab

    queries = tmp_path / "queries.csv"
    queries.write_text(
        "film,query,start,end,paraphrases,translations\n"
        "popeye_p3,help me Popeye,0,20,Popeye please help me,aide-moi Popeye\n"
        "popeye_p1,that's not a bad joke,21.6,23.6,that joke isn't bad,\n"
    )
    monkeypatch.setattr(ui.evaluate_tab, "EXAMPLE", queries)
    open_tab(app, "Evaluate")
    app.multiselect(key="eval-engines").set_value(["dialogue"]).run()
    app.checkbox(key="eval-robust").check().run()
    app.button(key="eval-run").click().run(timeout=300)
    assert not app.exception
    (table,) = [d.value for d in app.dataframe if "perturbation" in d.value.columns]
    assert {"typos 10%", "word order", "paraphrase"} <= set(table["perturbation"])
    assert "drop" in table.columns and "p (Holm)" in table.columns
    assert any("most damaging to CLIP text encoders" in c.value for c in app.caption)


def test_evaluate_tab_indexes_and_tags_the_example_films_it_lacks(monkeypatch, tiny_clip_dir, tmp_path):
    import ui.evaluate_tab

    queries = tmp_path / "queries.csv"
    queries.write_text("film,query,start,end\nflower,a red flower opening,0,5\nbug_video_640,a beetle,0,7\n")
    monkeypatch.setattr(ui.evaluate_tab, "EXAMPLE", queries)  # a small example set: two short sample films
    monkeypatch.setenv("FRAMESEARCH_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("FRAMESEARCH_LIBRARY", str(tmp_path / "lib"))
    lib = Library(tmp_path / "lib")
    from clip_search.encoders import load_encoder
    from clip_search.indexing.indexer import index_film

    index_film(FLOWER, lib, load_encoder(str(tiny_clip_dir), "cpu"))  # one film indexed, neither tagged
    at = AppTest.from_file(APP, default_timeout=300).run()
    open_tab(at, "Evaluate")
    assert any("2 film(s) of the example set are not indexed and tagged" in w.value for w in at.warning)
    at.button(key="eval-prepare").click().run(timeout=300)
    assert_no_error(at)
    assert sorted(f.name for f in lib.films()) == ["bug_video_640", "flower"]
    assert all(load_tags(lib, f, "offline") for f in lib.films())
    assert not any("not indexed and tagged" in w.value for w in at.warning)
    at.multiselect(key="eval-engines").set_value(["tags:offline"]).run()
    at.button(key="eval-run").click().run(timeout=300)
    table = {r["engine"]: r for r in at.session_state["evaluation"].table()}
    assert table["tags:offline"]["status"] == "ok"  # the example evaluation runs whole


def test_search_with_the_dialogue_engine(app):
    app.selectbox(key="search-engine").set_value("dialogue").run()
    app.text_input(key="query").input("help me Popeye").run()
    assert not app.exception
    assert "hits** for *help me Popeye*" in texts(app)
    assert set(app.dataframe[0].value["film"]) <= {"popeye_p1", "popeye_p2", "popeye_p3", "popeye_p4"}


def test_the_view_lives_in_the_url_and_a_link_restores_it(monkeypatch, tiny_clip_dir, indexed_library):
    monkeypatch.setenv("FRAMESEARCH_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("FRAMESEARCH_LIBRARY", str(indexed_library.root))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.text_input(key="query").input("a giant bird").run()
    at.multiselect(key="search-films").select("popeye_p2").run()
    at.number_input(key="top-k").set_value(5).run()
    assert at.query_params["q"] == "a giant bird" and at.query_params["k"] == "5"
    assert at.query_params["film"] in ("popeye_p2", ["popeye_p2"])

    link = AppTest.from_file(APP, default_timeout=120)  # someone opens the link
    p2 = indexed_library.find("popeye_p2")[0].id
    link.query_params.update(
        {"q": "a giant bird", "film": "popeye_p2", "tab": "Timeline", "play": "nope@3.5", "pick": f"{p2}@12"}
    )
    link.run()
    assert not link.exception
    assert link.session_state["query"] == "a giant bird" and link.session_state["tab"] == "Timeline"
    fig = json.loads(link.get("plotly_chart")[0].proto.spec)  # the Timeline tab is the one open
    assert fig["data"][0]["y"][0] == "a giant bird"
    assert link.session_state["play"] == {"film_id": "nope", "time": 3.5}
    assert "no longer in the library" in texts(link)  # a stale link says so, nothing breaks
    assert "### Frame at `00:12.0`" in texts(link)  # the picked frame of the Timeline tab (film popeye_p2)
    assert fig["layout"]["shapes"]  # drawn as the cursor
    assert link.session_state["tl-film"] == "popeye_p2"  # the pick's own film, not another


def test_every_view_state_round_trips_through_a_link(monkeypatch, tiny_clip_dir, indexed_library):
    monkeypatch.setenv("FRAMESEARCH_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("FRAMESEARCH_LIBRARY", str(indexed_library.root))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.text_input(key="query").input("a ship").run()
    at.text_input(key="negative").input("a title card").run()
    open_tab(at, "Timeline")
    at.text_area(key="tl-queries").input("a giant bird\nSinbad").run()
    at.toggle(key="tl-softmax").set_value(True).run()
    at.toggle(key="tl-shared").set_value(True).run()
    sent = dict(at.query_params)
    assert sent["neg"] == "a title card" and sent["tlsoft"] == "1" and sent["tlshared"] == "1"
    open_tab(at, "Compare engines")
    at.selectbox(key="cmp-film").select("popeye_p1").run()
    assert at.query_params["cmp"] == "popeye_p1"

    for tab, checks in (
        ("Timeline", {"negative": "a title card", "tl-softmax": True, "tl-shared": True}),
        ("Compare engines", {"cmp-film": "popeye_p1"}),
    ):
        link = AppTest.from_file(APP, default_timeout=120)
        link.query_params.update({**sent, "tab": tab, "cmp": "popeye_p1"})
        link.run()
        assert not link.exception
        assert link.session_state["tl-queries"] == "a giant bird\nSinbad"
        for key, value in checks.items():
            assert link.session_state[key] == value, key


@pytest.mark.slow
def test_the_demo_lands_on_a_working_search_without_any_set_up(monkeypatch, tmp_path):
    """scripts/demo.sh on a fresh machine without network: one banner, the random-weights CLIP by
    itself, sample films indexed on first start, a query already answered."""
    monkeypatch.delenv("FRAMESEARCH_MODEL", raising=False)
    monkeypatch.setenv("FRAMESEARCH_DEMO", "1")
    monkeypatch.setenv("FRAMESEARCH_LIBRARY", str(tmp_path / "lib"))
    at = AppTest.from_file(APP, default_timeout=300).run()
    assert_no_error(at)
    banner = " ".join(w.value for w in at.sidebar.warning)
    assert "The hub model could not be loaded" in banner and "random-weights CLIP" in banner
    main = " ".join(w.value for w in at.main.warning)  # said in the main area too (narrow windows)
    assert "The hub model could not be loaded" in main and "random-weights CLIP" in main
    lib = Library(tmp_path / "lib")
    needed = {q.film for q in load_query_set(QUERY_SET)}  # every film the example evaluation names
    assert {f.name for f in lib.films()} == needed and len(needed) == 8
    assert all(load_tags(lib, f, "offline") for f in lib.films())  # and tagged offline: tags:offline runs too
    assert "hits** for *a ship at sea*" in texts(at)
    again = AppTest.from_file(APP, default_timeout=120).run()  # a reload reuses the films and the model
    assert not again.exception and "hits** for *a ship at sea*" in texts(again)
    assert "The hub model could not be loaded" in " ".join(w.value for w in again.main.warning)  # reason kept


def test_evaluate_tab_skips_a_query_whose_film_is_missing_and_goes_on(app, tmp_path, monkeypatch):
    import ui.evaluate_tab

    queries = tmp_path / "queries.csv"
    queries.write_text("film,query,start,end\nno-such-film,a ship,1,2\npopeye_p1,help me Popeye,0,20\n")
    monkeypatch.setattr(ui.evaluate_tab, "EXAMPLE", queries)  # the query set the tab loads by default
    open_tab(app, "Evaluate")
    app.multiselect(key="eval-engines").set_value(["dialogue"]).run()
    app.button(key="eval-run").click().run(timeout=300)
    assert not app.exception
    assert any("1 query on 'no-such-film' skipped" in w.value for w in app.warning)
    table = {r["engine"]: r for r in app.session_state["evaluation"].table()}
    assert table["dialogue"]["status"] == "ok" and table["dialogue"]["queries"] == 1


def test_hover_thumbnails_are_shared_fairly_and_cover_each_film_end_to_end():
    from ui.strip_pointer import preview_picks, share, small_jpeg

    assert share(360, [60, 60, 30, 7200]) == [60, 60, 30, 210]  # short films take what they need
    assert sum(share(360, [7200] * 6)) <= 360
    picks = preview_picks(7200, 100)
    assert picks[0] == 0 and picks[-1] == 7199 and len(picks) <= 100
    assert np.diff(picks).max() - np.diff(picks).min() <= 1  # an even spread over the film
    assert list(preview_picks(30, 100)) == list(range(30))
    assert small_jpeg(b"not a jpeg") == b""  # a damaged thumbnail is left out, not a crash


def test_rows_whose_shortened_labels_collide_stay_apart():
    from ui.charts import TimelineRow, strip_figure, timeline_figure

    names = ("a very long query about one person walking, take a", "a very long query about one person walking, take b")
    rows = [TimelineRow(n, np.arange(3.0), np.arange(3.0)) for n in names]
    assert len({t.y[0] for t in timeline_figure(rows).data}) == 2  # the Timeline's rows: categories
    strip = strip_figure(rows)  # the Search tab's strip: a band per row, each named above it
    (_, bottom_a), (top_b, _) = (t.y for t in strip.data)
    assert bottom_a < top_b and [a.text for a in strip.layout.annotations] == list(names)


def test_a_click_on_the_strip_reaches_a_frame_only_when_it_is_one(indexed_library):
    """The strip's component reports the clicked cell from the browser: it must name a frame of a film
    on the strip as it was drawn for this query; anything else (an older query's strip, a film no
    longer shown, a crafted message) picks nothing."""
    from ui.strip_pointer import picked

    films = indexed_library.films()
    film = films[0]
    drawn = "a ship at sea · clip"
    ok = {"film": film.id, "frame": 3, "click": 1700000000000, "drawn": drawn}
    pick = picked(ok, films, drawn)
    assert pick.film.id == film.id and pick.frame == 3 and pick.click == 1700000000000
    assert picked(ok, films, "a bird · clip") is None  # the strip now shows another query
    assert picked(ok, films[1:], drawn) is None  # the film is no longer on the strip
    for bad in (
        ok | {"frame": len(film.times)},
        ok | {"frame": -1},
        ok | {"frame": "3"},
        ok | {"frame": True},
        ok | {"film": "../../etc"},
        "3",
        None,
    ):
        assert picked(bad, films, drawn) is None


EVIL = "![x](http://127.0.0.1:9/beacon.png)"  # an image that would make the viewer's browser fetch a URL


def _unescaped(text: str) -> bool:
    """Markdown source that would render an image or raw HTML: '![' or '<' not preceded by a backslash."""
    import re

    return bool(re.search(r"(?<!\\)!(?<!\\)\[|(?<!\\)<img", text))


def _everything_shown(at) -> list[str]:
    """Every piece of Markdown the page renders: messages, captions, headers, labels and tooltips."""
    parts = []
    for kind in ("markdown", "caption", "success", "warning", "error", "info", "subheader", "title", "header"):
        parts += [str(e.value) for e in at.get(kind)]
    for widget in ("button", "checkbox", "toggle", "text_input", "selectbox", "multiselect", "radio"):
        for w in at.get(widget):
            parts += [str(getattr(w, "label", "")), str(getattr(w.proto, "help", ""))]
    return parts


def test_text_from_films_subtitles_tags_and_links_is_shown_as_text_everywhere(monkeypatch, tiny_clip_dir, tmp_path):
    from clip_search.encoders import load_encoder
    from clip_search.indexing.indexer import index_film
    from tagging.tag_store import TagStore
    from tagging.taggers import Tag

    source = tmp_path / f"{EVIL.replace('/', '_')}.mp4"  # a film whose file name is an image link
    source.write_bytes(FLOWER.read_bytes())
    source.with_suffix(".srt").write_text(f"1\n00:00:00,000 --> 00:00:04,000\nhelp {EVIL} <img src=x>\n")
    lib = Library(tmp_path / "lib")
    film = index_film(source, lib, load_encoder(str(tiny_clip_dir), "cpu")).film
    store = TagStore(lib)  # a tagger's stored answer carrying the same text
    for t in film.times:
        store.put(film, float(t), "offline", "tags", "v", [Tag("caption", f"help {EVIL}", 0.9)])
    store.close()
    monkeypatch.setenv("FRAMESEARCH_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("FRAMESEARCH_LIBRARY", str(lib.root))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["q"] = f"help {EVIL}"  # a shared link whose query is the same
    at.run()
    assert not at.exception
    shown = []
    for engine in ("dialogue", "tags:offline", "clip"):
        at.selectbox(key="search-engine").set_value(engine).run()
        at.button(key="why-0").click().run()  # the evidence panel: cue, tags, crops
        assert not at.exception
        shown += _everything_shown(at)
    for tab in ("Timeline", "Compare engines"):
        open_tab(at, tab)
        shown += _everything_shown(at)
    assert any("beacon.png" in s for s in shown)  # the text is there, as text
    assert not [s for s in shown if _unescaped(s)]
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    labels = [
        str(v) for c in charts for t in c["data"] for v in (t.get("name"), t.get("hovertemplate"), *t.get("y", ()))
    ]
    assert not [v for v in labels if "<img" in v]  # Plotly labels take HTML: escaped there too


def test_a_shared_link_with_an_infinite_play_time_is_ignored(app, indexed_library, monkeypatch):
    link = AppTest.from_file(APP, default_timeout=120)
    film = indexed_library.films()[0]
    link.query_params.update({"play": f"{film.id}@inf", "pick": f"{film.id}@nan"})
    link.run()
    assert_no_error(link)
    assert "play" not in link.session_state


@pytest.mark.parametrize("k", ["²", "٣", "0", "1e3", "-5"])
def test_a_shared_link_with_a_bad_top_k_is_ignored_with_a_note_and_the_view_shows(app, k):
    link = AppTest.from_file(APP, default_timeout=120)
    link.query_params.update({"k": k, "q": "a ship at sea"})
    link.run()
    assert_no_error(link)
    assert link.session_state["top-k"] == 12 and "hits** for *a ship at sea*" in texts(link)
    assert any(f"k={k!r}" in c.value and "was ignored" in c.value for c in link.caption)


@pytest.mark.slow
def test_a_dialogue_hit_reads_its_line_once_and_plays_through_an_excerpt(app, indexed_library):

    app.text_input(key="query").input("help me Popeye").run()
    app.text_input(key="negative").input("a bird").run()
    app.selectbox(key="search-engine").select("dialogue").run()
    assert not app.exception
    page = texts(app)
    assert "hits** for *help me Popeye*" in page and "not a bird" not in page  # only what the engine used
    lines = [m.value for m in app.markdown if m.value.startswith("“")]
    assert lines and len(lines) == len(set(lines))  # one hit per cue, its line on the card
    assert any("#1" in m.value and "of its film" in m.value for m in app.markdown)  # rank and standing
    app.button(key="play-0").click().run()
    assert_no_error(app)
    film = indexed_library.get(app.session_state["play"]["film_id"])
    assert film.name.startswith("popeye")  # HEVC: an H.264 excerpt made now, the whole copy in the background
    assert list((indexed_library.root / "proxies" / "excerpts").rglob("*.mp4"))
    assert app.get("video") and any("playable excerpt from" in c.value for c in app.caption)


def test_a_query_longer_than_the_token_limit_shows_only_the_words_the_model_read(app):
    words = " ".join(f"word{i}" for i in range(1200))  # about 9 000 characters, far past 77 tokens
    app.text_input(key="query").input(words).run()
    assert_no_error(app)
    (header,) = [m.value for m in app.markdown if "hits** for *" in m.value]
    shown_query = shown(header).split("hits** for *", 1)[1]
    assert shown_query.startswith("word0 word1 ") and shown_query.rstrip("*").endswith(" …")
    assert len(shown_query) < 400 and "word1199" not in shown_query
    assert any("longer than" in c.value and "tokens" in c.value for c in app.caption)  # and it says so


def test_a_film_without_offline_tags_is_named_and_one_button_adds_them(monkeypatch, tiny_clip_dir, tmp_path, encoder):
    from clip_search.indexing.indexer import index_film
    from tagging.run import tag_film
    from tagging.taggers import make_tagger
    from tests.conftest import MEDIA

    lib = Library(tmp_path / "lib")
    flower = index_film(FLOWER, lib, encoder).film
    index_film(MEDIA / "closeups" / "bug_video_640.mp4", lib, encoder)  # an upload: not tagged
    tag_film(lib, flower, make_tagger("offline"))
    monkeypatch.setenv("FRAMESEARCH_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("FRAMESEARCH_LIBRARY", str(lib.root))
    at = AppTest.from_file(APP, default_timeout=300).run()
    assert_no_error(at)
    assert "tags:offline" not in at.selectbox(key="search-engine").options
    note = [c.value for c in at.caption if "is not offered" in c.value]
    assert note and "tags:offline" in shown(note[0]) and "bug_video_640" in shown(note[0]) and "flower" not in note[0]
    at.button(key="tag-lacking-offline").click().run(timeout=300)
    assert_no_error(at)
    assert "tags:offline" in at.selectbox(key="search-engine").options
    assert not any("is not offered" in c.value for c in at.caption)


def test_the_search_tab_shows_moments_plays_one_to_its_end_and_keeps_temporal_options_in_the_link(app):
    app.multiselect(key="search-films").set_value(["popeye_p1"])
    app.text_input(key="query").input("Sinbad the sailor").run()
    app.segmented_control(key="search-view").set_value("Moments").run()
    assert_no_error(app)
    assert any(m.value.startswith("**") and "moments**" in m.value for m in app.markdown)
    app.button(key="play-moment-0").click().run()
    playing = app.session_state["play"]
    assert playing["end"] > playing["time"]  # ▶ plays the moment, and stops at its end
    assert any(" to " in m.value and m.value.startswith("**Playing") for m in app.markdown)
    app.text_area(key="then").input("Popeye").run()
    app.text_input(key="after").input("0:05").run()
    assert_no_error(app)
    assert any("sequence(s)" in c.value for c in app.caption)  # how the sequences were chosen, said
    assert app.query_params["view"] == "Moments" and app.query_params["after"] == "0:05"
    assert app.query_params["then"] in ("Popeye", ["Popeye"])
    app.text_input(key="before").input("soon").run()
    assert any("is not a time" in e.value for e in app.error)  # one line, the page stays


def test_the_timeline_draws_pooled_frames_beside_the_model_when_searching_with_them(app):
    app.text_input(key="query").input("a ship").run()
    app.selectbox(key="search-engine").select("pooled:clip").run()
    open_tab(app, "Timeline")
    fig = json.loads(app.get("plotly_chart")[0].proto.spec)
    rows = [t["y"][0] for t in fig["data"]]
    assert len(rows) == 2 and any("pooled:clip" in r for r in rows)  # per frame, and per shot

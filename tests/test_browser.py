"""The dashboard in a real browser: headless Debian Chromium driven by Playwright.

Starts ``streamlit run dashboard.py`` on a free localhost port against a library indexed from
../shared/media with a small random CLIP, types a query, waits for the result grid and the
timeline, clicks timeline points and checks the shown frame follows.

Every interaction waits for the script run it started to finish, read from Streamlit's own run
state (``stApp``'s ``data-test-script-state``, see :func:`act`), and asserts with Playwright's
auto-waiting ``expect``: no fixed sleeps. Screenshots
go to a temporary folder; ``FRAMESEARCH_SCREENSHOTS=docs`` (``scripts/screenshots.sh``) writes the
README's images on purpose, so running the tests never modifies tracked files."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from clip_search import config
from ui.launch import CHROMIUM, RUN_DONE, WATCH_RUNS, launch_chromium, start_dashboard

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is not installed; the README's test command installs it")
    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture(scope="module")
def dashboard(indexed_library, tiny_clip_dir):
    proc, url = start_dashboard(str(indexed_library.root), str(tiny_clip_dir))
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where screenshots go: a temp folder, or docs/ when asked for on purpose."""
    return config.PROJECT_DIR / "docs" if os.environ.get("FRAMESEARCH_SCREENSHOTS") == "docs" else tmp_path


def settled(page, timeout: float = 60_000) -> None:
    """Wait until Streamlit is not running the script (after the page has loaded)."""
    from playwright.sync_api import expect

    expect(page.locator("[data-testid='stApp']")).to_have_attribute(
        "data-test-script-state", "notRunning", timeout=timeout
    )


def act(page, action, timeout: float = 60_000) -> None:
    """Do ``action`` (a click, Enter) and wait until the script run it started has finished.

    The state reads "notRunning" for a moment after a click, before the server has started the
    run; a watcher set up before the action counts the run's start, so that moment is never taken
    for the end of the run."""
    page.evaluate(WATCH_RUNS)
    action()
    page.wait_for_function(RUN_DONE, timeout=timeout, polling=50)


def images_loaded(page) -> None:
    """Wait until every image in the page has loaded (before a screenshot)."""
    page.wait_for_function("[...document.images].every(im => im.complete && im.naturalWidth > 0)", timeout=30_000)


def click_point(page, point) -> None:
    """Click where a chart point is drawn, as a user does: the pointer lands on Plotly's drag layer
    (which lies over the points) and Plotly picks the point under it."""
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def reopen(browser, url: str, shows) -> None:
    """A shared link, opened in a new page, shows the same view (``shows(page)``: what must be visible)."""
    from playwright.sync_api import expect

    other = browser.new_page(viewport={"width": 1280, "height": 800})
    other.goto(url)
    settled(other, timeout=90_000)
    expect(shows(other)).to_be_visible(timeout=60_000)
    other.close()


def test_query_grid_timeline_click_and_screenshot(browser, dashboard, shots, indexed_library):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(dashboard)
    box = page.get_by_label("What did you see?")
    expect(box).to_be_visible(timeout=90_000)
    settled(page)
    page.wait_for_function("window.__fslHitKeys === true")  # the result keys are listening (their script loaded)
    box.fill("a ship at sea")
    act(page, lambda: box.press("Enter"))
    expect(page.get_by_text(re.compile(r"12 hits"))).to_be_visible(timeout=60_000)
    panel = page.locator("[role='tabpanel']").first
    grid = panel.locator("[data-testid='stImage'] img")
    expect(grid).to_have_count(12, timeout=30_000)
    # the grid and the score strip of each film on one screen
    strip = panel.locator(".js-plotly-plot").first
    expect(strip).to_be_visible()
    assert strip.bounding_box()["y"] < 900 and grid.first.bounding_box()["y"] < 900
    # no horizontal scrolling of the page at 1280 px, and frames large enough to read
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    images_loaded(page)
    assert min(grid.nth(i).bounding_box()["width"] for i in range(12)) >= 160
    # the page (and so Tab) reads the hits in rank order: row by row, left to right
    boxes = [page.get_by_role("button", name="Why?").nth(i).bounding_box() for i in range(12)]
    assert [(round(b["y"]), b["x"]) for b in boxes] == sorted((round(b["y"]), b["x"]) for b in boxes)

    # hovering the strip's second row shows that frame's thumbnail beside Plotly's time and score
    band = strip.locator(".heatmaplayer image").nth(1).bounding_box()
    at = (band["x"] + band["width"] * 0.3, band["y"] + band["height"] / 2)
    page.mouse.move(*at)
    preview = page.locator("#fsl-hover-preview")
    expect(preview).to_be_visible(timeout=10_000)
    label = strip.locator(".hoverlayer .hovertext").text_content()
    assert preview.get_attribute("data-film") in label and preview.get_attribute("data-time") in label
    assert preview.locator("img").get_attribute("src").startswith("data:image/jpeg;base64,")
    page.wait_for_function("document.querySelector('#fsl-hover-preview img').naturalWidth > 0")
    page.screenshot(path=str(shots / "dashboard.png"), full_page=False)
    # a click there shows that frame below the strip, with ▶ from its time (the time Plotly's label named)
    hovered = label.split(preview.get_attribute("data-film"), 1)[1]
    act(page, lambda: page.mouse.click(*at))
    play_there = panel.get_by_role("button", name=re.compile(r"^▶ Play from "))
    expect(play_there).to_be_visible()
    assert play_there.text_content().removeprefix("▶ Play from ") in hovered
    page.mouse.move(600, 600)
    expect(preview).to_be_hidden()

    # keys of their own: j / k move between hits in rank order, Enter plays the one in focus
    plays = panel.get_by_role("button", name=re.compile(r"^▶ "))
    # Enter ran the query and left the box: the first j goes to the results, not into the box
    assert page.evaluate("document.activeElement.tagName") != "INPUT"
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert page.evaluate("document.activeElement.innerText") == plays.nth(1).inner_text()
    page.keyboard.press("k")
    assert page.evaluate("document.activeElement.innerText") == plays.nth(0).inner_text()
    page.get_by_label("What did you see?").focus()  # Esc leaves the box too
    page.keyboard.press("Escape")
    page.wait_for_function("document.activeElement.tagName !== 'INPUT'")
    # and the Tab after it goes to the first hit; each card is one Tab stop (its ▶), so Tab reads the hits
    for n in range(3):
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.innerText") == plays.nth(n).inner_text()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("k")
    assert page.evaluate("document.activeElement.innerText") == plays.nth(0).inner_text()

    # ▶ on a hit plays beside the results, and the player stays in view while the grid scrolls. The
    # results are a fragment: its reruns are awaited through what they draw (the player)
    page.keyboard.press("Enter")
    video = panel.locator("video")
    expect(video).to_be_attached(timeout=180_000)  # an HEVC film's first ▶ makes its H.264 proxy first
    page.mouse.move(600, 600)
    page.mouse.wheel(0, 1500)
    expect(grid.first).not_to_be_in_viewport()
    expect(video).to_be_in_viewport()
    page.mouse.wheel(0, -3000)

    # a hit explains itself: CLIP's crop map over the frame (w on a hit in focus is its card's Why?)
    plays.nth(0).focus()
    page.keyboard.press("w")  # a fragment rerun, awaited through its panel
    expect(page.get_by_text("where in the frame the query matches")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("where in the frame the query matches")).to_be_in_viewport()  # beside, in view
    images_loaded(page)
    page.screenshot(path=str(shots / "explain.png"), full_page=False)

    # the URL holds the view: a reload of the link restores it
    expect(page).to_have_url(re.compile(r"q=a\+ship\+at\+sea"), timeout=30_000)
    again = browser.new_page(viewport={"width": 1280, "height": 900})
    again.goto(page.url)
    settled(again, timeout=90_000)
    expect(again.get_by_label("What did you see?")).to_have_value("a ship at sea", timeout=60_000)
    expect(again.get_by_text(re.compile(r"12 hits"))).to_be_visible(timeout=60_000)
    again.close()

    # the same link at 1920 x 1080 and at 1280 x 800: nothing cut off sideways, frames readable
    for width, height in ((1920, 1080), (1280, 800)):
        sized = browser.new_page(viewport={"width": width, "height": height})
        sized.goto(page.url)
        settled(sized, timeout=90_000)
        expect(sized.get_by_text(re.compile(r"12 hits"))).to_be_visible(timeout=60_000)
        images_loaded(sized)
        assert sized.evaluate("document.documentElement.scrollWidth") <= width
        frames = sized.locator("[role='tabpanel']").first.locator("[data-testid='stImage'] img")
        shown = min(frames.nth(i).bounding_box()["width"] for i in range(12))
        assert shown >= (320 if width >= 1920 else 160), (width, height, shown)
        stored = min(frames.nth(i).evaluate("img => img.naturalWidth") for i in range(12))
        assert stored >= shown or stored >= 384, (width, stored)  # drawn from images at least that size
        names = sized.locator(".st-key-search-strip .annotation-text")  # each strip row's film, above it
        expect(names.first).to_be_attached(timeout=30_000)
        texts = names.evaluate_all("els => els.map(e => e.textContent)")
        assert texts and set(texts) <= {f.name for f in indexed_library.films()}, texts  # whole names, not cut
        sized.screenshot(path=str(shots / f"search-{width}x{height}.png"), full_page=False)
        sized.close()

    act(page, lambda: page.get_by_role("tab", name="Timeline").click())
    # only the open tab runs and is in the page; its first chart is the timeline
    timeline = page.locator("[role='tabpanel'] .js-plotly-plot").first
    points = timeline.locator(".scatterlayer .points path")
    expect(points.nth(5)).to_be_visible(timeout=30_000)
    assert points.count() > 20
    heading = page.get_by_role("heading", name=re.compile(r"^Frame at "))
    act(page, lambda: click_point(page, points.nth(5)))
    expect(heading).to_be_visible(timeout=30_000)
    expect(heading).to_be_in_viewport(timeout=10_000)  # the picked frame is brought into view, not below the fold
    first = heading.inner_text()
    act(page, lambda: click_point(page, points.nth(points.count() - 3)))
    expect(heading).not_to_have_text(first, timeout=30_000)
    assert heading.inner_text().startswith("Frame at ")
    picked = page.locator("[role='tabpanel'] [data-testid='stImage'] img").first
    assert picked.evaluate("img => img.naturalWidth") > 384  # the source's own frame, not a thumbnail enlarged
    # the cursor at the picked time: the one red line (the other shapes outline each row's top moments)
    expect(timeline.locator(".shapelayer path[style*='255, 0, 0']")).to_have_count(1)
    images_loaded(page)
    page.screenshot(path=str(shots / "timeline.png"), full_page=False)
    expect(page).to_have_url(re.compile(r"tab=Timeline.*pick=|pick=.*tab=Timeline"), timeout=30_000)
    reopen(browser, page.url, lambda p: p.get_by_role("heading", name=heading.inner_text()))

    # ▶ from the Timeline tab plays where it was clicked, in view: not in the hidden Search tab, nor
    # at the foot of the sidebar
    act(page, lambda: page.get_by_role("button", name=re.compile(r"^▶ Play from")).click(), timeout=240_000)
    video = page.locator("[role='tabpanel'] video")
    expect(video).to_be_attached(timeout=180_000)  # (a proxy, if this film has none yet)
    expect(video).to_be_in_viewport()

    act(page, lambda: page.get_by_role("tab", name="Compare engines").click())
    expect(page.get_by_text("Timeline, one row per engine")).to_be_visible(timeout=60_000)
    images_loaded(page)
    page.screenshot(path=str(shots / "compare.png"), full_page=False)
    expect(page).to_have_url(re.compile(r"tab=Compare"), timeout=30_000)
    reopen(browser, page.url, lambda p: p.get_by_text("Timeline, one row per engine"))

    act(page, lambda: page.get_by_role("tab", name="Evaluate").click())
    act(page, lambda: page.get_by_role("button", name="Run evaluation").click(), timeout=300_000)
    expect(page.get_by_text("Quality per dollar")).to_be_visible(timeout=60_000)
    # the results come into view after Run: the one-line verdict, then the whole metric chart
    expect(page.get_by_text(re.compile(r"^Verdict\. On "))).to_be_in_viewport(timeout=10_000)
    expect(page.locator(".st-key-eval-bars .js-plotly-plot")).to_be_in_viewport(ratio=1, timeout=10_000)
    page.locator("[role='tabpanel'] .js-plotly-plot").first.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "evaluate.png"), full_page=False)
    expect(page).to_have_url(re.compile(r"tab=Evaluate"), timeout=30_000)
    reopen(browser, page.url, lambda p: p.get_by_role("button", name="Run evaluation"))
    page.close()


def test_frames_already_seen_are_not_fetched_again(browser, dashboard):
    """Back to an earlier query, its frames come from the browser's own cache: Streamlit names a
    frame's image by its content, and the dashboard's server (ui/frame_cache.py) lets the browser
    keep it, so the same frame is not sent again, however many queries came between."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(dashboard)
    box = page.get_by_label("What did you see?")
    expect(box).to_be_visible(timeout=90_000)
    settled(page)
    images = page.locator("[role='tabpanel']").first.locator("[data-testid='stImage'] img")
    fetched: list = []
    page.on("response", lambda r: fetched.append(r) if "/media/" in r.url else None)
    queries = ("a ship at sea", "a soldier", "a man on a ship", "a sailor with a pipe", "a ship at sea")
    for n, query in enumerate(queries):
        fetched.clear()
        box.fill(query)
        act(page, lambda: box.press("Enter"))
        expect(images).to_have_count(12, timeout=30_000)
        images_loaded(page)
        if n == 1:  # a new query's frames do travel (the listener sees them), each marked to be kept
            assert fetched and all("max-age" in (r.headers.get("cache-control") or "") for r in fetched)
    assert fetched == []
    page.close()

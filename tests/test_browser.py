"""The dashboard in a real browser: headless Debian Chromium driven by Playwright.

Starts ``streamlit run dashboard.py`` on a free localhost port against a library indexed from
../shared/media with a small random CLIP, types a query, waits for the result grid and the
timeline, clicks timeline points and checks the shown frame follows, and saves the screenshot
the README shows (docs/dashboard.png)."""

from __future__ import annotations

import os
import re

import pytest

from clip_search import config
from ui.launch import CHROMIUM, launch_chromium, start_dashboard

pytestmark = pytest.mark.browser
SCREENSHOT = config.PROJECT_DIR / "docs" / "dashboard.png"


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


def frame_time_shown(page) -> str:
    heading = page.get_by_text(re.compile(r"^Frame at ")).first
    heading.wait_for(timeout=30_000)
    return heading.inner_text()


def test_query_grid_timeline_click_and_screenshot(browser, dashboard):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(dashboard)
    box = page.get_by_label("What did you see?")
    box.wait_for(timeout=60_000)
    box.fill("a ship at sea")
    box.press("Enter")
    page.get_by_text(re.compile(r"12 hits")).wait_for(timeout=60_000)
    grid = page.locator("[role='tabpanel']").first.locator("[data-testid='stImage'] img")
    grid.nth(11).wait_for(timeout=30_000)
    assert grid.count() == 12

    # no horizontal scrolling of the page at 1280 px
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280

    page.get_by_role("tab", name="Timeline").click()
    # only the active tab's panel is in the page; its first chart is the timeline
    timeline = page.locator("[role='tabpanel'] .js-plotly-plot").first
    points = timeline.locator(".scatterlayer .points path")
    points.nth(5).wait_for(timeout=30_000)
    assert points.count() > 20
    points.nth(5).click(force=True)
    first = frame_time_shown(page)
    points.nth(points.count() - 3).click(force=True)
    page.wait_for_function(
        "t => ![...document.querySelectorAll('h3')].some(h => h.innerText === t)", arg=first, timeout=30_000
    )
    second = frame_time_shown(page)
    assert second != first and second.startswith("Frame at ")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.get_by_role("tab", name="Search").click()
    page.wait_for_timeout(500)
    page.screenshot(path=str(SCREENSHOT), full_page=False)
    page.close()

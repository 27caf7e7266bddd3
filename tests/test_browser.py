"""The dashboard in a real browser: headless Debian Chromium driven by Playwright.

Starts ``streamlit run dashboard.py`` on a free localhost port against a library indexed from
../shared/media with a small random CLIP, types a query, waits for the result grid and the
timeline, clicks timeline points and checks the shown frame follows.

Every step waits for Streamlit's own run state (``stApp`` with ``data-test-script-state`` =
``notRunning``) and asserts with Playwright's auto-waiting ``expect``: no fixed sleeps. Screenshots
go to a temporary folder; ``FRAMESEARCH_SCREENSHOTS=docs`` (``scripts/screenshots.sh``) writes the
README's images on purpose, so running the tests never modifies tracked files."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from clip_search import config
from ui.launch import CHROMIUM, launch_chromium, start_dashboard

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
    """Wait until Streamlit has finished the script run that the last interaction started."""
    from playwright.sync_api import expect

    expect(page.locator("[data-testid='stApp']")).to_have_attribute(
        "data-test-script-state", "notRunning", timeout=timeout
    )


def click_point(page, point) -> None:
    """Click where a chart point is drawn, as a user does: the pointer lands on Plotly's drag layer
    (which lies over the points) and Plotly picks the point under it."""
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def test_query_grid_timeline_click_and_screenshot(browser, dashboard, shots):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(dashboard)
    box = page.get_by_label("What did you see?")
    expect(box).to_be_visible(timeout=90_000)
    settled(page)
    box.fill("a ship at sea")
    box.press("Enter")
    settled(page)
    expect(page.get_by_text(re.compile(r"12 hits"))).to_be_visible(timeout=60_000)
    grid = page.locator("[role='tabpanel']").first.locator("[data-testid='stImage'] img")
    expect(grid).to_have_count(12, timeout=30_000)

    # no horizontal scrolling of the page at 1280 px
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280

    page.get_by_role("tab", name="Timeline").click()
    settled(page)
    # only the open tab runs and is in the page; its first chart is the timeline
    timeline = page.locator("[role='tabpanel'] .js-plotly-plot").first
    points = timeline.locator(".scatterlayer .points path")
    expect(points.nth(5)).to_be_visible(timeout=30_000)
    assert points.count() > 20
    heading = page.get_by_role("heading", name=re.compile(r"^Frame at "))
    click_point(page, points.nth(5))
    settled(page)
    expect(heading).to_be_visible(timeout=30_000)
    first = heading.inner_text()
    click_point(page, points.nth(points.count() - 3))
    settled(page)
    expect(heading).not_to_have_text(first, timeout=30_000)
    assert heading.inner_text().startswith("Frame at ")
    page.screenshot(path=str(shots / "timeline.png"), full_page=False)

    page.get_by_role("tab", name="Search").click()
    settled(page)
    expect(grid).to_have_count(12, timeout=30_000)
    expect(grid.nth(11)).to_be_visible()
    page.screenshot(path=str(shots / "dashboard.png"), full_page=False)
    assert (shots / "dashboard.png").stat().st_size > 10_000
    page.close()

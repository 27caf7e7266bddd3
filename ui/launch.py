"""Start the dashboard as a separate process and drive it with headless Chromium.

Shared by the browser test and the browser benchmark."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import clip_search.config as config

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# as root, without network: no sandbox, no GPU, no background connections that would be refused
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]


def free_port() -> int:
    """A free TCP port on localhost."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_dashboard(library: str, model: str, timeout: float = 90.0) -> tuple[subprocess.Popen, str]:
    """``streamlit run dashboard.py`` on a free localhost port; returns the process and its URL once healthy."""
    port = free_port()
    env = dict(os.environ, FRAMESEARCH_LIBRARY=library, FRAMESEARCH_MODEL=model, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(config.PROJECT_DIR / "dashboard.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=config.PROJECT_DIR,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}")
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"streamlit did not answer within {timeout:.0f} s")


def launch_chromium(playwright):
    """Debian's Chromium through Playwright (Playwright's own browser download is not possible here)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# A page's script runs, as a browser driver waits for them (the tests and the benchmarks): Streamlit
# sets data-test-script-state on the app; a watcher set up before an action counts the run that the
# action starts, so the moment before the server starts it is never taken for its end.
WATCH_RUNS = """() => {
  const app = document.querySelector("[data-testid='stApp']");
  if (window.__runWatch) window.__runWatch.disconnect();
  window.__runs = 0;
  window.__runWatch = new MutationObserver(() => {
    if (app.dataset.testScriptState === "running") window.__runs += 1;
  });
  window.__runWatch.observe(app, { attributes: true, attributeFilter: ["data-test-script-state"] });
}"""
RUN_DONE = """() => window.__runs > 0
  && document.querySelector("[data-testid='stApp']").dataset.testScriptState === "notRunning" """


def _streamlit_config(dashboard: Path) -> Path | None:
    """The product's Streamlit settings: ``.streamlit/config.toml`` beside the dashboard in a checkout,
    or the copy ``pip install`` puts under ``<prefix>/share/frame-search-lab``."""
    for candidate in (
        dashboard.parent / ".streamlit" / "config.toml",
        config.installed_share() / ".streamlit" / "config.toml",
    ):
        if candidate.is_file():
            return candidate
    return None


def streamlit_flags(path: Path | None) -> list[str]:
    """Every setting of a Streamlit config file as command-line flags (``--server.address localhost``):
    they apply whatever folder the dashboard is started from."""
    if path is None:
        return []
    settings = tomllib.loads(path.read_text(encoding="utf-8"))
    flags = []
    for section, options in settings.items():
        for option, value in options.items():
            shown = str(value).lower() if isinstance(value, bool) else str(value)
            flags += [f"--{section}.{option}", shown]
    return flags


def main(argv: list[str] | None = None) -> int:
    """``framesearch-dashboard [STREAMLIT OPTIONS]``: the dashboard in the browser, with the product's
    Streamlit settings (options given here win); the library is $FRAMESEARCH_LIBRARY or ./library."""
    spec = importlib.util.find_spec("dashboard")
    dashboard = Path(spec.origin) if spec and spec.origin else config.PROJECT_DIR / "dashboard.py"
    args = list(sys.argv[1:] if argv is None else argv)
    command = [sys.executable, "-m", "streamlit", "run", str(dashboard), *streamlit_flags(_streamlit_config(dashboard))]
    try:
        return subprocess.call([*command, *args])
    except KeyboardInterrupt:
        return 130

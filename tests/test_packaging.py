"""``pip install .`` as a user runs it: the console scripts work from anywhere, the engine CLI pulls in
no dashboard, Ray or browser, and a lab's plugin package, installed beside it, adds a tagger and
an engine that ``comparisons`` and the dashboard offer without any change to our code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from clip_search import config
from tests.conftest import text_video

pytestmark = pytest.mark.slow


def _pip(*args: str, cwd: Path) -> None:
    """pip without network: dependencies are the test venv's, the build backend is its setuptools."""
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", *args]
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)


def _site(prefix: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)}))


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """The project installed from a copy of its tracked files into a fresh prefix (the checkout is
    not on the path of what runs it, and is left as it was)."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=config.PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    for name in files.stdout.splitlines():
        if (config.PROJECT_DIR / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes((config.PROJECT_DIR / name).read_bytes())
    prefix = tmp / "prefix"
    _pip("--prefix", str(prefix), ".", cwd=src)
    env = dict(
        os.environ,
        PYTHONPATH=str(_site(prefix)),
        FRAMESEARCH_SHARED=str(config.shared_dir()),
        HF_HUB_OFFLINE="1",
    )
    return prefix, env


def _run(cmd: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_console_scripts_index_and_search_from_anywhere(installed, tmp_path, tiny_clip_dir):
    prefix, env = installed
    bin_dir = prefix / "bin"
    for script in ("framesearch", "framesearch-compare", "framesearch-dashboard"):
        assert (bin_dir / script).is_file(), script
    for script in ("framesearch", "framesearch-compare"):
        out = _run([str(bin_dir / script), "--help"], env, tmp_path)
        assert out.returncode == 0 and "usage:" in out.stdout, out.stderr
    where = _run([sys.executable, "-c", "import clip_search, engines; print(clip_search.__file__)"], env, tmp_path)
    assert where.stdout.strip().startswith(str(prefix)), "the installed copy is what runs"
    data = _run([sys.executable, "-c", "import clip_search.config as c; print(c.data_dir())"], env, tmp_path)
    assert (Path(data.stdout.strip()) / "queries.csv").is_file()  # the example sets come with the install
    film = text_video(tmp_path / "captions.mp4")
    lib = str(tmp_path / "lib")
    model = ["--model", str(tiny_clip_dir)]
    out = _run([str(bin_dir / "framesearch"), "index", str(film), "--library", lib, *model], env, tmp_path)
    assert out.returncode == 0, out.stderr
    out = _run([str(bin_dir / "framesearch"), "search", "hello", "--library", lib, *model, "--json"], env, tmp_path)
    assert out.returncode == 0 and json.loads(out.stdout), out.stderr
    out = _run([str(bin_dir / "framesearch-compare"), "search", "hello", "--library", lib, "--json"], env, tmp_path)
    assert out.returncode == 0 and json.loads(out.stdout)[0]["film"] == "captions", out.stderr


def test_the_engine_cli_pulls_in_no_dashboard_ray_or_browser(installed, tmp_path, tiny_clip_dir):
    _, env = installed
    film = text_video(tmp_path / "captions.mp4")
    lib = str(tmp_path / "lib")
    probe = textwrap.dedent(
        f"""
        import sys
        from clip_search.cli import main
        assert main(["index", {str(film)!r}, "--library", {lib!r}, "--model", {str(tiny_clip_dir)!r}]) == 0
        assert main(["search", "hello", "--library", {lib!r}, "--model", {str(tiny_clip_dir)!r}]) == 0
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {{"streamlit", "ray", "playwright", "plotly"}})
        print("loaded:", heavy)
        """
    )
    out = _run([sys.executable, "-c", probe], env, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "loaded: []" in out.stdout


PLUGIN = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=70"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "lab-plugin"
        version = "0.1.0"

        [project.entry-points."framesearch.taggers"]
        brightness = "lab_plugin:BrightnessTagger"

        [project.entry-points."framesearch.engines"]
        late = "lab_plugin:LateEngine"
    """,
    "lab_plugin/__init__.py": '''
        """A lab's own tagger and engine, as a separate package: nothing of Frame Search Lab is edited."""
        import numpy as np

        from engines.base import Engine
        from tagging.taggers.base import Response, Tag


        class BrightnessTagger:
            """Tags a frame 'bright' or 'dark' by its mean grey level."""

            service = "brightness"
            features = ("level",)
            model_version = "1"
            paid = False
            local = True

            def responses(self, image, features=features):
                word = "bright" if float(np.mean(image)) > 60 else "dark"
                yield Response("level", [Tag("label", word, 1.0)])


        class LateEngine(Engine):
            """Ranks the later frames of a film first."""

            name = "late"
            description = "late: the end of each film first"

            def __init__(self, library):
                self.library = library

            def scores(self, film, query):
                return np.asarray(film.times / max(film.manifest.duration, 1e-9), np.float32)

            def explain(self, film, frame, query, crops=False):
                return self._explanation(film, frame, query, [], "later is better")
    ''',
}


@pytest.fixture(scope="module")
def plugin_env(installed, tmp_path_factory) -> dict:
    """The lab's plugin installed the way a lab installs it (pip, entry points), beside the product."""
    _, env = installed
    tmp = tmp_path_factory.mktemp("plugin")
    for name, text in PLUGIN.items():
        (tmp / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "src" / name).write_text(textwrap.dedent(text).lstrip())
    _pip("--target", str(tmp / "site"), ".", cwd=tmp / "src")
    return dict(env, PYTHONPATH=f"{tmp / 'site'}{os.pathsep}{env['PYTHONPATH']}")


def test_a_plugin_tagger_and_engine_work_through_the_command_lines(plugin_env, tmp_path, tiny_clip_dir):
    film = text_video(tmp_path / "captions.mp4")  # grey 30 with white words from 2 s: dark frames
    lib = ["--library", str(tmp_path / "lib")]

    def compare(*args: str, env: dict = plugin_env) -> subprocess.CompletedProcess:
        return _run([sys.executable, "-m", "comparisons", *args, *lib], env, tmp_path)

    index = [sys.executable, "-m", "clip_search", "index", str(film), *lib, "--model", str(tiny_clip_dir)]
    assert _run(index, plugin_env, tmp_path).returncode == 0
    out = compare("tag", "captions", "--service", "brightness")
    assert out.returncode == 0, out.stderr
    out = compare("search", "dark", "--engine", "tags:brightness", "--json")
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)
    assert hits and all(h["engine"] == "tags:brightness" for h in hits)
    assert hits[0]["matched"][0]["text"] == "dark"  # the plugin's own tag is the evidence
    out = compare("search", "anything", "--engine", "late", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["time"] == 7.0  # the last frame of the 8 s film
    without = {**plugin_env, "PYTHONPATH": plugin_env["PYTHONPATH"].split(os.pathsep, 1)[1]}  # the product alone
    out = compare("search", "x", "--engine", "late", env=without)
    assert out.returncode == 2 and "unknown engine 'late'" in out.stderr  # without the plugin, it is not there


def test_the_dashboard_offers_the_plugins_engine_and_tagger(plugin_env, tmp_path, tiny_clip_dir):
    film = text_video(tmp_path / "captions.mp4")
    lib = tmp_path / "lib"
    index = [
        sys.executable,
        "-m",
        "clip_search",
        "index",
        str(film),
        "--library",
        str(lib),
        "--model",
        str(tiny_clip_dir),
    ]
    assert _run(index, plugin_env, tmp_path).returncode == 0
    probe = textwrap.dedent(
        f"""
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({str(config.PROJECT_DIR / "dashboard.py")!r}, default_timeout=120)
        at.run()
        assert not at.exception, at.exception
        engines = at.selectbox(key="search-engine").options
        at.session_state["tab"] = "Compare engines"  # as a click on the tab does (tabs are lazy)
        at.session_state["query"] = "dark"
        at.run()
        assert not at.exception, at.exception
        services = at.selectbox(key="tag-service").options
        print("engines:", engines)
        print("services:", services)
        """
    )
    env = dict(plugin_env, FRAMESEARCH_LIBRARY=str(lib), FRAMESEARCH_MODEL=str(tiny_clip_dir))
    out = _run([sys.executable, "-c", probe], env, config.PROJECT_DIR)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "'late'" in out.stdout.split("engines:")[1].splitlines()[0]
    assert "'brightness'" in out.stdout.split("services:")[1].splitlines()[0]


def test_without_the_scale_extra_archive_search_is_exact_and_ray_runs_say_what_to_install(
    tmp_path, monkeypatch, capsys
):
    """An install without ``[scale]``: FAISS and Ray cannot be imported (a None in sys.modules makes
    ``import faiss`` fail exactly as a missing package does)."""
    import numpy as np

    import clip_search.search.ann as ann
    from clip_search.cli import main
    from clip_search.search.scoring import Searcher
    from clip_search.store.library import Library, Manifest
    from clip_search.store.writer import import_vectors

    monkeypatch.setitem(sys.modules, "faiss", None)
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setattr(ann, "ANN_MIN_FRAMES", 1000)  # archive-sized at 2 000 frames
    lib = Library(tmp_path / "lib")
    for name in ("a", "b"):
        import_vectors(
            lib,
            Manifest.imported(name, "m", 1000.0),
            np.random.default_rng(0).normal(size=(1000, 8)),
            np.arange(1000.0),
        )
    searcher = Searcher(lib.films(), lib)
    assert searcher.mode == "exact" and "frame-search-lab[scale]" in searcher.notice
    film = text_video(tmp_path / "captions.mp4")
    assert main(["index", str(film), "--library", str(tmp_path / "other"), "--workers", "2"]) == 2
    assert "frame-search-lab[scale]" in capsys.readouterr().err

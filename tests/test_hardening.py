"""Hostile input and sick services (issue 17): nothing leaked, nothing paid twice, no traceback.

Cloud services are the real SDK clients (azure-core, botocore) against tests/fake_cloud.py, a local
HTTP server on 127.0.0.1 standing in for Azure AI Vision and AWS Rekognition."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from clip_search import config
from clip_search.errors import FrameSearchError
from clip_search.indexing.indexer import index_film
from clip_search.search.ann import AnnIndex
from clip_search.store.library import Library
from tagging.run import BREAKER, tag_film
from tagging.tag_store import PENDING, TagStore, load_tags
from tagging.taggers import FatalTaggerError, Tag, TaggerError, all_tags
from tagging.taggers.azure import AzureTagger
from tagging.taggers.base import CALL_DEADLINE
from tagging.taggers.rekognition import RekognitionTagger
from tests.fake_cloud import FakeCloud, Scripted

FRAME = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
KEY = "secret-key-1234"


@pytest.fixture
def library(text_film, tmp_path):
    lib = Library(tmp_path / "lib")
    shutil.copytree(text_film[0].root, lib.root)
    return lib, lib.films()[0]


# -- security: credentials stay with their service ------------------------------------------------


def test_a_redirect_never_carries_the_azure_key_to_another_origin():
    with FakeCloud() as elsewhere, FakeCloud() as azure:
        azure.then(Scripted(307, {}, {"Location": f"{elsewhere.url}/computervision/imageanalysis:analyze"}))
        with pytest.raises(TaggerError, match="redirect") as err:
            all_tags(AzureTagger(endpoint=azure.url, key=KEY, backoff=0.01), FRAME)
        assert not elsewhere.requests  # not followed at all: no request, so no key, went there
        assert KEY not in str(err.value)


def test_a_redirect_never_carries_the_signed_aws_request_to_another_origin(aws):
    with FakeCloud() as elsewhere:
        aws.then(*[Scripted(307, {}, {"Location": f"{elsewhere.url}/"})] * 3)
        with pytest.raises(TaggerError):
            all_tags(RekognitionTagger(max_attempts=1), FRAME)
        assert not elsewhere.requests


# -- money: a frame is paid for once ----------------------------------------------------------------


def test_two_concurrent_tag_runs_of_one_film_pay_for_each_frame_once(library):
    lib, film = library
    with FakeCloud() as cloud:
        cloud.then(*[Scripted(delay=0.2)] * 40)  # slow enough that the two runs overlap
        env = dict(os.environ, AZURE_VISION_ENDPOINT=cloud.url, AZURE_VISION_KEY=KEY)
        cmd = [sys.executable, "-m", "comparisons", "tag", film.id, "--service", "azure", "--yes"]
        cmd += ["--library", str(lib.root)]
        runs = [subprocess.Popen(cmd, env=env, cwd=config.PROJECT_DIR, stderr=subprocess.PIPE) for _ in range(2)]
        for r in runs:
            r.wait(timeout=120)
        assert [r.returncode for r in runs] == [0, 0]
        assert len(cloud.requests) == len(film.times)  # 8 frames, 8 paid calls, not 16
    assert len(load_tags(lib, film, "azure")) == len(film.times)


def test_a_changed_source_file_is_not_tagged_under_the_old_fingerprint(text_film, tmp_path, encoder):
    source = tmp_path / "film.mp4"
    shutil.copy(text_film[1].manifest.source, source)
    lib = Library(tmp_path / "lib")
    film = index_film(source, lib, encoder).film
    with open(source, "ab") as f:
        f.write(b"\0" * 4096)  # the file changed after indexing
    with FakeCloud() as cloud:
        with pytest.raises(FrameSearchError, match="has changed since it was indexed"):
            tag_film(lib, film, AzureTagger(endpoint=cloud.url, key=KEY))
        assert not cloud.requests


def test_a_locked_tag_cache_is_waited_for_and_no_paid_response_is_lost(library):
    lib, film = library
    TagStore(lib).close()
    holder = sqlite3.connect(lib.root / "tags.sqlite", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # another process writing for a while
    store = TagStore(lib, busy_timeout=0.05, patience=10)
    t0 = time.monotonic()
    from threading import Timer

    Timer(1.0, holder.execute, ["COMMIT"]).start()
    store.put(film, 0.0, "azure", "analyze", "latest", [Tag("label", "ship", 0.9)])
    assert time.monotonic() - t0 >= 0.9  # it waited for the lock instead of failing
    assert load_tags(lib, film, "azure")[0] == [Tag("label", "ship", 0.9)]
    # locked for longer than the store's patience: the response goes to the pending file, the run stops
    holder.execute("BEGIN EXCLUSIVE")
    impatient = TagStore(lib, busy_timeout=0.05, patience=0.3)
    with pytest.raises(FatalTaggerError, match="stayed locked"):
        impatient.put(film, 1.0, "azure", "analyze", "latest", [Tag("label", "sea", 0.8)])
    assert (lib.root / PENDING).is_file()
    holder.execute("COMMIT")
    holder.close()
    TagStore(lib).close()  # the next run stores what was kept aside first
    assert not (lib.root / PENDING).exists()
    assert load_tags(lib, film, "azure")[1000] == [Tag("label", "sea", 0.8)]


@pytest.mark.parametrize("damage", ["junk", "truncated", "empty"])
def test_a_damaged_tag_cache_is_set_aside_in_one_line_and_the_rest_keeps_working(library, damage, capsys):
    from comparisons.cli import main

    lib, film = library
    assert main(["tag", film.id, "--service", "offline", "--library", str(lib.root)]) == 0
    db = lib.root / "tags.sqlite"
    store = TagStore(lib)
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = db.read_bytes()
    db.write_bytes({"junk": b"this is not a database" * 100, "truncated": data[: len(data) // 2], "empty": b""}[damage])
    capsys.readouterr()
    code = main(["search", "hello world", "--engine", "dialogue", "--library", str(lib.root), "--json"])
    captured = capsys.readouterr()
    assert code in (0, 2) and "Traceback" not in captured.err  # dialogue falls back to OCR tags: gone, said
    code = main(["tag", film.id, "--service", "offline", "--library", str(lib.root)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Traceback" not in err
    if damage != "empty":  # an empty file is a valid empty database
        assert list(lib.root.glob("tags.sqlite.damaged-*"))  # kept aside, not deleted
    assert len(load_tags(lib, film, "offline")) == len(film.times)  # tagged again into a new cache


def test_a_full_disk_is_one_sentence(library):
    lib, film = library
    store = TagStore(lib)
    (pages,) = store._db.execute("PRAGMA page_count").fetchone()
    store._db.execute(f"PRAGMA max_page_count = {pages}")  # stands in for a full disk: SQLite's SQLITE_FULL
    with pytest.raises(FatalTaggerError, match="is full"):
        store.put(film, 0.0, "azure", "analyze", "latest", [Tag("label", "x" * 400, 0.5)] * 200)


@pytest.mark.parametrize(
    "body",
    [
        b'{"modelVersion": "v", "metadata": {"width": 1, "height": 1}, '
        b'"tagsResult": {"values": [{"name": "ship", "confidence": NaN}]}}',
        b'{"modelVersion": "v", "metadata": {"width": 1, "height": 1}, '
        b'"tagsResult": {"values": [{"name": 42, "confidence": 0.9}]}}',
        b'{"modelVersion": "v", "metadata": {"width": 1, "height": 1}, '
        b'"tagsResult": {"values": [{"name": ["a", "b"], "confidence": 0.9}]}}',
    ],
)
def test_an_azure_response_that_does_not_fit_the_schema_is_an_error_and_nothing_is_stored(library, body):
    lib, film = library
    with FakeCloud() as cloud:
        cloud.then(*[Scripted(json_raw=body)] * 20)
        run = tag_film(lib, film, AzureTagger(endpoint=cloud.url, key=KEY), workers=1)
    assert run.tagged == 0 and run.errors and "not stored" in run.errors[0][1]
    assert not load_tags(lib, film, "azure")


def test_a_rekognition_label_that_is_not_text_is_an_error_and_nothing_is_stored(library, aws):
    lib, film = library
    bad = {"Labels": [{"Name": 7, "Confidence": 90.0, "Instances": []}], "LabelModelVersion": "3.0"}
    aws.then(*[Scripted(body=bad), Scripted(), Scripted()] * 8)
    run = tag_film(lib, film, RekognitionTagger(max_attempts=1), workers=1)
    assert run.errors and "not stored" in run.errors[0][1]
    stored = load_tags(lib, film, "rekognition")
    assert all(t.kind != "label" for tags in stored.values() for t in tags)  # the bad call's tags: none


# -- bounded waits: a sick endpoint is given up on in under a minute --------------------------------


def test_the_default_limits_give_up_on_a_dead_endpoint_within_a_minute():
    # frames in flight at once (2 workers) each end within CALL_DEADLINE; BREAKER failed frames stop
    # the run, and the frames already running when it trips finish too: at most one more round
    assert CALL_DEADLINE * (BREAKER // 2 + 2) < 60


@pytest.mark.parametrize(
    "reply",
    [
        Scripted(delay=600),  # an endpoint that never answers
        Scripted(drip=1.0),  # a 200 whose body drips in at a byte a second
    ],
)
def test_a_silent_or_dripping_azure_endpoint_is_given_up_on(library, reply):
    lib, film = library
    with FakeCloud() as cloud:
        cloud.then(*[reply] * 20)
        t0 = time.monotonic()
        run = tag_film(lib, film, AzureTagger(endpoint=cloud.url, key=KEY, retries=0, deadline=1.0))
        took = time.monotonic() - t0
    assert run.fatal and "frames in a row" in run.fatal and run.tagged == 0
    assert took < 16  # a few rounds of the 1 s deadline, not minutes (a loaded machine adds seconds)


@pytest.mark.parametrize("reply", [Scripted(delay=600), Scripted(drip=1.0)])
def test_a_silent_or_dripping_rekognition_endpoint_is_given_up_on(library, aws, reply):
    lib, film = library
    aws.then(*[reply] * 40)
    t0 = time.monotonic()
    run = tag_film(lib, film, RekognitionTagger(deadline=1.0))
    assert run.fatal and run.tagged == 0 and time.monotonic() - t0 < 20  # seconds, not minutes


@pytest.mark.slow
@pytest.mark.parametrize("reply", [Scripted(delay=600), Scripted(drip=1.0)], ids=["silent", "dripping"])
def test_with_the_default_limits_a_sick_rekognition_endpoint_costs_under_a_minute(library, aws, reply):
    """The README's promise, measured with the shipped limits (a 15 s call deadline, three calls a
    frame, two frames at once): the whole run is bounded, not each call (136 s before)."""
    lib, film = library
    aws.then(*[reply] * 60)
    t0 = time.monotonic()
    run = tag_film(lib, film, RekognitionTagger())
    took = time.monotonic() - t0
    assert run.fatal and run.tagged == 0
    assert took < 60, f"gave up after {took:.0f} s"


def test_a_run_that_hears_nothing_for_its_bound_stops_whatever_each_call_allows(library, aws):
    lib, film = library
    aws.then(*[Scripted(delay=600)] * 40)
    t0 = time.monotonic()
    run = tag_film(lib, film, RekognitionTagger(deadline=6.0), breaker=100, give_up_after=2.0)
    took = time.monotonic() - t0
    assert run.fatal and "gave no answer for 2 s" in run.fatal and run.tagged == 0
    assert took < 2.0 + 6.0 + 5  # the bound, then the calls in flight end within their own deadline


def test_throttling_that_asks_for_an_hour_stops_the_run_at_once(library):
    lib, film = library
    storm = Scripted(429, {"error": {"code": "429", "message": "slow down"}}, {"Retry-After": "3600"})
    with FakeCloud() as cloud:
        cloud.then(*[storm] * 40)
        t0 = time.monotonic()
        run = tag_film(lib, film, AzureTagger(endpoint=cloud.url, key=KEY))
        assert run.fatal and "asks to wait 3600 s" in run.fatal
        assert time.monotonic() - t0 < 10 and len(cloud.requests) <= BREAKER + 4  # no retries at all


def test_rekognition_throttling_on_every_call_spends_a_bounded_number_of_requests(library, aws):
    lib, film = library
    aws.then(*[Scripted(400, {"__type": "ThrottlingException", "message": "Rate exceeded"})] * 200)
    run = tag_film(lib, film, RekognitionTagger(backoff=0.01))
    assert run.fatal and run.tagged == 0
    # the run's retry budget (10) over every call, and the breaker: not 4 attempts x 3 calls x 6 frames
    assert len(aws.requests) <= 10 + 3 * (BREAKER + 4)


# -- the archive index: paths stay inside the library, damage falls back to exact search -----------


@pytest.fixture
def ann_library(tmp_path, monkeypatch):
    """A small library with an archive index (the size threshold lowered so it is used)."""
    import clip_search.search.ann as ann
    from clip_search.store.library import Manifest
    from clip_search.store.writer import import_vectors

    monkeypatch.setattr(ann, "ANN_MIN_FRAMES", 1000)
    lib = Library(tmp_path / "lib")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        import_vectors(lib, Manifest.imported(name, "m", 3000.0), rng.normal(size=(3000, 16)), np.arange(3000.0))
    ann.AnnIndex.update(lib)
    return lib


def _meta(lib) -> dict:
    return json.loads((AnnIndex.folder(lib) / "meta.json").read_text())


def test_an_edited_meta_json_never_makes_ann_build_delete_a_file_outside_the_library(ann_library, tmp_path, capsys):
    from clip_search.cli import main

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    meta = _meta(ann_library)
    meta["file"] = os.path.relpath(victim, AnnIndex.folder(ann_library))  # ../../victim.txt
    (AnnIndex.folder(ann_library) / "meta.json").write_text(json.dumps(meta))
    assert main(["ann", "status", "--library", str(ann_library.root)]) == 0
    assert "is not a file of" in capsys.readouterr().out
    assert main(["ann", "build", "--library", str(ann_library.root)]) == 0
    assert victim.read_text() == "keep me"
    assert _meta(ann_library)["file"].startswith("index-")  # rebuilt from the films


@pytest.mark.parametrize("meta", [[], {"file": "index.faiss"}, {"films": "x"}, "not json"])
def test_a_damaged_meta_json_makes_search_score_exactly_and_say_why(ann_library, meta, capsys):
    from clip_search.cli import main
    from clip_search.search.scoring import Searcher

    path = AnnIndex.folder(ann_library) / "meta.json"
    path.write_text(meta if isinstance(meta, str) else json.dumps(meta))
    searcher = Searcher(ann_library.films(), ann_library)
    assert searcher.mode == "exact" and "meta.json" in searcher.notice and "exactly" in searcher.notice
    capsys.readouterr()
    assert main(["ann", "status", "--library", str(ann_library.root)]) == 0
    out = capsys.readouterr().out
    assert "damaged" in out or "cannot be read" in out


def test_shifted_film_offsets_in_meta_json_make_search_score_exactly_and_say_why(ann_library, capsys):
    from clip_search.cli import main
    from clip_search.search.scoring import Searcher

    meta = _meta(ann_library)
    later = max(meta["films"], key=lambda f: f["offset"])
    later["offset"] += 7  # its hits would be read 7 frames off, from the wrong film's ids
    (AnnIndex.folder(ann_library) / "meta.json").write_text(json.dumps(meta))
    searcher = Searcher(ann_library.films(), ann_library)
    assert searcher.mode == "exact" and "starts at id" in searcher.notice and "exactly" in searcher.notice
    assert main(["ann", "status", "--library", str(ann_library.root)]) == 0
    assert "damaged" in capsys.readouterr().out


def test_ann_build_failures_are_one_line_and_keep_the_old_index(ann_library, monkeypatch, capsys):
    import clip_search.search.ann as ann
    from clip_search.cli import main
    from clip_search.store.library import Manifest
    from clip_search.store.writer import import_vectors

    before = _meta(ann_library)["file"]

    real = ann.faiss_module()

    def full_disk():
        class F:  # stands for faiss on a full disk: write_index fails as FAISS does (RuntimeError)
            def __getattr__(self, name):
                return getattr(real, name)

            @staticmethod
            def write_index(index, path):
                raise RuntimeError("Error: 'ret == (size_t)(1)' failed: write error: No space left on device")

        return F()

    monkeypatch.setattr(ann, "faiss_module", full_disk)
    code = main(["ann", "build", "--rebuild", "--library", str(ann_library.root)])
    err = capsys.readouterr().err
    assert code == 2 and "could not be written" in err and "No space left" in err and "Traceback" not in err
    assert _meta(ann_library)["file"] == before and (AnnIndex.folder(ann_library) / before).is_file()
    assert not list((AnnIndex.folder(ann_library)).glob(".*.tmp"))
    monkeypatch.setattr(ann, "faiss_module", lambda: real)
    # another model's vectors, of another size: they have their own index; this model's stays fresh
    import_vectors(ann_library, Manifest.imported("wide", "other", 10.0), np.ones((10, 32)), np.arange(10.0))
    assert AnnIndex.status(ann_library).fresh and _meta(ann_library)["file"] == before


def test_ann_build_on_a_tiny_library_is_one_line(tmp_path, capsys):
    from clip_search.cli import main
    from clip_search.store.library import Manifest
    from clip_search.store.writer import import_vectors

    lib = Library(tmp_path / "lib")
    import_vectors(lib, Manifest.imported("tiny", "m", 10.0), np.eye(10, 16), np.arange(10.0))
    assert main(["ann", "build", "--library", str(lib.root)]) == 2
    err = capsys.readouterr().err
    assert "too few for an archive index" in err and "Traceback" not in err


def test_ann_rebuild_leaves_no_old_index_file_behind(ann_library):
    from clip_search.search.ann import AnnIndex

    AnnIndex.update(ann_library, rebuild=True)
    AnnIndex.update(ann_library, rebuild=True)
    files = list((AnnIndex.folder(ann_library)).glob("*.faiss"))
    assert [f.name for f in files] == [_meta(ann_library)["file"]]


# -- the URL box fetches only public addresses -------------------------------------------------------


@pytest.fixture
def video_server():
    """Local HTTP servers: one serves a real film, others redirect to a given URL (stand in for the web)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.conftest import FLOWER

    servers, seen = [], []

    def start(host: str, redirect: str | None = None) -> str:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                seen.append((host, self.path))
                if redirect:
                    self.send_response(302)
                    self.send_header("Location", redirect)
                    self.end_headers()
                    return
                data = FLOWER.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_HEAD = do_GET

        server = ThreadingHTTPServer((host, 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://{host}:{server.server_address[1]}/flower.mp4"

    yield start, seen
    for s in servers:
        s.shutdown()
        s.server_close()


def test_the_url_box_refuses_loopback_private_and_metadata_addresses(video_server, tmp_path, monkeypatch):
    from clip_search.errors import DownloadError
    from clip_search.guard import refusal
    from clip_search.video.fetch import download

    monkeypatch.delenv("FRAMESEARCH_ALLOW_HOSTS", raising=False)
    start, seen = video_server
    url = start("127.0.0.1")
    with pytest.raises(DownloadError, match="loopback address"):
        download(url, tmp_path)
    assert not seen  # refused before any connection
    for host, kind in (("10.1.2.3", "private"), ("192.168.0.1", "private"), ("169.254.169.254", "link-local")):
        assert kind in refusal(host, [])
    assert refusal("::1", []) and refusal("::ffff:127.0.0.1", [])
    for bad in ("file:///etc/passwd", "ftp://example.com/x.mp4", "gopher://x"):
        with pytest.raises(DownloadError, match="only http"):
            download(bad, tmp_path)


def test_a_redirect_to_a_private_address_is_refused_and_an_allowed_host_is_fetched(video_server, tmp_path, monkeypatch):
    from clip_search.errors import DownloadError
    from clip_search.video.fetch import download

    start, seen = video_server
    inside = start("127.0.0.1")
    monkeypatch.setenv("FRAMESEARCH_ALLOW_HOSTS", "127.0.0.2")  # a lab's own intranet host, allowed
    hop = start("127.0.0.2", redirect=inside)
    with pytest.raises(DownloadError, match="refused, 127.0.0.1 is 127.0.0.1, a loopback address"):
        download(hop, tmp_path / "a")
    assert ("127.0.0.1", "/flower.mp4") not in seen  # the redirect was never followed there
    monkeypatch.setenv("FRAMESEARCH_ALLOW_HOSTS", "127.0.0.0/8")  # allowing the network fetches it
    path = download(inside, tmp_path / "b")
    assert path.is_file() and path.stat().st_size == (tmp_path / "b" / path.name).stat().st_size > 0


def test_a_typed_path_must_lie_inside_a_media_root(tmp_path):
    from clip_search.guard import media_paths
    from tests.conftest import FLOWER

    root = tmp_path / "films"
    root.mkdir()
    (root / "a.mp4").write_bytes(FLOWER.read_bytes())
    (root / "escape.mp4").symlink_to(FLOWER)  # a link out of the root is judged by where it leads
    assert media_paths(str(root), [root.resolve()]) == [(root / "a.mp4").resolve()]
    with pytest.raises(FrameSearchError, match="outside the media folders"):
        media_paths(str(root / "escape.mp4"), [root.resolve()])
    with pytest.raises(FrameSearchError, match="outside the media folders"):
        media_paths(str(root / ".." / ".."), [root.resolve()])


# -- imports and vectors from outside ------------------------------------------------------------------


@pytest.fixture
def flower_library(tmp_path, encoder):
    from tests.conftest import FLOWER

    lib = Library(tmp_path / "lib")
    index_film(FLOWER, lib, encoder)
    return lib


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p, d: p.write_text("not a zip at all") or p, "not an .npz"),
        (lambda p, d: _npz(p, embeddings=np.array([["a"] * d] * 3), times=np.arange(3.0)), "must be real numbers"),
        (lambda p, d: _npz(p, embeddings=np.ones((3, d)) * 1j, times=np.arange(3.0)), "must be real numbers"),
        (lambda p, d: _npz(p, embeddings=np.full((3, d), np.nan), times=np.arange(3.0)), "finite"),
        (lambda p, d: _npz(p, embeddings=np.ones((3, d + 1)), times=np.arange(3.0)), "dimensions"),
        (lambda p, d: _npz(p, embeddings=np.ones((3, d)), times=np.array([0.0, 2.0, 1.0])), "strictly increase"),
        (lambda p, d: _npz(p, embeddings=np.ones((3, d))), "not an .npz with"),
    ],
)
def test_import_checks_its_file_and_imports_nothing_when_it_is_bad(flower_library, tmp_path, make, says, capsys):
    from clip_search.cli import main

    film = flower_library.films()[0]
    path = make(tmp_path / "bad.npz", film.manifest.dim)
    code = main(["import", "new-film", "--npz", str(path), "--library", str(flower_library.root)])
    err = capsys.readouterr().err
    assert code == 2 and says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert [f.name for f in flower_library.films()] == ["flower"]


def test_import_never_replaces_a_film(flower_library, tmp_path, capsys):
    from clip_search.cli import main

    film = flower_library.films()[0]
    vectors = _npz(tmp_path / "v.npz", embeddings=np.eye(3, film.manifest.dim), times=np.arange(3.0))
    args = ["--npz", str(vectors), "--library", str(flower_library.root), "--model", film.manifest.model]
    before = film.embeddings[0].copy()
    assert main(["import", film.id, *args]) == 2  # the indexed film's own id
    assert "already has a film" in capsys.readouterr().err
    assert np.array_equal(flower_library.get(film.id).embeddings[0], before)
    assert main(["import", "My Film", *args]) == 0
    assert main(["import", "my-film", *args]) == 2  # slugs alike: refused, not a silent replacement
    assert "already has a film with id my-film (My Film)" in capsys.readouterr().err


def test_vectors_damaged_in_place_are_never_served(tmp_path, capsys):
    from clip_search.cli import main
    from clip_search.search.scoring import QueryVector, Searcher
    from clip_search.store.library import SAMPLED_ROWS, Manifest
    from clip_search.store.writer import import_vectors

    lib = Library(tmp_path / "lib")
    rng = np.random.default_rng(0)
    q = rng.normal(size=16).astype(np.float32)
    q /= np.linalg.norm(q)
    emb = rng.normal(size=(1000, 16)) * 0.1 + q  # every frame close to the query
    film = import_vectors(lib, Manifest.imported("reel", "m", 1000.0), emb, np.arange(1000.0))
    sampled = set(np.linspace(0, 999, SAMPLED_ROWS).astype(int))
    bad_nan, bad_big = [i for i in range(1, 40) if i not in sampled][:2]  # rows the cheap check does not read
    vectors = np.load(film.set_dir / "embeddings.npy")
    vectors[bad_nan] = np.nan
    vectors[bad_big] = vectors[bad_big] * 50  # its "cosine" would be about 50
    np.save(film.set_dir / "embeddings.npy", vectors)
    (film,) = Library(lib.root).films()  # still loads: the damage lies between the sampled rows
    hits = Searcher([film]).search(QueryVector(q, "q"), top_k=20, gap=0)
    assert len(hits) == 20 and {h.frame for h in hits}.isdisjoint({bad_nan, bad_big})
    assert all(-1 <= h.score <= 1 for h in hits)
    json.dumps([h.to_dict() for h in hits], allow_nan=False)  # no NaN reaches --json
    assert main(["films", "--check", "--library", str(lib.root)]) == 1  # the full check names it
    assert "non-finite" in capsys.readouterr().err


def test_index_rebuilds_a_film_that_the_full_check_rejects(flower_library, encoder):
    from tests.conftest import FLOWER

    film = flower_library.films()[0]
    path = film.set_dir / "embeddings.npy"
    emb = np.load(path)
    emb[2] = np.nan
    np.save(path, emb)
    again = index_film(FLOWER, flower_library, encoder)  # not "already indexed, reused"
    assert not again.reused and np.all(np.isfinite(np.load(path)))


def test_a_film_whose_vectors_were_all_scaled_is_named_on_load(flower_library, capsys):
    from clip_search.cli import main

    film = flower_library.films()[0]
    path = film.set_dir / "embeddings.npy"
    np.save(path, np.load(path) * 50)
    assert not Library(flower_library.root).films()  # the cheap check on load catches it
    assert main(["films", "--library", str(flower_library.root)]) in (0, 1)
    assert "not unit length" in capsys.readouterr().err


def test_a_torn_staging_chunk_is_dropped_and_encoded_again(tmp_path, encoder, monkeypatch):
    from clip_search.indexing.indexer import IndexOptions
    from clip_search.store.writer import StagedFilm
    from clip_search.video.decode import SamplingSettings
    from tests.conftest import FLOWER

    lib = Library(tmp_path / "lib")
    options = IndexOptions(sampling=SamplingSettings(fps=4.0), chunk_frames=4, batch_size=4)

    def killed(self, *args, **kwargs):  # stands for the process dying after the chunks were written
        raise KeyboardInterrupt

    monkeypatch.setattr(StagedFilm, "publish", killed)
    with pytest.raises(KeyboardInterrupt):
        index_film(FLOWER, lib, encoder, options)
    monkeypatch.undo()
    chunks = sorted((lib.root / "staging").glob("*/parts/part-*.npz"))
    assert len(chunks) >= 3
    last = chunks[-1]
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # torn by a filesystem without atomic rename
    chunks[1].write_bytes(b"junk")  # and one in the middle: it and all after it are encoded again
    resumed = index_film(FLOWER, lib, encoder, options)
    assert resumed.resumed_frames == 4 and not resumed.reused
    straight = index_film(FLOWER, Library(tmp_path / "straight"), encoder, options).film
    assert resumed.film.times.tolist() == straight.times.tolist()
    assert np.allclose(resumed.film.embeddings, straight.embeddings, atol=1e-5)


def test_a_films_subtitle_cues_are_embedded_once_not_on_every_query(tmp_path, encoder, monkeypatch):
    from engines import make_engine
    from tagging import text_embed
    from tests.conftest import FLOWER

    source = tmp_path / "flower.mp4"
    source.write_bytes(FLOWER.read_bytes())
    cues = []
    for i in range(3000):  # many distinct lines (a 100 000-cue file is the same thing, larger)
        a, b = i * 1.5, i * 1.5 + 1.0
        cues.append(
            f"{i + 1}\n00:00:0{int(a // 1000)},{int(a % 1000):03d} --> 00:00:0{int(b // 1000)},"
            f"{int(b % 1000):03d}\nline number {i} about the sea\n"
        )
    source.with_suffix(".srt").write_text("\n".join(cues))
    lib = Library(tmp_path / "lib")
    film = index_film(source, lib, encoder).film
    assert len(film.dialogue().cues) == 3000
    monkeypatch.setattr(text_embed, "CACHE_SIZE", 500)  # fewer texts than cues: the text cache cannot hold them
    model = text_embed.sentence_model()
    encoded: list[int] = []
    real = model.encode

    def counting(texts, **kw):  # the real MiniLM model, counting what it is asked to embed
        encoded.append(len(texts))
        return real(texts, **kw)

    monkeypatch.setattr(model, "encode", counting)
    engine = make_engine("dialogue", lib)
    engine.search([film], "a ship at sea", top_k=3)
    assert sum(encoded) >= 3000  # the first query embeds the cues once
    encoded.clear()
    for query in ("the sea at night", "line number 7", "a ship at sea"):
        engine.search([film], query, top_k=3)
    assert sum(encoded) <= 3  # later queries embed only the query itself


def test_indexing_embeds_a_films_cues_so_that_no_query_does(tmp_path, tiny_clip_dir, monkeypatch):
    """A long subtitle file (3 000 cues here; 100 000 is the same, larger) is embedded by ``index``
    and kept with the film: a dialogue search in a new process reads the vectors and embeds only
    its query (the first query used to embed every cue, 90 s and more for 100 000)."""
    from clip_search.cli import main
    from engines import make_engine
    from tagging import text_embed
    from tagging.dialogue import CUE_VECTORS
    from tests.conftest import FLOWER

    source = tmp_path / "flower.mp4"
    source.write_bytes(FLOWER.read_bytes())
    lines = []
    for i in range(3000):  # milliseconds apart, as in the test above
        a, b = i * 1.5, i * 1.5 + 1.0
        lines.append(
            f"{i + 1}\n00:00:0{int(a // 1000)},{int(a % 1000):03d} --> 00:00:0{int(b // 1000)},"
            f"{int(b % 1000):03d}\nline number {i} about the sea\n"
        )
    source.with_suffix(".srt").write_text("\n".join(lines))
    lib = tmp_path / "lib"
    assert main(["index", str(source), "--library", str(lib), "--model", str(tiny_clip_dir)]) == 0
    film = Library(lib).films()[0]
    assert (film.dir / CUE_VECTORS).is_file() and len(film.dialogue().cues) == 3000
    text_embed._cache.clear()  # as in a new process: nothing remembered
    model = text_embed.sentence_model()
    encoded: list[int] = []
    real = model.encode
    monkeypatch.setattr(model, "encode", lambda texts, **kw: encoded.append(len(texts)) or real(texts, **kw))
    hits = make_engine("dialogue", Library(lib)).search([film], "line number 7 about the sea", top_k=3)
    assert hits and sum(encoded) == 1  # the query alone


@pytest.mark.parametrize(("reply", "code"), [(Scripted(500, {"message": "down"}), 2), (None, 0)])
def test_comparisons_tag_exits_as_the_readme_documents(library, aws, reply, code, capsys):
    """2 when the breaker stopped the run (README's exit-code table), 0 when every frame was tagged."""
    from comparisons.cli import main

    lib, film = library
    if reply is not None:
        aws.then(*[reply] * 200)
    args = ["tag", film.id, "--service", "rekognition" if reply is not None else "offline", "--yes"]
    assert main([*args, "--library", str(lib.root)]) == code
    if code:
        assert "frames in a row" in capsys.readouterr().err

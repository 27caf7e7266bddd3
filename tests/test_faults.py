"""Bad arguments, bad query sets and sick services: one clear line each, and nothing paid is lost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from clip_search.cli import main as clip_cli
from clip_search.indexing.indexer import index_film
from clip_search.store.library import Library
from clip_search.video.subtitles import read_sidecar
from comparisons.cli import main as compare_cli
from comparisons.evaluate import load_query_set
from tagging.run import tag_film, work_left
from tagging.tag_store import TagStore
from tagging.taggers import FatalTaggerError, TaggerError, all_tags
from tagging.taggers.azure import AzureTagger
from tagging.taggers.rekognition import RekognitionTagger
from tests.conftest import BUNNY, FLOWER, QUERY_SET, assert_no_error
from tests.fake_cloud import FakeCloud, Scripted

FRAME = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["index", "x.mp4", "--fps", "0"], "--fps: must be frames per second above 0"),
        (["index", "x.mp4", "--fps", "nan"], "--fps: must be frames per second above 0"),
        (["index", "x.mp4", "--fps", "1e308"], "--fps: must be frames per second above 0, at most 1000"),
        (["index", "x.mp4", "--device", "tpu7"], "--device: must be auto, cpu, cuda or cuda:N"),
        (["search", "caf\udce9 sign"], "QUERY: is not valid UTF-8"),  # argv's undecodable byte 0xe9
        (["search", "q", "--negative", "\udcff"], "--negative: is not valid UTF-8"),
        (["index", "x.mp4", "--batch-size", "-3"], "--batch-size"),
        (["search", "q", "--top-k", "-1"], "--top-k: must be a whole number >= 1"),
        (["search", "q", "--negative-weight", "nan"], "--negative-weight: must be a number from 0 to 1"),
        (["search", "q", "--gap", "-2"], "--gap"),
        (["export", "f", "-o", "/no/such/folder/out.npz"], "the folder /no/such/folder does not exist"),
    ],
)
def test_clip_search_cli_refuses_bad_arguments_in_one_line(argv, says, capsys, tmp_path):
    assert clip_cli([*argv, "--library", str(tmp_path)]) == 2
    assert says in _one_error_line(capsys)


def test_cuda_without_a_gpu_and_a_decompression_bomb_are_one_line(capsys, tmp_path):
    import torch
    from PIL import Image

    if not torch.cuda.is_available():  # these machines: the CPU build, no GPU
        assert clip_cli(["index", "x.mp4", "--device", "cuda", "--library", str(tmp_path)]) == 2
        assert "no CUDA GPU is available here" in _one_error_line(capsys)
    bomb = tmp_path / "bomb.png"
    Image.new("L", (9000, 9000)).save(bomb)  # 81 megapixels of nothing: compresses to a few kB
    from clip_search.search.scoring import _load_image

    with pytest.raises(ValueError, match="too large for a query image"):
        _load_image(bomb)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["search", "q", "--fusion-weight", "2"], "--fusion-weight: must be a number from 0 to 1"),
        (["search", "   "], "QUERY: is empty"),
        (["search", "q", "--engine", "bogus"], "unknown engine 'bogus' (choose from clip, tags:offline"),
        (["tag", "film", "--workers", "0"], "--workers: must be a whole number >= 1"),
        (["evaluate", str(QUERY_SET), "--tolerance", "-100"], "--tolerance: must be a number >= 0"),
        (["evaluate", str(QUERY_SET), "--engines", "clip,nope"], "unknown engine 'nope'"),
        (["evaluate", str(QUERY_SET), "--k", "0,5"], "--k"),
        (["evaluate", str(QUERY_SET), "--json", "/no/such/dir/eval.json"], "the folder /no/such/dir does not exist"),
    ],
)
def test_comparisons_cli_refuses_bad_arguments_in_one_line(argv, says, capsys, tmp_path):
    t0 = time.perf_counter()
    assert compare_cli([*argv, "--library", str(tmp_path)]) == 2
    assert says in _one_error_line(capsys)
    assert time.perf_counter() - t0 < 5  # refused before any work (no model, no evaluation)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"film,query,start,end\n", "holds no queries"),
        (b"film,query,start,end\nbunny,a bird,,\nbunny,a cat,,\n", "every query is marked as having no answer"),
        (b"film,query,start,end\nbunny,a bird,1,2\nbunny,caf\xe9 sign,3,4\n", "queries.csv line 3: not UTF-8"),
        (b"film,query,start,end\nbunny,a bird,-5,2\n", "line 2: start/end must be finite seconds >= 0"),
        (b"film,query,start,end\nbunny,a bird,nan,2\n", "line 2: start/end must be finite seconds >= 0"),
        (b"film,query,start,end\nbunny,a bird,4,2\n", "line 2: end 2.0 is before start 4.0"),
        (b"film,query\nbunny,a bird\n", "missing column(s) end, start"),
    ],
)
def test_bad_query_sets_name_the_file_and_line(content, says, tmp_path, capsys):
    path = tmp_path / "queries.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=None) as e:
        load_query_set(path)
    assert says in str(e.value)
    assert compare_cli(["evaluate", str(path), "--library", str(tmp_path), "--engines", "dialogue"]) == 2
    assert says in _one_error_line(capsys)


def test_evaluation_skips_queries_on_films_that_are_not_indexed(indexed_library, tmp_path, capsys):
    path = tmp_path / "q.csv"
    path.write_text("film,query,start,end\npopeye_p1,help me,0,20\nnot-a-film,a ship,1,2\nalso-missing,a cat,3,4\n")
    out = tmp_path / "eval.json"
    code = compare_cli(
        ["evaluate", str(path), "--library", str(indexed_library.root), "--engines", "dialogue", "--json", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 0
    assert "1 query on 'not-a-film' skipped" in err and "'also-missing' skipped" in err
    result = json.loads(out.read_text())
    assert result["engines"][0]["queries"] == 1 and len(result["warnings"]) == 2


def test_a_batch_goes_on_past_an_unreadable_file(tmp_path, tiny_clip_dir, monkeypatch, capsys):
    """Root can read any file, so the unreadable file is simulated where the indexer first reads
    its bytes (the fingerprint): it stands for a file without read permission."""
    import clip_search.indexing.indexer as indexer

    real = indexer.fingerprint

    def fingerprint(path):
        if "locked" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(indexer, "fingerprint", fingerprint)
    locked = tmp_path / "locked.mp4"
    shutil.copy(FLOWER, locked)
    code = clip_cli(
        ["index", str(locked), str(FLOWER), "--library", str(tmp_path / "lib"), "--model", str(tiny_clip_dir)]
    )
    err = capsys.readouterr().err
    assert code == 1 and "error: locked.mp4: Permission denied" in err
    assert [f.name for f in Library(tmp_path / "lib").films()] == ["flower"]


def test_srt_with_broken_timestamps_warns_how_many_cues_were_dropped(tmp_path):
    srt = tmp_path / "film.srt"
    srt.write_text(
        "1\n00:00:01,000 --> 00:00:02,000\nHello there\n\n"
        "2\n00:00:03,000 --> 00:0x:04,000\nBroken one\n\n"
        "3\n00:00:05,000 --> 00:00:06,500\nGeneral Kenobi\n\n"
        "4\n99:99 --> soon\nAnother broken\n\n"
    )
    d = read_sidecar(srt)
    assert [c.text for c in d.cues if "Kenobi" in c.text or "Hello" in c.text]
    assert d.cues[-1].end == pytest.approx(6.5)
    assert "2 cue(s) with broken timestamps were dropped" in d.warning


# -- cloud services: each response kept, sick endpoints cut short ------------------------------------


def test_rekognition_keeps_each_paid_call_and_a_rerun_asks_only_for_the_missing_one(text_film, tmp_path, aws):
    lib = Library(tmp_path / "lib")
    shutil.copytree(text_film[0].root, lib.root)
    film = lib.films()[0]
    # frame 1: labels answered, celebrities fails (HTML 502 from a proxy), text answered
    aws.then(Scripted(), Scripted(502, raw=b"<html><body><h1>502 Bad Gateway</h1>\n</body></html>"), Scripted())
    tagger = RekognitionTagger(max_attempts=1)
    run = tag_film(lib, film, tagger, workers=1)
    assert run.tagged == 7 and len(run.errors) == 1
    message = run.errors[0][1]
    assert "\n" not in message and "<html>" not in message and "502" in message
    store = TagStore(lib)
    missing = store.missing(film, "rekognition", tagger.model_version, tagger.features)
    assert list(missing.values()) == [["celebrities"]]  # labels and text of that frame are kept
    assert work_left(lib, film, tagger).calls == 1
    seen = len(aws.requests)
    again = tag_film(lib, film, tagger, workers=1)
    assert again.tagged == 1 and again.reused == 7
    assert [r.operation for r in aws.requests[seen:]] == ["RecognizeCelebrities"]


def test_an_endpoint_that_never_answers_trips_the_circuit_breaker(text_film, tmp_path):
    lib = Library(tmp_path / "lib")
    shutil.copytree(text_film[0].root, lib.root)
    film = lib.films()[0]
    tagger = AzureTagger(endpoint="http://127.0.0.1:9", key="k", retries=0, backoff=0.01)  # nothing listens there
    t0 = time.perf_counter()
    run = tag_film(lib, film, tagger, workers=1, breaker=3)
    assert run.fatal and "did not answer 3 frames in a row" in run.fatal
    # frames already in flight (at most 2 per worker) still finish; nothing after them is sent
    assert 3 <= len(run.errors) <= 3 + 2 and run.tagged == 0 and time.perf_counter() - t0 < 20


def test_retry_after_is_honoured_only_up_to_the_cap():
    with FakeCloud() as cloud:
        cloud.then(Scripted(429, {"error": {"code": "429", "message": "slow down"}}, {"Retry-After": "0.2"}))
        t0 = time.perf_counter()
        tags = all_tags(AzureTagger(endpoint=cloud.url, key="k", backoff=0.01, retry_after_cap=0.3), FRAME)
        assert tags and len(cloud.requests) == 2 and time.perf_counter() - t0 < 10  # waited, then answered
        # a service asking for longer than the cap is not waited for at all: the call fails at once
        cloud.then(Scripted(429, {"error": {"code": "429", "message": "slow down"}}, {"Retry-After": "60"}))
        t0 = time.perf_counter()
        with pytest.raises(TaggerError, match="asks to wait 60 s"):
            all_tags(AzureTagger(endpoint=cloud.url, key="k", backoff=0.01, retry_after_cap=0.3), FRAME)
        assert len(cloud.requests) == 3 and time.perf_counter() - t0 < 5


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"AWS_DEFAULT_REGION": "not a region!"}, "AWS configuration is invalid"),
        ({"AWS_PROFILE": "no-such-profile"}, "AWS profile not found (no-such-profile)"),
        ({"AWS_ENDPOINT_URL": "not a url"}, "AWS configuration is invalid"),
    ],
)
def test_botocore_configuration_errors_are_one_sentence(env, says, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(FatalTaggerError) as e:
        RekognitionTagger()
    assert says in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("body", [b"<html>ok</html>", b"", b"[1, 2, 3]", b'{"unexpected": true}'])
def test_http_200_with_a_junk_body_is_a_bad_response(body, monkeypatch):
    with FakeCloud() as cloud:
        cloud.then(Scripted(200, raw=body))
        with pytest.raises(TaggerError) as e:
            all_tags(AzureTagger(endpoint=cloud.url, key="k", backoff=0.01, retries=0), FRAME)
        assert not isinstance(e.value, FatalTaggerError) and "response" in str(e.value)
    with FakeCloud() as cloud:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        monkeypatch.setenv("AWS_ENDPOINT_URL", cloud.url)
        cloud.then(Scripted(200, raw=body))
        with pytest.raises(TaggerError) as e:
            all_tags(RekognitionTagger(max_attempts=1), FRAME)
        assert "response" in str(e.value)


def test_tagging_a_read_only_library_is_refused_before_any_call(text_film, tmp_path):
    """Root may write anywhere, so the CLI runs as the unprivileged 'nobody' user when the tests run
    as root; the library folder is made read-only for it."""
    lib_dir = tmp_path / "ro"
    shutil.copytree(text_film[0].root, lib_dir)
    os.chmod(tmp_path, 0o755)
    for d in [tmp_path, *tmp_path.parents]:
        if d == d.parent:
            break
        os.chmod(d, os.stat(d).st_mode | 0o005)
    for root, _, files in os.walk(lib_dir):
        for name in files:
            os.chmod(os.path.join(root, name), 0o444)
        os.chmod(root, 0o555)
    cmd = [sys.executable, "-m", "comparisons", "tag", "captions", "--service", "offline", "--library", str(lib_dir)]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=os.getcwd())
    assert proc.returncode == 2, proc.stderr
    assert "is read-only: tags could not be kept, so nothing is run" in proc.stderr
    assert not (lib_dir / "tags.sqlite").exists()


def test_play_on_a_hit_whose_source_is_gone_says_so_and_the_next_query_works(
    tmp_path, monkeypatch, tiny_clip_dir, encoder
):
    from streamlit.testing.v1 import AppTest

    from tests.test_dashboard import APP

    copy = tmp_path / "short.mp4"
    shutil.copy(BUNNY, copy)
    lib = Library(tmp_path / "lib")
    index_film(copy, lib, encoder)
    copy.unlink()
    monkeypatch.setenv("FRAMESEARCH_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("FRAMESEARCH_LIBRARY", str(lib.root))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.text_input(key="query").input("a bird").run()
    at.button(key="play-0").click().run()
    assert_no_error(at)
    assert any("its source file is gone" in w.value for w in at.warning)
    assert any("The source file is gone" in c.value for c in at.caption)
    at.text_input(key="query").input("a tree").run()
    assert not at.exception and "hits** for *a tree*" in "\n".join(m.value for m in at.markdown)

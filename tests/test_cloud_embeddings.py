"""Cloud embedding engines (cloud:titan, cloud:nova, cloud:marengo, cloud:azure), through the real
SDK clients: botocore's ``Stubber`` on a real ``bedrock-runtime`` client for the request schemas,
and a local fake of the services on 127.0.0.1 (tests/fake_cloud.py) through boto3's and
azure-core's real HTTP paths for everything else. The fake stands in for the paid services (no
network here); its vectors are built so the answer is known: a frame's vector says how bright it
is, and a query about something bright points at the bright frames, so a search must find the
bright shot."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from clip_search.store.library import Library
from framesearch import app
from tagging.embedders import embedding_services, make_embedder
from tagging.pricing import price_table
from tagging.tag_store import TagStore
from tagging.taggers.base import FatalTaggerError, TaggerError
from tests.conftest import AWS_SECRET, level_frame, write_video
from tests.fake_cloud import FakeCloud, Scripted

AZURE_KEY = "azure-key-5678"
DIMS = {"cloud:titan": 1024, "cloud:nova": 1024, "cloud:marengo": 512, "cloud:gemini": 1024, "cloud:azure": 1024}
GEMINI_KEY = "gemini-key-9012"


def _brightness(jpeg: bytes) -> float:
    with Image.open(io.BytesIO(jpeg)) as im:
        return float(np.asarray(im.convert("L")).mean()) / 255


def _vector(dim: int, bright: float) -> list[float]:
    v = np.zeros(dim)
    v[0], v[1] = bright, 1.0 - bright
    return [float(x) for x in v]


def answer(service: str, op: str, content_type: str, body: bytes) -> dict:
    """What each service answers, in its documented shape: a frame's vector [brightness, darkness, 0…];
    a text's vector points at bright frames when it says "bright", else at dark ones."""
    if service == "azure":
        if op == "vectorizeImage":
            vec = _vector(1024, _brightness(body))
        else:
            vec = _vector(1024, 1.0 if "bright" in json.loads(body)["text"] else 0.0)
        return {"modelVersion": "2023-04-15", "vector": vec}
    req = json.loads(body)
    if service == "google":  # one request of a batch: a part with inline JPEG data, or text
        (part,) = req["requests"][0]["content"]["parts"]
        if "inline_data" in part:
            vec = _vector(1024, _brightness(base64.urlsafe_b64decode(part["inline_data"]["data"])))
        else:
            vec = _vector(1024, 1.0 if "bright" in part["text"] else 0.0)
        return {"embeddings": [{"values": vec}]}
    params = req.get("singleEmbeddingParams", {})
    image = (
        req.get("inputImage")
        or params.get("image", {}).get("source", {}).get("bytes")
        or req.get("image", {}).get("mediaSource", {}).get("base64String")
    )
    text = req.get("inputText") or params.get("text", {}).get("value") or req.get("text", {}).get("inputText")
    dim = 512 if "marengo" in op else 1024
    vec = _vector(dim, _brightness(base64.b64decode(image)) if image else (1.0 if "bright" in text else 0.0))
    if "titan" in op:
        return {"embedding": vec, "inputTextTokenCount": 3 if text else 0}
    if "nova" in op:
        return {"embeddings": [{"embeddingType": "TEXT" if text else "IMAGE", "embedding": vec}]}
    return {"data": [{"embedding": vec}]}


@pytest.fixture
def cloud(monkeypatch):
    """The fake services, with AWS and Azure credentials pointing at it as their SDKs read them."""
    with FakeCloud(embed=answer) as fake:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_ENDPOINT_URL", fake.url)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        monkeypatch.setenv("AZURE_VISION_ENDPOINT", fake.url)
        monkeypatch.setenv("AZURE_VISION_KEY", AZURE_KEY)
        monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
        monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
        monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.url)
        yield fake


@pytest.fixture
def film(tmp_path, encoder):
    """9 s: dark 0-3 s, bright 3-6 s, dark 6-9 s, indexed at 1 fps with the local random CLIP."""
    path = write_video(
        tmp_path / "light.mp4", [level_frame(20 if i < 24 or i >= 48 else 230) for i in range(72)], rate=8
    )
    lib = Library(tmp_path / "lib")
    (indexed,) = app.index(lib, [path], [encoder.model_id], load=lambda m: encoder).films
    return lib, indexed


def _frame() -> np.ndarray:
    return np.full((120, 160, 3), 230, np.uint8)


# --- the request each Bedrock model is sent, as its user guide documents it (botocore Stubber) ---


def _stubbed(embedder_name: str, reply: dict | bytes, region: str = "us-east-1"):
    """An adapter on a real bedrock-runtime client whose one answer is ``reply`` (Stubber), and the
    parameters the client was called with."""
    import botocore.session
    from botocore.response import StreamingBody
    from botocore.stub import Stubber

    client = botocore.session.get_session().create_client(
        "bedrock-runtime", region_name=region, aws_access_key_id="AKID", aws_secret_access_key="secret"
    )
    sent: list[dict] = []
    client.meta.events.register(
        "provide-client-params.bedrock-runtime.InvokeModel", lambda params, **kw: sent.append(params)
    )
    data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
    stub = Stubber(client)
    stub.add_response(
        "invoke_model", {"body": StreamingBody(io.BytesIO(data), len(data)), "contentType": "application/json"}
    )
    stub.activate()
    return make_embedder(embedder_name, client=client, max_attempts=1), sent


def test_titan_is_sent_its_documented_request_and_its_answer_is_read():
    embedder, sent = _stubbed("cloud:titan", {"embedding": [3.0, 4.0] + [0.0] * 1022, "inputTextTokenCount": 0})
    vector = embedder.embed_image(_frame())
    (params,) = sent
    body = json.loads(params["body"])
    assert params["modelId"] == "amazon.titan-embed-image-v1" and params["contentType"] == "application/json"
    assert set(body) == {"inputImage", "embeddingConfig"} and body["embeddingConfig"] == {"outputEmbeddingLength": 1024}
    assert Image.open(io.BytesIO(base64.b64decode(body["inputImage"]))).format == "JPEG"
    assert vector.shape == (1024,) and vector[:2] == pytest.approx([0.6, 0.8])  # kept as a unit vector


def test_nova_indexes_frames_and_retrieves_images_with_text():
    embedder, sent = _stubbed("cloud:nova", {"embeddings": [{"embeddingType": "TEXT", "embedding": [1.0] * 1024}]})
    embedder.embed_text("a girl practising ballet")
    body = json.loads(sent[0]["body"])
    assert sent[0]["modelId"] == "amazon.nova-2-multimodal-embeddings-v1:0"
    assert body["taskType"] == "SINGLE_EMBEDDING" and body["schemaVersion"] == "nova-multimodal-embed-v1"
    params = body["singleEmbeddingParams"]
    assert params["embeddingPurpose"] == "IMAGE_RETRIEVAL" and params["embeddingDimension"] == 1024
    assert params["text"] == {"truncationMode": "END", "value": "a girl practising ballet"}
    embedder, sent = _stubbed("cloud:nova", {"embeddings": [{"embeddingType": "IMAGE", "embedding": [1.0] * 1024}]})
    embedder.embed_image(_frame())
    image = json.loads(sent[0]["body"])["singleEmbeddingParams"]
    assert image["embeddingPurpose"] == "GENERIC_INDEX" and image["image"]["format"] == "jpeg"
    assert set(image["image"]["source"]) == {"bytes"}


def test_marengo_3_is_called_as_the_base_model_or_the_regions_inference_profile():
    embedder, sent = _stubbed("cloud:marengo", {"data": {"embedding": [0.5] * 512}})
    assert embedder.embed_text("James Cagney dancing down the stairs").shape == (512,)
    body = json.loads(sent[0]["body"])
    assert sent[0]["modelId"] == "twelvelabs.marengo-embed-3-0-v1:0"  # us-east-1 serves the base model
    assert body == {"inputType": "text", "text": {"inputText": "James Cagney dancing down the stairs"}}
    embedder, sent = _stubbed("cloud:marengo", {"data": [{"embedding": [0.5] * 512}]})
    embedder.embed_image(_frame())
    assert set(json.loads(sent[0]["body"])["image"]["mediaSource"]) == {"base64String"}
    embedder, sent = _stubbed("cloud:marengo", {"data": {"embedding": [0.5] * 512}}, region="eu-west-1")
    embedder.embed_text("a ship at sea")
    assert sent[0]["modelId"] == "eu.twelvelabs.marengo-embed-3-0-v1:0"  # Ireland serves it through a profile


@pytest.mark.parametrize(
    "reply, why",
    [
        ({"embedding": [0.1] * 1023}, "1023 numbers, not 1024"),
        (b'{"embedding": [NaN' + b", 0.1" * 1023 + b"]}", "NaN"),
        ({"embedding": ["a"] * 1024}, "not numbers"),
        ({"embedding": [0.0] * 1024}, "zeros"),
        (b"<html><body>502 Bad Gateway</body></html>", "not valid JSON"),
        ({"message": "Malformed input request"}, "without its vector: Malformed input request"),
    ],
)
def test_a_malformed_answer_is_an_error_for_that_call_never_a_vector(reply, why):
    embedder, _ = _stubbed("cloud:titan", reply)
    with pytest.raises(TaggerError, match=why):
        embedder.embed_image(_frame())


# --- end to end, through the SDKs' real HTTP paths against the local fake ---


@pytest.mark.parametrize("service", sorted(DIMS))
def test_a_text_query_finds_the_bright_shot_and_nothing_is_paid_twice(service, film, cloud, capsys):
    from clip_search.cli import main as engine_cli
    from comparisons.cli import main as compare

    lib, indexed = film
    frames = indexed.manifest.frames
    assert engine_cli(["index", indexed.manifest.source, "--library", str(lib.root), "--model", service, "--yes"]) == 0
    err = capsys.readouterr().err
    assert f"{frames} frames -> {frames} calls" in err  # the estimate came first
    assert embedding_services()[service].status in err  # and the service's status (Azure: its retirement)
    calls = [r for r in cloud.requests if "vectorizeImage" in r.path or r.path.endswith(("/invoke", "Contents"))]
    assert len(calls) == frames
    film_now = Library(lib.root).films()[0]
    assert film_now.has(service) and film_now.vectors(service).embeddings.shape == (frames, DIMS[service])
    assert film_now.record.sound()[service][1].service_model == make_embedder(service).model_version

    assert compare(["search", "--library", str(lib.root), "--engine", service, "--json", "something bright"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert 3.0 <= hits[0]["time"] < 6.0  # the bright shot
    seen = len(cloud.requests)
    assert compare(["search", "--library", str(lib.root), "--engine", service, "--json", "something bright"]) == 0
    assert json.loads(capsys.readouterr().out) == hits and len(cloud.requests) == seen  # the query was kept
    assert engine_cli(["index", indexed.manifest.source, "--library", str(lib.root), "--model", service, "--yes"]) == 0
    assert len(cloud.requests) == seen  # a rerun pays for nothing
    secrets = (AWS_SECRET, AZURE_KEY, GEMINI_KEY)
    stored = b"".join(p.read_bytes() for p in lib.root.rglob("*") if p.is_file())
    assert not any(s.encode() in stored for s in secrets)  # credentials are never stored


def test_without_yes_the_estimate_is_shown_and_nothing_is_paid(film, cloud, capsys, monkeypatch):
    from clip_search.cli import main as engine_cli

    lib, indexed = film
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert engine_cli(["index", indexed.manifest.source, "--library", str(lib.root), "--model", "cloud:titan"]) == 2
    err = capsys.readouterr().err
    assert "about $" in err and "add --yes" in err
    assert not [r for r in cloud.requests if r.path.startswith("/model/")]


def test_an_interrupted_run_keeps_what_was_paid_for_and_resumes_with_the_rest(film, cloud):
    lib, indexed = film
    failing = Scripted(status=500, body={"message": "internal"})
    cloud.then(Scripted(), Scripted(), *[failing] * 12)  # two frames answered, then the service fails
    (first,) = app.embed(lib, [indexed], "cloud:titan", workers=1)
    assert first.added is None and first.run.fatal and "3 frames in a row" in first.run.fatal
    store = TagStore(lib, readonly=True)
    kept = store.vectors(indexed, "cloud:titan", make_embedder("cloud:titan").model_version)
    store.close()
    # what was paid for is kept: the two answered frames (and one already in flight when the run stopped)
    assert 2 <= len(kept) < indexed.manifest.frames
    before = len(cloud.requests)
    (second,) = app.embed(lib, [indexed], "cloud:titan", workers=1)
    assert second.added is not None
    asked = len(cloud.requests) - before
    assert asked == indexed.manifest.frames - len(kept)  # only the frames it lacked


def test_throttling_waits_as_retry_after_says_up_to_a_cap_and_fails_beyond(cloud):
    cloud.then(Scripted(status=429, headers={"Retry-After": "3600"}, body={"error": {"code": "429"}}))
    embedder = make_embedder("cloud:azure", retries=2)
    with pytest.raises(TaggerError, match="asks to wait 3600 s"):
        embedder.embed_image(_frame())
    assert len(cloud.requests) == 1  # no hour-long wait, no retry
    cloud.then(Scripted(status=429, headers={"Retry-After": "0"}, body={"error": {"code": "429"}}))
    assert embedder.embed_image(_frame()).shape == (1024,)  # a short wait is honoured, then it answers


def test_credentials_go_to_their_service_alone(cloud):
    cloud.then(Scripted(status=302, headers={"Location": "http://elsewhere.example/steal"}))
    with pytest.raises(TaggerError, match="redirect"):
        make_embedder("cloud:azure").embed_text("a ship at sea")
    (request,) = cloud.requests
    assert request.headers["ocp-apim-subscription-key"] == AZURE_KEY
    assert "model-version=2023-04-15" in request.path and "api-version=2024-02-01" in request.path
    cloud.then(Scripted(status=401, body={"error": {"code": "401"}}))
    with pytest.raises(FatalTaggerError, match="rejected the credentials"):
        make_embedder("cloud:azure").embed_text("a ship at sea")
    before = len(cloud.requests)
    cloud.then(Scripted(status=307, headers={"Location": "http://elsewhere.example/steal"}))
    with pytest.raises(TaggerError, match="redirect"):
        make_embedder("cloud:gemini").embed_text("a ship at sea")
    (asked,) = cloud.requests[before:]  # Google's SDK follows redirects by default: not here
    assert asked.headers["x-goog-api-key"] == GEMINI_KEY


def test_missing_credentials_are_one_line_before_anything_is_paid(monkeypatch):
    for name in ("AZURE_VISION_ENDPOINT", "AZURE_VISION_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(FatalTaggerError, match="AZURE_VISION_ENDPOINT and AZURE_VISION_KEY"):
        make_embedder("cloud:azure")


def test_vectors_of_another_model_version_are_never_mixed(film, cloud, monkeypatch):
    from engines import EngineUnavailable, make_engine
    from tagging.embedders.bedrock import TitanEmbedder

    lib, indexed = film
    (done,) = app.embed(lib, [indexed], "cloud:titan")
    assert done.added is not None
    monkeypatch.setattr(TitanEmbedder, "model_version", "amazon.titan-embed-image-v1@G2")
    engine = make_engine("cloud:titan", Library(lib.root))
    with pytest.raises(EngineUnavailable, match="not mixed"):
        engine.run(Library(lib.root).films(), "something bright")


def test_cloud_engines_are_compared_evaluated_and_costed_with_their_queries(film, cloud, tmp_path):
    from comparisons.cli import main as compare
    from engines import available

    lib, indexed = film
    app.embed(lib, [indexed], "cloud:titan")
    library = Library(lib.root)
    assert "cloud:titan" in available(library, library.films())
    assert library.default_model() != "cloud:titan"  # bought vectors are never the default model
    queries = tmp_path / "q.csv"
    queries.write_text(f"film,query,start,end\n{indexed.name},something bright,3,6\n")
    out = tmp_path / "eval.json"
    assert (
        compare(
            ["evaluate", str(queries), "--library", str(lib.root), "--engines", "clip,cloud:titan", "--json", str(out)]
        )
        == 0
    )
    report = json.loads(out.read_text())
    row = next(r for r in report["engines"] if r["engine"] == "cloud:titan")
    assert row["status"] == "ok" and row["hit@1"] == pytest.approx(1.0)
    cost = report["costs"]["cloud:titan"]
    price = price_table(lib.root)["cloud:titan"]
    assert cost["usd_per_1000_queries"] == price["usd_per_1000_queries"] > 0
    assert cost["usd_per_film_hour"] == pytest.approx(price["usd_per_1000_transactions"] / 1000 * 3600, rel=0.2)


def test_every_service_is_declared_with_its_model_dimension_and_status():
    services = embedding_services()
    assert set(services) == set(DIMS)
    for name, s in services.items():
        assert s.dim == DIMS[name] and s.model_id and s.status
        assert s.embedder_class().dim == s.dim
    assert "2028-09-25" in services["cloud:azure"].status


def test_the_readme_services_table_is_the_one_the_registries_and_price_table_give():
    import subprocess
    import sys

    from clip_search import config

    made = subprocess.run(
        [sys.executable, "scripts/readme_services.py", "--print"],
        cwd=config.PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert made in (config.PROJECT_DIR / "README.md").read_text()  # regenerate: scripts/readme_services.py
    assert "| `cloud:titan` | `amazon.titan-embed-image-v1`" in made and "retires 2028-09-25" in made


def test_the_dashboard_adds_a_cloud_service_with_its_price_first_and_searches_with_it(
    film, cloud, monkeypatch, tiny_clip_dir
):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import assert_no_error
    from tests.test_dashboard import APP

    lib, indexed = film
    monkeypatch.setenv("FRAMESEARCH_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("FRAMESEARCH_LIBRARY", str(lib.root))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.sidebar.text_input(key="add-model").input("cloud:azure").run()
    assert_no_error(at)
    button = at.sidebar.button(key="add-cloud-run")
    assert f"({indexed.manifest.frames} calls)" in button.label and "Pay about $" in button.label
    assert any("retires 2028-09-25" in c.value for c in at.sidebar.caption)  # the status, said where it is offered
    assert not cloud.requests  # nothing is paid before the click
    button.click().run()
    assert_no_error(at)
    assert Library(lib.root).films()[0].has("cloud:azure")
    assert "cloud:azure" in at.selectbox(key="search-engine").options
    at.selectbox(key="search-engine").select("cloud:azure").run()
    at.text_input(key="query").input("something bright").run()
    assert_no_error(at)
    assert any("hits" in m.value for m in at.markdown)


SHAPES = {  # where each service puts its vector, as its documentation shows
    "cloud:titan": '{"embedding": %s}',
    "cloud:nova": '{"embeddings": [{"embeddingType": "TEXT", "embedding": %s}]}',
    "cloud:marengo": '{"data": {"embedding": %s}}',
    "cloud:gemini": '{"embeddings": [{"values": %s}]}',
    "cloud:azure": '{"modelVersion": "2023-04-15", "vector": %s}',
}


@pytest.mark.parametrize("service", sorted(DIMS))
@pytest.mark.parametrize(
    "values, why",
    [
        (None, "not valid JSON"),  # an HTML page instead
        ("[NaN" + ", 0.5" * 1023 + "]", "numbers, not|NaN"),
        ("[" + ", ".join(["0.5"] * 7) + "]", "7 numbers"),
        ('["a", "b"]', "not numbers|2 numbers|does not fit its schema"),
    ],
)
def test_each_service_rejects_a_malformed_answer_through_its_real_http_path(service, values, why, cloud):
    if values is None:
        cloud.then(Scripted(raw=b"<html><body>Gateway Timeout</body></html>"))
    else:
        cloud.then(Scripted(json_raw=(SHAPES[service] % values).encode()))
    options = {"retries": 0} if service == "cloud:azure" else {"max_attempts": 1}
    with pytest.raises(TaggerError, match=why):
        make_embedder(service, **options).embed_text("x")


@pytest.mark.parametrize("service", ["cloud:titan", "cloud:gemini", "cloud:azure"])
def test_a_silent_service_costs_one_deadline_and_a_throttling_one_a_bounded_number_of_retries(service, cloud):
    import time

    cloud.then(Scripted(delay=5.0))
    embedder = make_embedder(service, deadline=1.0)
    t0 = time.monotonic()
    with pytest.raises(TaggerError, match="timed out"):
        embedder.embed_text("a ship at sea")
    assert time.monotonic() - t0 < 3.0
    throttled = Scripted(status=429, body={"message": "slow down", "error": {"code": "429"}})
    cloud.then(*[throttled] * 20)
    before = len(cloud.requests)
    with pytest.raises(TaggerError, match="throttling"):
        make_embedder(service, deadline=30.0, backoff=0.01).embed_text("a ship at sea")
    assert 1 < len(cloud.requests) - before <= 5  # retried, but a few times, not forever

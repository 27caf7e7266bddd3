"""A local HTTP server that speaks the REST shapes of Azure Image Analysis 4.0, AWS Rekognition, and
the embedding services: Bedrock's InvokeModel (``POST /model/{modelId}/invoke``), Azure AI
Vision's ``retrieval:vectorizeImage`` / ``vectorizeText`` and the Gemini API's
``models/{model}:batchEmbedContents``.

It stands in for the cloud services (no network here, and real calls cost money) while the real
SDK clients (azure-core's transport and retry policy, botocore's signing, retries and parsing)
run unchanged against it. Each test scripts the responses; the server records every request."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

AZURE_OK = {
    "modelVersion": "2023-10-01",
    "captionResult": {"text": "a man standing on a ship", "confidence": 0.81},
    "denseCaptionsResult": {
        "values": [{"text": "a ship at sea", "confidence": 0.7, "boundingBox": {"x": 0, "y": 0, "w": 10, "h": 10}}]
    },
    "metadata": {"width": 64, "height": 48},
    "tagsResult": {"values": [{"name": "ship", "confidence": 0.95}, {"name": "sea", "confidence": 0.9}]},
    "objectsResult": {
        "values": [{"boundingBox": {"x": 1, "y": 2, "w": 3, "h": 4}, "tags": [{"name": "boat", "confidence": 0.8}]}]
    },
    "readResult": {
        "blocks": [
            {
                "lines": [
                    {
                        "text": "SINBAD THE SAILOR",
                        "boundingPolygon": [{"x": 0, "y": 0}, {"x": 9, "y": 0}, {"x": 9, "y": 3}, {"x": 0, "y": 3}],
                        "words": [
                            {"text": w, "confidence": c, "boundingPolygon": [{"x": 0, "y": 0}] * 4}
                            for w, c in (("SINBAD", 0.99), ("THE", 0.97), ("SAILOR", 0.95))
                        ],
                    }
                ]
            }
        ]
    },
}

REKOGNITION_OK = {
    "DetectLabels": {
        "Labels": [
            {
                "Name": "Boat",
                "Confidence": 97.5,
                "Instances": [
                    {"BoundingBox": {"Width": 0.5, "Height": 0.5, "Left": 0.1, "Top": 0.1}, "Confidence": 97.5}
                ],
                "Parents": [],
            },
            {"Name": "Sea", "Confidence": 91.0, "Instances": [], "Parents": []},
        ],
        "LabelModelVersion": "3.0",
    },
    "RecognizeCelebrities": {
        "CelebrityFaces": [{"Name": "Popeye", "Id": "1", "MatchConfidence": 88.0, "Urls": [], "Face": {}}],
        "UnrecognizedFaces": [{}],
    },
    "DetectText": {
        "TextDetections": [
            {"DetectedText": "SINBAD THE SAILOR", "Type": "LINE", "Id": 0, "Confidence": 99.0},
            {"DetectedText": "SINBAD", "Type": "WORD", "Id": 1, "ParentId": 0, "Confidence": 99.0},
        ]
    },
}


@dataclass
class Scripted:
    """A response to give: status, JSON body, extra headers, and a delay before answering."""

    status: int = 200
    body: dict | None = None
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None  # a non-JSON body as sent (a proxy's HTML page, junk), with text/html
    drip: float = 0.0  # seconds between bytes of the body (a 200 whose body never quite arrives)
    json_raw: bytes | None = None  # a JSON body sent as is (NaN and other things json.dumps would not write)


@dataclass
class Seen:
    """A request the server received."""

    service: str
    operation: str
    path: str
    headers: dict  # lower-case names
    body: bytes
    at: float


class FakeCloud:
    """Start with ``with FakeCloud() as cloud:``; ``cloud.url`` is the endpoint."""

    def __init__(self, embed=None) -> None:
        self.embed = embed or (lambda service, op, content_type, body: {})  # an embedding answer's body
        self.script: list[Scripted] = []
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                target = self.headers.get("X-Amz-Target", "")
                service = "rekognition" if target else "azure"
                op = target.split(".")[-1] if target else "analyze"
                if self.path.startswith("/model/"):  # Bedrock InvokeModel: /model/{modelId}/invoke
                    service, op = "bedrock", self.path.split("/")[2]
                elif "/computervision/retrieval:" in self.path:
                    service, op = "azure", self.path.split("retrieval:")[1].split("?")[0]
                elif (
                    "EmbedContents" in self.path or "embedContent" in self.path
                ):  # Gemini: models/{m}:batchEmbedContents
                    service, op = "google", self.path.split(":")[-1].split("?")[0]
                with cloud._lock:
                    cloud.requests.append(
                        Seen(service, op, self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                    )
                    reply = cloud.script.pop(0) if cloud.script else Scripted()
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.body is not None:
                    payload = reply.body
                elif service in ("bedrock", "google") or op.startswith("vectorize"):
                    payload = cloud.embed(service, op, self.headers.get("Content-Type", ""), body)
                else:
                    payload = REKOGNITION_OK[op] if service == "rekognition" else AZURE_OK
                data = reply.raw if reply.raw is not None else reply.json_raw or json.dumps(payload).encode()
                try:
                    self.send_response(reply.status)
                    ctype = "application/x-amz-json-1.1" if service == "rekognition" else "application/json"
                    ctype = "text/html" if reply.raw is not None else ctype
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    if reply.drip:
                        for i in range(len(data)):
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                            time.sleep(reply.drip)
                    else:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeCloud:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def then(self, *replies: Scripted) -> FakeCloud:
        """Queue responses (after them, every request succeeds)."""
        self.script.extend(replies)
        return self

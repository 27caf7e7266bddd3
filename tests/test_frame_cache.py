"""The dashboard's server lets the browser keep frames (ui/frame_cache.py), and nothing else."""

import asyncio

from ui.frame_cache import CACHE_CONTROL, FrameCache


def _served(path: str, status: int, kind: bytes) -> list[tuple[bytes, bytes]]:
    """The headers a request for ``path`` gets through the middleware, from an app that answers
    ``status`` with content type ``kind`` (standing in for Streamlit's own routes)."""
    sent = []

    async def streamlit(scope, receive, send):
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", kind)]})
        await send({"type": "http.response.body", "body": b"..."})

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request"}

    asyncio.run(FrameCache(streamlit)({"type": "http", "path": path}, receive, send))
    return sent[0]["headers"]


def test_frames_are_kept_by_the_browser_and_nothing_else_is():
    assert (b"cache-control", CACHE_CONTROL) in _served("/media/3e5f.jpg", 200, b"image/jpeg")
    assert (b"cache-control", CACHE_CONTROL) in _served("/app/media/3e5f.png", 200, b"image/png")  # behind a base URL
    for path, status, kind in (
        ("/media/3e5f.mp4", 200, b"video/mp4"),  # a playable copy: hashed from samples of its bytes
        ("/media/gone.jpg", 404, b"image/jpeg"),  # a miss must not be remembered
        ("/media/3e5f.jpg", 206, b"image/jpeg"),
        ("/_stcore/health", 200, b"text/plain"),
    ):
        assert all(k != b"cache-control" for k, _ in _served(path, status, kind))

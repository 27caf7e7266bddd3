"""Frames the browser keeps: Streamlit serves an image under its content's hash (``/media/<hash>.jpg``)
but says nothing of caching, so a frame seen before was fetched again. This ASGI middleware marks
those responses as cacheable for a week: the same hash is the same bytes, for as long as the URL exists.
Only images: a film's playable copy is hashed from samples of its bytes above 1 MiB, not all of them."""

from __future__ import annotations

CACHE_CONTROL = b"private, max-age=604800, immutable"  # private: a lab's dashboard may sit behind a password


class FrameCache:
    """Adds ``Cache-Control`` to successful image responses under ``/media/`` (an ASGI middleware)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or "/media/" not in scope.get("path", ""):
            await self.app(scope, receive, send)
            return

        async def send_cached(message) -> None:
            if message["type"] == "http.response.start" and message.get("status") == 200:
                headers = list(message.get("headers", []))
                kind = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if kind.startswith(b"image/"):
                    message = {**message, "headers": [*headers, (b"cache-control", CACHE_CONTROL)]}
            await send(message)

        await self.app(scope, receive, send_cached)

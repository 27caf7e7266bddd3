"""Video URLs: download with yt-dlp into the library, with one clear sentence when that fails."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from clip_search.errors import DownloadError
from clip_search.guard import check_url, guarded_fetch, refused

_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def is_url(text: str) -> bool:
    """True for 'https://...' style references (anything with a scheme)."""
    return bool(_URL.match(text.strip()))


def download(url: str, target_dir: Path, progress: Callable[[float], None] | None = None) -> Path:
    """Download ``url`` (yt-dlp; best single file up to 720p) into ``target_dir``; return the file.

    Raises DownloadError naming the URL and the reason (offline, unsupported site, ...)."""
    try:
        import yt_dlp  # yt-dlp loads only when a URL is fetched
    except ImportError:  # pragma: no cover - it is in requirements.txt
        raise DownloadError("Downloading URLs needs yt-dlp: pip install yt-dlp") from None

    check_url(url)  # http(s) to a public address only; every later connection is checked too
    target_dir.mkdir(parents=True, exist_ok=True)

    def hook(d: dict) -> None:
        if progress and d.get("status") == "downloading" and d.get("total_bytes"):
            progress(d.get("downloaded_bytes", 0) / d["total_bytes"])

    opts = {
        "format": "best[height<=720][ext=mp4]/best[height<=720]/best",
        "outtmpl": str(target_dir / "%(title).80s-%(id)s.%(ext)s"),
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "socket_timeout": 15,
        "retries": 1,
        "progress_hooks": [hook],
        "logger": _SilentLogger(),
    }
    try:
        with guarded_fetch(), yt_dlp.YoutubeDL(opts) as ydl:
            info = ydl.extract_info(url, download=True)
            path = Path(ydl.prepare_filename(info))
    except Exception as e:  # noqa: BLE001 - yt-dlp raises many types; all become one sentence
        msg = str(e)
        if refused():
            raise DownloadError(f"Could not download {url}: refused, {refused()} (after a redirect).") from None
        if any(
            s in msg
            for s in (
                "Name or service not known",
                "Temporary failure",
                "Failed to resolve",
                "Network is unreachable",
                "Connection refused",
                "timed out",
                "getaddrinfo",
            )
        ):
            reason = "no network connection"
        else:
            reason = re.sub(r"^ERROR:\s*", "", msg.splitlines()[0] if msg else type(e).__name__)[:200]
        raise DownloadError(f"Could not download {url}: {reason}.") from None
    if not path.is_file():
        raise DownloadError(f"Could not download {url}: yt-dlp reported success but wrote no file.")
    return path


class _SilentLogger:
    """yt-dlp prints to stderr by default; we report errors ourselves, once."""

    def debug(self, msg: str) -> None:
        pass

    info = warning = debug

    def error(self, msg: str) -> None:
        pass

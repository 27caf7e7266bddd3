"""The one gate for references that come from outside and make the server touch something: a path
typed into the dashboard, a video URL. A path must lie inside a configured media root (after
symlinks are resolved); a URL must be http(s) and every address it connects to, the first and
after every redirect, must be public, unless the lab allowed the host (``FRAMESEARCH_ALLOW_HOSTS``).

URLs are fetched by yt-dlp, which follows redirects itself; so the check sits where every connection
is made: name resolution (``socket.getaddrinfo``) refuses private answers on a thread that is
fetching a user's URL (other threads, e.g. a cloud tagger, are not affected)."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import clip_search.config as config
from clip_search.errors import DownloadError, FrameSearchError

SCHEMES = ("http", "https")
_guarded = threading.local()
_real_getaddrinfo = socket.getaddrinfo


def media_paths(ref: str, roots: list[Path] | None = None) -> list[Path]:
    """The films a typed path names (a film, or the videos under a folder), refused unless it lies
    inside a media root. Raises FrameSearchError naming the roots."""
    roots = config.media_roots() if roots is None else roots
    path = Path(ref).expanduser()
    if not path.exists():
        raise FrameSearchError(f"{path}: no such file or folder.")
    real = path.resolve()
    if not _inside_roots(real, roots):
        names = ", ".join(str(r) for r in roots) or "none"
        raise FrameSearchError(
            f"{path} is outside the media folders this dashboard may read ({names}); set FRAMESEARCH_MEDIA_ROOTS."
        )
    if real.is_dir():  # each film by where it really is: a link inside the folder may lead out of the roots
        found = (p.resolve() for p in sorted(real.rglob("*")) if p.suffix.lower() in config.VIDEO_SUFFIXES)
        films = list(dict.fromkeys(f for f in found if f.is_file() and _inside_roots(f, roots)))
        if not films:
            raise FrameSearchError(f"{path}: no video files in this folder.")
        return films
    return [real]


def _inside_roots(real: Path, roots: list[Path]) -> bool:
    return any(real == r or r in real.parents for r in roots)


def _allowed(host: str, ip: ipaddress._BaseAddress, allow: list[str]) -> bool:
    for entry in allow:
        if entry.lower() == host.lower():
            return True
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _kind(ip: ipaddress._BaseAddress) -> str:
    if getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    for name in ("loopback", "link_local", "private", "multicast", "reserved", "unspecified"):
        if getattr(ip, f"is_{name}"):
            return name.replace("_", "-")
    return "public" if ip.is_global else "non-public"


def _not_public(host: str, infos: list, allow: list[str]) -> str | None:
    """'HOST is IP, a KIND address' for the first resolved address that is not public nor allowed."""
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        kind = _kind(ip)
        if kind != "public" and not _allowed(host, ip, allow):
            return f"{host} is {ip}, a {kind} address"
    return None


def refusal(host: str, allow: list[str] | None = None) -> str | None:
    """Why ``host`` must not be fetched (an address of it is not public and not allowed), or None."""
    allow = config.allowed_hosts() if allow is None else allow
    try:
        infos = _real_getaddrinfo(host, None)
    except OSError as e:
        return f"{host} cannot be resolved ({e})"
    why = _not_public(host, infos, allow)
    if why:
        return (
            f"{why}; the URL box fetches only public addresses (a lab adds its own hosts with FRAMESEARCH_ALLOW_HOSTS)"
        )
    return None


def check_url(url: str) -> None:
    """Refuse a URL that is not http(s) or whose host is not public; DownloadError says why."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise DownloadError(f"Could not download {url}: only http:// and https:// URLs are fetched.")
    why = refusal(parts.hostname)
    if why:
        raise DownloadError(f"Could not download {url}: refused, {why}.")


def _getaddrinfo(host, *args, **kwargs):
    """socket.getaddrinfo, refusing private answers on a thread inside ``guarded_fetch``."""
    infos = _real_getaddrinfo(host, *args, **kwargs)
    allow = getattr(_guarded, "allow", None)
    if allow is None or host is None:
        return infos
    name = host.decode() if isinstance(host, bytes) else str(host)
    why = _not_public(name, infos, allow)
    if why:
        _guarded.refused = why
        raise socket.gaierror(socket.EAI_NONAME, f"refused: {why}")
    return infos


@contextmanager
def guarded_fetch() -> Iterator[None]:
    """While inside, this thread's connections may only reach public (or allowed) addresses."""
    socket.getaddrinfo = _getaddrinfo  # idempotent; threads outside a guard see the real answers
    _guarded.allow, _guarded.refused = config.allowed_hosts(), None
    try:
        yield
    finally:
        _guarded.allow = None


def refused() -> str | None:
    """What the last guarded fetch on this thread refused to connect to, if anything."""
    return getattr(_guarded, "refused", None)

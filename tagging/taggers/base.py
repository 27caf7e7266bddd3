"""The tagger interface: frames in, per-feature responses out. New services plug in by implementing
``Tagger``; callers never need to know which service they hold."""

from __future__ import annotations

import io
import math
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
from PIL import Image

TAG_KINDS = ("label", "caption", "object", "text", "face", "celebrity")
CALL_DEADLINE = 15.0  # seconds one call may take in all: its retries, waits and a body that drips in
RETRY_BUDGET = 10  # retries one tagger (one run) may spend over all its calls, so a sick service stops early
MAX_TAG_TEXT = 500  # characters: a tag, caption or OCR line longer than this is not a tag
BACKOFF_CAP = 4.0  # seconds between two attempts of one call at most
RETRY_AFTER_CAP = 20.0  # seconds: a service asking for longer waits per retry would stall a film for hours


@dataclass(frozen=True)
class Tag:
    """One thing a service saw in a frame: kind (see TAG_KINDS), text, confidence in [0, 1]."""

    kind: str
    text: str
    confidence: float

    def to_dict(self) -> dict:
        return asdict(self)


class TaggerError(Exception):
    """A frame could not be tagged (throttled after retries, server error, timeout, bad response).

    ``unreachable`` marks timeouts and connection failures: many in a row trip the circuit breaker."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(one_line(message))
        self.unreachable = unreachable


class FatalTaggerError(TaggerError):
    """The whole run cannot go on (missing or rejected credentials, bad configuration): stop, keep what is tagged."""


_HTML = re.compile(r"<[^>]*>")


def one_line(message: str, limit: int = 240) -> str:
    """An error message fit for one line: markup (a proxy's HTML page) and line breaks removed, length bounded."""
    text = " ".join(_HTML.sub(" ", str(message)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def checked_tags(tags: list, service: str) -> list[Tag]:
    """The tags of a response, after checking they fit the schema: text a non-empty string, a known
    kind, confidence a finite number in [0, 1]. A response that does not fit raises TaggerError and
    nothing of it is stored (a NaN stored would print NaN into JSON; a number as a name breaks search)."""
    out = []
    for tag in tags:
        text, conf = tag.text, tag.confidence
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TAG_TEXT:
            raise TaggerError(f"{service} returned a tag whose name is not text ({type(text).__name__}); not stored.")
        if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not math.isfinite(conf):
            raise TaggerError(f"{service} returned a confidence that is not a number ({conf!r}); not stored.")
        if tag.kind not in TAG_KINDS:
            raise TaggerError(f"{service} returned a tag of unknown kind {tag.kind!r}; not stored.")
        out.append(Tag(tag.kind, text.strip(), min(1.0, max(0.0, float(conf)))))
    return out


class RetryBudget:
    """Retries shared by every call of one tagger: once spent, calls fail at once instead of waiting."""

    def __init__(self, retries: int = RETRY_BUDGET) -> None:
        self.left = retries
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Spend one retry; False when none is left."""
        with self._lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


class Retryable(TaggerError):
    """A failure worth another attempt (throttling, a server error, a timeout); ``after``: the
    seconds the service asked to wait first (its Retry-After), if it said."""

    def __init__(self, message: str, unreachable: bool = False, after: float | None = None) -> None:
        super().__init__(message, unreachable)
        self.after = after


class BoundedCalls:
    """Calls to one service, each retried while it is worth it, the run's budget lasts and the call's
    deadline allows: backoff doubling up to ``BACKOFF_CAP``, a service's Retry-After honoured up to
    ``retry_after_cap`` (one asking for longer fails the call at once: waiting an hour helps nobody).
    An adapter's ``attempt`` raises ``Retryable`` for what deserves another try, TaggerError for the
    rest (FatalTaggerError stops the run)."""

    def __init__(
        self,
        label: str,
        max_attempts: int = 4,
        deadline: float = CALL_DEADLINE,
        budget: RetryBudget | None = None,
        backoff: float = 0.25,
        retry_after_cap: float = RETRY_AFTER_CAP,
    ) -> None:
        self.label, self.max_attempts, self.deadline = label, max(1, max_attempts), deadline
        self.budget, self.backoff, self.retry_after_cap = budget or RetryBudget(), backoff, retry_after_cap

    def run(self, what: str, attempt: Callable[[], object]):
        """``attempt()``, retried within the budget and the deadline."""
        end = time.monotonic() + self.deadline
        for n in range(1, self.max_attempts + 1):
            left = end - time.monotonic()
            if left <= 0:
                raise TaggerError(f"{self.label} {what} gave no answer within {self.deadline:g} s (timed out).", True)
            try:
                return within_deadline(attempt, left, self.label)
            except Retryable as e:
                if e.after is not None and e.after > self.retry_after_cap:
                    raise TaggerError(
                        f"{self.label} is throttling and asks to wait {e.after:g} s (more than the "
                        f"{self.retry_after_cap:g} s waited here); try again later."
                    ) from None
                pause = e.after if e.after is not None else min(BACKOFF_CAP, self.backoff * 2 ** (n - 1))
                if n == self.max_attempts or time.monotonic() + pause >= end or not self.budget.take():
                    raise TaggerError(str(e), e.unreachable) from None
                time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def within_deadline(call: Callable[[], object], seconds: float, service: str) -> object:
    """``call()`` on a helper thread, waited for at most ``seconds``: an endpoint that never answers,
    or answers a byte a second, costs this long and no more (TaggerError, counted as unreachable).
    The abandoned call ends on its own socket timeout; its answer, if any, is not stored."""
    out: queue.Queue = queue.Queue(maxsize=1)

    def run() -> None:
        try:
            out.put((True, call()))
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread as it is
            out.put((False, e))

    threading.Thread(target=run, daemon=True, name=f"{service}-call").start()
    try:
        ok, value = out.get(timeout=seconds)
    except queue.Empty:
        raise TaggerError(
            f"{service} gave no complete answer within {seconds:g} s (timed out).", unreachable=True
        ) from None
    if not ok:
        raise value
    return value


@dataclass
class Response:
    """One paid unit of work for one frame: a feature's tags (or an embedding service's vector), or
    why it failed."""

    feature: str
    tags: list[Tag] | None = None
    error: TaggerError | None = None
    served_version: str | None = None
    vector: np.ndarray | None = None


class Tagger(Protocol):
    """Tags frames. ``service`` names it; ``features`` are its units of work, each stored on its own
    (one call each for Rekognition); ``model_version`` is the service model asked for, part of the
    cache key; ``paid`` says whether calls cost money."""

    service: str
    features: tuple[str, ...]
    model_version: str
    paid: bool

    def responses(self, image: np.ndarray, features: tuple[str, ...]) -> Iterator[Response]:
        """Each asked-for feature's result, as soon as it arrives; FatalTaggerError stops the run."""
        ...


def all_tags(tagger: Tagger, image: np.ndarray) -> list[Tag]:
    """Every feature of one frame, or the first error (for one-off use and tests)."""
    tags: list[Tag] = []
    for r in tagger.responses(image, tagger.features):
        if r.error is not None:
            raise r.error
        tags += r.tags or []
    return tags


def jpeg_under(image: np.ndarray, max_bytes: int, max_side: int = 2048, min_side: int = 50) -> bytes:
    """Encode an RGB frame as JPEG within a service's byte and pixel limits (downscale as needed)."""
    img = Image.fromarray(image)
    if min(img.size) < min_side:
        scale = min_side / min(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC)
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    for quality in (90, 80, 70, 55, 40):
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality)
        if buf.tell() <= max_bytes:
            return buf.getvalue()
    img = img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS)
    return jpeg_under(np.asarray(img), max_bytes, max_side, min_side)

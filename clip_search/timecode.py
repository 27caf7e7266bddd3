"""Times as people read them and as files store them: one place for formatting, parsing and the
frame-time key every store uses to name a sampled frame."""

from __future__ import annotations

import math


def fmt_time(seconds: float) -> str:
    """mm:ss.s (h:mm:ss.s past an hour), as a player shows it."""
    seconds = max(0.0, float(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h)}:{int(m):02d}:{s:04.1f}" if h else f"{int(m):02d}:{s:04.1f}"


def parse_time(stamp: str) -> float:
    """'01:02:03.450', '02:03,450' or '7.5' -> seconds; ValueError for anything else."""
    parts = stamp.strip().replace(",", ".").split(":")
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise ValueError(f"not a time: {stamp!r}")
    total = 0.0
    for part in parts:
        total = total * 60 + float(part)
    if not math.isfinite(total) or total < 0:
        raise ValueError(f"not a time: {stamp!r}")
    return total


def time_key(seconds: float) -> int:
    """A sampled frame's key in every store: its presentation time in whole milliseconds.

    Float times are never compared directly: 1 ms is far below any frame interval."""
    return round(float(seconds) * 1000)

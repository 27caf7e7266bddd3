"""The public moment-retrieval annotation formats, read as query sets.

QVHighlights: JSON lines with ``qid``, ``query``, ``vid``, ``duration`` and ``relevant_windows``
([[start, end], ...] in seconds; other fields ignored). Charades-STA: one ``VID start end##sentence``
per line. The format is recognised from the content; ``vid``/``VID`` names a library film. Each
query keeps its id, so predictions can be written in the QVHighlights submission format
(``qid``, ``query``, ``vid``, ``pred_relevant_windows`` [[start, end, score], ...] best first) for
the official evaluator to score the very windows scored here."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

CHARADES_LINE = re.compile(r"^(?P<vid>\S+) (?P<start>\d+(?:\.\d+)?) (?P<end>\d+(?:\.\d+)?)##(?P<query>.*)$")


@dataclass
class BenchmarkQuery:
    """One annotated query: its id, text, video and relevant windows."""

    qid: str | int
    query: str
    vid: str
    windows: list[tuple[float, float]] = field(default_factory=list)
    duration: float | None = None


@dataclass
class Benchmark:
    """An annotation file read: which benchmark, and its queries in file order."""

    name: str  # "qvhighlights" or "charades"
    queries: list[BenchmarkQuery]


def detect(text: str) -> str | None:
    """'qvhighlights', 'charades', or None (a CSV query set, or something else) from the content."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if first.startswith("{"):
        return "qvhighlights"
    if CHARADES_LINE.match(first):
        return "charades"
    return None


def load(path: str | Path) -> Benchmark | None:
    """The benchmark file at ``path``, or None when it is neither format (then it is a CSV query
    set). ValueError naming the file, the line and what is wrong for a file of either format."""
    name = Path(path).name
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        return None
    kind = detect(text)
    if kind is None:
        return None
    queries = _qvhighlights(text, name) if kind == "qvhighlights" else _charades(text, name)
    if not queries:
        raise ValueError(f"{name}: holds no queries")
    return Benchmark(kind, queries)


def _seconds(value, name: str, line: int) -> float:
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} line {line}: {value!r} is not a time in seconds") from None
    if not math.isfinite(t) or t < 0:
        raise ValueError(f"{name} line {line}: {value!r} is not a time in seconds")
    return t


def _window(w, name: str, line: int) -> tuple[float, float]:
    if not isinstance(w, (list, tuple)) or len(w) < 2:
        raise ValueError(f"{name} line {line}: a relevant window is [start, end], not {w!r}")
    a, b = _seconds(w[0], name, line), _seconds(w[1], name, line)
    if b < a:
        raise ValueError(f"{name} line {line}: window end {b} is before its start {a}")
    return a, b


def _qvhighlights(text: str, name: str) -> list[BenchmarkQuery]:
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except ValueError as e:
            raise ValueError(f"{name} line {n}: not a JSON object ({e.msg})") from None
        if not isinstance(d, dict):
            raise ValueError(f"{name} line {n}: not a JSON object")
        missing = [k for k in ("qid", "query", "vid") if k not in d]
        if missing:
            raise ValueError(f"{name} line {n}: lacks {', '.join(missing)}")
        windows = [_window(w, name, n) for w in d.get("relevant_windows") or []]
        duration = _seconds(d["duration"], name, n) if d.get("duration") is not None else None
        out.append(BenchmarkQuery(d["qid"], str(d["query"]).strip(), str(d["vid"]), windows, duration))
    return out


def _charades(text: str, name: str) -> list[BenchmarkQuery]:
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = CHARADES_LINE.match(line.strip())
        if m is None:
            raise ValueError(f"{name} line {n}: not 'VID start end##sentence'")
        window = _window((m["start"], m["end"]), name, n)
        out.append(BenchmarkQuery(len(out), m["query"].strip(), m["vid"], [window]))
    return out


def submission_line(q: BenchmarkQuery, windows: list[list[float]]) -> str:
    """One query's predictions as a line of the QVHighlights submission format."""
    return json.dumps({"qid": q.qid, "query": q.query, "vid": q.vid, "pred_relevant_windows": windows})

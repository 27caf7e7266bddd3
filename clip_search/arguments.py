"""Command-line argument checking shared by ``python -m clip_search`` and ``python -m comparisons``:
every bad value is refused before any work with one line naming the argument, never a traceback."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from clip_search.timecode import parse_time


class Parser(argparse.ArgumentParser):
    """argparse, with errors as one line on stderr (exit code 2) instead of usage plus message."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _number(kind: Callable[[str], float], test: Callable[[float], bool], what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}") from None
        if not math.isfinite(value) or not test(value):
            raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


positive_float = _number(float, lambda v: v > 0, "a positive number")
non_negative_float = _number(float, lambda v: v >= 0, "a number >= 0")
fraction = _number(float, lambda v: 0 <= v <= 1, "a number from 0 to 1")
positive_int = _number(int, lambda v: v >= 1, "a whole number >= 1")
MAX_FPS = 1000.0
sampling_fps = _number(float, lambda v: 0 < v <= MAX_FPS, f"frames per second above 0, at most {MAX_FPS:g}")


def text(value: str) -> str:
    """Text typed on the command line: it must be valid UTF-8 (Python keeps undecodable bytes as
    surrogates, which the tokenizers cannot take)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError("is not valid UTF-8 text; type it again in a UTF-8 terminal") from None
    return value


def query_text(value: str) -> str:
    """A query: valid UTF-8 and not empty."""
    if not text(value).strip():
        raise argparse.ArgumentTypeError("is empty: type what you saw, e.g. 'a ship at sea'")
    return value


def device(value: str) -> str:
    """auto, cpu, cuda or cuda:N; cuda only where torch sees a CUDA GPU."""
    if value in ("auto", "cpu"):
        return value
    if not re.fullmatch(r"cuda(:\d+)?", value):
        raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda or cuda:N, not {value!r}")
    import torch  # torch loads only when a model is used

    if not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(
            f"{value}: no CUDA GPU is available here (torch {torch.__version__}); use --device cpu or auto"
        )
    index = int(value.split(":")[1]) if ":" in value else 0
    if index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{value}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return value


def positive_ints(text: str) -> tuple[int, ...]:
    """'1,5,10' -> (1, 5, 10); each a whole number >= 1."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("needs at least one whole number, e.g. 1,5,10")
    return tuple(sorted({int(positive_int(p)) for p in parts}))


def output_file(text: str) -> Path:
    """A file to write later: its folder must exist and be writable now, before any work is done."""
    path = Path(text).expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder, not a file")
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"the folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f"{text} cannot be written (permission denied)")
    return path


def choice_of(names: list[str]) -> Callable[[str], str]:
    """One of ``names`` (listed in the error)."""

    def parse(text: str) -> str:
        if text not in names:
            raise argparse.ArgumentTypeError(f"unknown {text!r} (choose from {', '.join(names)})")
        return text

    return parse


def time_of_film(value: str) -> float:
    """A time in a film: seconds, mm:ss or h:mm:ss."""
    try:
        return parse_time(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a time (seconds, mm:ss or h:mm:ss), not {value!r}") from None


def add_temporal(p: argparse.ArgumentParser) -> None:
    """The temporal options every search command takes (see ``engines.temporal``)."""
    p.add_argument(
        "--then",
        action="append",
        default=[],
        type=text,
        metavar="TEXT",
        help="a step that must follow (repeatable): moments where the query is followed by TEXT (then the next)",
    )
    p.add_argument(
        "--within", type=non_negative_float, default=30.0, help="seconds a --then step may start after the last"
    )
    p.add_argument(
        "--after", type=time_of_film, metavar="TIME", help="only hits after this time (seconds or [h:]mm:ss)"
    )
    p.add_argument("--before", type=time_of_film, metavar="TIME", help="only hits before this time")
    p.add_argument(
        "--all",
        dest="every",
        action="store_true",
        help="every occurrence (moments whose score the engine can defend as a match), not the top k",
    )

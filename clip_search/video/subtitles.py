"""Dialogue from subtitles: a sidecar .srt/.vtt/.ass/.ssa beside the film (same stem, optional
language suffix, e.g. ``popeye_p1.eng.srt``) or a text subtitle stream inside the container.

Parsed with kept libraries (``pysubs2`` for files, PyAV for streams). A bad or mis-encoded file
never stops indexing: it becomes a warning (cues with broken timestamps are counted) and the film
indexes with the cues that could be read."""

from __future__ import annotations

import glob
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

SIDECAR_SUFFIXES = (".srt", ".vtt", ".ass", ".ssa")
PREFERRED_LANGS = ("eng", "en", "en-us", "en-gb")
_TAGS = re.compile(r"<[^>]+>|\{[^}]*\}")


@dataclass(frozen=True)
class Cue:
    """One subtitle: on screen from ``start`` to ``end`` seconds."""

    start: float
    end: float
    text: str


@dataclass
class Dialogue:
    """A film's cues, where they came from, and any warning for the user."""

    cues: list[Cue] = field(default_factory=list)
    origin: str | None = None
    warning: str | None = None

    def to_dict(self) -> dict:
        return {"origin": self.origin, "warning": self.warning, "cues": [asdict(c) for c in self.cues]}

    @classmethod
    def from_dict(cls, d: dict) -> Dialogue:
        return cls([Cue(**c) for c in d.get("cues", [])], d.get("origin"), d.get("warning"))


def clean(text: str) -> str:
    """Subtitle markup (<i>, {\\an8}, \\N) removed, lines joined."""
    text = _TAGS.sub("", text.replace("\\N", "\n").replace("\\n", "\n"))
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def find_sidecar(video: str | Path) -> Path | None:
    """``film.srt``/``film.vtt``, or ``film.<lang>.srt`` (English preferred)."""
    video = Path(video)
    candidates = [
        p
        for p in video.parent.glob(f"{glob.escape(video.stem)}*")
        if p.suffix.lower() in SIDECAR_SUFFIXES and p.is_file()
    ]
    exact = [p for p in candidates if p.stem == video.stem]
    if exact:
        return sorted(exact)[0]
    tagged = [p for p in candidates if p.stem.startswith(video.stem + ".")]

    def rank(p: Path) -> tuple[int, str]:
        lang = p.stem[len(video.stem) + 1 :].lower()
        return (PREFERRED_LANGS.index(lang) if lang in PREFERRED_LANGS else len(PREFERRED_LANGS), p.name)

    return sorted(tagged, key=rank)[0] if tagged else None


def _decode(raw: bytes, name: str) -> tuple[str, str | None]:
    for enc in ("utf-8-sig", "utf-16"):
        try:
            text = raw.decode(enc)
            if enc == "utf-16" and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                continue
            return text, None
        except UnicodeDecodeError:
            continue
    return raw.decode("cp1252", errors="replace"), f"{name} is not UTF-8; read it as Windows-1252 (check accents)."


_ARROW = re.compile(r"-->")
_STAMP = re.compile(r"(\d{1,2}):(\d{1,2}):(\d{1,2})[.,](\d{1,3})")  # pysubs2's own timestamp


def _srt_cues_only(text: str) -> tuple[str, int]:
    """SRT text without the blocks whose timing line is broken, and how many there were. pysubs2
    reads every line up to the next timing line as text, so such a cue would be glued onto the cue
    before it; here it is dropped and counted instead."""
    kept, dropped = [], 0
    for block in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = [line for line in block.split("\n") if line.strip()]
        if not lines:
            continue
        if any(len(_STAMP.findall(line)) == 2 for line in lines[:2]):
            kept.append("\n".join(lines))
        else:
            dropped += 1
    return "\n\n".join(kept) + "\n", dropped


def read_sidecar(path: Path) -> Dialogue:
    """Parse a subtitle file; problems become a warning, never an exception."""
    import pysubs2  # the subtitle parser loads only when subtitles are read

    try:
        text, warning = _decode(path.read_bytes(), path.name)
        fmt = {".srt": "srt", ".vtt": "vtt", ".ass": "ass", ".ssa": "ssa"}[path.suffix.lower()]
        broken = 0
        if fmt == "srt":
            text, broken = _srt_cues_only(text)
        events = [e for e in pysubs2.SSAFile.from_string(text, format_=fmt) if not e.is_comment]
        cues = [Cue(e.start / 1000, e.end / 1000, clean(e.plaintext)) for e in events if e.end > e.start]
    except Exception as e:  # noqa: BLE001 - pysubs2 raises many types for malformed files
        return Dialogue(
            [],
            None,
            f"Subtitles {path.name} could not be read ({type(e).__name__}: {str(e)[:120]}); "
            "the film is indexed without dialogue.",
        )
    if fmt in ("srt", "vtt"):  # every cue has one timing line: those not parsed were dropped
        dropped = broken + sum(1 for line in text.splitlines() if _ARROW.search(line)) - len(events)
        if dropped > 0:
            note = f"Subtitles {path.name}: {dropped} cue(s) with broken timestamps were dropped."
            warning = f"{warning} {note}" if warning else note
    cues = [c for c in cues if c.text]
    if not cues:
        return Dialogue([], None, f"Subtitles {path.name} hold no cues; the film is indexed without dialogue.")
    return Dialogue(sorted(cues, key=lambda c: c.start), f"subtitle file {path.name}", warning)


def read_embedded(video: str | Path) -> Dialogue:
    """The first text subtitle stream inside the container (bitmap subtitles are images: skipped)."""
    import av  # PyAV loads only when a video is read

    try:
        with av.open(str(video)) as container:
            streams = container.streams.subtitles
            if not streams:
                return Dialogue()
            stream = streams[0]
            if stream.codec_context.name in ("hdmv_pgs_subtitle", "pgssub", "dvd_subtitle", "dvb_subtitle"):
                return Dialogue(
                    [],
                    None,
                    f"The embedded subtitles are images ({stream.codec_context.name}); "
                    "dialogue needs a text subtitle file (.srt/.vtt) beside the film.",
                )
            cues = []
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                start = float(packet.pts * stream.time_base)
                end = start + float((packet.duration or 0) * stream.time_base)
                for sub in packet.decode():
                    for rect in sub:
                        raw = (
                            getattr(rect, "dialogue", None) or getattr(rect, "text", None) or getattr(rect, "ass", b"")
                        )
                        raw = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
                        if raw.startswith("Dialogue:") or raw.count(",") >= 8:
                            raw = raw.split(",", 8)[-1]
                        if clean(raw):
                            cues.append(Cue(start, max(end, start + 1.0), clean(raw)))
    except av.error.FFmpegError as e:
        return Dialogue([], None, f"The embedded subtitles could not be read ({e}).")
    return Dialogue(cues, "embedded subtitle stream", None) if cues else Dialogue()


def load_dialogue(video: str | Path) -> Dialogue:
    """Sidecar file first, else an embedded text stream; empty Dialogue when there is none."""
    sidecar = find_sidecar(video)
    if sidecar:
        found = read_sidecar(sidecar)
        if found.cues:
            return found
        embedded = read_embedded(video)
        return Dialogue(embedded.cues, embedded.origin, found.warning) if embedded.cues else found
    return read_embedded(video)

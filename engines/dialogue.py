"""What is said (subtitles) or written on screen (the offline tagger's OCR when there are no
subtitles), as an engine."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from clip_search.search.moments import Moment, nms
from clip_search.search.scoring import top_frames
from clip_search.store.library import Film, Library
from clip_search.video.subtitles import Dialogue
from engines.base import Engine, EngineUnavailable, Evidence, Explanation, LockedLRU, Query, as_query
from engines.result import Chooser, Pick
from tagging.dialogue import SCREEN_TOLERANCE, CueIndex, film_dialogue, frame_scores_from_cues
from tagging.tag_store import tags_version
from tagging.taggers import local_service

DIALOGUE_FILMS = 16  # films whose cue vectors a dialogue engine keeps (each film's cues embedded once)


class _Cues:
    """One film's dialogue and, once asked for, its embedded cues (embedded once, under a lock)."""

    def __init__(self, library: Library, film: Film, dialogue: Dialogue) -> None:
        self.library, self.film, self.dialogue = library, film, dialogue
        self._index: CueIndex | None = None
        self._lock = threading.Lock()

    def index(self) -> CueIndex:
        with self._lock:
            if self._index is None:  # read from the film's folder (embedded when it was indexed)
                self._index = CueIndex.for_film(self.library, self.film, self.dialogue.cues)
            return self._index


class DialogueEngine(Engine):
    """Subtitle cues (or on-screen text) matched to the query; a frame scores as the cue it shows."""

    name = "dialogue"
    description = "dialogue: what is said (subtitles or on-screen text)"
    evidence = ("cue",)

    def said(self, film: Film) -> Dialogue:
        return self.dialogue(film)

    def __init__(self, library: Library) -> None:
        self.library = library
        self._films = LockedLRU(DIALOGUE_FILMS)

    def _entry(self, film: Film) -> _Cues:
        key = (film.id, film.record.manifest.completed_at, tags_version(self.library, film, local_service()))
        return self._films.get_or_make(key, lambda: _Cues(self.library, film, film_dialogue(self.library, film)))

    def dialogue(self, film: Film) -> Dialogue:
        """The film's dialogue, read once per film version and OCR state."""
        return self._entry(film).dialogue

    def cue_index(self, film: Film) -> CueIndex:
        """The film's cues with their vectors, embedded once per film version (kept for the last
        ``DIALOGUE_FILMS`` films: a cache sized by film, not by count of texts)."""
        return self._entry(film).index()

    def usable(self, films: Sequence[Film]) -> list[Film]:
        ok = [f for f in films if self.dialogue(f).cues]
        if not ok:
            names = ", ".join(f.name for f in films)
            raise EngineUnavailable(f"{self.name}: no subtitles or on-screen text for {names}")
        return ok

    def scores(self, film: Film, query: str | Query) -> np.ndarray:
        index = self.cue_index(film)
        return frame_scores_from_cues(film.times, index.cues, index.scores(as_query(query).text))

    def chooser(
        self, films: Sequence[Film], per_film: list[np.ndarray], query: Query, top_k: int, gap: float
    ) -> Chooser:
        """One hit per cue: the frames a line is on screen all score as that line, so only the best
        of them is served. Each film's cues and their scores are looked up once per search, and the
        line a frame shows once per frame."""
        lines = [self._lines(f, query.text) for f in films]
        said: dict[tuple[int, int], tuple] = {}

        def line_of(f: int, i: int) -> tuple:
            if (f, i) not in said:
                cue = _cue_at(lines[f], float(films[f].times[i]))
                said[(f, i)] = (f, cue.start, cue.end) if cue else (f, i)
            return said[(f, i)]

        def one_per_line(picks: list[Pick]) -> list[Pick]:
            out, seen = [], set()
            for f, i, score in picks:
                key = line_of(f, i)
                if key not in seen:
                    seen.add(key)
                    out.append((f, i, score))
                    if len(out) == top_k:
                        break
            return out

        def choose(rng: np.random.Generator | None, draws: int | None = None) -> list:
            ranked = top_frames(films, per_film, top_k * 8, gap, rng, draws)
            return one_per_line(ranked) if draws is None else [one_per_line(r) for r in ranked]

        return choose

    def proposals(self, film: Film, scores: np.ndarray, query: Query) -> list[Moment]:
        """A line of dialogue is a moment: each cue, scored as it matches the query, best first."""
        lines = sorted(self._lines(film, query.text), key=lambda x: (-float(x[1]), x[0].start))
        return nms([Moment(c.start, c.end, c.start, float(s)) for c, s in lines if s > 0])

    def hit_label(self, film: Film, frame: int, query: Query) -> str | None:
        """The line of dialogue itself."""
        cue = _cue_at(self._lines(film, query.text), float(film.times[frame]))
        return cue.text if cue else None

    def _lines(self, film: Film, text: str) -> list[tuple]:
        """The film's cues, each with its score for ``text``."""
        index = self.cue_index(film)
        return list(zip(index.cues, index.scores(text), strict=True))

    def explain(self, film: Film, frame: int, query: str | Query, crops: bool = False) -> Explanation:
        query = as_query(query)
        on_screen = _on_screen(self._lines(film, query.text), float(film.times[frame]))
        evidence = [
            Evidence("cue", c.text, round(float(s), 3), c.start, c.end)
            for c, s in sorted(on_screen, key=lambda x: -x[1])
        ]
        return self._explanation(film, frame, query, evidence[:3], None if evidence else "nothing is said here")


def _on_screen(lines: list[tuple], t: float) -> list[tuple]:
    """The (cue, score) pairs on screen at ``t``, within the tolerance the cue scores use."""
    return [(c, s) for c, s in lines if c.start - SCREEN_TOLERANCE <= t <= c.end + SCREEN_TOLERANCE]


def _cue_at(lines: list[tuple], t: float):
    """The best-matching cue on screen at ``t`` (None where nothing is said)."""
    on_screen = _on_screen(lines, t)
    return max(on_screen, key=lambda x: x[1])[0] if on_screen else None

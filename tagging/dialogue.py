"""The dialogue engine: what was said (subtitles) or written on screen (OCR), scored against a query.

Each cue scores ``CUE_SEMANTIC * cos(query, cue) + (1 - CUE_SEMANTIC) * keyword overlap`` with
MiniLM sentence embeddings, and a frame's dialogue score is the best cue on screen at its time.
Without subtitles, on-screen text found by the offline tagger (if the film was tagged) counts as
dialogue, each line lasting until the next sampled frame."""

from __future__ import annotations

import numpy as np

from clip_search.library import Film, Library
from clip_search.moments import frame_end
from clip_search.subtitles import Cue, Dialogue
from clip_search.timecode import time_key
from tagging.tag_store import load_tags
from tagging.text_embed import embed, tokens

CUE_SEMANTIC = 0.7
SCREEN_TOLERANCE = 0.5  # a frame this close to a cue's edges still counts as showing it


def film_dialogue(library: Library, film: Film) -> Dialogue:
    """Subtitles, else on-screen text from the offline tagger's OCR, else empty."""
    found = film.dialogue()
    if found.cues:
        return found
    ocr = load_tags(library, film, "offline")
    times = film.times
    cues = []
    for i, t in enumerate(times):
        lines = [tag.text for tag in ocr.get(time_key(t), []) if tag.kind == "text"]
        if lines:
            cues.append(Cue(float(t), frame_end(times, i, film.manifest.duration), " ".join(lines)))
    if cues:
        return Dialogue(cues, "on-screen text (OCR)", found.warning)
    return found


class CueIndex:
    """A film's cues ready to be queried: their sentence vectors and keyword sets, computed once per
    film version (a 100 000-cue subtitle file is embedded once, not on every query)."""

    def __init__(self, cues: list[Cue]) -> None:
        self.cues = cues
        self.vectors = embed([c.text for c in cues], remember=False) if cues else np.zeros((0, 384), np.float32)
        self.words = [set(tokens(c.text)) for c in cues]

    def scores(self, query: str) -> np.ndarray:
        """Each cue's match to ``query``: sentence similarity blended with shared keywords."""
        if not self.cues:
            return np.zeros(0, np.float32)
        sims = self.vectors @ embed([query])[0]
        q = set(tokens(query))
        keyword = np.array([len(q & w) / len(q) if q else 0.0 for w in self.words], np.float32)
        return (CUE_SEMANTIC * np.clip(sims, 0, None) + (1 - CUE_SEMANTIC) * keyword).astype(np.float32)


def frame_scores_from_cues(times: np.ndarray, cues: list[Cue], scores: np.ndarray) -> np.ndarray:
    """A frame's score = the best score among the cues on screen at its time (0 when silent)."""
    out = np.zeros(len(times), np.float32)
    if not cues:
        return out
    starts = np.array([c.start for c in cues]) - SCREEN_TOLERANCE
    ends = np.array([c.end for c in cues]) + SCREEN_TOLERANCE
    los, his = np.searchsorted(times, starts, side="left"), np.searchsorted(times, ends, side="right")
    for j in np.flatnonzero((his > los) & (scores > 0)):  # only cues that score and cover a frame
        out[los[j] : his[j]] = np.maximum(out[los[j] : his[j]], scores[j])
    return out

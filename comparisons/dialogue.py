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
from comparisons.tag_store import load_tags
from comparisons.text_embed import embed, tokens

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


def cue_scores(cues: list[Cue], query: str) -> np.ndarray:
    """Each cue's match to ``query``: sentence similarity blended with shared keywords."""
    if not cues:
        return np.zeros(0, np.float32)
    sims = embed([c.text for c in cues]) @ embed([query])[0]
    q = set(tokens(query))
    keyword = np.array([len(q & set(tokens(c.text))) / len(q) if q else 0.0 for c in cues], np.float32)
    return (CUE_SEMANTIC * np.clip(sims, 0, None) + (1 - CUE_SEMANTIC) * keyword).astype(np.float32)


def frame_scores_from_cues(times: np.ndarray, cues: list[Cue], scores: np.ndarray) -> np.ndarray:
    """A frame's score = the best score among the cues on screen at its time (0 when silent)."""
    out = np.zeros(len(times), np.float32)
    for cue, s in zip(cues, scores, strict=True):
        lo = np.searchsorted(times, cue.start - SCREEN_TOLERANCE, side="left")
        hi = np.searchsorted(times, cue.end + SCREEN_TOLERANCE, side="right")
        if hi > lo:
            out[lo:hi] = np.maximum(out[lo:hi], s)
    return out

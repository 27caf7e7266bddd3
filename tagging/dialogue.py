"""The dialogue engine: what was said (subtitles) or written on screen (OCR), scored against a query.

Each cue scores ``CUE_SEMANTIC * cos(query, cue) + (1 - CUE_SEMANTIC) * keyword overlap`` with
MiniLM sentence embeddings, and a frame's dialogue score is the best cue on screen at its time.
Without subtitles, on-screen text found by the offline tagger (if the film was tagged) counts as
dialogue, each line lasting until the next sampled frame."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable

import numpy as np

from clip_search.search.moments import frame_end
from clip_search.store.library import Film, Library
from clip_search.store.writer import save_derived
from clip_search.timecode import time_key
from clip_search.video.subtitles import Cue, Dialogue
from tagging.tag_store import load_tags
from tagging.taggers import local_service
from tagging.text_embed import SENTENCE_MODEL, embed, tokens

CUE_SEMANTIC = 0.7
SCREEN_TOLERANCE = 0.5  # a frame this close to a cue's edges still counts as showing it


def film_dialogue(library: Library, film: Film) -> Dialogue:
    """Subtitles, else on-screen text from the offline tagger's OCR, else empty."""
    found = film.dialogue()
    if found.cues:
        return found
    ocr = load_tags(library, film, local_service())
    times = film.times
    cues = []
    for i, t in enumerate(times):
        lines = [tag.text for tag in ocr.get(time_key(t), []) if tag.kind == "text"]
        if lines:
            cues.append(Cue(float(t), frame_end(times, i, film.manifest.duration), " ".join(lines)))
    if cues:
        return Dialogue(cues, "on-screen text (OCR)", found.warning)
    return found


CUE_VECTORS = "cue_vectors.npz"  # a film's cue vectors, kept in its folder (made when it is indexed)
EMBED_BATCH = 2048  # cues embedded between two progress reports


class CueIndex:
    """A film's cues ready to be queried: their sentence vectors and keyword sets. The vectors are
    made when the film is indexed and kept with it (``for_film``), so a query reads them: a
    100 000-cue subtitle file is embedded once, with a progress bar, never at query time."""

    def __init__(self, cues: list[Cue], vectors: np.ndarray) -> None:
        self.cues = cues
        self.vectors = vectors
        self.words = [set(tokens(c.text)) for c in cues]

    @classmethod
    def for_film(
        cls, library: Library, film: Film, cues: list[Cue], progress: Callable[[int, int], None] | None = None
    ) -> CueIndex:
        """``cues`` of ``film`` with the vectors kept in its folder when they are of these very texts
        (and this sentence model); otherwise embedded now, in batches (``progress(done, total)``), and kept."""
        key = _cue_key(cues)
        stored = film.dir / CUE_VECTORS
        try:
            with np.load(stored) as z:
                if str(z["key"]) == key and z["vectors"].shape == (len(cues), 384):
                    return cls(cues, z["vectors"])
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            pass  # none yet, or of other cues (a re-indexed film), or damaged: made again
        texts = [c.text for c in cues]
        parts = []
        for lo in range(0, len(texts), EMBED_BATCH):
            parts.append(embed(texts[lo : lo + EMBED_BATCH], remember=False))
            if progress:
                progress(min(lo + EMBED_BATCH, len(texts)), len(texts))
        vectors = np.concatenate(parts) if parts else np.zeros((0, 384), np.float32)
        if cues:
            save_derived(library, film, CUE_VECTORS, {"key": np.array(key), "vectors": vectors})
        return cls(cues, vectors)

    def scores(self, query: str) -> np.ndarray:
        """Each cue's match to ``query``: sentence similarity blended with shared keywords."""
        if not self.cues:
            return np.zeros(0, np.float32)
        sims = self.vectors @ embed([query])[0]
        q = set(tokens(query))
        keyword = np.array([len(q & w) / len(q) if q else 0.0 for w in self.words], np.float32)
        return (CUE_SEMANTIC * np.clip(sims, 0, None) + (1 - CUE_SEMANTIC) * keyword).astype(np.float32)


def _cue_key(cues: list[Cue]) -> str:
    """What the kept vectors must have been made from: the sentence model and every cue's text."""
    h = hashlib.sha1(SENTENCE_MODEL.encode())
    for c in cues:
        h.update(c.text.encode("utf-8", "replace") + b"\0")
    return h.hexdigest()


def prepare_cues(library: Library, film: Film, progress: Callable[[int, int], None] | None = None) -> int:
    """Embed a film's dialogue now (after indexing, with a progress bar) so that no query has to;
    returns how many cues it has."""
    cues = film_dialogue(library, film).cues
    CueIndex.for_film(library, film, cues, progress)
    return len(cues)


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

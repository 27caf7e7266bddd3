"""Search engines over the same frames, behind one interface, so comparison and evaluation treat
CLIP, tag search, dialogue and their fusion alike.

  clip            CLIP cosine of the query text and each frame
  tags:<service>  BM25 + semantic search over a tagger's stored tags (offline, azure, rekognition)
  dialogue        subtitles (or on-screen text) matched to the query
  clip+dialogue   min-max normalised CLIP and dialogue scores, FUSION_WEIGHT x CLIP + (1 - w) x dialogue
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clip_search.errors import FrameSearchError
from clip_search.library import Film, Library
from clip_search.search import DEFAULT_GAP, Hit, build_query, frame_scores, rank_frames
from clip_search.subtitles import Dialogue
from comparisons.dialogue import cue_scores, film_dialogue, frame_scores_from_cues
from comparisons.tag_search import TagIndex
from comparisons.tag_store import load_tags
from comparisons.taggers import SERVICES

FUSION_WEIGHT = 0.5  # share of CLIP in clip+dialogue (the dashboard and CLI let users change it)


class EngineUnavailable(FrameSearchError):
    """An engine that cannot run on these films (no tags, no dialogue, no model)."""


def engine_names() -> list[str]:
    """Every engine name the CLI and the dashboard accept."""
    return ["clip", *[f"tags:{s}" for s in SERVICES], "dialogue", "clip+dialogue"]


@dataclass
class Engine:
    """Per-frame scores of a film for a text query, by one method."""

    name: str
    library: Library
    encoder: object | None = None
    fusion_weight: float = FUSION_WEIGHT

    def __post_init__(self) -> None:
        if self.name not in engine_names():
            raise ValueError(f"unknown engine {self.name!r} (choose from {', '.join(engine_names())})")
        self._tag_indexes: dict[str, TagIndex] = {}
        self._dialogues: dict[str, Dialogue] = {}

    def usable(self, films: Sequence[Film]) -> list[Film]:
        """The films this engine can score; raises EngineUnavailable (with the fix) when none."""
        if self.name in ("clip", "clip+dialogue") and self.encoder is None:
            raise EngineUnavailable(f"{self.name}: no CLIP model is loaded")
        if self.name.startswith("tags:"):
            ok = [f for f in films if self.tag_index(f).tagged_frames]
            if not ok:
                raise self._not_tagged(films)
            return ok
        if self.name == "dialogue":
            ok = [f for f in films if self.dialogue(f).cues]
            if not ok:
                names = ", ".join(f.name for f in films)
                raise EngineUnavailable(f"{self.name}: no subtitles or on-screen text for {names}")
            return ok
        return list(films)

    def check(self, films: Sequence[Film]) -> None:
        """Raise EngineUnavailable unless this engine can run on ``films`` as a set: a tag engine
        needs every film tagged (else its numbers would mislead); dialogue needs some film with
        dialogue (a silent film simply has nothing to find)."""
        ok = {f.id for f in self.usable(films)}
        missing = [f for f in films if f.id not in ok]
        if missing and self.name.startswith("tags:"):
            raise self._not_tagged(missing)

    def _not_tagged(self, films: Sequence[Film]) -> EngineUnavailable:
        service = self.name.split(":", 1)[1]
        return EngineUnavailable(
            f"{self.name}: not tagged yet ({', '.join(f.name for f in films)}); run "
            f"`python -m comparisons tag FILM --service {service}`"
        )

    def scores(self, film: Film, query: str) -> np.ndarray:
        """Score of every sampled frame of ``film`` (aligned with ``film.times``)."""
        if self.name == "clip":
            return frame_scores(film, build_query(self.encoder, query).vector)
        if self.name.startswith("tags:"):
            return self.tag_index(film).scores(query)
        if self.name == "dialogue":
            return self._said(film, query)
        clip = _minmax(frame_scores(film, build_query(self.encoder, query).vector))
        said = _minmax(self._said(film, query))
        return (self.fusion_weight * clip + (1 - self.fusion_weight) * said).astype(np.float32)

    def _said(self, film: Film, query: str) -> np.ndarray:
        cues = self.dialogue(film).cues
        return frame_scores_from_cues(film.times, cues, cue_scores(cues, query))

    def dialogue(self, film: Film) -> Dialogue:
        """The film's dialogue, read once per engine (evaluation asks for it on every query)."""
        if film.id not in self._dialogues:
            self._dialogues[film.id] = film_dialogue(self.library, film)
        return self._dialogues[film.id]

    def tag_index(self, film: Film) -> TagIndex:
        """The film's tags by this engine's service, indexed once per engine."""
        if film.id not in self._tag_indexes:
            tags = load_tags(self.library, film, self.name.split(":", 1)[1])
            self._tag_indexes[film.id] = TagIndex(film.times, tags)
        return self._tag_indexes[film.id]

    def search(self, films: Sequence[Film], query: str, top_k: int = 10, gap: float = DEFAULT_GAP) -> list[Hit]:
        """Top hits with the same ranking, de-duplication and moments as CLIP search."""
        if not query.strip():
            raise FrameSearchError("The query is empty.")
        films = self.usable(films)
        per_film = [self.scores(f, query) for f in films]
        scale = None if self.name == "clip" else 100.0
        return rank_frames(films, per_film, top_k, gap, logit_scale=scale)


def _minmax(s: np.ndarray) -> np.ndarray:
    lo, hi = (float(s.min()), float(s.max())) if len(s) else (0.0, 0.0)
    return (s - lo) / (hi - lo) if hi > lo else np.zeros_like(s)

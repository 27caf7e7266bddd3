"""Search engines over the same frames, one class each behind one small protocol, so the Search
tab, comparison and evaluation treat CLIP, tag search, dialogue and their fusion alike.

  clip            CLIP cosine of the query (text, image, negative) and each frame, via ``Searcher``
  tags:<service>  BM25 + semantic search over a tagger's stored tags (offline, azure, rekognition)
  dialogue        subtitles (or on-screen text) matched to the query
  clip+dialogue   CLIP and dialogue scores min-max scaled over the films searched, w x CLIP + (1 - w) x dialogue

Every engine gives ``scores(film, query)`` (one score per sampled frame), ``explain(film, frame,
query)`` (the evidence for one frame) and ``search`` (the same top-k, de-dup and moments as CLIP).
``make_engine`` is the only place that turns an engine's name into an engine.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from clip_search.errors import FrameSearchError
from clip_search.library import Film, Library
from clip_search.patches import PatchSettings
from clip_search.search import (
    DEFAULT_GAP,
    DEFAULT_NEGATIVE_WEIGHT,
    Hit,
    QueryVector,
    Searcher,
    build_query,
    frame_scores,
    rank_frames,
)
from clip_search.subtitles import Dialogue
from comparisons.dialogue import CueIndex, film_dialogue, frame_scores_from_cues
from comparisons.tag_search import TagCorpus, TagIndex
from comparisons.tag_store import TagStore
from comparisons.taggers import SERVICES

DIALOGUE_FILMS = 16  # films whose cue vectors a dialogue engine keeps (each film's cues embedded once)
FUSION_WEIGHT = 0.5  # share of CLIP in clip+dialogue (the dashboard and CLI let users change it)
EXPLAIN_CROPS = PatchSettings(size=0.5, overlap=0.5)  # crops for CLIP's "where in the frame" map
CLIP_ENGINES = ("clip", "clip+dialogue")


class EngineUnavailable(FrameSearchError):
    """An engine that cannot run on these films (no tags, no dialogue, no model)."""


@dataclass(frozen=True, eq=False)
class Query:
    """What the user asked: text, and for CLIP also an image and a description to push away from."""

    text: str = ""
    negative: str = ""
    negative_weight: float = DEFAULT_NEGATIVE_WEIGHT
    image: np.ndarray | None = None

    def label(self) -> str:
        return self.text or "[image]"


def as_query(query: str | Query) -> Query:
    return query if isinstance(query, Query) else Query(text=query)


@dataclass
class Evidence:
    """One reason a frame matched: a tag, caption, OCR line or subtitle cue, or a CLIP measure."""

    kind: str
    text: str
    confidence: float | None = None
    start: float | None = None
    end: float | None = None


@dataclass
class Explanation:
    """Why ``frame`` of ``film`` scored ``score`` for a query, by one engine."""

    engine: str
    film: str
    frame: int
    time: float
    score: float
    evidence: list[Evidence] = field(default_factory=list)
    note: str | None = None
    grid: list[dict] = field(default_factory=list)  # CLIP: crops of the frame, {"box": [l, t, r, b], "score"}
    frame_size: tuple[int, int] | None = None  # (width, height) the boxes refer to

    def to_dict(self) -> dict:
        return asdict(self)


def engine_names() -> list[str]:
    """Every engine name the CLI and the dashboard accept."""
    return ["clip", *[f"tags:{s}" for s in SERVICES], "dialogue", "clip+dialogue"]


class Engine:
    """The protocol: ``usable``, ``scores``, ``explain``; ``search`` ranks like CLIP search does."""

    name: str = ""
    logit_scale: float | None = 100.0  # for the softmax column; None: each film's CLIP scale
    text_only = True  # image and negative queries are CLIP's alone

    def usable(self, films: Sequence[Film]) -> list[Film]:
        """The films this engine can score; raises EngineUnavailable (with the fix) when none."""
        return list(films)

    def check(self, films: Sequence[Film]) -> None:
        """Raise EngineUnavailable unless this engine can run on ``films`` as a set."""
        self.usable(films)

    def scores(self, film: Film, query: str | Query) -> np.ndarray:
        """Score of every sampled frame of ``film`` (aligned with ``film.times``)."""
        raise NotImplementedError

    def explain(self, film: Film, frame: int, query: str | Query) -> Explanation:
        """The evidence that made ``frame`` score as it did."""
        raise NotImplementedError

    def scores_of(self, films: Sequence[Film], query: str | Query) -> list[np.ndarray]:
        """Every film's frame scores for one search over ``films`` (an engine that scales its scores
        over the films searched overrides this)."""
        return [self.scores(f, query) for f in films]

    def scored(self, films: Sequence[Film], query: str | Query) -> tuple[list[Film], list[np.ndarray]]:
        """The films of ``films`` this engine can search, and each one's frame scores for one search
        over them: what ``search`` ranks, and what tie-aware evaluation ranks in many tie orders."""
        query = as_query(query)
        if not query.text.strip() and (self.text_only or query.image is None):
            raise FrameSearchError("The query is empty.")
        films = self.usable(films)
        return films, self.scores_of(films, query)

    def search(self, films: Sequence[Film], query: str | Query, top_k: int = 10, gap: float = DEFAULT_GAP) -> list[Hit]:
        """Top hits with the same ranking, de-duplication and moments as CLIP search."""
        films, scores = self.scored(films, query)
        return rank_frames(films, scores, top_k, gap, logit_scale=self.logit_scale)

    def _explanation(
        self, film: Film, frame: int, query: Query, evidence: list[Evidence], note=None, score: float | None = None
    ) -> Explanation:
        """The explanation of one frame; ``score`` when the caller already scored the film."""
        score = float(self.scores(film, query)[frame]) if score is None else score
        return Explanation(self.name, film.name, frame, float(film.times[frame]), score, evidence, note)


class ClipEngine(Engine):
    """CLIP: the query vector against every frame, through the same ``Searcher`` as the Search tab."""

    name = "clip"
    logit_scale = None
    text_only = False

    def __init__(self, encoder) -> None:
        self.encoder = encoder
        self._vectors: OrderedDict[tuple, QueryVector] = OrderedDict()
        self._searchers: OrderedDict[tuple, Searcher] = OrderedDict()

    def usable(self, films: Sequence[Film]) -> list[Film]:
        if self.encoder is None:
            raise EngineUnavailable(f"{self.name}: no CLIP model is loaded")
        return list(films)

    def vector(self, query: str | Query) -> QueryVector:
        """The query's CLIP vector (the last 64 text queries are remembered)."""
        query = as_query(query)
        key = (query.text, query.negative, query.negative_weight)
        if query.image is None and key in self._vectors:
            self._vectors.move_to_end(key)
            return self._vectors[key]
        qv = build_query(self.encoder, query.text, query.negative, query.image, query.negative_weight)
        if query.image is None:
            self._vectors[key] = qv
            if len(self._vectors) > 64:
                self._vectors.popitem(last=False)
        return qv

    def searcher(self, films: Sequence[Film]) -> Searcher:
        """A Searcher kept for this exact set of film versions (the last 4 sets)."""
        key = tuple(f.version for f in films)
        if key not in self._searchers:
            self._searchers[key] = Searcher(films)
            if len(self._searchers) > 4:
                self._searchers.popitem(last=False)
        return self._searchers[key]

    def scores(self, film: Film, query: str | Query) -> np.ndarray:
        return frame_scores(film, self.vector(query).vector)

    def search(self, films: Sequence[Film], query: str | Query, top_k: int = 10, gap: float = DEFAULT_GAP) -> list[Hit]:
        films = self.usable(films)
        return self.searcher(films).search(self.vector(query), top_k=top_k, gap=gap)

    def explain(self, film: Film, frame: int, query: str | Query, crops: bool = False) -> Explanation:
        """Cosine and rank; with ``crops``, where in the frame the query matches: the cosine of each
        overlapping crop (the film's patch vectors in patch mode, else crops encoded now)."""
        query = as_query(query)
        scores = self.scores(film, query)
        rank = int(np.sum(scores > scores[frame])) + 1
        evidence = [Evidence("cosine", f"cosine {scores[frame]:.4f} between the query and this frame")]
        evidence.append(Evidence("rank", f"rank {rank} of {len(scores)} frames of {film.name}"))
        out = self._explanation(film, frame, query, evidence, score=float(scores[frame]))
        if crops:
            try:
                out.grid, out.frame_size = self.crop_scores(film, frame, query)
            except FrameSearchError as e:  # the source file is gone or unreadable: the rest still explains
                out.note = f"no crop map: {e}"
        return out

    def crop_scores(self, film: Film, frame: int, query: str | Query) -> tuple[list[dict], tuple[int, int]]:
        """Cosine of the query with overlapping crops of one frame, and the frame size they refer to."""
        q = self.vector(query).vector
        m = film.manifest
        if m.patches_per_frame and m.patches:
            boxes = PatchSettings(**m.patches).boxes(m.width, m.height)
            vecs = np.asarray(film.patch_embeddings[frame * m.patches_per_frame : (frame + 1) * m.patches_per_frame])
            size = (m.width, m.height)
        else:
            from clip_search.video import frame_at

            image = frame_at(m.source, float(film.times[frame]))
            size = (image.shape[1], image.shape[0])
            boxes = EXPLAIN_CROPS.boxes(*size)
            vecs = self.encoder.encode_images([image[t:b, left:r] for left, t, r, b in boxes])
        return [{"box": list(map(int, box)), "score": float(v @ q)} for box, v in zip(boxes, vecs, strict=True)], size


class TagEngine(Engine):
    """A tagging service's stored tags as a search engine (BM25 + semantic, see ``TagIndex``)."""

    def __init__(self, library: Library, service: str) -> None:
        if service not in SERVICES:
            raise ValueError(f"unknown tagging service {service!r} (choose from {', '.join(SERVICES)})")
        self.library, self.service, self.name = library, service, f"tags:{service}"
        self._indexes: dict[str, tuple[tuple, TagIndex]] = {}
        self._corpora: OrderedDict[tuple, TagCorpus] = OrderedDict()

    def index(self, film: Film) -> TagIndex:
        """The film's tags by this service, indexed once per film version and tag-store state."""
        store = TagStore(self.library, readonly=True)
        try:
            key = (film.version, store.version(film, self.service))
            cached = self._indexes.get(film.id)
            if cached is None or cached[0] != key:
                cached = (key, TagIndex(film.times, store.tags(film, self.service)))
                self._indexes[film.id] = cached
        finally:
            store.close()
        return cached[1]

    def usable(self, films: Sequence[Film]) -> list[Film]:
        ok = [f for f in films if self.index(f).tagged_frames]
        if not ok:
            raise self._not_tagged(films)
        return ok

    def check(self, films: Sequence[Film]) -> None:
        """A tag engine needs every film tagged, else its numbers would mislead."""
        ok = {f.id for f in self.usable(films)}
        missing = [f for f in films if f.id not in ok]
        if missing:
            raise self._not_tagged(missing)

    def _not_tagged(self, films: Sequence[Film]) -> EngineUnavailable:
        return EngineUnavailable(
            f"{self.name}: not tagged yet ({', '.join(f.name for f in films)}); run "
            f"`python -m comparisons tag FILM --service {self.service}`"
        )

    def scores(self, film: Film, query: str | Query) -> np.ndarray:
        return self.index(film).scores(as_query(query).text)

    def scores_of(self, films: Sequence[Film], query: str | Query) -> list[np.ndarray]:
        """Scores of each film with BM25 over all of ``films`` as one corpus (one scale for all films);
        the corpus is kept for the last 4 sets of film versions and tag states."""
        indexes = [self.index(f) for f in films]
        key = tuple((f.id, self._indexes[f.id][0]) for f in films)
        corpus = self._corpora.get(key)
        if corpus is None:
            corpus = self._corpora[key] = TagCorpus(indexes)
            if len(self._corpora) > 4:
                self._corpora.popitem(last=False)
        self._corpora.move_to_end(key)
        return corpus.scores(as_query(query).text)

    def explain(self, film: Film, frame: int, query: str | Query) -> Explanation:
        query = as_query(query)
        tags = self.index(film).matched(frame, query.text)
        evidence = [Evidence(t.kind, t.text, round(t.confidence, 3)) for t in tags]
        note = None if evidence else "no tag of this frame matches the query"
        return self._explanation(film, frame, query, evidence, note)


class DialogueEngine(Engine):
    """What is said (subtitles) or written on screen (OCR when there are no subtitles)."""

    name = "dialogue"

    def __init__(self, library: Library) -> None:
        self.library = library
        self._dialogues: OrderedDict[str, tuple[tuple, Dialogue, CueIndex | None]] = OrderedDict()

    def _entry(self, film: Film) -> tuple[tuple, Dialogue, CueIndex | None]:
        store = TagStore(self.library, readonly=True)
        try:
            key = (film.version, store.version(film, "offline"))
        finally:
            store.close()
        cached = self._dialogues.get(film.id)
        if cached is None or cached[0] != key:
            cached = (key, film_dialogue(self.library, film), None)
            self._dialogues[film.id] = cached
            while len(self._dialogues) > DIALOGUE_FILMS:
                self._dialogues.popitem(last=False)
        self._dialogues.move_to_end(film.id)
        return cached

    def dialogue(self, film: Film) -> Dialogue:
        """The film's dialogue, read once per film version and OCR state."""
        return self._entry(film)[1]

    def cue_index(self, film: Film) -> CueIndex:
        """The film's cues with their vectors, embedded once per film version (kept for the last
        ``DIALOGUE_FILMS`` films: a cache sized by film, not by count of texts)."""
        key, found, index = self._entry(film)
        if index is None:
            index = CueIndex(found.cues)
            self._dialogues[film.id] = (key, found, index)
        return index

    def usable(self, films: Sequence[Film]) -> list[Film]:
        ok = [f for f in films if self.dialogue(f).cues]
        if not ok:
            names = ", ".join(f.name for f in films)
            raise EngineUnavailable(f"{self.name}: no subtitles or on-screen text for {names}")
        return ok

    def scores(self, film: Film, query: str | Query) -> np.ndarray:
        index = self.cue_index(film)
        return frame_scores_from_cues(film.times, index.cues, index.scores(as_query(query).text))

    def explain(self, film: Film, frame: int, query: str | Query) -> Explanation:
        query = as_query(query)
        d = self.dialogue(film)
        scores = self.cue_index(film).scores(query.text)
        t = float(film.times[frame])
        on_screen = [(c, s) for c, s in zip(d.cues, scores, strict=True) if c.start - 0.5 <= t <= c.end + 0.5]
        evidence = [
            Evidence("cue", c.text, round(float(s), 3), c.start, c.end)
            for c, s in sorted(on_screen, key=lambda x: -x[1])
        ]
        return self._explanation(film, frame, query, evidence[:3], None if evidence else "nothing is said here")


class FusedEngine(Engine):
    """CLIP and dialogue, each min-max scaled over the films searched, mixed ``weight`` : ``1 - weight``."""

    name = "clip+dialogue"

    def __init__(self, clip: ClipEngine, dialogue: DialogueEngine, weight: float = FUSION_WEIGHT) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"the fusion weight must be between 0 and 1, not {weight}")
        self.clip, self.dialogue, self.weight = clip, dialogue, weight

    def usable(self, films: Sequence[Film]) -> list[Film]:
        return self.clip.usable(films)

    def scores_of(self, films: Sequence[Film], query: str | Query) -> list[np.ndarray]:
        """Fused scores of each film, each engine scaled to 0..1 over all of ``films`` together: frames of
        different films then compare (scaled film by film, every film's best frame would tie at the top)."""
        query = Query(as_query(query).text)
        seen = _minmax([self.clip.scores(f, query) for f in films])
        said = _minmax([self.dialogue.scores(f, query) for f in films])
        return [(self.weight * a + (1 - self.weight) * b).astype(np.float32) for a, b in zip(seen, said, strict=True)]

    def scores(self, film: Film, query: str | Query) -> np.ndarray:
        return self.scores_of([film], query)[0]

    def explain(self, film: Film, frame: int, query: str | Query) -> Explanation:
        query = Query(as_query(query).text)
        parts = [self.clip.explain(film, frame, query), self.dialogue.explain(film, frame, query)]
        evidence = [e for p in parts for e in p.evidence]
        note = (
            f"{self.weight:.2f} x CLIP + {1 - self.weight:.2f} x dialogue, each scaled to 0..1 over the films "
            "searched (here: this film)"
        )
        return self._explanation(film, frame, query, evidence, note)


def make_engine(
    name: str, library: Library, encoder=None, fusion_weight: float = FUSION_WEIGHT, clip: ClipEngine | None = None
) -> Engine:
    """The engine called ``name`` (see :func:`engine_names`); ValueError for an unknown name."""
    if name == "clip":
        return clip or ClipEngine(encoder)
    if name.startswith("tags:"):
        return TagEngine(library, name.split(":", 1)[1])
    if name == "dialogue":
        return DialogueEngine(library)
    if name == "clip+dialogue":
        return FusedEngine(clip or ClipEngine(encoder), DialogueEngine(library), fusion_weight)
    raise ValueError(f"unknown engine {name!r} (choose from {', '.join(engine_names())})")


def _minmax(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """The arrays scaled to 0..1 by their joint minimum and maximum (all zeros when flat)."""
    every = [a for a in arrays if len(a)]
    lo = min((float(a.min()) for a in every), default=0.0)
    hi = max((float(a.max()) for a in every), default=0.0)
    return [(a - lo) / (hi - lo) if hi > lo else np.zeros_like(a) for a in arrays]

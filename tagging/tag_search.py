"""Tag search: a tagger's output as a search engine over the same frames as CLIP.

Each frame's tags (labels, captions, objects, OCR text, faces) form a document. A query scores
every frame by BM25 over those documents (rank-bm25) blended with semantic matching of the query
against each tag's text (MiniLM sentence embeddings, weighted by the tag's confidence):

    score = BM25_WEIGHT * bm25 / max(bm25) + (1 - BM25_WEIGHT) * max_tag(cos(query, tag) * (0.5 + 0.5 conf))

BM25 runs over the frames of every film searched as one corpus (``TagCorpus``): one IDF and one
maximum for all of them. Scaled film by film, every film's best frame would score 1, and a search
over several films would rank the films by chance. Tag engines give per-frame scores and share
CLIP's top-k, moments and timeline rows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clip_search.timecode import time_key
from tagging.taggers.base import Tag
from tagging.text_embed import embed, tokens

BM25_WEIGHT = 0.5
EMPTY_DOC = "\u2205"  # an untagged frame still needs a document


class TagIndex:
    """The tags of one film's frames (aligned with the film's frame times), ready to be queried."""

    def __init__(self, times: np.ndarray, tags_by_time: dict[int, list[Tag]]) -> None:
        self.tagged_frames = len(tags_by_time)  # frames the tagger has seen (some may have no tags)
        self.frame_tags: list[list[Tag]] = [tags_by_time.get(time_key(t), []) for t in times]
        self.docs = [[w for tag in tags for w in tokens(tag.text)] for tags in self.frame_tags]
        self.texts = sorted({tag.text for tags in self.frame_tags for tag in tags})
        self._text_index = {t: i for i, t in enumerate(self.texts)}
        self._alone: TagCorpus | None = None

    def scores(self, query: str) -> np.ndarray:
        """Blended BM25 + semantic score of every frame for ``query`` when this film is searched alone."""
        if self._alone is None:
            self._alone = TagCorpus([self])
        return self._alone.scores(query)[0]

    def semantic(self, query: str) -> np.ndarray:
        """Per frame, the best confidence-weighted similarity of one of its tags to ``query`` (0 if none)."""
        sims = self._text_similarities(query)
        return np.array(
            [
                max((sims[self._text_index[t.text]] * (0.5 + 0.5 * t.confidence) for t in tags), default=0.0)
                for tags in self.frame_tags
            ],
            np.float32,
        )

    def _text_similarities(self, query: str) -> np.ndarray:
        if not self.texts:
            return np.zeros(0, np.float32)
        return embed(self.texts) @ embed([query])[0]

    def matched(self, frame: int, query: str, limit: int = 4) -> list[Tag]:
        """The frame's tags that made it match: shared words first, then semantic closeness.

        Every tag that adds to the score (a shared word or a positive similarity) may be listed, so
        a frame with a positive score always has its evidence."""
        tags = self.frame_tags[frame]
        if not tags:
            return []
        q = set(tokens(query))
        sims = embed([t.text for t in tags]) @ embed([query])[0]
        ranked = sorted(zip(tags, sims, strict=True), key=lambda ts: (-len(q & set(tokens(ts[0].text))), -float(ts[1])))
        return [t for t, s in ranked if q & set(tokens(t.text)) or s > 0][:limit]


class TagCorpus:
    """The tag documents of the films searched, as one BM25 corpus with one scale over all of them."""

    def __init__(self, indexes: Sequence[TagIndex]) -> None:
        from rank_bm25 import BM25Okapi  # BM25 loads only when tags are searched

        self.indexes = list(indexes)
        self.sizes = [len(ix.docs) for ix in self.indexes]
        docs = [d or [EMPTY_DOC] for ix in self.indexes for d in ix.docs]
        self.bm25 = BM25Okapi(docs) if docs else None

    def scores(self, query: str) -> list[np.ndarray]:
        """Each film's blended scores for ``query``, BM25 scaled by its maximum over all the films."""
        q_tokens = tokens(query)
        total = sum(self.sizes)
        lexical = np.zeros(total, np.float32)
        if q_tokens and self.bm25 is not None:
            lexical = np.asarray(self.bm25.get_scores(q_tokens), np.float32)
        top = float(lexical.max()) if total else 0.0
        lexical = lexical / top if top > 0 else np.zeros_like(lexical)
        parts = np.split(lexical, np.cumsum(self.sizes)[:-1]) if self.sizes else []
        return [
            (BM25_WEIGHT * lex + (1 - BM25_WEIGHT) * np.clip(ix.semantic(query), 0, None)).astype(np.float32)
            for ix, lex in zip(self.indexes, parts, strict=True)
        ]

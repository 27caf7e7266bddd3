"""Tag search: a tagger's output as a search engine over the same frames as CLIP.

Each frame's tags (labels, captions, objects, OCR text, faces) form a document. A query scores
every frame by BM25 over those documents (rank-bm25) blended with semantic matching of the query
against each tag's text (MiniLM sentence embeddings, weighted by the tag's confidence):

    score = BM25_WEIGHT * bm25 / max(bm25) + (1 - BM25_WEIGHT) * max_tag(cos(query, tag) * (0.5 + 0.5 conf))

so tag engines give per-frame scores and share CLIP's top-k, moments and timeline rows."""

from __future__ import annotations

import numpy as np

from clip_search.timecode import time_key
from comparisons.taggers.base import Tag
from comparisons.text_embed import embed, tokens

BM25_WEIGHT = 0.5


class TagIndex:
    """The tags of one film's frames (aligned with the film's frame times), ready to be queried."""

    def __init__(self, times: np.ndarray, tags_by_time: dict[int, list[Tag]]) -> None:
        from rank_bm25 import BM25Okapi

        self.tagged_frames = len(tags_by_time)  # frames the tagger has seen (some may have no tags)
        self.frame_tags: list[list[Tag]] = [tags_by_time.get(time_key(t), []) for t in times]
        docs = [[w for tag in tags for w in tokens(tag.text)] for tags in self.frame_tags]
        self.bm25 = BM25Okapi([d or ["\u2205"] for d in docs])  # an empty frame still needs a document
        self.texts = sorted({tag.text for tags in self.frame_tags for tag in tags})
        self._text_index = {t: i for i, t in enumerate(self.texts)}

    def scores(self, query: str) -> np.ndarray:
        """Blended BM25 + semantic score of every frame for ``query`` (0 for untagged frames)."""
        q_tokens = tokens(query)
        lexical = np.asarray(self.bm25.get_scores(q_tokens), np.float32) if q_tokens else np.zeros(len(self.frame_tags))
        top = float(lexical.max()) if len(lexical) else 0.0
        lexical = lexical / top if top > 0 else np.zeros_like(lexical)
        sims = self._text_similarities(query)
        semantic = np.array(
            [
                max((sims[self._text_index[t.text]] * (0.5 + 0.5 * t.confidence) for t in tags), default=0.0)
                for tags in self.frame_tags
            ],
            np.float32,
        )
        return (BM25_WEIGHT * lexical + (1 - BM25_WEIGHT) * np.clip(semantic, 0, None)).astype(np.float32)

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

"""A cloud embedding service's vectors as an engine (``cloud:titan``, ``cloud:nova``,
``cloud:marengo``, ``cloud:gemini``, ``cloud:azure``): the film's vector set bought from the service, and the query
embedded by the same service, so it is ranked, drawn, compared and evaluated exactly as a local
model is (``ModelEngine``).

A query's vector is read from the library's cache (``TagStore.text_vector``) before any call, and
kept the moment a call returns: a repeated query costs nothing and needs no credentials. A set made
with another model version than the adapter asks for now is not searched with (its vectors and the
query's would not share a space); the line says how to make it again."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from clip_search.encoders.base import Scoring, TextEncoding
from clip_search.errors import FrameSearchError
from clip_search.store.library import Film, Library
from engines.base import EngineUnavailable, Evidence, Explanation, Query, as_query
from engines.cost import CostContext, EngineCost
from engines.model import ModelEngine
from tagging.embedders import EmbeddingService, embedding_service, make_embedder
from tagging.embedders.sets import CLOUD_LOGIT_SCALE
from tagging.pricing import query_usd
from tagging.tag_store import TagStore
from tagging.taggers.base import TaggerError


class CloudQueries:
    """The query side of a cloud service, shaped as the encoder ``build_query`` reads: texts from the
    cache or one paid call each (kept at once), an image query one paid call."""

    max_tokens = 10**6  # the service cuts a long text itself (Titan: 128 tokens; Marengo: 500; Nova, Gemini: 8 000)

    def __init__(self, library: Library, service: EmbeddingService) -> None:
        self.library, self.service = library, service
        cls = service.embedder_class()
        self.model_id, self.dim, self.model_version = service.name, service.dim, cls.model_version
        self.scoring = Scoring("softmax", CLOUD_LOGIT_SCALE)
        self.calls = 0  # paid calls this process made for queries
        self._adapter = None
        self._lock = threading.Lock()

    def adapter(self):
        """The service's adapter, made on the first query the cache cannot answer (credentials then)."""
        with self._lock:
            if self._adapter is None:
                try:
                    self._adapter = make_embedder(self.service.name)
                except TaggerError as e:
                    raise EngineUnavailable(f"{self.service.name}: {e}") from None
            return self._adapter

    def encode_text(self, texts: list[str]) -> TextEncoding:
        store = TagStore(self.library, readonly=True)
        try:
            found = [store.text_vector(self.service.name, self.model_version, t) for t in texts]
        finally:
            store.close()
        for i, text in enumerate(texts):
            if found[i] is None:
                found[i] = self._paid(lambda text=text: self.adapter().embed_text(text))
                writer = TagStore(self.library)
                try:
                    writer.put_text_vector(self.service.name, self.model_version, text, found[i])
                finally:
                    writer.close()
        return TextEncoding(np.stack(found).astype(np.float32), [False] * len(texts), list(texts))

    def encode_images(self, images: list[np.ndarray]) -> np.ndarray:
        return np.stack([self._paid(lambda im=im: self.adapter().embed_image(im)) for im in images])

    def _paid(self, call) -> np.ndarray:
        try:
            vector = call()
        except TaggerError as e:  # a FatalTaggerError too: one line, the search stops
            raise FrameSearchError(f"{self.service.name}: {e}") from None
        with self._lock:
            self.calls += 1
        return vector


class CloudEngine(ModelEngine):
    """A cloud service's frame vectors, searched with the query vector it gives."""

    needs_credentials = True
    evidence = ("cosine", "rank")

    def __init__(self, library: Library, name: str) -> None:
        self.service = embedding_service(name)
        super().__init__(name, CloudQueries(library, self.service), name=name)
        self.description = (
            f"{name}: {self.service.provider} {self.service.model_id} vectors of the frames ({self.service.status})"
        )
        self.model_version = self._encoder.model_version

    def usable(self, films: Sequence[Film]) -> list[Film]:
        have = [f for f in films if self._current(f)]
        if not have:
            raise self._stale(films)
        return [f.view(self.model) for f in have]

    def check(self, films: Sequence[Film]) -> None:
        lacking = [f for f in films if not self._current(f)]
        if lacking:
            raise self._stale(lacking)

    def _current(self, film: Film) -> bool:
        sets = film.record.sound()
        return self.model in sets and sets[self.model][1].service_model == self.model_version

    def _stale(self, films: Sequence[Film]) -> EngineUnavailable:
        other = [f for f in films if f.has(self.model)]
        if not other:
            return self._missing(films)
        made = other[0].record.sound()[self.model][1].service_model
        return EngineUnavailable(
            f"{self.name}: {other[0].name}'s vectors were made with {made}, not {self.model_version}; they are not "
            f"mixed. Make them again with: python -m clip_search index {other[0].manifest.source} --model {self.name}"
        )

    def explain(self, film: Film, frame: int, query: str | Query, crops: bool = False) -> Explanation:
        """Cosine and rank; never a crop map (each crop would be a paid call)."""
        out = super().explain(film, frame, as_query(query), crops=False)
        both = f"both embedded by {self.service.model_id}"
        out.evidence[0] = Evidence("cosine", f"cosine {out.score:.4f} between the query and this frame, {both}")
        if crops:
            out.note = f"no crop map: each crop would be a paid {self.name} call"
        return out

    def cost(self, films: Sequence[Film], ctx: CostContext) -> EngineCost:
        """The price table's price per image x the frames per film-hour, and the price of queries."""
        row = ctx.table.get(self.name, {})
        per_image = float(row.get("usd_per_1000_transactions", 0.0)) / 1000
        per_1000_queries = query_usd(self.name, ctx.table)
        read = f" (read {row['read']})" if row.get("read") else ""
        return EngineCost(
            self.name,
            per_image * ctx.frames_per_hour,
            f"price table{read}: ${per_image * 1000:.3f} per 1 000 images x {ctx.frames_per_hour:.0f} "
            f"frames/film-hour; ${per_1000_queries:.4f} per 1 000 queries",
            usd_per_1000_queries=per_1000_queries,
        )

"""A tagging service's stored tags as an engine (BM25 + semantic over the tags, see ``TagIndex``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clip_search.store.library import Film, Library
from engines.base import Engine, EngineUnavailable, Evidence, Explanation, LockedLRU, Query, as_query
from engines.cost import CostContext, EngineCost
from tagging.pricing import estimate
from tagging.tag_search import TagCorpus, TagIndex
from tagging.tag_store import TagStore, tags_version
from tagging.taggers import service as find_service
from tagging.taggers.base import TAG_KINDS

TAGS = "tags:"  # a tag engine is named tags:<service>
TAG_FILMS = 64  # films whose tag index an engine keeps
CORPORA = 4  # sets of films whose joint BM25 corpus is kept


class TagEngine(Engine):
    """The tags ``service`` gave each frame, searched by text."""

    evidence_in_listing = True

    def __init__(self, library: Library, service: str) -> None:
        found = find_service(service)  # ValueError naming the services for any other name
        self.library, self.service, self.name = library, service, f"{TAGS}{service}"
        self.needs_credentials = found.paid
        self.evidence = TAG_KINDS
        self.description = f"{self.name}: the {service} tagger's tags"
        self._indexes = LockedLRU(TAG_FILMS)
        self._corpora = LockedLRU(CORPORA)

    def _key(self, film: Film) -> tuple:
        return film.id, film.record.manifest.completed_at, tags_version(self.library, film, self.service)

    def index(self, film: Film, key: tuple | None = None) -> TagIndex:
        """The film's tags by this service, indexed once per film version and tag-store state
        (``key``: that state, when the caller has already read it)."""
        key = key or self._key(film)

        def make() -> TagIndex:
            store = TagStore(self.library, readonly=True)
            try:
                return TagIndex(film.times, store.tags(film, self.service))
            finally:
                store.close()

        return self._indexes.get_or_make(key, make)

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
        """Scores of each film with BM25 over all of ``films`` as one corpus (one scale for all films)."""
        key = tuple(self._key(f) for f in films)  # the tag store is read once per film, not twice
        indexes = [self.index(f, k) for f, k in zip(films, key, strict=True)]
        corpus = self._corpora.get_or_make(key, lambda: TagCorpus(indexes))
        return corpus.scores(as_query(query).text)

    def explain(self, film: Film, frame: int, query: str | Query, crops: bool = False) -> Explanation:
        query = as_query(query)
        tags = self.index(film).matched(frame, query.text)
        evidence = [Evidence(t.kind, t.text, round(t.confidence, 3)) for t in tags]
        note = None if evidence else "no tag of this frame matches the query"
        return self._explanation(film, frame, query, evidence, note)

    def cost(self, films: Sequence[Film], ctx: CostContext) -> EngineCost:
        """A paid service: its calls per frame x the price table (no credentials needed); a local
        tagger: its tagging time measured per frame x the CPU price."""
        e = estimate(self.service, round(ctx.frames_per_hour), ctx.table)
        if e.calls:
            basis = f"price table: {e.calls} calls, {e.transactions} transactions per film-hour"
            return EngineCost(self.name, e.usd, basis)
        store = TagStore(self.library, readonly=True)
        try:
            spf = store.seconds_per_frame(self.service)
        finally:
            store.close()
        if spf is None:
            return EngineCost(self.name, None, f"no tagging time measured yet (tag a film with {self.service})")
        return EngineCost(
            self.name,
            ctx.per_film_hour(spf, "cpu"),
            f"tagging measured: {spf * 1000:.0f} ms/frame x ${ctx.machine_price('cpu'):.2f}/h",
        )

"""A cloud service's stored frame vectors made into a vector set of the film, once every frame has
one: on exactly the film's frame times, through the film format's one writer (staged, verified,
renamed in), recording the service's model id and version, so it is searched, compared and
evaluated like any model and never mixed with vectors of another model version."""

from __future__ import annotations

import numpy as np

from clip_search.store.library import Film, Library, VectorSet
from clip_search.store.locks import film_lock
from clip_search.store.writer import StagedFilm
from clip_search.timecode import time_key
from tagging.embedders.base import Embedder
from tagging.tag_store import TagStore

CLOUD_LOGIT_SCALE = 100.0  # the services publish no temperature: a softmax over frames at CLIP's scale


def cloud_set(embedder: Embedder, frames: int = 0) -> VectorSet:
    """The record a service's vectors are kept with."""
    return VectorSet(
        model=embedder.service,
        dim=int(embedder.dim),
        logit_scale=CLOUD_LOGIT_SCALE,
        scoring="softmax",
        device="cloud",
        frames=frames,
        service_model=embedder.model_version,
    )


def current(film: Film, embedder: Embedder) -> bool:
    """Whether ``film`` has the service's set, made with the model version the adapter asks for now."""
    sets = film.record.sound()
    return embedder.service in sets and sets[embedder.service][1].service_model == embedder.model_version


def publish_vectors(library: Library, film: Film, embedder: Embedder, seconds: float | None = None) -> Film | None:
    """The film with the service's vector set, built from the vectors the tag store holds for each of
    its frames; None while some frame still lacks one (the next run asks only for those)."""
    store = TagStore(library, readonly=True)
    try:
        stored = store.vectors(film, embedder.service, embedder.model_version)
    finally:
        store.close()
    keys = [time_key(t) for t in film.times]
    if any(k not in stored for k in keys):
        return None
    vectors = np.stack([stored[k] for k in keys]).astype(np.float32)
    with film_lock(library, film.id, wait=60):
        staged = StagedFilm(library, film.record.manifest, [cloud_set(embedder)], film=film)
        for p in staged.parts.glob("part-*.npz"):  # a set is made whole from the store, never resumed
            p.unlink()
        staged.frames, staged.last_time = 0, None
        staged.write_chunk([vectors], film.times, [])
        return staged.publish(indexing_seconds=seconds)

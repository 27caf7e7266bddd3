"""Quality per dollar: what each engine costs per hour of film, at the sampling the films use.

Each engine works out its own cost (``Engine.cost``): a model's measured encoding time per frame
(stored with its vector set) x the price of the machine it ran on; a cloud tagger's calls per
frame x the price table (shown even before credentials are set: it needs no call); the offline
tagger's measured tagging time x the CPU price; dialogue nothing per frame. Search itself is not
counted: it is milliseconds per query for every engine."""

from __future__ import annotations

from collections.abc import Sequence

from clip_search.store.library import Film, Library
from engines.base import Engine
from engines.cost import CostContext, EngineCost
from tagging.pricing import price_table


def engine_costs(
    library: Library, films: list[Film], engines: Sequence[Engine], machine_usd: float | None = None
) -> dict[str, EngineCost]:
    """Cost per film-hour of each engine on ``films`` (their sampling sets the frames per hour)."""
    frames = sum(f.manifest.frames for f in films)
    seconds = sum(f.manifest.duration for f in films) or 1.0
    ctx = CostContext(library.root, price_table(library.root), frames / seconds * 3600, machine_usd)
    return {e.name: e.cost(films, ctx) for e in engines}

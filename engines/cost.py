"""What an engine costs, beside the engine protocol that reports it: per film-hour of the films
compared, worked out from the price table (``tagging.pricing``) and measured indexing times."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from tagging.pricing import machine_usd_per_hour


@dataclass(frozen=True)
class EngineCost:
    """An engine's cost per film-hour (None: not measured yet), per 1 000 queries, and how it was worked out."""

    engine: str
    usd_per_film_hour: float | None
    basis: str
    usd_per_1000_queries: float = 0.0  # a query a cloud service embeds is a paid call too

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CostContext:
    """What every engine's cost is worked out from: the price table, the sampled frames per
    film-hour of the films compared, and a machine price that overrides the table's."""

    library_root: Path
    table: dict
    frames_per_hour: float
    machine_usd: float | None = None

    def machine_price(self, device: str) -> float:
        return self.machine_usd if self.machine_usd is not None else machine_usd_per_hour(self.table, device)

    def per_film_hour(self, seconds_per_frame: float, device: str) -> float:
        """Dollars per film-hour of work that takes ``seconds_per_frame`` on ``device``."""
        return seconds_per_frame * self.frames_per_hour * self.machine_price(device) / 3600

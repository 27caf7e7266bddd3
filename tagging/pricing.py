"""Prices: the estimate shown before a paid tagging run, and what each engine costs per film-hour,
from a small editable price table (services and machines)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_TABLE = Path(__file__).with_name("prices.json")
DEFAULT_MACHINE_USD = {"cpu": 0.10, "cuda": 2.50}


@dataclass(frozen=True)
class EngineCost:
    """An engine's cost per film-hour (None: not measured yet) and how it was worked out."""

    engine: str
    usd_per_film_hour: float | None
    basis: str

    def to_dict(self) -> dict:
        return asdict(self)


def machine_usd_per_hour(table: dict, device: str) -> float:
    """The price table's machine price for ``device`` (cpu, cuda)."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    return float(table.get("machines", {}).get(kind, {}).get("usd_per_hour", DEFAULT_MACHINE_USD[kind]))


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


@dataclass(frozen=True)
class Estimate:
    """What tagging ``frames`` frames would cost."""

    service: str
    frames: int
    calls: int
    transactions: int
    usd: float

    def sentence(self) -> str:
        """e.g. 'azure: 120 frames -> 120 calls (600 billed transactions), about $0.60'."""
        if not self.calls:
            return f"{self.service}: {self.frames} frames, runs locally, no cost"
        return (
            f"{self.service}: {self.frames} frames -> {self.calls} calls "
            f"({self.transactions} billed transactions), about ${self.usd:.2f}"
        )


def price_table(library_root: Path | None = None) -> dict:
    """$FRAMESEARCH_PRICES, else <library>/prices.json, else the shipped table."""
    for candidate in (os.environ.get("FRAMESEARCH_PRICES"), library_root and library_root / "prices.json"):
        if candidate and Path(candidate).is_file():
            return json.loads(Path(candidate).read_text())
    return json.loads(DEFAULT_TABLE.read_text())


def estimate(service: str, frames: int, table: dict | None = None, calls: int | None = None) -> Estimate:
    """Calls, billed transactions and dollars for tagging ``frames`` frames with ``service``;
    ``calls`` when only some of each frame's calls are still missing (a partly tagged frame)."""
    row = (table or price_table()).get(service, {})
    per_frame = int(row.get("calls_per_frame", 0))
    calls = frames * per_frame if calls is None or not per_frame else calls
    transactions = calls * int(row.get("transactions_per_frame", 0)) // per_frame if per_frame else 0
    return Estimate(
        service, frames, calls, transactions, transactions * float(row.get("usd_per_1000_transactions", 0)) / 1000
    )

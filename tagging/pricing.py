"""Prices: the estimate shown before a paid tagging run, and the small editable price table
(services and machines) every engine's cost per film-hour is worked out from (``engines.cost``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TABLE = Path(__file__).with_name("prices.json")
DEFAULT_MACHINE_USD = {"cpu": 0.10, "cuda": 2.50}


def machine_usd_per_hour(table: dict, device: str) -> float:
    """The price table's machine price for ``device`` (cpu, cuda)."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    return float(table.get("machines", {}).get(kind, {}).get("usd_per_hour", DEFAULT_MACHINE_USD[kind]))


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


def query_usd(service: str, table: dict | None = None) -> float:
    """Dollars per 1 000 queries a service embeds (0 for every engine whose queries run here)."""
    return float((table or price_table()).get(service, {}).get("usd_per_1000_queries", 0.0))

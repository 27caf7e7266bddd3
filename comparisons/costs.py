"""Quality per dollar: what each engine costs per hour of film, at the sampling the films use.

- cloud taggers (Azure, Rekognition): calls per frame x price, from the editable price table
  (shown even before credentials are set: it needs no call);
- CLIP: the indexing time measured per frame (stored in each film's manifest) x the price of the
  machine it ran on (``machines`` in the price table, by device);
- the offline tagger: its tagging time measured per frame (kept in the tag store) x the CPU price;
- dialogue and chance: no per-frame work (subtitles are read once), 0.
Search itself is not counted: it is milliseconds per query for every engine."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from clip_search.library import Film, Library
from comparisons.pricing import estimate, price_table
from comparisons.tag_store import TagStore

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


def engine_costs(
    library: Library, films: list[Film], engines: list[str], machine_usd: float | None = None
) -> dict[str, EngineCost]:
    """Cost per film-hour of each engine on ``films`` (their sampling sets the frames per hour)."""
    table = price_table(library.root)
    frames = sum(f.manifest.frames for f in films)
    seconds = sum(f.manifest.duration for f in films) or 1.0
    per_hour = frames / seconds * 3600  # sampled frames per film-hour
    out: dict[str, EngineCost] = {}
    measured = [f for f in films if f.manifest.indexing_seconds]
    clip = None
    if measured:
        spf = sum(f.manifest.indexing_seconds for f in measured) / sum(f.manifest.frames for f in measured)
        device = measured[0].manifest.device or "cpu"
        price = machine_usd if machine_usd is not None else machine_usd_per_hour(table, device)
        clip = EngineCost(
            "clip",
            spf * per_hour * price / 3600,
            f"indexing measured: {spf * 1000:.0f} ms/frame on {device} x ${price:.2f}/h, "
            f"{per_hour:.0f} frames/film-hour",
        )
    store = TagStore(library, readonly=True)
    try:
        offline_spf = store.seconds_per_frame("offline")
    finally:
        store.close()
    for name in engines:
        if name in ("clip", "clip+dialogue"):
            out[name] = clip or EngineCost(name, None, "no indexing time measured for these films (imported vectors)")
            if clip and name != "clip":
                out[name] = EngineCost(
                    name, clip.usd_per_film_hour, "CLIP's indexing (dialogue adds nothing per frame)"
                )
        elif name in ("tags:azure", "tags:rekognition"):
            service = name.split(":", 1)[1]
            e = estimate(service, round(per_hour), table)
            out[name] = EngineCost(
                name, e.usd, f"price table: {e.calls} calls, {e.transactions} transactions per film-hour"
            )
        elif name == "tags:offline":
            if offline_spf is None:
                out[name] = EngineCost(name, None, "no tagging time measured yet (tag a film with the offline tagger)")
            else:
                price = machine_usd if machine_usd is not None else machine_usd_per_hour(table, "cpu")
                cost = offline_spf * per_hour * price / 3600
                out[name] = EngineCost(
                    name, cost, f"tagging measured: {offline_spf * 1000:.0f} ms/frame x ${price:.2f}/h"
                )
        else:  # dialogue, random
            out[name] = EngineCost(name, 0.0, "no per-frame work")
    return out

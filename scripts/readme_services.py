"""Generate the README's table of the services a lab would buy: each cloud embedding service and
tagging service with its model, vector size, what a search with it returns, its price per 1 000
images and per 1 000 queries (from the price table, with the date each price was read) and its
status. The table is made from the registries and ``tagging/prices.json``, never typed by hand;
a test holds the README to it.

    .venv/bin/python scripts/readme_services.py            # rewrites README.md in place
    .venv/bin/python scripts/readme_services.py --print    # prints the table instead"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.readme_block import replace_block

BEGIN, END = "<!-- services:begin (scripts/readme_services.py) -->", "<!-- services:end -->"


def _usd(value: float) -> str:
    return f"${value:.4f}".rstrip("0").rstrip(".") if value else "$0"


def table() -> str:
    """The services table, from the registries and the shipped price table."""
    from tagging.embedders import embedding_services
    from tagging.pricing import DEFAULT_TABLE, query_usd
    from tagging.taggers import services

    prices = json.loads(DEFAULT_TABLE.read_text())  # the shipped table, not a library's own
    rows = [
        "| service | engine | model (version) | dims | a search returns | per 1 000 images | per 1 000 queries "
        "| prices read | status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in embedding_services().items():
        row = prices.get(name, {})
        cls = s.embedder_class()
        rows.append(
            f"| {s.provider} | `{name}` | `{cls.model_id}` ({cls.version}) | {s.dim} | frames ranked by the cosine of "
            f"their vectors with the query's{' (multilingual)' if s.multilingual else ' (English)'} | "
            f"{_usd(float(row.get('usd_per_1000_transactions', 0)))} | {_usd(query_usd(name, prices))} | "
            f"{row.get('read', '—')} | {s.status} |"
        )
    for name, s in services().items():
        row = prices.get(name, {})
        per_frame = float(row.get("transactions_per_frame", 0)) * float(row.get("usd_per_1000_transactions", 0))
        rows.append(
            f"| {s.provider or name} | `tags:{name}` | {s.model or '—'} | — | frames ranked by their tags "
            f"(BM25 + meaning) | {_usd(per_frame)} | $0 (searched here) | {row.get('read', '—')} | {s.status or '—'} |"
        )
    return "\n".join([BEGIN, *rows, END])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print the table instead of rewriting README.md")
    args = parser.parse_args()
    if args.print:
        print(table())
    else:
        replace_block(BEGIN, END, table())


if __name__ == "__main__":
    main()

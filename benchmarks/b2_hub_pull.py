"""B2: initial sync through the hub's batched pull, into SQLiteStore (and MemoryStore).

    python -m benchmarks.b2_hub_pull [--docs 100000] [--repeats 3] [--quick]

A hub (:mod:`benchmarks.hubproc`, its own process, SQLite) serves N documents. Each run, a new
edge (``ServerSync(mode="read")``, default ``via="auto"``: the hub protocol) with an empty store
syncs ``items``: capabilities, then ``serversync/pull`` batches straight into the store (the cache
holds nothing of this remote yet), then the change feed; timed from ``sync()`` to
``wait_ready()``. For contrast, the same hub through its plain publication (``via="stock"``: one
DDP ``added`` per document, staged and committed as a resync round). Target: >= 1.5x ddp.js's
rate in the peers scenario (~260k docs/s on the reference machine).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from benchmarks.common import emit, rate_row
from benchmarks.edges import StoreFactory, Timing, initial_sync, temp_folder
from benchmarks.hubproc import Hub, hub_file


async def _one(url: str, n: int, factory: StoreFactory, via: str) -> Timing:
    async with factory.make() as store:
        return await initial_sync(url, n, store, via=via, hub=True)


def run(*, docs: int = 100_000, repeats: int = 3) -> list[dict[str, Any]]:
    """Run B2 and emit its table."""
    with temp_folder("b2") as tmp:
        folder = Path(tmp)
        cases = {
            "hub pull -> SQLiteStore": (StoreFactory("sqlite", folder), "auto"),
            "hub pull -> MemoryStore": (StoreFactory("memory", folder), "auto"),
            "hub plain publication (stock path) -> SQLiteStore": (
                StoreFactory("sqlite", folder),
                "stock",
            ),
        }
        times: dict[str, list[Timing]] = {k: [] for k in cases}
        with Hub(hub_file(docs, folder), docs) as hub:
            factory, via = cases["hub pull -> SQLiteStore"]
            asyncio.run(_one(hub.url, docs, factory, via))  # warm-up (hub page cache)
            for _ in range(repeats):
                for name, (factory, via) in cases.items():
                    times[name].append(asyncio.run(_one(hub.url, docs, factory, via)))
    rows = [rate_row(name, docs, ts, total=repeats) for name, ts in times.items()]
    pull = rows[0]["median docs/s"]
    return [
        emit(
            f"B2: initial sync of {docs:,} docs from a hub (separate process), sync() -> "
            f"wait_ready() ({repeats} interleaved rounds)",
            rows,
            extra={"targets": {"hub_pull_sqlite_docs_per_s": {"target": 260_000, "got": pull}}},
        )
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="5k docs, one round")
    a = p.parse_args()
    if a.quick:
        run(docs=min(a.docs, 5_000), repeats=1)
    else:
        run(docs=a.docs, repeats=a.repeats)


if __name__ == "__main__":
    main()

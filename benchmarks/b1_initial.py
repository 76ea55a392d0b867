"""B1: initial sync over the stock-Meteor path, from ddp-blaster into each store.

    python -m benchmarks.b1_initial [--docs 100000] [--repeats 3] [--quick] [--no-mongo]

ddp-blaster publishes ``items`` with params ``[N]``: N ``added`` (~257 B of fields with one
``$date``) then ``ready``. Timed from ``sync()`` to ``wait_ready()`` (the whole round staged and
committed), with ``ServerSync(mode="read")`` into SQLiteStore, MemoryStore and MongoStore
(nx-27017, started here, or ``MONGODB_URI``). In the same run, interleaved per round after one
warm-up: the raw websockets baselines (frames only, + orjson, + a dict: the peers bench's
``py-websockets-*`` rows), so the ratios compare like with like on a noisy machine. The peer DDP
clients run in their own scenario (``peers``), next to this library's driver.

Targets: into SQLite >= 100k docs/s (set for a quiet machine), >= 4x the best Python peer and
>= 0.55x ddp.js (see the peers scenario).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.blaster import Blaster
from benchmarks.common import emit, machine_info, rate_row
from benchmarks.edges import StoreFactory, Timing, initial_sync, raw_ws, temp_folder

Case = Callable[[str], Awaitable[Timing]]


def cases(n: int, folder: Path, mongo_uri: str | None) -> dict[str, Case]:
    """The timed cases, by row name."""
    out: dict[str, Case] = {
        "py-websockets-recv (frames only)": lambda url: raw_ws(url, [n], "recv"),
        "py-websockets-parse (+ orjson)": lambda url: raw_ws(url, [n], "parse"),
        "py-websockets-store (+ dict)": lambda url: raw_ws(url, [n], "store"),
    }
    labels = {"sqlite": "SQLiteStore", "memory": "MemoryStore"}
    for kind, label in labels.items():
        factory = StoreFactory(kind, folder, mongo_uri)

        async def run(url: str, factory: StoreFactory = factory) -> Timing:
            async with factory.make() as store:
                return await initial_sync(url, n, store)

        out[f"aioserversync -> {label}"] = run
    return out


async def _mongo(url: str, n: int, factory: StoreFactory) -> Timing:
    async with factory.make() as store:
        return await initial_sync(url, n, store)


def run(
    *, docs: int = 100_000, repeats: int = 3, mongo: bool = True, mongo_docs: int = 5_000
) -> list[dict[str, Any]]:
    """Run B1 and emit its table; return the emitted objects.

    MongoStore gets ``mongo_docs`` documents and one round: against nx-27017 (a Python server on
    SQLite) the server is the limit, at a few thousand documents per second.
    """
    with temp_folder("b1") as tmp:
        folder = Path(tmp)
        server = None
        mongo_uri = None
        if mongo:
            from tests.mongo_server import mongo_uri_from_env, start_nx27017

            mongo_uri = mongo_uri_from_env()
            if mongo_uri is None:
                server = start_nx27017(folder / "nx")
                mongo_uri = server.uri
        try:
            todo = cases(docs, folder, mongo_uri)
            times: dict[str, list[Timing]] = {k: [] for k in todo}
            with Blaster(docs) as blaster:
                for name in ("py-websockets-parse (+ orjson)", "aioserversync -> SQLiteStore"):
                    asyncio.run(todo[name](blaster.url))  # warm-up, not recorded
                for _ in range(repeats):
                    for name, case in todo.items():
                        times[name].append(asyncio.run(case(blaster.url)))
            mongo_rows = []
            if mongo_uri is not None:
                factory = StoreFactory("mongo", folder, mongo_uri)
                with Blaster(mongo_docs) as blaster:
                    t = asyncio.run(_mongo(blaster.url, mongo_docs, factory))
                label = "aioserversync -> MongoStore (nx-27017 server)"
                if server is None:
                    label = "aioserversync -> MongoStore (MONGODB_URI)"
                mongo_rows.append({**rate_row(label, mongo_docs, [t]), "docs": mongo_docs})
        finally:
            if server is not None:
                server.stop()
    rows = [{**rate_row(name, docs, ts, total=repeats), "docs": docs} for name, ts in times.items()]
    rows += mongo_rows
    parse = rows[1]["median docs/s"]
    for row in rows:
        row["x py-websockets-parse"] = round(row["median docs/s"] / parse, 2)
    sqlite = next(r for r in rows if r["case"].endswith("SQLiteStore"))
    return [
        emit(
            f"B1: initial sync of {docs:,} docs from ddp-blaster, sync() -> wait_ready() "
            f"({repeats} interleaved rounds)",
            rows,
            extra={
                "machine": machine_info(),
                "targets": {
                    "sqlite_docs_per_s": {"target": 100_000, "got": sqlite["median docs/s"]}
                },
            },
        )
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="10k docs, one round, no MongoStore")
    p.add_argument("--no-mongo", action="store_true")
    a = p.parse_args()
    if a.quick:
        run(docs=min(a.docs, 10_000), repeats=1, mongo=False)
    else:
        run(docs=a.docs, repeats=a.repeats, mongo=not a.no_mongo)


if __name__ == "__main__":
    main()

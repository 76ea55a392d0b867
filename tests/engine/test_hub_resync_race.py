"""A full resync through the hub while the hub's documents change between its pages (seeded).

The edge pulls the collection in pages of a few documents; after each page the hub inserts,
updates (in and out of the edge's ``query=`` filter) and removes random documents. A document
can thus be pulled and then removed (its tombstone comes in a later page), or pulled twice. The
round must end with the edge equal to the hub's (matching) documents, with their revisions, and
the change feed must then keep it so. Some hubs keep tombstones for a few revisions only and
purge them between pages: a pull that needed a purged tombstone starts again.

CI runs seeds 0..9 of each case, and 0..2 into MongoStore; ``AIOSERVERSYNC_RESYNC_RACE_RUNS``,
``AIOSERVERSYNC_RESYNC_RACE_MONGO_RUNS`` and ``AIOSERVERSYNC_SEED_BASE`` explore more.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from aioserversync.query import compile_selector
from aioserversync.stores import Store
from tests.conftest import MS
from tests.engine.conftest import edge, seeds
from tests.engine.remotes import plain_hub
from tests.utils import wait_for_condition

QUERIES: list[dict[str, Any] | None] = [None, {"n": {"$gte": 50}}, {"tag": {"$in": ["x", "y"]}}]


@pytest.mark.parametrize("store_kind", ["sqlite", "memory"])
@pytest.mark.parametrize("seed", seeds("AIOSERVERSYNC_RESYNC_RACE_RUNS", 10))
async def test_a_full_resync_while_the_hub_changes_ends_equal_to_the_hub(
    seed: int, make_store: Callable[[], Store]
) -> None:
    await _race(seed, make_store())


@pytest.mark.parametrize("store_kind", ["mongo"])
@pytest.mark.parametrize("seed", seeds("AIOSERVERSYNC_RESYNC_RACE_MONGO_RUNS", 3))
async def test_a_full_resync_into_mongostore_while_the_hub_changes(
    seed: int, make_store: Callable[[], Store]
) -> None:
    """The same with a MongoStore edge (through nx-27017), for a few seeds."""
    await _race(seed, make_store())


async def _race(seed: int, store: Store) -> None:
    rng = random.Random(seed)
    query = rng.choice(QUERIES)
    retention = rng.choice([None, 2, 4])  # revisions; purged after some pages
    hub = plain_hub(tombstone_retention=retention, purge_interval=0)
    hub.max_pull = rng.choice([1, 2, 3])
    port = (await hub.serve()).port
    made = 0
    for _ in range(rng.randrange(4, 12)):
        await hub.insert("items", {"_id": f"d{made}", "n": rng.randrange(100), "tag": "x"})
        made += 1
    pull = hub.ddp._methods["serversync/pull"]  # fault injection: wrap the real handler
    racing = False
    changes = 0
    purges = [1, 1]  # at most two, within the edge's three tries of a full pull

    async def pull_then_change(ctx: Any, *params: Any) -> Any:
        nonlocal made, changes
        result = await pull(ctx, *params)
        if racing:  # the page is read: change the hub before the next one
            for _ in range(rng.randrange(3) or (1 if changes == 0 else 0)):
                ids = [d["_id"] for d in await hub.store.find("items", {})]
                op = rng.random()
                if op < 0.25 or not ids:
                    doc = {"_id": f"d{made}", "n": rng.randrange(100), "tag": rng.choice("xyz")}
                    await hub.insert("items", doc)
                    made += 1
                elif op < 0.7:
                    fields = rng.choice([{"n": rng.randrange(100)}, {"tag": rng.choice("xyz")}])
                    await hub.update("items", rng.choice(ids), {"$set": fields})
                else:
                    await hub.remove("items", rng.choice(ids))
                changes += 1
            if retention is not None and purges and rng.random() < 0.3:
                purges.pop()
                await hub.purge("items")  # may overtake the pull: it starts again
        return result

    hub.ddp._methods["serversync/pull"] = pull_then_change
    remote = await edge(f"ws://127.0.0.1:{port}/websocket", store)
    match = compile_selector(query or {})
    try:
        items = await remote.sync("items", mode="read", query=query)
        await items.wait_ready(timeout=5000 * MS)
        racing = True
        await items.resync(timeout=8000 * MS)
        racing = False
        assert changes > 0

        async def converged() -> bool:
            # Documents and revisions: a change can bring a document back to what the edge has.
            await remote._sync_barrier()
            want = sorted(
                (d for d in await hub.store.find("items", {}) if match(d)), key=lambda d: d["_id"]
            )
            if sorted(await items.find({}), key=lambda d: d["_id"]) != want:
                return False
            ids = [d["_id"] for d in want]
            mine = await store.get_meta_many("items", ids)
            theirs = await hub.store.get_meta_many("items", ids)
            return {i: m.rev for i, m in mine.items()} == {i: m.rev for i, m in theirs.items()}

        await wait_for_condition(converged, timeout=8000 * MS, message="edge == hub (filtered)")
    finally:
        await remote.close()
        await hub.close()

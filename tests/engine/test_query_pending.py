"""A ``query=`` mirror with local writes pending while documents leave the filter.

A pending document is decided against the remote's real version, not the filtered view (which
would read as a removal), and leaves the mirror once its writes settle (docs/modes.md).
Deterministic, against a stock server and a hub, after a plain reconnect and a full resync.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from aioserversync.stores import SQLiteStore
from tests.conftest import MS
from tests.engine.conftest import drain_events, edge, go_offline, go_online
from tests.engine.remotes import ItemsRemote
from tests.proxy import FaultProxy
from tests.utils import wait_for_condition

QUERY = {"status": "open"}
FIRST = [
    {"_id": "a", "status": "open", "n": 0},
    {"_id": "b", "status": "open", "n": 0},
    {"_id": "c", "status": "open", "n": 0},
]


@pytest.mark.parametrize("full", [False, True], ids=["reconnect", "resync"])
@pytest.mark.parametrize("kind", ["meteor", "hub"])
async def test_pending_writes_to_documents_leaving_the_filter(
    kind: str, full: bool, tmp_path: Path
) -> None:
    server = ItemsRemote(kind, FIRST)
    await server.start()
    proxy = await FaultProxy(server.port).start()
    remote = await edge(proxy.url(), SQLiteStore(tmp_path / "edge.db"))
    try:
        items = await remote.sync("items", mode="write", query=QUERY)
        await items.wait_ready(timeout=5000 * MS)
        events = items.changes()
        await go_offline(proxy, remote)
        # a: the remote closes it while the edge edits it (a conflict: the remote changed it).
        # b: the edge closes it itself (no conflict: pushed, then out of the mirror).
        # c: the edge edits it and it stays open (kept). d: a new closed document (pushed).
        await server.update("a", {"status": "closed"})
        await items.update("a", {"$set": {"n": 1}})
        await items.update("b", {"$set": {"status": "closed", "n": 2}})
        await items.update("c", {"$inc": {"n": 3}})
        await items.insert({"_id": "d", "status": "closed", "n": 4})
        resync = asyncio.ensure_future(items.resync()) if full else None
        await go_online(proxy, items)
        if resync is not None:
            await resync
        await items.wait_drained(timeout=5000 * MS)

        async def only_c_left() -> bool:
            return bool(await items.find({}) == [{"_id": "c", "status": "open", "n": 3}])

        await wait_for_condition(only_c_left, timeout=5000 * MS)
        assert await server.docs() == [
            {"_id": "a", "status": "closed", "n": 0},
            {"_id": "b", "status": "closed", "n": 2},
            {"_id": "c", "status": "open", "n": 3},
            {"_id": "d", "status": "closed", "n": 4},
        ]
        seen = drain_events(events)
        conflicts = [e for e in seen if e.op == "conflict"]
        assert [e.id for e in conflicts] == ["a"]
        error = conflicts[0].error
        assert error is not None
        assert error.remote == {"_id": "a", "status": "closed", "n": 0}
        assert error.local == {"_id": "a", "status": "open", "n": 1}
        assert items.stats.conflicts == 1 and items.stats.failed == 0
        removed = {e.id for e in seen if e.op == "removed"}
        assert {"a", "b", "d"} <= removed and "c" not in removed
    finally:
        await remote.close()
        await proxy.close()
        await server.stop()


@pytest.mark.parametrize("kind", ["meteor", "hub"])
async def test_online_write_update_that_leaves_the_filter(kind: str, tmp_path: Path) -> None:
    server = ItemsRemote(kind, FIRST)
    await server.start()
    remote = await edge(f"http://127.0.0.1:{server.port}", SQLiteStore(tmp_path / "edge.db"))
    try:
        items = await remote.sync("items", query=QUERY)
        await items.wait_ready(timeout=5000 * MS)
        assert await items.update("b", {"$set": {"status": "closed"}}) == 1
        await items.insert({"_id": "d", "status": "closed", "n": 4})
        await items.wait_drained(timeout=5000 * MS)

        async def left() -> bool:
            return {d["_id"] for d in await items.find({})} == {"a", "c"}

        await wait_for_condition(left, timeout=5000 * MS)
        docs = {d["_id"]: d for d in await server.docs()}
        assert docs["b"]["status"] == "closed" and docs["d"]["status"] == "closed"
        assert items.stats.conflicts == 0
    finally:
        await remote.close()
        await server.stop()

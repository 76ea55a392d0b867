"""Concurrent local writes are group-committed, with each write's own outcome and order kept."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aioserversync.exceptions import DuplicateKeyError, ModifierError
from aioserversync.stores import SQLiteStore
from tests.conftest import MS
from tests.engine.conftest import InstrumentedStore, converged, edge, go_offline, go_online


async def test_concurrent_offline_writes_share_transactions(app, proxy, tmp_path) -> None:
    store = InstrumentedStore(tmp_path / "edge.db")
    remote = await edge(proxy.url(), store)
    try:
        items = await remote.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        await go_offline(proxy, remote)
        before = store.applies
        inserted = await asyncio.gather(
            *(items.insert({"_id": f"n{i}", "k": i}) for i in range(200))
        )
        counts = await asyncio.gather(
            *(items.update(f"n{i}", {"$set": {"k": -i}}) for i in range(200))
        )
        assert inserted == [f"n{i}" for i in range(200)] and counts == [1] * 200
        # 400 writes, far fewer transactions: the writes that waited together committed together.
        assert store.applies - before < 100, store.applies - before
        assert items.stats.pending == 200  # each update folded into its document's insert
        await go_online(proxy, items)
        assert app.calls["/items/insert"] == 200 and app.calls.get("/items/update", 0) == 0
        assert app.get("items", "n7") == {"_id": "n7", "k": -7}
        assert await converged(app, items)
    finally:
        await remote.close()


async def test_each_write_in_a_group_keeps_its_own_error(app, proxy, tmp_path) -> None:
    remote = await edge(proxy.url(), SQLiteStore(tmp_path / "edge.db"))
    try:
        items = await remote.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        await go_offline(proxy, remote)
        results = await asyncio.gather(
            items.update("d1", {"$set": {"n": 10}}),
            items.insert({"_id": "d2"}),  # exists
            items.update("d3", {"$inc": {"name": 1}}),  # $inc of a string
            items.insert({"_id": "fresh"}),
            items.remove("d4"),
            items.update("missing", {"$set": {"n": 1}}),
            return_exceptions=True,
        )
        assert results[0] == 1
        assert isinstance(results[1], DuplicateKeyError)
        assert isinstance(results[2], ModifierError)
        assert results[3] == "fresh" and results[4] == 1 and results[5] == 0
        assert (await items.get("d1"))["n"] == 10
        assert await items.get("d3") == {"_id": "d3", "name": "doc 3", "n": 3}
        assert await items.get("d4") is None and await items.get("fresh") == {"_id": "fresh"}
        assert items.stats.pending == 3
        await go_online(proxy, items)
        assert app.get("items", "d1")["n"] == 10 and app.get("items", "d4") is None
        assert await converged(app, items)
    finally:
        await remote.close()


async def test_writes_to_one_document_apply_in_call_order(app, proxy, tmp_path) -> None:
    remote = await edge(proxy.url(), SQLiteStore(tmp_path / "edge.db"))
    try:
        items = await remote.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        await go_offline(proxy, remote)
        stream = items.changes()
        await asyncio.gather(
            *(items.update("d0", {"$push": {"seen": k}, "$set": {"last": k}}) for k in range(20)),
            items.update("d1", {"$set": {"n": 100}}),
        )
        doc = await items.get("d0")
        assert doc is not None and doc["seen"] == list(range(20)) and doc["last"] == 19
        events = []
        while (ev := stream.try_next()) is not None:
            events.append(ev)
        assert [ev.fields["last"] for ev in events if ev.id == "d0"] == list(range(20))
        assert items.stats.pending == 2  # one record per document
        await go_online(proxy, items)
        assert app.get("items", "d0")["seen"] == list(range(20))
    finally:
        await remote.close()


@pytest.mark.parametrize("mode", ["read", "online-write"])
async def test_grouped_cache_only_and_offline_insert_paths(app, proxy, tmp_path, mode) -> None:
    remote = await edge(proxy.url(), SQLiteStore(tmp_path / "edge.db"))
    try:
        items = await remote.sync("items", mode=mode)
        await items.wait_ready(timeout=5000 * MS)
        await go_offline(proxy, remote)
        await asyncio.gather(*(items.insert({"_id": f"x{i}"}) for i in range(30)))
        assert await items.count({"_id": {"$regex": "^x"}}) == 30
        assert items.stats.pending == (0 if mode == "read" else 30)
    finally:
        await remote.close()


async def test_the_echoes_of_a_stock_drain_are_decided_in_runs(
    app, proxy, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pushing through the stock mutators, each write's ``changed`` echo reaches a document
    that still has its record in flight: consecutive echoes are decided together (one store
    read, one batch), and every write lands once with nothing reported as a conflict."""
    from aioserversync.asyncio import live_pending

    runs: list[int] = []
    real = live_pending._apply_run

    async def spy(engine: Any, cs: Any, ops: Any) -> None:
        runs.append(len(ops))
        await real(engine, cs, ops)

    monkeypatch.setattr(live_pending, "_apply_run", spy)
    app.add_collection("things", [{"_id": f"p{i}", "v": 0} for i in range(120)])
    remote = await edge(proxy.url(), SQLiteStore(tmp_path / "edge.db"))
    try:
        items = await remote.sync("things", mode="write", via="stock")
        await items.wait_ready(timeout=5000 * MS)
        await go_offline(proxy, remote)
        await asyncio.gather(*(items.update(f"p{i}", {"$set": {"v": i + 1}}) for i in range(120)))
        assert items.stats.pending == 120
        await go_online(proxy, items)
        assert app.calls["/things/update"] == 120
        assert [app.get("things", f"p{i}")["v"] for i in range(120)] == list(range(1, 121))
        assert items.stats.pending == 0 and items.stats.conflicts == 0
        assert max(runs, default=0) > 1  # echoes were decided together
        assert await converged(app, items, "things")
    finally:
        await remote.close()

"""Remote data the store failed to apply: the remote resyncs in full at once, so the cache is
never left silently out of step (on the hub path, never past a checkpoint that covers the lost
changes)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from aioserversync.exceptions import StoreError
from aioserversync.stores import SQLiteStore
from aioserversync.stores.base import DeleteDoc, OutboxDelete, PatchDoc, PutDoc, StageCommit
from tests.conftest import MS
from tests.engine.conftest import InstrumentedStore, edge, go_online, synced
from tests.engine.test_hub_sync import HubEnv, converged, env, hub_edge
from tests.meteor_app import MeteorApp
from tests.proxy import FaultProxy
from tests.utils import wait_for_condition

__all__ = ["env"]  # the hub fixture, shared with test_hub_sync


def touches(doc_id: str) -> Callable[[list[Any]], bool]:
    return lambda ops: any(type(op) in (PutDoc, PatchDoc) and op.id == doc_id for op in ops)


async def doc_is(items: Any, doc_id: str, expected: Any) -> None:
    async def check() -> bool:
        return await items.get(doc_id) == expected

    await wait_for_condition(check, message=f"{doc_id} == {expected!r}")


async def test_a_live_change_the_store_failed_to_apply_is_recovered_by_a_resync(
    app: MeteorApp, proxy: FaultProxy, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store = InstrumentedStore(tmp_path / "edge.db")
    async with synced(proxy, store, mode="read") as (_, items):
        resyncs = items.stats.resyncs
        store.fail_when = touches("d1")
        with caplog.at_level(logging.ERROR, logger="aioserversync"):
            app.update("items", "d1", {"$set": {"n": 100}})
            await doc_is(items, "d1", {"_id": "d1", "name": "doc 1", "n": 100})
        assert store.failures == 1
        assert items.stats.resyncs == resyncs + 1  # a new round brought it
        assert any("could not be applied" in m for m in caplog.messages)


async def test_a_round_whose_commit_failed_is_run_again_with_backoff_when_it_repeats(
    app: MeteorApp, proxy: FaultProxy, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store = InstrumentedStore(tmp_path / "edge.db")
    store.fail_when = lambda ops: any(type(op) is StageCommit for op in ops)
    store.times = 2
    remote = await edge(proxy.url(), store)
    try:
        with caplog.at_level(logging.ERROR, logger="aioserversync"):
            items = await remote.sync("items", mode="read")
            await items.wait_ready(timeout=5000 * MS)
        assert store.failures == 2 and await items.count() == 5
        assert app.calls["sub:items"] == 3
        # The first failure resyncs at once; the second, with no round committed between,
        # after a pause (a store that keeps failing is not hammered with full rounds).
        repairs = [m for m in caplog.messages if "resyncs in full" in m]
        assert len(repairs) == 2 and repairs[0].endswith("in full") and "in 1 s" in repairs[1]
    finally:
        await remote.close()


async def test_a_hub_change_the_store_failed_to_apply_is_not_skipped_by_the_checkpoint(
    env: HubEnv,
) -> None:
    store = InstrumentedStore(env.tmp / "edge.db")
    remote = await hub_edge(env, store)
    try:
        items = await remote.sync("items", mode="read")
        await items.wait_ready(timeout=5000 * MS)
        store.fail_when = touches("d1")
        await env.hub.update("items", "d1", {"$set": {"n": 100}})
        await env.hub.update("items", "d2", {"$set": {"n": 200}})  # a later checkpoint
        await doc_is(items, "d2", {"_id": "d2", "name": "doc 2", "n": 200})
        await doc_is(items, "d1", {"_id": "d1", "name": "doc 1", "n": 100})
        assert store.failures == 1 and await converged(env, items)
    finally:
        await remote.close()
    # The checkpoint stored covers only what the cache holds: a restart catches up correctly.
    remote = await hub_edge(env, SQLiteStore(env.tmp / "edge.db"))
    try:
        items = await remote.sync("items", mode="read")
        await items.wait_ready(timeout=5000 * MS)
        assert await converged(env, items)
    finally:
        await remote.close()


@pytest.mark.parametrize("via", ["stock", "hub"])
async def test_push_results_the_store_failed_to_record_are_settled_by_a_new_session(
    app: MeteorApp, proxy: FaultProxy, env: HubEnv, via: str
) -> None:
    """The server applied the pushes, but the batch recording their results failed: the
    records stay in flight. The drainer drops the link, and the new session settles them
    (the stock round sees the documents arrived; the hub dedupes the pushed mutation ids),
    each write applied once."""
    store = InstrumentedStore(env.tmp / "edge.db")
    url = proxy.url() if via == "stock" else env.proxy.url()
    remote = await edge(url, store, token="edge-token" if via == "hub" else None)
    try:
        items = await remote.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        reconnects = remote.client.stats.reconnects
        store.fail_when = lambda ops: any(type(op) is OutboxDelete for op in ops)
        await items.update("d1", {"$set": {"name": "edge"}})
        await items.insert({"_id": "x1", "v": 1})
        await items.wait_drained(timeout=5000 * MS)
        assert store.failures == 1 and remote.client.stats.reconnects > reconnects
        if via == "stock":
            assert app.calls["/items/insert"] == 1 and app.get("items", "x1") == {
                "_id": "x1",
                "v": 1,
            }
            assert app.get("items", "d1")["name"] == "edge"
        else:
            assert env.hub.revision("items") == 5 + 2  # each write applied once
            assert (await env.hub.store.get("items", "x1")) == {"_id": "x1", "v": 1}
        assert items.stats.conflicts == 0 and items.stats.failed == 0
    finally:
        await remote.close()


async def test_a_local_write_the_store_refused_changes_nothing_queued(
    app: MeteorApp, proxy: FaultProxy, tmp_path: Any
) -> None:
    """An update is queued; the remove that would fold into it fails in the store. The caller
    gets the error, and what is pushed later is still the update, not a remove."""
    store = InstrumentedStore(tmp_path / "edge.db")
    async with synced(proxy, store, mode="write", offline=True) as (_, items):
        await items.update("d1", {"$set": {"name": "edge"}})
        store.fail_when = lambda ops: any(type(op) is DeleteDoc for op in ops)
        with pytest.raises(StoreError, match="injected"):
            await items.remove("d1")
        assert await items.get("d1") == {"_id": "d1", "name": "edge", "n": 1}
        assert [r.op for r in await items.pending()] == ["update"]
        await go_online(proxy, items)
        assert app.calls.get("/items/remove", 0) == 0
        assert app.get("items", "d1") == {"_id": "d1", "name": "edge", "n": 1}


async def test_a_hub_whose_store_fails_a_push_gets_it_again_and_applies_it_once(
    tmp_path: Any,
) -> None:
    from aioserversync.hub import ServerSyncServer

    hub_store = InstrumentedStore(tmp_path / "hub.db")
    hub = ServerSyncServer(
        hub_store, tokens={"t": "edge"}, heartbeat_interval=0, compression=None, purge_interval=0
    )
    hub.collection("items")
    running = await hub.serve()
    try:
        await hub.insert("items", {"_id": "d1", "n": 1})
        remote = await edge(running.url, InstrumentedStore(tmp_path / "edge.db"), token="t")
        try:
            items = await remote.sync("items", mode="write")
            await items.wait_ready(timeout=5000 * MS)
            hub_store.fail_when = touches("d1")
            hub_store.times = 2
            await items.update("d1", {"$inc": {"n": 1}})
            await items.wait_drained(timeout=5000 * MS)
            assert hub_store.failures == 2
            assert await hub.store.get("items", "d1") == {"_id": "d1", "n": 2}
            assert hub.revision("items") == 2  # applied once
            assert items.stats.failed == 0 and items.stats.conflicts == 0
        finally:
            await remote.close()
    finally:
        await hub.close()

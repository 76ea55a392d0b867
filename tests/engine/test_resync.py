"""``remote.resync()`` / ``items.resync()``: a full resync on request, stock path and hub path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aioserversync.exceptions import ConfigurationError, InvalidState, SyncTimeout
from aioserversync.stores import MemoryStore, SQLiteStore
from aioserversync.stores.base import Store
from tests.conftest import MS
from tests.engine.conftest import edge, go_offline, server_docs
from tests.engine.test_hub_sync import HubEnv, env, hub_edge
from tests.meteor_app import MeteorApp
from tests.proxy import FaultProxy
from tests.utils import wait_for_condition

__all__ = ["env"]  # the hub fixture, shared with test_hub_sync


async def test_stock_resync_restores_local_edits(
    app: MeteorApp, proxy: FaultProxy, make_store: Callable[..., Store]
) -> None:
    remote = await edge(proxy.url(), make_store())
    try:
        items = await remote.sync("items", mode="read")
        await items.wait_ready(timeout=5000 * MS)
        await items.update("d1", {"$set": {"name": "local edit"}})
        await items.remove("d2")
        await items.insert({"_id": "stray", "x": 1})
        rounds, reconnects = items.stats.resyncs, remote.status.reconnects
        await items.resync(timeout=5000 * MS)
        docs = {d["_id"]: d for d in await items.find({})}
        assert docs["d1"]["name"] == "doc 1"
        assert "d2" in docs
        # A local insert in read mode carries no origin: no remote's sweep touches it.
        assert docs.pop("stray") == {"_id": "stray", "x": 1}
        assert sorted(docs.values(), key=lambda d: d["_id"]) == await server_docs(app)
        assert items.stats.resyncs == rounds + 1
        assert remote.status.reconnects == reconnects + 1
    finally:
        await remote.close()


async def test_resync_waits_for_a_round_started_after_the_request(
    app: MeteorApp, proxy: FaultProxy
) -> None:
    remote = await edge(proxy.url(), MemoryStore())
    try:
        items = await remote.sync("items", mode="read")
        await items.wait_ready(timeout=5000 * MS)
        await go_offline(proxy, remote)
        await items.update("d3", {"$set": {"name": "local edit"}})
        with pytest.raises(SyncTimeout, match="next session"):
            await items.resync(timeout=100 * MS)
        app.remove("items", "d4")
        proxy.restore()
        await items.resync(timeout=5000 * MS)  # the asked resync is the reconnect's round
        docs = {d["_id"]: d for d in await items.find({})}
        assert docs["d3"]["name"] == "doc 3" and "d4" not in docs
    finally:
        await remote.close()


async def test_resync_arguments_are_checked(app: MeteorApp, proxy: FaultProxy) -> None:
    remote = await edge(proxy.url(), MemoryStore())
    items = await remote.sync("items", mode="read")
    await items.wait_ready(timeout=5000 * MS)
    with pytest.raises(ConfigurationError, match="'nope'"):
        await remote.resync("items", "nope")
    await remote.close()
    with pytest.raises(InvalidState):
        await items.resync()
    with pytest.raises(InvalidState):
        await remote.resync()


async def _hub_docs(env: HubEnv) -> dict[str, Any]:
    return {d["_id"]: d for d in await env.docs()}


async def test_hub_resync_pulls_in_full_instead_of_from_the_checkpoint(env: HubEnv) -> None:
    remote = await hub_edge(env, MemoryStore())
    try:
        items = await remote.sync("items", mode="read")
        await items.wait_ready(timeout=5000 * MS)
        assert remote._hub.pulled == 5
        await items.update("d1", {"$set": {"name": "local edit"}})
        await env.hub.update("items", "d0", {"$set": {"n": 100}})

        async def fed() -> bool:
            return (await items.get("d0"))["n"] == 100

        await wait_for_condition(fed, message="the live change")
        before = remote._hub.pulled
        await items.resync(timeout=5000 * MS)
        assert remote._hub.pulled - before == 5  # every document, not the changes since
        mine = {d["_id"]: d for d in await items.find({})}
        assert mine == await _hub_docs(env)
        assert mine["d1"]["name"] == "doc 1"
    finally:
        await remote.close()


async def test_hub_resync_asked_offline_survives_a_restart(env: HubEnv, tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    remote = await hub_edge(env, SQLiteStore(path))
    items = await remote.sync("items", mode="read")
    await items.wait_ready(timeout=5000 * MS)
    await items.update("d2", {"$set": {"name": "local edit"}})
    await go_offline(env.proxy, remote)
    with pytest.raises(SyncTimeout):
        await items.resync(timeout=50 * MS)
    await remote.close()

    env.proxy.restore()
    remote = await hub_edge(env, SQLiteStore(path))
    try:
        items = await remote.sync("items", mode="read")
        await wait_for_condition(lambda: items.is_live, message="live")
        assert remote._hub.pulled == 5  # a full pull, although a checkpoint was stored
        assert (await items.get("d2"))["name"] == "doc 2"
        assert await remote.store.get_meta("resync:app:items") is None
    finally:
        await remote.close()

    # The next start catches up from the checkpoint again.
    remote = await hub_edge(env, SQLiteStore(path))
    try:
        items = await remote.sync("items", mode="read")
        await wait_for_condition(lambda: items.is_live, message="live")
        assert remote._hub.pulled == 0
    finally:
        await remote.close()


@pytest.mark.parametrize("store_kind", ["memory", "sqlite", "mongo"])
async def test_after_a_full_hub_resync_local_writes_push_without_conflict(
    env: HubEnv, make_store: Callable[..., Store]
) -> None:
    """A full pull stages each document with its hub revision: documents that changed while
    the edge was away keep a revision to compare-and-set against. Without it, the next local
    write of such a document was pushed against no revision, refused as a conflict and lost."""
    remote = await hub_edge(env, make_store())
    try:
        items = await remote.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        await go_offline(env.proxy, remote)
        await env.hub.update("items", "d1", {"$set": {"n": 50}})
        env.proxy.restore()
        await items.resync(timeout=5000 * MS)
        assert (await items.get("d1"))["n"] == 50
        await items.update("d1", {"$set": {"name": "edge"}})
        await items.wait_drained(timeout=5000 * MS)
        assert await env.hub.store.get("items", "d1") == {"_id": "d1", "name": "edge", "n": 50}
        assert items.stats.conflicts == 0
        assert {d["_id"]: d for d in await items.find({})} == await _hub_docs(env)
    finally:
        await remote.close()

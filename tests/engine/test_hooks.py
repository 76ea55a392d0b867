"""Sync hooks: what code running inside one may do, and the clear error for what it may not."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aioserversync.stores import MemoryStore
from tests.conftest import MS
from tests.engine.conftest import edge, go_offline, go_online
from tests.utils import wait_for_condition


@pytest.mark.parametrize("mode", ["read", "write"])
async def test_a_sync_hook_may_write_to_a_synced_collection(app, proxy, mode: str) -> None:
    """Hooks run while the engine applies remote data; a write from one runs at once instead of
    waiting in the queue behind the very job that runs the hook (which deadlocked the engine:
    no remote data applied any more, and close() hung)."""
    holder: dict[str, Any] = {}

    async def after(op: str, _id: Any, fields: Any) -> None:
        if op == "added" and not str(_id).startswith("seen-"):
            await holder["items"].insert({"_id": f"seen-{_id}"})
            await holder["items"].update(f"seen-{_id}", {"$set": {"n": 1}})

    remote = await edge(proxy.url(), MemoryStore())
    try:
        items = holder["items"] = await remote.sync("items", mode=mode, after_sync_down=after)
        await items.wait_ready(timeout=5000 * MS)
        app.insert("items", {"_id": "new"})
        await wait_for_condition(lambda: items.get("seen-new"), message="the hook's write")
        app.insert("items", {"_id": "later"})  # the engine still applies remote data
        await wait_for_condition(lambda: items.get("seen-later"), message="the next one")
        assert await items.get("seen-new") == {"_id": "seen-new", "n": 1}
        if mode == "write":
            await items.wait_drained(timeout=5000 * MS)
            assert app.get("items", "seen-later") == {"_id": "seen-later", "n": 1}
    finally:
        await asyncio.wait_for(remote.close(), 10)


async def test_a_sync_hook_may_close_its_remote(app, proxy) -> None:
    store = MemoryStore()
    holder: dict[str, Any] = {}

    async def after(op: str, _id: Any, fields: Any) -> None:
        if _id == "stop":
            await holder["remote"].close()  # returns at once; the close follows the batch

    remote = holder["remote"] = await edge(proxy.url(), store)
    items = await remote.sync("items", mode="read", after_sync_down=after)
    await items.wait_ready(timeout=5000 * MS)
    stream = items.changes()
    app.insert("items", {"_id": "stop"})
    await wait_for_condition(lambda: not store.is_open, message="closed, store included")
    assert remote.closed and not remote.client.connected
    assert [ev.id async for ev in stream] == ["stop"]  # the stream ends
    await remote.close()  # idempotent


async def test_a_hook_waiting_for_its_own_sync_gets_an_error_not_a_hang(app, proxy) -> None:
    """wait_ready() before the first round, wait_drained() with writes pending and resync() from
    a hook wait for progress that waits for the hook: they raise InvalidState at once (each
    call is bounded here, so a hang shows up as SyncTimeout). A task the hook spawns is
    free to wait, and a wait that would not block is allowed."""
    outcomes: dict[str, str] = {}
    spawned: list[asyncio.Task[None]] = []
    holder: dict[str, Any] = {}

    async def attempt(name: str, call: Any) -> None:
        try:
            await call(timeout=1)
            outcomes[name] = "returned"
        except Exception as exc:
            outcomes[name] = type(exc).__name__

    async def before(op: str, _id: Any, fields: Any) -> None:
        items = holder["items"]
        if op == "resync" and "wait_ready" not in outcomes:  # the first round, not applied yet
            await attempt("wait_ready", items.wait_ready)
            await attempt("resync", holder["remote"].resync)

    async def after(op: str, _id: Any, fields: Any) -> None:
        items = holder["items"]
        if _id == "ping":
            await attempt("wait_ready after the round", items.wait_ready)
            await items.insert({"_id": "from-hook"})
            await attempt("wait_drained", items.wait_drained)
            spawned.append(asyncio.create_task(items.wait_drained(timeout=5000 * MS)))

    remote = holder["remote"] = await edge(proxy.url(), MemoryStore())
    try:
        items = holder["items"] = await remote.sync(
            "items", mode="write", before_sync_down=before, after_sync_down=after
        )
        await items.wait_ready(timeout=5000 * MS)
        app.insert("items", {"_id": "ping"})
        await wait_for_condition(lambda: spawned, message="the hook ran")
        await asyncio.wait_for(spawned[0], 5)  # the spawned wait saw the write pushed
        assert app.get("items", "from-hook") == {"_id": "from-hook"}
        assert outcomes == {
            "wait_ready": "InvalidState",
            "resync": "InvalidState",
            "wait_ready after the round": "returned",
            "wait_drained": "InvalidState",
        }
        # The engine is not stuck: remote data still arrives, and resync() outside hooks works.
        app.insert("items", {"_id": "later"})
        await wait_for_condition(lambda: items.get("later"), message="later applied")
        await remote.resync(timeout=5000 * MS)
    finally:
        await asyncio.wait_for(remote.close(), 10)


async def test_an_after_sync_up_hook_waiting_for_the_drain_gets_an_error(app, proxy) -> None:
    outcomes: list[str] = []
    holder: dict[str, Any] = {}

    async def after_up(op: str, _id: Any, doc: Any) -> None:
        if _id == "a":
            await holder["items"].insert({"_id": "from-up-hook"})  # a write left pending
            try:
                await holder["items"].wait_drained(timeout=1)
                outcomes.append("returned")
            except Exception as exc:
                outcomes.append(type(exc).__name__)

    remote = await edge(proxy.url(), MemoryStore())
    try:
        items = holder["items"] = await remote.sync("items", mode="write", after_sync_up=after_up)
        await items.wait_ready(timeout=5000 * MS)
        await go_offline(proxy, remote)
        await items.insert_many([{"_id": "a"}, {"_id": "b"}, {"_id": "c"}])
        await go_online(proxy, items)  # waits for the drain
        await items.wait_drained(timeout=5000 * MS)
        assert outcomes == ["InvalidState"]
        ids = ["a", "b", "c", "from-up-hook"]
        assert [app.get("items", i) for i in ids] == [{"_id": i} for i in ids]
    finally:
        await asyncio.wait_for(remote.close(), 10)

"""Edges against the hub: compare-and-set conflicts, catch-up by checkpoint, idempotent pushes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from aioserversync.asyncio.method_context import WireResult
from aioserversync.exceptions import MeteorError, NotAuthorized
from aioserversync.hub import ServerSyncServer
from aioserversync.stores import MemoryStore, SQLiteStore
from tests.conftest import MS
from tests.engine.conftest import drain_events, edge, go_offline, go_online
from tests.engine.remotes import plain_hub
from tests.proxy import FaultProxy
from tests.utils import wait_for_condition

TOKEN = "edge-token"
SEED = [{"_id": f"d{i}", "name": f"doc {i}", "n": i} for i in range(5)]


class HubEnv:
    def __init__(self, hub: ServerSyncServer, proxy: FaultProxy, tmp: Path) -> None:
        self.hub = hub
        self.proxy = proxy
        self.tmp = tmp

    async def docs(self) -> list[dict[str, Any]]:
        return sorted(await self.hub.store.find("items", {}), key=lambda d: str(d["_id"]))


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[HubEnv]:
    hub = ServerSyncServer(
        SQLiteStore(tmp_path / "hub.db"),
        tokens={TOKEN: "edge"},
        heartbeat_interval=0,
        compression=None,
        purge_interval=0,
    )
    hub.collection("items")
    running = await hub.serve()
    for doc in SEED:
        await hub.insert("items", doc)
    async with FaultProxy(running.port) as proxy:
        yield HubEnv(hub, proxy, tmp_path)
    await hub.close()


async def hub_edge(env: HubEnv, store: Any, **options: Any) -> Any:
    return await edge(env.proxy.url(), store, token=TOKEN, **options)


async def converged(env: HubEnv, items: Any) -> bool:
    mine = sorted(await items.find({}), key=lambda d: str(d["_id"]))
    return mine == await env.docs()


HubAction = Callable[[ServerSyncServer], Awaitable[Any]]
LocalAction = Callable[[Any], Awaitable[Any]]


async def noop(_: Any) -> None:
    return None


ROWS: list[tuple[str, HubAction, LocalAction, str, dict[str, Any] | None, bool]] = [
    (
        "remote insert",
        lambda h: h.insert("items", {"_id": "nr", "v": 1}),
        noop,
        "nr",
        {"v": 1},
        False,
    ),
    ("local insert", noop, lambda i: i.insert({"_id": "nl", "v": 2}), "nl", {"v": 2}, False),
    (
        "remote update",
        lambda h: h.update("items", "d1", {"$set": {"name": "hub"}}),
        noop,
        "d1",
        {"name": "hub", "n": 1},
        False,
    ),
    (
        "local update",
        noop,
        lambda i: i.update("d1", {"$set": {"name": "edge"}}),
        "d1",
        {"name": "edge", "n": 1},
        False,
    ),
    ("remote remove", lambda h: h.remove("items", "d1"), noop, "d1", None, False),
    ("local remove", noop, lambda i: i.remove("d1"), "d1", None, False),
    (
        "update/update",
        lambda h: h.update("items", "d1", {"$set": {"name": "hub"}}),
        lambda i: i.update("d1", {"$set": {"name": "edge"}}),
        "d1",
        {"name": "hub", "n": 1},
        True,
    ),
    (
        "remote update/local remove",
        lambda h: h.update("items", "d1", {"$set": {"name": "hub"}}),
        lambda i: i.remove("d1"),
        "d1",
        {"name": "hub", "n": 1},
        True,
    ),
    (
        "remote remove/local update",
        lambda h: h.remove("items", "d1"),
        lambda i: i.update("d1", {"$set": {"name": "edge"}}),
        "d1",
        None,
        True,
    ),
]


@pytest.mark.parametrize(
    ("label", "remote", "local", "doc_id", "expected", "conflict"), ROWS, ids=[r[0] for r in ROWS]
)
async def test_hub_conflict_table(
    env, make_store, label, remote, local, doc_id, expected, conflict
) -> None:
    r = await hub_edge(env, make_store())
    try:
        items = await r.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        assert items._cs.source == "hub"
        await go_offline(env.proxy, r)
        await remote(env.hub)
        await local(items)
        events = items.changes()
        await go_online(env.proxy, items)
        await wait_for_condition(lambda: converged(env, items), message="convergence")
        got = await env.hub.store.get("items", doc_id)
        assert (None if got is None else {k: v for k, v in got.items() if k != "_id"}) == expected
        conflicts = [e for e in drain_events(events) if e.op == "conflict"]
        assert len(conflicts) == (1 if conflict else 0)
        assert items.stats.pending == 0
    finally:
        await r.close()


async def test_catch_up_transfers_only_what_changed(env) -> None:
    for i in range(5, 300):
        await env.hub.insert("items", {"_id": f"d{i}", "n": i})
    r = await hub_edge(env, MemoryStore())
    try:
        items = await r.sync("items", mode="read")
        await items.wait_ready(timeout=5000 * MS)
        assert await items.count() == 300 and r._hub.pulled == 300
        await go_offline(env.proxy, r)
        for i in range(10):
            await env.hub.update("items", f"d{i}", {"$set": {"n": -i - 1}})
        await env.hub.remove("items", "d299")
        before = r._hub.pulled
        await go_online(env.proxy, items)
        await wait_for_condition(lambda: converged(env, items), message="convergence")
        assert r._hub.pulled - before == 11  # ten changes and one tombstone, not 300 documents
    finally:
        await r.close()


@pytest.mark.parametrize("store_kind", ["sqlite", "memory"])
async def test_pulled_pages_are_described_to_hooks_and_listeners(env, store_kind: str) -> None:
    """A pull page (initial sync, then catch-up) goes to the store in one batch, and each entry
    reaches the sync-down hooks and ``changes()`` as added, changed (only what changed) or
    removed; ``before_sync_down`` runs before the page is stored."""
    store = SQLiteStore(env.tmp / "edge.db") if store_kind == "sqlite" else MemoryStore()
    befores: list[tuple[str, Any, bool]] = []
    afters: list[tuple[str, Any, Any]] = []
    r = await hub_edge(env, store)
    try:

        async def before(op: str, _id: Any, doc: Any) -> None:
            befores.append((op, _id, await items.get(_id) is None))

        async def after(op: str, _id: Any, doc: Any) -> None:
            afters.append((op, _id, doc))

        items = await r.sync("items", mode="read", before_sync_down=before, after_sync_down=after)
        await items.wait_ready(timeout=5000 * MS)
        assert r._hub.pulled == len(SEED)
        seed_ids = sorted(d["_id"] for d in SEED)
        assert sorted(_id for op, _id, _ in afters if op == "added") == seed_ids
        assert all(absent for op, _, absent in befores if op == "added")  # not stored yet
        events = items.changes()
        await go_offline(env.proxy, r)
        await env.hub.update("items", "d2", {"$set": {"name": "two"}, "$unset": {"n": 1}})
        await env.hub.remove("items", "d3")
        await env.hub.insert("items", {"_id": "x", "v": 1})
        afters.clear()
        befores.clear()
        await go_online(env.proxy, items)
        got: list[Any] = []

        def three() -> bool:
            got.extend(drain_events(events))
            return len(got) >= 3

        await wait_for_condition(three, message="three events")
        assert r._hub.pulled == len(SEED) + 3
        assert sorted((e.op, e.id) for e in got) == [
            ("added", "x"),
            ("changed", "d2"),
            ("removed", "d3"),
        ]
        changed = next(e for e in got if e.op == "changed")
        assert changed.fields == {"name": "two"} and tuple(changed.cleared) == ("n",)
        assert sorted((op, _id) for op, _id, _ in afters) == [
            ("added", "x"),
            ("changed", "d2"),
            ("removed", "d3"),
        ]
        assert ("added", "x", True) in befores
        assert await items.get("d3") is None and (await items.get("x")) == {"_id": "x", "v": 1}
    finally:
        await r.close()


async def test_race_between_pull_and_push_is_a_conflict_not_a_lost_update(env) -> None:
    async def sneak_in(op: str, _id: Any, doc: Any) -> None:
        # The hub changes the document after the edge based its change on it, just before the
        # push leaves: compare-and-set must refuse the push.
        if _id == "d2":
            await env.hub.update("items", "d2", {"$set": {"name": "hub wins"}})

    r = await hub_edge(env, MemoryStore())
    try:
        items = await r.sync("items", mode="write", before_sync_up=sneak_in)
        await items.wait_ready(timeout=5000 * MS)
        events = items.changes()
        await items.update("d2", {"$set": {"name": "edge"}})
        await items.wait_drained(timeout=5000 * MS)
        await wait_for_condition(lambda: converged(env, items), message="convergence")
        assert (await env.hub.store.get("items", "d2"))["name"] == "hub wins"
        assert [e.id for e in drain_events(events) if e.op == "conflict"] == ["d2"]
    finally:
        await r.close()


async def test_push_whose_result_is_lost_is_resent_and_applied_once(env) -> None:
    handlers = env.hub.ddp._methods
    original = handlers["serversync/push"]
    dropped: list[int] = []

    async def drop_after_apply(ctx: Any, *params: Any) -> Any:
        # Fault injection: the hub applies the push, then the link drops before `result`.
        result = await original(ctx, *params)
        if not dropped:
            dropped.append(1)
            ctx.connection.close(1011, "fault injection")
        return result

    handlers["serversync/push"] = drop_after_apply
    r = await hub_edge(env, MemoryStore())
    try:
        items = await r.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        rev = env.hub.revision("items")
        await items.update("d3", {"$inc": {"n": 10}})
        await items.insert({"_id": "once"})
        await items.wait_drained(timeout=5000 * MS)
        assert dropped
        assert (await env.hub.store.get("items", "d3"))["n"] == 13
        assert env.hub.revision("items") == rev + 2  # two changes, each applied once
        assert await converged(env, items)
        assert items.stats.conflicts == 0
    finally:
        await r.close()


async def test_push_left_unanswered_drops_the_link_and_is_resent_once(env) -> None:
    handlers = env.hub.ddp._methods
    original = handlers["serversync/push"]
    hung: list[int] = []

    async def hang_once(ctx: Any, *params: Any) -> Any:
        # Fault injection: the first push never gets an answer (the session stays up).
        if not hung:
            hung.append(1)
            await asyncio.Event().wait()  # cancelled when the session ends
        return await original(ctx, *params)

    handlers["serversync/push"] = hang_once
    r = await hub_edge(env, MemoryStore(), push_timeout=0.3)
    try:
        items = await r.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        rev = env.hub.revision("items")
        before = r.client.stats.reconnects
        await items.update("d3", {"$inc": {"n": 10}})
        await items.wait_drained(timeout=5000 * MS)
        assert hung
        assert r.client.stats.reconnects > before  # dropped after push_timeout, then resent
        assert (await env.hub.store.get("items", "d3"))["n"] == 13
        assert env.hub.revision("items") == rev + 1
        assert await converged(env, items)
        assert items.stats.conflicts == 0
    finally:
        await r.close()


@asynccontextmanager
async def short_memory_hub() -> AsyncIterator[tuple[ServerSyncServer, FaultProxy]]:
    """A hub keeping one revision of tombstones (a purge forgets the rest, and the mutation ids
    with them), with the seed documents, behind a proxy; closed on exit."""
    hub = plain_hub(tombstone_retention=1, purge_interval=0)
    running = await hub.serve()
    for doc in SEED:
        await hub.insert("items", doc)
    try:
        async with FaultProxy(running.port) as proxy:
            yield hub, proxy
    finally:
        await hub.close()


async def test_expired_checkpoint_falls_back_to_a_full_resync(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="aioserversync")
    async with short_memory_hub() as (hub, proxy):
        r = await edge(proxy.url(), SQLiteStore(str(tmp_path / "e.db")))
        items = await r.sync("items", mode="read")
        await items.wait_ready(timeout=5000 * MS)
        await go_offline(proxy, r)
        await hub.remove("items", "d4")
        await hub.insert("items", {"_id": "d9"})
        await hub.purge("items")  # forgets the tombstone of d4
        await go_online(proxy, items)
        await wait_for_condition(
            lambda: items.get("d9"), message="resynced after the expired checkpoint"
        )
        assert await items.get("d4") is None  # swept by the full resync
        assert any("resyncing in full" in rec.getMessage() for rec in caplog.records)
        await r.close()


async def test_wrong_token_is_refused(env) -> None:
    r = await edge(env.proxy.url(), MemoryStore(), token="wrong")
    try:
        items = await r.sync("items", mode="read")
        with pytest.raises(NotAuthorized):
            await items.wait_ready(timeout=5000 * MS)
        assert await items.count() == 0
        assert isinstance(r.status.login_error, NotAuthorized) and r.status.user_id is None
    finally:
        await r.close()


async def test_live_hub_changes_are_reported_as_added_changed_and_removed(env) -> None:
    # The feed carries whole documents; listeners still see what kind of change each one was.
    downs: list[tuple[str, Any, Any]] = []

    async def hook(op: str, _id: Any, doc: Any) -> None:
        downs.append((op, _id, doc))

    r = await hub_edge(env, SQLiteStore(Path(env.hub.store.path).parent / "edge.db"))
    try:
        items = await r.sync("items", mode="read", after_sync_down=hook)
        await items.wait_ready(timeout=5000 * MS)
        events = items.changes()
        await env.hub.insert("items", {"_id": "x", "v": 1})
        await env.hub.update("items", "d2", {"$set": {"name": "two"}, "$unset": {"n": 1}})
        await env.hub.remove("items", "d3")
        got: list[Any] = []

        def three() -> bool:
            got.extend(drain_events(events))
            return len(got) >= 3

        await wait_for_condition(three, message="three events")
        assert [(e.op, e.id) for e in got] == [("added", "x"), ("changed", "d2"), ("removed", "d3")]
        assert got[0].fields == {"v": 1}
        assert got[1].fields == {"name": "two"} and tuple(got[1].cleared) == ("n",)
        assert [(op, _id) for op, _id, _ in downs[-3:]] == [
            ("added", "x"),
            ("changed", "d2"),
            ("removed", "d3"),
        ]
    finally:
        await r.close()


@pytest.mark.parametrize("store_kind", ["sqlite", "memory"])
async def test_a_full_pull_goes_past_tombstones_purged_before_it(tmp_path, store_kind) -> None:
    """A hub that purged old tombstones still serves a full pull of many pages: the pull's later
    pages carry the purge mark of its first one, and tombstones purged before it started do not
    expire it (otherwise every pull that needs a second page would get 410). Both a first sync
    into an empty cache and a full resync into one that holds documents."""
    hub = plain_hub(tombstone_retention=1, purge_interval=0)
    hub.max_pull = 2
    running = await hub.serve()
    for i in range(10):
        await hub.insert("items", {"_id": f"d{i}", "n": i})
    await hub.remove("items", "d9")
    await hub.insert("items", {"_id": "late"})
    await hub.purge("items")
    assert hub.collections["items"].purged > 2  # past the first page
    store = SQLiteStore(tmp_path / "e.db") if store_kind == "sqlite" else MemoryStore()
    try:
        r = await edge(f"ws://127.0.0.1:{running.port}/websocket", store)
        try:
            items = await r.sync("items", mode="read")
            await items.wait_ready(timeout=5000 * MS)
            assert sorted(d["_id"] for d in await items.find({})) == [
                *(f"d{i}" for i in range(9)),
                "late",
            ]
            await hub.update("items", "d1", {"$set": {"n": 100}})
            await items.resync(timeout=5000 * MS)
            assert await items.get("d1") == {"_id": "d1", "n": 100}
            assert await items.count() == 10
        finally:
            await r.close()
    finally:
        await hub.close()


def after_first_pull(hub: ServerSyncServer, *new_ids: str) -> list[bool]:
    """Wrap the hub's pull handler (fault injection): once the first pull from 0 is answered,
    remove ``d0``, insert ``new_ids`` and purge (so d0's tombstone goes). The returned list
    holds ``True`` once that ran."""
    pull = hub.ddp._methods["serversync/pull"]
    done: list[bool] = []

    async def pull_then_purge(ctx: Any, *params: Any) -> Any:
        result = await pull(ctx, *params)
        if params[1] == 0 and not done:
            await hub.remove("items", "d0")
            for doc_id in new_ids:
                await hub.insert("items", {"_id": doc_id})
            await hub.purge("items")
            done.append(True)
        return result

    hub.ddp._methods["serversync/pull"] = pull_then_purge
    return done


async def test_a_purge_that_overtakes_a_full_pull_starts_it_again(tmp_path, caplog) -> None:
    """A document read by a full pull, then removed, its tombstone purged before the pull got
    to it: the hub answers 410 and the pull starts over, so the document is not kept."""
    caplog.set_level(logging.WARNING, logger="aioserversync")
    hub = plain_hub(tombstone_retention=1, purge_interval=0)
    hub.max_pull = 2
    running = await hub.serve()
    for i in range(6):
        await hub.insert("items", {"_id": f"d{i}", "n": i})
    purged_once = after_first_pull(hub, "after")  # d0 was read in that first page
    try:
        r = await edge(f"ws://127.0.0.1:{running.port}/websocket", SQLiteStore(tmp_path / "e.db"))
        try:
            items = await r.sync("items", mode="read")
            await items.wait_ready(timeout=5000 * MS)
            assert purged_once
            assert await items.get("d0") is None
            assert sorted(d["_id"] for d in await items.find({})) == [
                "after",
                *(f"d{i}" for i in range(1, 6)),
            ]
            assert any("overtook the full pull" in m for m in caplog.messages)
        finally:
            await r.close()
    finally:
        await hub.close()


async def test_a_change_feed_ended_by_410_catches_up_again(tmp_path, caplog) -> None:
    """Tombstones purged between the end of a pull and the start of the change feed expire the
    feed's checkpoint: the hub ends it with 410, and the edge catches up again (in full) instead
    of never going live."""
    caplog.set_level(logging.WARNING, logger="aioserversync")
    hub = plain_hub(tombstone_retention=1, purge_interval=0)
    running = await hub.serve()
    for i in range(4):
        await hub.insert("items", {"_id": f"d{i}", "n": i})
    # After the last (only) page: the feed will start from a checkpoint the purge expired.
    after_first_pull(hub, "x1", "x2")
    try:
        r = await edge(f"ws://127.0.0.1:{running.port}/websocket", SQLiteStore(tmp_path / "e.db"))
        try:
            items = await r.sync("items", mode="read")
            await items.wait_ready(timeout=5000 * MS)
            await wait_for_condition(lambda: items.get("x2"), message="caught up again")
            assert await items.get("d0") is None
            assert items.is_live
            assert any("catching up again" in m for m in caplog.messages)
        finally:
            await r.close()
    finally:
        await hub.close()


async def test_a_change_feed_refused_by_the_hub_is_reported(tmp_path) -> None:
    """A change feed the hub ends with another error than 410 (here a 403, as after a change of
    permissions) is a refusal: ``wait_ready()`` raises it, and the collection is not live."""
    hub = plain_hub()
    _real, strategy = hub.ddp._publications["serversync/changes"]

    async def refused(pub: Any, *params: Any) -> None:  # fault injection: the feed refuses
        raise MeteorError(403, "Access denied")

    hub.ddp._publications["serversync/changes"] = (refused, strategy)
    running = await hub.serve()
    await hub.insert("items", {"_id": "d0"})
    try:
        r = await edge(f"ws://127.0.0.1:{running.port}/websocket", MemoryStore())
        try:
            items = await r.sync("items", mode="read")
            with pytest.raises(MeteorError) as err:
                await items.wait_ready(timeout=5000 * MS)
            assert err.value.error == 403
            assert not items.is_live
        finally:
            await r.close()
    finally:
        await hub.close()


class GatedStore(MemoryStore):
    """A real MemoryStore whose staging batches wait at a gate while it is closed (a slow store,
    made on demand: instrumentation, not a mock)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.held = asyncio.Event()

    async def apply(self, batch: Any) -> Any:
        ops = list(batch)
        if not self.gate.is_set() and any(type(op).__name__.startswith("Stage") for op in ops):
            self.held.set()
            await self.gate.wait()
        return await super().apply(ops)


async def test_a_catch_up_cut_while_its_store_is_busy_runs_again_in_the_next_session(
    env,
) -> None:
    """The link drops while a full pull (a resync) waits for its store. The next session must
    catch the collection up again: the resync completes, the collection goes live and follows
    the hub's changes."""
    env.hub.max_pull = 2
    store = GatedStore()
    r = await hub_edge(env, store)
    try:
        items = await r.sync("items", mode="read")
        await items.wait_ready(timeout=5000 * MS)
        store.gate.clear()
        resync = asyncio.ensure_future(items.resync(timeout=5000 * MS))
        await asyncio.wait_for(store.held.wait(), 5000 * MS)  # a staged page waits
        connects = r.client.stats.reconnects
        env.proxy.cut()
        await wait_for_condition(lambda: r.client.stats.reconnects > connects, message="back")
        await env.hub.update("items", "d2", {"$set": {"name": "two"}})
        store.gate.set()
        await resync
        await wait_for_condition(lambda: items.is_live, message="live again")
        await wait_for_condition(lambda: converged(env, items), message="caught up")
    finally:
        store.gate.set()
        await r.close()


@pytest.mark.parametrize("store_kind", ["sqlite", "memory"])
async def test_a_full_resync_through_the_hub_keeps_to_the_query(env, store_kind: str) -> None:
    """A ``query=`` mirror resynced in full through the hub (pulled in pages, staged as a round
    into a cache that holds documents) keeps only the documents that match."""
    env.hub.max_pull = 2  # pages of 2 documents
    store = SQLiteStore(env.tmp / "edge.db") if store_kind == "sqlite" else MemoryStore()
    r = await hub_edge(env, store)
    try:
        items = await r.sync("items", mode="read", query={"n": {"$gte": 3}})
        await items.wait_ready(timeout=5000 * MS)
        assert sorted(d["_id"] for d in await items.find({})) == ["d3", "d4"]
        await env.hub.update("items", "d1", {"$set": {"n": 7}})  # now matches
        await items.resync(timeout=5000 * MS)
        assert sorted(d["_id"] for d in await items.find({})) == ["d1", "d3", "d4"]
        assert await items.get("d1") == {"_id": "d1", "name": "doc 1", "n": 7}
    finally:
        await r.close()


@pytest.mark.parametrize("store_kind", ["sqlite", "memory"])
async def test_a_document_removed_during_a_full_resync_is_not_kept(env, store_kind: str) -> None:
    """A full resync into a cache that holds documents pulls page after page. A document pulled
    in the first page and removed on the hub before the last one comes back as a tombstone in a
    later page: the round must not keep it (the feed then starts past that tombstone and would
    never remove it)."""
    pull = env.hub.ddp._methods["serversync/pull"]  # fault injection: wrap the real handler
    resyncing = asyncio.Event()
    removed: list[str] = []

    async def pull_then_remove(ctx: Any, *params: Any) -> Any:
        result = await pull(ctx, *params)
        if resyncing.is_set() and params[1] == 0 and not removed:
            first = orjson.loads(result.value if isinstance(result, WireResult) else result)
            if first.get("page"):
                doc_id = next(iter(orjson.loads(first["page"]))).split(":", 1)[1]
            else:
                doc_id = first["docs"][0][0]
            await env.hub.remove("items", doc_id)  # after the page with it was read
            removed.append(doc_id)
        return result

    env.hub.ddp._methods["serversync/pull"] = pull_then_remove
    env.hub.max_pull = 2  # pages of 2 documents
    store = SQLiteStore(env.tmp / "edge.db") if store_kind == "sqlite" else MemoryStore()
    r = await hub_edge(env, store)
    try:
        items = await r.sync("items", mode="read")
        await items.wait_ready(timeout=5000 * MS)
        resyncing.set()
        await items.resync(timeout=5000 * MS)
        assert removed and await env.hub.store.get("items", removed[0]) is None
        assert await items.get(removed[0]) is None
        assert await converged(env, items)
    finally:
        await r.close()


@pytest.mark.parametrize(
    ("store_kind", "form"), [("sqlite", "page"), ("sqlite", "text"), ("memory", "text")]
)
async def test_pull_entries_are_checked_in_every_form(
    env, caplog, store_kind: str, form: str
) -> None:
    """The hub's pages come in the page form, or the text form (each document's fields as JSON
    text) from a hub without it or into a store that does not read page text. Entries that are
    not the JSON of an object, or not valid EJSON, are logged and skipped, whatever their form;
    valid EJSON other than dates passes the slower per-entry check that a suspect page gets."""
    pull = env.hub.ddp._methods["serversync/pull"]  # fault injection: wrap the real handler
    seen_options: list[Any] = []
    if form == "text":  # a hub without the page form
        capabilities = env.hub.ddp._methods["serversync/capabilities"]

        async def older(ctx: Any, *params: Any) -> Any:
            caps = await capabilities(ctx, *params)
            return {**caps, "features": [f for f in caps["features"] if f != "pull-page"]}

        env.hub.ddp._methods["serversync/capabilities"] = older

    async def mixed_pull(ctx: Any, *params: Any) -> Any:
        seen_options.append(params[3] if len(params) > 3 else None)
        result = await pull(ctx, *params)
        page = orjson.loads(result.value)
        if params[1] == 0:
            page["docs"] = [
                ["t1", 1, "[1]"],
                ["t2", 1, '{"a": 1'],
                ["t3", 1, '{"d": {"$date": "soon"}}'],
                ["t4", 1, {"d": {"$date": "soon"}}],
                ["b1", 1, '{"bin": {"$binary": "AQI="}, "at": {"$date": 5}}'],
                ["o1", 1, {"obj": {"$date": 6}}],
                *page["docs"],
            ]
        return WireResult(orjson.dumps(page))  # as it is on the wire (no EJSON escaping)

    env.hub.ddp._methods["serversync/pull"] = mixed_pull
    store = SQLiteStore(env.tmp / "edge.db") if store_kind == "sqlite" else MemoryStore()
    r = await hub_edge(env, store)
    try:
        with caplog.at_level(logging.WARNING, logger="aioserversync"):
            items = await r.sync("items", mode="read")
            await items.wait_ready(timeout=5000 * MS)
        assert seen_options[0] == {form: True}
        assert r._hub.pulled == len(SEED) + 2
        assert sum("malformed pull entry" in m for m in caplog.messages) == 2
        assert sum("invalid EJSON" in m for m in caplog.messages) == 2
        assert await items.find_one({"_id": "b1"}) == {
            "_id": "b1",
            "bin": b"\x01\x02",
            "at": datetime(1970, 1, 1, 0, 0, 0, 5000, tzinfo=UTC),
        }
        assert await items.find_one({"_id": "o1"}) == {
            "_id": "o1",
            "obj": datetime(1970, 1, 1, 0, 0, 0, 6000, tzinfo=UTC),
        }
        assert {d["_id"] for d in await items.find({})} == {d["_id"] for d in SEED} | {"b1", "o1"}
        assert await items.find_one({"_id": "d3"}) == SEED[3]
    finally:
        await r.close()


async def test_malformed_pull_entries_are_skipped_and_logged(env, caplog) -> None:
    """A misbehaving hub: its pull pages carry malformed entries among good ones. The good ones
    are applied (with the checkpoint), each bad one is logged and skipped, and nothing raises."""
    pull = env.hub.ddp._methods["serversync/pull"]  # fault injection: wrap the real handler

    async def bad_pull(ctx: Any, *params: Any) -> Any:
        result = await pull(ctx, *params)
        page = orjson.loads(result.value)
        page["docs"] = [
            ["x1", "not-a-rev", {}],
            [42, 1, {}],
            ["x2", 1, "not-an-object"],
            ["x3", True, {}],
            "junk",
            *page["docs"],
        ]
        return page

    env.hub.ddp._methods["serversync/pull"] = bad_pull
    r = await hub_edge(env, SQLiteStore(env.tmp / "edge.db"))
    try:
        with caplog.at_level(logging.WARNING, logger="aioserversync"):
            items = await r.sync("items", mode="read")
            await items.wait_ready(timeout=5000 * MS)
        assert await converged(env, items)
        assert r._hub.pulled == len(SEED)
        assert sum("malformed pull entry" in m for m in caplog.messages) == 5
        await env.hub.update("items", "d1", {"$set": {"n": 100}})
        await wait_for_condition(lambda: converged(env, items), message="live feed after pull")
    finally:
        await r.close()

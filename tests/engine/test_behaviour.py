"""Engine behaviours beyond the conflict table: read mode, outbox outcomes, events, ordering."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from aioserversync.asyncio.one_call import sync
from aioserversync.asyncio.sync import ServerSync
from aioserversync.exceptions import (
    ConnectionClosedError,
    MeteorError,
    SyncTimeout,
    WriteOutcomeUnknown,
)
from aioserversync.stores import MemoryStore, SQLiteStore
from tests.conftest import MS
from tests.engine.conftest import (
    EDGE_OPTIONS,
    converged,
    drain_events,
    edge,
    go_offline,
    go_online,
)
from tests.meteor_app import MeteorApp
from tests.proxy import FaultProxy
from tests.utils import wait_for_condition

MUTATORS = ("/items/insert", "/items/update", "/items/remove")


# ----------------------------------------------------------------- read mode


async def test_read_mirrors_and_never_sends_local_writes(app, proxy, make_store) -> None:
    remote = await edge(proxy.url(), make_store())
    try:
        items = await remote.sync("items", mode="read")
        await items.wait_ready(timeout=5000 * MS)
        assert await items.count() == 5
        await items.insert({"_id": "local", "x": 1})
        await items.update("d1", {"$set": {"name": "local edit"}})
        await items.remove("d2")
        assert await items.get("local") == {"_id": "local", "x": 1}
        assert sum(app.calls[m] for m in MUTATORS) == 0
        assert items.stats.pending == 0
        # A remote change overwrites the local edit.
        stream = items.changes()
        app.update("items", "d1", {"$set": {"name": "server"}})
        ev = await stream.next(timeout=2000 * MS)
        assert (ev.op, ev.id, ev.fields, ev.source) == (
            "changed",
            "d1",
            {"name": "server"},
            "remote",
        )
        assert (await items.get("d1"))["name"] == "server"
    finally:
        await remote.close()


async def test_read_shared_collection_keeps_origins_and_sweeps_per_remote(make_store) -> None:
    a, b = MeteorApp(), MeteorApp()
    a.add_collection("items", [{"_id": "a1", "v": 1}, {"_id": "a2", "v": 2}])
    b.add_collection("items", [{"_id": "b1", "v": 3}])
    await a.start()
    await b.start()
    store = make_store()
    await store.open()
    try:
        async with FaultProxy(a.port) as pa:
            ra = await edge(pa.url(), store, name="A")
            rb = await edge(f"http://127.0.0.1:{b.port}", store, name="B")
            ia = await ra.sync("items", mode="read", local="merged")
            ib = await rb.sync("items", mode="read", local="merged")
            await ia.wait_ready(timeout=5000 * MS)
            await ib.wait_ready(timeout=5000 * MS)
            assert sorted(d["_id"] for d in await ia.find({})) == ["a1", "a2", "b1"]
            metas = await store.get_meta_many("merged", ["a1", "b1"])
            assert (metas["a1"].origin, metas["b1"].origin) == ("A", "B")
            # A removes a1 while its link is down; its resync sweeps only A's documents.
            await go_offline(pa, ra)
            a.remove("items", "a1")
            await go_online(pa, ia)
            assert sorted(d["_id"] for d in await ib.find({})) == ["a2", "b1"]
            await ra.close()
            await rb.close()
    finally:
        await store.close()
        await a.stop()
        await b.stop()


async def test_query_filter_limits_what_is_mirrored(app, proxy, make_store) -> None:
    remote = await edge(proxy.url(), make_store())
    try:
        items = await remote.sync("items", mode="read", query={"n": {"$gte": 3}})
        await items.wait_ready(timeout=5000 * MS)
        app.insert("items", {"_id": "big", "n": 10})
        app.insert("items", {"_id": "small", "n": 0})
        app.update("items", "d4", {"$set": {"n": 1}})  # leaves the filter: removed locally
        await wait_for_condition(lambda: items.get("big"), message="big mirrored")
        await remote._sync_barrier()
        assert sorted(d["_id"] for d in await items.find({})) == ["big", "d3"]
    finally:
        await remote.close()


async def test_query_filter_judges_live_changes_and_removals(app, proxy, make_store) -> None:
    remote = await edge(proxy.url(), make_store())
    try:
        items = await remote.sync("items", mode="read", query={"n": {"$gte": 3}})
        await items.wait_ready(timeout=5000 * MS)
        app.insert("items", {"_id": "big", "n": 10})
        await wait_for_condition(lambda: items.get("big"), message="big mirrored")
        # Mirrored documents changed: one still matches (patched, a field cleared), one no
        # longer does because its filtered field was cleared (removed locally).
        app.update("items", "d4", {"$set": {"n": 8}, "$unset": {"name": ""}})
        app.update("items", "d3", {"$unset": {"n": ""}})
        # An unmirrored one changed and still not matching: nothing to do.
        app.update("items", "d0", {"$set": {"n": 2}})
        # A mirrored one removed on the server: removed locally.
        app.remove("items", "big")

        async def big_gone() -> bool:
            return await items.get("big") is None

        await wait_for_condition(big_gone, message="big removed")
        await remote._sync_barrier()
        assert await items.find({}) == [{"_id": "d4", "n": 8}]
        # A ``changed`` carries only the changed fields, so an unmirrored document that comes to
        # match is not seen from it; the next resync round sends it whole.
        app.update("items", "d1", {"$set": {"n": 30}})
        await remote._sync_barrier()
        assert await items.get("d1") is None
        await items.resync(timeout=5000 * MS)
        assert sorted(d["_id"] for d in await items.find({})) == ["d1", "d4"]
    finally:
        await remote.close()


# ----------------------------------------------------------------- outbox outcomes


async def test_unknown_insert_outcome_is_reconciled_not_duplicated(app, proxy, make_store) -> None:
    app.drop_after_apply.add("/items/insert")
    remote = await edge(proxy.url(), make_store())
    try:
        items = await remote.sync("items")
        await items.wait_ready(timeout=5000 * MS)
        await items.insert({"_id": "x1", "v": 1})
        # The server applies it, then the link drops before `result`; the edge reconnects and
        # finds the document in the resync round.
        await wait_for_condition(lambda: app.applied[("items", "insert", "x1")] == 1)
        app.drop_after_apply.clear()
        await items.wait_drained(timeout=5000 * MS)
        assert app.applied[("items", "insert", "x1")] == 1
        assert app.calls["/items/insert"] == 1
        assert await converged(app, items)
    finally:
        await remote.close()


async def test_unknown_update_outcome_is_settled_once(app, proxy) -> None:
    app.drop_after_apply.add("/items/update")
    remote = await edge(proxy.url(), MemoryStore())
    try:
        items = await remote.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        await items.update("d3", {"$inc": {"n": 10}})
        await wait_for_condition(lambda: app.applied[("items", "update", "d3")] == 1)
        app.drop_after_apply.clear()
        await items.wait_drained(timeout=5000 * MS)
        assert app.get("items", "d3")["n"] == 13  # applied once, not twice
        assert app.calls["/items/update"] == 1
        assert await converged(app, items)
    finally:
        await remote.close()


@pytest.mark.parametrize(("mode", "method"), [("online-write", "insert"), ("write", "update")])
async def test_a_push_left_unanswered_drops_the_link_and_is_decided_once(
    app, proxy, mode: str, method: str
) -> None:
    # The server applies the write and never answers; its session (and heartbeats) stay up.
    app.hang_after_apply.add(f"/items/{method}")
    remote = await edge(proxy.url(), MemoryStore(), push_timeout=0.3)
    try:
        items = await remote.sync("items", mode=mode)
        await items.wait_ready(timeout=5000 * MS)
        before = remote.client.stats.reconnects
        if method == "insert":
            await items.insert({"_id": "x1", "v": 1})
        else:
            await items.update("d3", {"$inc": {"n": 10}})
        doc_id = "x1" if method == "insert" else "d3"
        await wait_for_condition(lambda: app.applied[("items", method, doc_id)] == 1)
        app.hang_after_apply.clear()
        # Past push_timeout the edge drops the link; the resync round shows the write applied.
        await items.wait_drained(timeout=5000 * MS)
        assert remote.client.stats.reconnects > before
        assert isinstance(remote.client.stats.last_error, ConnectionClosedError)
        assert "no answer" in str(remote.client.stats.last_error)
        assert app.applied[("items", method, doc_id)] == 1
        assert app.calls[f"/items/{method}"] == 1
        if method == "update":
            assert app.get("items", "d3")["n"] == 13
        assert await converged(app, items)
    finally:
        await remote.close()


async def test_an_unanswered_online_write_update_is_reported_as_unknown(app, proxy) -> None:
    # The server applies the update and never answers (its session stays up).
    app.hang_after_apply.add("/items/update")
    remote = await edge(proxy.url(), MemoryStore(), push_timeout=0.3)
    try:
        items = await remote.sync("items", mode="online-write")
        await items.wait_ready(timeout=5000 * MS)
        with pytest.raises(WriteOutcomeUnknown, match="no answer"):
            await items.update("d3", {"$inc": {"n": 10}})
        assert app.applied[("items", "update", "d3")] == 1

        async def shows_it() -> bool:
            return (await items.get("d3"))["n"] == 13

        await wait_for_condition(shows_it, message="the server's data reached the cache")
    finally:
        app.hang_after_apply.clear()
        await remote.close()


async def test_permanent_rejection_dead_letters_reverts_and_reports(app, proxy, make_store) -> None:
    app.deny["items"] = lambda op, _id, doc: op == "update"
    remote = await edge(proxy.url(), make_store())
    try:
        items = await remote.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        stream = items.changes()
        await items.update("d1", {"$set": {"name": "forbidden"}})
        await items.wait_drained(timeout=5000 * MS)
        assert items.stats.failed == 1 and items.stats.rejected == 1
        failed = await items.failed()
        assert [(r.doc_id, r.op, r.state) for r in failed] == [("d1", "update", "failed")]
        assert failed[0].error["error"] == 403
        assert (await items.get("d1"))["name"] == "doc 1"  # the remote's version stands
        evs = [e for e in drain_events(stream) if e.op == "rejected"]
        assert len(evs) == 1 and evs[0].error is not None and evs[0].id == "d1"
        # Never retried: a later push of something else does not resend it.
        await items.insert({"_id": "later"})
        await items.wait_drained(timeout=5000 * MS)
        assert app.calls["/items/update"] == 1
    finally:
        await remote.close()


async def test_transient_failures_are_retried_with_backoff(app, proxy) -> None:
    app.fail_next["/items/insert"] = [MeteorError(500, "Internal server error")] * 2
    remote = await edge(proxy.url(), MemoryStore())
    try:
        items = await remote.sync("items")
        await items.wait_ready(timeout=5000 * MS)
        await items.insert({"_id": "r1"})
        await items.wait_drained(timeout=5000 * MS)
        assert app.calls["/items/insert"] == 3
        assert app.applied[("items", "insert", "r1")] == 1
        assert items.stats.failed == 0
    finally:
        await remote.close()


async def test_offline_updates_coalesce_into_one_push(app, proxy, make_store) -> None:
    remote = await edge(proxy.url(), make_store())
    try:
        items = await remote.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        await go_offline(proxy, remote)
        for i in range(3):
            await items.update("d2", {"$inc": {"n": 1}, "$set": {f"f{i}": i}})
        assert items.stats.pending == 1
        await items.insert({"_id": "tmp"})
        await items.remove("tmp")  # never existed remotely: nothing to push
        await go_online(proxy, items)
        assert app.calls["/items/update"] == 1 and app.calls["/items/insert"] == 0
        assert app.get("items", "d2") == {
            "_id": "d2",
            "name": "doc 2",
            "n": 5,
            "f0": 0,
            "f1": 1,
            "f2": 2,
        }
        assert await converged(app, items)
    finally:
        await remote.close()


async def test_remote_changes_are_applied_before_local_ones_are_pushed(app, proxy) -> None:
    log: list[str] = []
    remote = await edge(proxy.url(), MemoryStore())
    try:
        items = await remote.sync(
            "items",
            mode="write",
            before_sync_down=lambda op, _id, doc: log.append(f"down:{op}"),
            after_sync_down=lambda op, _id, doc: log.append(f"applied:{op}:{_id}"),
            before_sync_up=lambda op, _id, doc: log.append(f"up:{op}:{_id}"),
            after_sync_up=lambda op, _id, doc: log.append(f"pushed:{op}:{_id}"),
        )
        await items.wait_ready(timeout=5000 * MS)
        await go_offline(proxy, remote)
        log.clear()
        app.update("items", "d0", {"$set": {"name": "remote"}})
        await items.insert({"_id": "mine"})
        await go_online(proxy, items)
        assert (
            log.index("down:resync") < log.index("applied:changed:d0") < log.index("up:insert:mine")
        )
        assert log[-1] == "pushed:insert:mine"
    finally:
        await remote.close()


# ----------------------------------------------------------------- readiness and events


async def test_wait_ready_times_out_and_stale_until_confirmed() -> None:
    remote = ServerSync("http://127.0.0.1:9", store=MemoryStore(), **EDGE_OPTIONS)
    async with remote:
        items = await remote.sync("items")
        assert items.is_stale and not items.is_live
        with pytest.raises(SyncTimeout):
            await items.wait_ready(timeout=50 * MS)
        # Offline inserts are accepted and queued.
        await items.insert({"_id": "q"})
        assert items.stats.pending == 1 and await items.get("q") == {"_id": "q"}


async def test_subscription_error_surfaces_from_wait_ready(app) -> None:
    from aioserversync.exceptions import SubscriptionNotFound

    async with ServerSync(
        f"http://127.0.0.1:{app.port}", store=MemoryStore(), **EDGE_OPTIONS
    ) as remote:
        missing = await remote.sync("nothere")
        with pytest.raises(SubscriptionNotFound):
            await missing.wait_ready(timeout=5000 * MS)


async def test_change_stream_overflow_gives_one_resync_and_ends_on_close(app, proxy) -> None:
    remote = await edge(proxy.url(), MemoryStore())
    items = await remote.sync("items", mode="read")
    await items.wait_ready(timeout=5000 * MS)
    small = items.changes(max_queue=3)
    for i in range(10):
        app.update("items", "d0", {"$set": {"n": 100 + i}})
    await wait_for_condition(lambda: small.dropped > 0, message="overflow")
    await remote._sync_barrier()
    got = drain_events(small)
    assert [e.op for e in got] == ["resync"]
    collected: list[Any] = []

    async def consume() -> None:
        async for ev in small:
            collected.append(ev)

    task = asyncio.create_task(consume())
    await remote.close()
    async with asyncio.timeout(2000 * MS):
        await task  # iteration ends cleanly at close
    assert not small.alive


async def test_top_level_sync_owns_its_remote(app) -> None:
    items = await sync(
        f"http://127.0.0.1:{app.port}", "items", mode="read", store=MemoryStore(), **EDGE_OPTIONS
    )
    async with items:
        await items.wait_ready(timeout=5000 * MS)
        assert await items.count() == 5
    assert items._remote.closed


async def test_live_changes_right_after_ready_follow_the_round_commit(tmp_path) -> None:
    """Data sent right after ``ready`` lands after the round commit, never before it."""
    import orjson

    from aioserversync.asyncio.server import DDPServer, Publication, serve

    server = DDPServer(compression=None)

    @server.publish("items", strategy="no_merge_no_history")
    async def items_pub(pub: Publication) -> None:
        frames = [
            orjson.dumps({"msg": "added", "collection": "items", "id": f"d{i}", "fields": {"c": 0}})
            for i in range(2000)
        ]
        pub.send_wire(frames)
        pub.ready()
        pub.send_wire(
            orjson.dumps(
                {"msg": "changed", "collection": "items", "id": f"d{k % 2000}", "fields": {"c": k}}
            )
            for k in range(1, 3001)
        )
        pub.send_wire([orjson.dumps({"msg": "added", "collection": "items", "id": "END"})])

    async with serve(server, "127.0.0.1", 0) as running:
        # A real SQLite store: slow enough that batches queue behind the round commit.
        remote = await edge(f"http://127.0.0.1:{running.port}", SQLiteStore(tmp_path / "e.db"))
        try:
            items = await remote.sync("items", mode="read")
            await items.wait_ready(timeout=5000 * MS)
            await wait_for_condition(lambda: items.get("END"), message="END applied")
            await remote._sync_barrier()
            docs = {d["_id"]: d.get("c") for d in await items.find({})}
            assert len(docs) == 2001
            assert docs["d0"] == 2000 and docs["d1"] == 2001 and docs["d999"] == 2999
        finally:
            await remote.close()


async def test_pending_lists_only_this_remotes_writes_of_a_shared_store(make_store) -> None:
    urls = []
    for _ in range(2):  # ports nothing listens on: both remotes stay offline
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            urls.append(f"http://127.0.0.1:{s.getsockname()[1]}")
    store = make_store()
    await store.open()
    try:
        ra = await edge(urls[0], store, name="A")
        rb = await edge(urls[1], store, name="B")
        ia = await ra.sync("items", local="shared")
        ib = await rb.sync("items", local="shared")
        await ia.insert({"_id": "from-a"})
        await ib.insert({"_id": "from-b"})
        assert [r.doc_id for r in await ia.pending()] == ["from-a"]
        assert [r.doc_id for r in await ib.pending()] == ["from-b"]
        assert await ia.failed() == [] and await ib.failed() == []
        await ra.close()
        await rb.close()
    finally:
        await store.close()


async def test_a_store_shared_by_two_remotes_closes_with_the_last_of_them(tmp_path) -> None:
    a, b = MeteorApp(), MeteorApp()
    a.add_collection("items", [{"_id": "a1", "v": 1}])
    b.add_collection("items", [{"_id": "b1", "v": 2}])
    await a.start()
    await b.start()
    store = SQLiteStore(tmp_path / "shared.db")  # not opened here: the first remote opens it
    try:
        ra = await edge(f"http://127.0.0.1:{a.port}", store, name="A")
        rb = await edge(f"http://127.0.0.1:{b.port}", store, name="B")
        ia = await ra.sync("items", mode="read", local="merged")
        ib = await rb.sync("items", mode="read", local="merged")
        await ia.wait_ready(timeout=5000 * MS)
        await ib.wait_ready(timeout=5000 * MS)
        await ra.close()  # it opened the store; B still uses it
        assert store.is_open
        b.insert("items", {"_id": "b2", "v": 3})
        await wait_for_condition(lambda: ib.get("b2"), message="B syncs on")
        assert sorted(d["_id"] for d in await ib.find({})) == ["a1", "b1", "b2"]
        await rb.close()
        assert not store.is_open
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.parametrize(
    ("first", "second", "want"),
    [
        ({"$set": {"s": "y"}}, {"$unset": {"s": ""}}, {"name": "doc 1", "n": 1}),
        ({"$set": {"n": 5}}, {"$set": {"n": 1}}, {"name": "doc 1", "n": 1}),
    ],
    ids=["unset", "set-back"],
)
async def test_a_field_changed_back_while_its_push_is_in_flight_stays_changed_back(
    app, proxy, first: dict[str, Any], second: dict[str, Any], want: dict[str, Any]
) -> None:
    """A local update changes a field; while its push is in flight, a second one takes the
    field back to the base's value. The first push's echo (a ``changed`` with its value) must
    not bring the value back: the local side changed the field since it was sent. The merge
    used to compare the local document with the base from before the first update, took the
    echo's value, and then settled the second write without sending it: lost on both sides."""
    methods = app.server._methods
    update = methods["/items/update"]
    entered, go_on = asyncio.Event(), asyncio.Event()

    async def held(ctx: Any, *params: Any) -> Any:
        if not entered.is_set():
            entered.set()
            await go_on.wait()
        return await update(ctx, *params)

    methods["/items/update"] = held
    remote = await edge(proxy.url(), MemoryStore())
    try:
        items = await remote.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        await items.update("d1", first)
        await asyncio.wait_for(entered.wait(), 5)
        await items.update("d1", second)
        go_on.set()
        await items.wait_drained(timeout=5000 * MS)
        await wait_for_condition(lambda: converged(app, items), message="convergence")
        assert app.get("items", "d1") == {"_id": "d1", **want}
        assert items.stats.conflicts == 0
    finally:
        go_on.set()
        await remote.close()

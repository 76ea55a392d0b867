"""``insert_many``: one transaction for many local inserts, all or nothing, pushed as inserts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from aioserversync.exceptions import (
    ConfigurationError,
    DuplicateKeyError,
    EJSONError,
    InvalidDocument,
    ModifierError,
    StoreError,
)
from aioserversync.stores import MemoryStore, Store
from tests.conftest import MS
from tests.engine.conftest import (
    SEED,
    InstrumentedStore,
    converged,
    drain_events,
    edge,
    go_online,
    synced,
)
from tests.meteor_app import MeteorApp
from tests.proxy import FaultProxy


async def test_offline_insert_many_is_one_transaction_and_pushes_each_document_once(
    app: MeteorApp, proxy: FaultProxy, tmp_path: Any
) -> None:
    store = InstrumentedStore(tmp_path / "edge.db")
    async with synced(proxy, store, mode="write", offline=True) as (_, items):
        stream = items.changes(max_queue=10_000)
        docs = [{"_id": f"m{i}", "k": i} if i % 2 else {"k": i} for i in range(300)]
        before = store.applies
        ids = await items.insert_many(docs)
        assert store.applies - before == 1
        assert len(ids) == 300 and ids[1] == "m1" and len(ids[0]) == 17
        assert [d["k"] for d in docs] == list(range(300))  # the caller's documents are untouched
        assert "_id" not in docs[0]
        assert await items.count() == len(SEED) + 300
        assert (await items.get(ids[42]))["k"] == 42
        assert items.stats.pending == 300
        added = [ev.id for ev in drain_events(stream) if ev.op == "added"]
        assert added == ids
        await go_online(proxy, items)
        assert app.calls["/items/insert"] == 300
        assert app.get("items", ids[0]) == {"_id": ids[0], "k": 0}
        assert await converged(app, items)


@pytest.mark.parametrize(
    ("docs", "error"),
    [
        ([{"_id": "new1"}, {"_id": "d2", "k": 1}], DuplicateKeyError),  # d2 exists
        ([{"_id": "new1"}, {"_id": "new2"}, {"_id": "new1"}], DuplicateKeyError),  # twice
        ([{"_id": "new1"}, {"_id": "new2", "bad": {1, 2}}], EJSONError),  # a set: not EJSON
    ],
    ids=["existing-id", "repeated-id", "bad-value"],
)
async def test_insert_many_changes_nothing_when_one_document_fails(
    app: MeteorApp,
    proxy: FaultProxy,
    make_store: Callable[..., Store],
    docs: list[dict[str, Any]],
    error: type[Exception],
) -> None:
    async with synced(proxy, make_store(), mode="write", offline=True) as (_, items):
        stream = items.changes()
        with pytest.raises(error):
            await items.insert_many(docs)
        assert await items.get("new1") is None and await items.count() == len(SEED)
        assert (await items.get("d2"))["name"] == "doc 2"
        assert items.stats.pending == 0 and await items.pending() == []
        assert drain_events(stream) == []
        assert await items.insert_many([{"_id": "new1"}]) == ["new1"]  # nothing was left half-done
        assert items.stats.pending == 1


async def test_a_failed_transaction_fails_the_whole_insert_many(
    app: MeteorApp, proxy: FaultProxy, tmp_path: Any
) -> None:
    store = InstrumentedStore(tmp_path / "edge.db")
    async with synced(proxy, store, mode="write", offline=True) as (_, items):
        store.fail_when = lambda ops: True
        with pytest.raises(StoreError, match="injected"):
            await items.insert_many([{"_id": "a"}, {"_id": "b"}])
        assert await items.count() == len(SEED) and items.stats.pending == 0
        assert await items.insert_many([{"_id": "a"}, {"_id": "b"}]) == ["a", "b"]
        await go_online(proxy, items)
        assert app.calls["/items/insert"] == 2 and await converged(app, items)


@pytest.mark.parametrize(("mode", "queued"), [("read", 0), ("online-write", 40)])
async def test_insert_many_follows_the_mode(
    app: MeteorApp,
    proxy: FaultProxy,
    make_store: Callable[..., Store],
    mode: str,
    queued: int,
) -> None:
    async with synced(proxy, make_store(), mode=mode, offline=True) as (_, items):
        await items.insert_many({"_id": f"x{i}", "i": i} for i in range(40))  # any iterable
        assert await items.count({"_id": {"$regex": "^x"}}) == 40
        assert items.stats.pending == queued
        assert await items.insert_many([]) == []
        await go_online(proxy, items)
        assert app.calls.get("/items/insert", 0) == queued
        assert len(app.docs["items"]) == len(SEED) + queued


async def test_bad_documents_and_options_are_refused_with_clear_errors(
    app: MeteorApp, proxy: FaultProxy, tmp_path: Any
) -> None:
    remote = await edge(proxy.url(), InstrumentedStore(tmp_path / "edge.db"))
    try:
        with pytest.raises(ConfigurationError, match="args must be a list"):
            await remote.sync("items", args="abc")  # would have been three arguments
        with pytest.raises(ConfigurationError, match="unknown mode"):
            await remote.sync("items", mode="mirror")
        items = await remote.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        with pytest.raises(TypeError, match="must be a mapping, got list"):
            await items.insert([("a", 1)])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="got int"):
            await items.insert_many([{"_id": "ok"}, 5])  # type: ignore[list-item]
        for bad_id in (None, ""):
            with pytest.raises(EJSONError, match="leave it out"):
                await items.insert({"_id": bad_id, "v": 1})
            with pytest.raises(EJSONError, match="leave it out"):
                await items.insert_many([{"_id": "ok"}, {"_id": bad_id}])
        assert await items.count() == len(SEED) and items.stats.pending == 0
    finally:
        await remote.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])  # MongoDB refuses top-level $ names
async def test_a_top_level_that_looks_like_an_ejson_value_round_trips(
    app: MeteorApp, proxy: FaultProxy, tmp_path: Any, kind: str
) -> None:
    """A server may send such fields (MongoDB 5 stores them); the cache keeps them as they are.
    A local write may not make them: Meteor's client refuses '$' names, and so does this one."""
    store = MemoryStore() if kind == "memory" else InstrumentedStore(tmp_path / "edge.db")
    app.insert("items", {"_id": "one", "$date": 5})
    app.insert("items", {"_id": "two", "$binary": "AQI="})
    async with synced(proxy, store, mode="read") as (_, items):
        assert await items.get("one") == {"_id": "one", "$date": 5}
        assert await items.get("two") == {"_id": "two", "$binary": "AQI="}


@pytest.mark.parametrize(
    "bad",
    [
        {"$set": 1},
        {"a.b": 1},
        {"a": {"$gt": 1}},
        {"a": [{"ok": 1}, {"x.y": 2}]},
        {"nul\0": 1},
    ],
    ids=["dollar", "dot", "nested-dollar", "in-a-list", "nul"],
)
async def test_field_names_meteor_refuses_are_refused_and_nothing_is_written(
    app: MeteorApp, proxy: FaultProxy, tmp_path: Any, bad: dict[str, Any]
) -> None:
    async with synced(proxy, MemoryStore(), mode="write", offline=True) as (_, items):
        with pytest.raises(InvalidDocument):
            await items.insert({"_id": "new", **bad})
        with pytest.raises(InvalidDocument):
            await items.insert_many([{"_id": "ok"}, {"_id": "new", **bad}])
        if "$set" not in bad:  # a replacement document
            with pytest.raises(InvalidDocument):
                await items.update("d1", {"name": "x", **bad})
        assert await items.count() == len(SEED) and items.stats.pending == 0
        assert await items.update("d1", {"$set": {"a.b": 1}}) == 1  # a path, not a name
        assert (await items.get("d1"))["a"] == {"b": 1}


async def test_a_large_multi_update_and_remove_run_in_chunks(
    app: MeteorApp, proxy: FaultProxy, tmp_path: Any
) -> None:
    store = InstrumentedStore(tmp_path / "edge.db")
    async with synced(proxy, store, mode="write", offline=True) as (_, items):
        await items.insert_many({"_id": f"b{i:04d}", "k": i % 2} for i in range(2500))
        before = store.applies
        assert await items.update({"k": 1}, {"$set": {"odd": True}}, multi=True) == 1250
        assert store.applies - before == 2  # 1,250 matches: two transactions
        assert await items.count({"odd": True}) == 1250
        before = store.applies
        assert await items.remove({"k": {"$exists": True}}) == 2500
        assert store.applies - before == 3
        assert await items.count() == len(SEED)
        # A small multi update stays one all-or-nothing transaction.
        with pytest.raises(ModifierError):
            await items.update({}, {"$inc": {"name": 1}}, multi=True)  # d0..d4: name is text
        assert await items.find({"_id": "d0"}) == [{"_id": "d0", "name": "doc 0", "n": 0}]
        assert items.stats.pending == 0  # each insert folded with its remove

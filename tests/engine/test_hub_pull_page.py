"""Edges pulling from the hub in the page form: the documents of a page as one JSON text."""

# ruff: noqa: F811  (the ``env`` fixture is imported from test_hub_sync and used as a parameter)

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from aioserversync import jsoncheck
from aioserversync.asyncio.method_context import WireResult
from aioserversync.exceptions import MeteorError, StoreError
from aioserversync.stores import MemoryStore, PutDoc, PutDocs, SQLiteStore
from tests.conftest import MS
from tests.engine.conftest import go_offline, go_online
from tests.engine.test_hub_sync import SEED, HubEnv, converged, env, hub_edge  # noqa: F401
from tests.utils import wait_for_condition

AT = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def record_options(env: HubEnv) -> list[Any]:
    """Wrap the hub's pull method (fault-injection point) to record each call's options."""
    pull = env.hub.ddp._methods["serversync/pull"]
    seen: list[Any] = []

    async def recording(ctx: Any, *params: Any) -> Any:
        seen.append(params[3] if len(params) > 3 else None)
        return await pull(ctx, *params)

    env.hub.ddp._methods["serversync/pull"] = recording
    return seen


def rewrite_pages(env: HubEnv, change: Any) -> None:
    """Wrap the hub's pull method: ``change(page dict)`` edits each page-form page from 0."""
    pull = env.hub.ddp._methods["serversync/pull"]

    async def rewriting(ctx: Any, *params: Any) -> Any:
        result = orjson.loads((await pull(ctx, *params)).value)
        if params[1] == 0 and "page" in result:
            result["page"] = orjson.dumps(change(orjson.loads(result["page"]))).decode()
        return WireResult(orjson.dumps(result))

    env.hub.ddp._methods["serversync/pull"] = rewriting


@pytest.fixture(autouse=True, params=["simdjson", "orjson"])
def page_checker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with each page checker: simdjson (the ``[fast]`` extra) and orjson."""
    if request.param == "orjson":
        monkeypatch.setattr(jsoncheck, "_simdjson", None)
    elif not jsoncheck.available():
        pytest.skip("pysimdjson (the [fast] extra) is not installed")
    return str(request.param)


class PageMemoryStore(MemoryStore):
    """A MemoryStore that asks for the page form (it splits a page's text in Python)."""

    reads_page_text = True


@pytest.mark.parametrize("store_kind", ["sqlite", "memory", "memory-pages"])
async def test_pulls_use_the_page_form_from_start_to_catch_up(env, store_kind: str) -> None:
    """A first sync and a catch-up after changes made offline both pull pages in the page form
    (the text form into a store that does not read page text): documents with dates decoded,
    then tombstones and updates, and only what changed."""
    await env.hub.insert("items", {"_id": "when", "at": AT, "tags": ["a", "b"]})
    seen = record_options(env)
    store = {
        "sqlite": lambda: SQLiteStore(env.tmp / "edge.db"),
        "memory": MemoryStore,
        "memory-pages": PageMemoryStore,
    }[store_kind]()
    form = {"text": True} if store_kind == "memory" else {"page": True}
    env.hub.max_pull = 2  # pages of 2 documents
    r = await hub_edge(env, store)
    try:
        items = await r.sync("items", mode="read")
        await items.wait_ready(timeout=5000 * MS)
        assert await converged(env, items)
        assert await items.find_one({"_id": "when"}) == {
            "_id": "when",
            "at": AT,
            "tags": ["a", "b"],
        }
        # Pages of 2: the later pages of this first, full pull carry its purge mark.
        assert len(seen) >= 3 and seen[0] == form
        assert all(o == {**form, "full": 0} for o in seen[1:])
        assert r._hub.pulled == len(SEED) + 1
        await go_offline(env.proxy, r)
        await env.hub.remove("items", "d2")
        await env.hub.update("items", "d1", {"$set": {"name": "one"}})
        await go_online(env.proxy, items)
        await wait_for_condition(lambda: converged(env, items), message="caught up")
        assert r._hub.pulled == len(SEED) + 3  # d1 and d2 only
        assert await items.find_one({"_id": "d2"}) is None
        metas = await store.get_meta_many("items", ["d1", "d3"])
        assert metas["d1"].rev is not None and metas["d3"].rev is not None
        assert metas["d1"].rev > metas["d3"].rev
    finally:
        await r.close()


async def test_page_entries_are_checked_one_by_one_when_the_text_does_not_prove_them(
    env, caplog
) -> None:
    """A page whose text holds other EJSON than integer dates is walked entry by entry: keys that
    are not "<rev>:<id>", fields that are not objects and invalid EJSON are logged and skipped;
    valid entries (a binary here) are applied."""

    def spoil(page: dict[str, Any]) -> dict[str, Any]:
        return {
            "1:t1": [1],
            "x:t2": {"v": 1},
            "t3": {"v": 1},
            "1234567890123456789:t5": {"v": 1},
            "1:t4": {"d": {"$date": "soon"}},
            "1:b1": {"bin": {"$binary": "AQI="}, "at": {"$date": 5}},
            **page,
        }

    rewrite_pages(env, spoil)
    r = await hub_edge(env, SQLiteStore(env.tmp / "edge.db"))
    try:
        with caplog.at_level(logging.WARNING, logger="aioserversync"):
            items = await r.sync("items", mode="read")
            await items.wait_ready(timeout=5000 * MS)
        assert sum("malformed pull entry" in m for m in caplog.messages) == 4
        assert sum("invalid EJSON" in m for m in caplog.messages) == 1
        assert await items.find_one({"_id": "b1"}) == {
            "_id": "b1",
            "bin": b"\x01\x02",
            "at": datetime(1970, 1, 1, 0, 0, 0, 5000, tzinfo=UTC),
        }
        assert {d["_id"] for d in await items.find({})} == {d["_id"] for d in SEED} | {"b1"}
        assert r._hub.pulled == len(SEED) + 1
    finally:
        await r.close()


# What a hub may spoil in a page of plain JSON: the edge checks the keys itself ("t5" has no
# revision: the page comes as entries); fields that are not an object ("7:t6") only the store
# sees, and it refuses the page. Either way the entries are then checked one by one.
SPOILED = {
    "key": ({"t5": {"v": 1}}, 0),
    "fields": ({"7:t6": 3}, 1),
}


@pytest.mark.parametrize("spoiled", sorted(SPOILED))
@pytest.mark.parametrize("store_kind", ["sqlite", "memory"])
async def test_a_spoiled_page_is_applied_entry_by_entry(
    env, caplog, store_kind: str, spoiled: str
) -> None:
    """Plain JSON with only integer dates stays text and goes to the store as it is; a key
    that is not "<rev>:<id>" (found by the edge) or fields that are not an object (the store
    refuses the page) lead to checking the entries one by one, and the good ones are applied."""
    bad, refused = SPOILED[spoiled]

    def spoil(page: dict[str, Any]) -> dict[str, Any]:
        return {**page, **bad, "8:ok": {"at": {"$date": 5}}}

    rewrite_pages(env, spoil)
    store = SQLiteStore(env.tmp / "edge.db") if store_kind == "sqlite" else PageMemoryStore()
    r = await hub_edge(env, store)
    try:
        with caplog.at_level(logging.WARNING, logger="aioserversync"):
            items = await r.sync("items", mode="read")
            await items.wait_ready(timeout=5000 * MS)
        assert sum("was refused" in m for m in caplog.messages) == refused
        assert sum("malformed pull entry" in m for m in caplog.messages) == 1
        assert await items.find_one({"_id": "ok"}) == {
            "_id": "ok",
            "at": datetime(1970, 1, 1, 0, 0, 0, 5000, tzinfo=UTC),
        }
        assert {d["_id"] for d in await items.find({})} == {d["_id"] for d in SEED} | {"ok"}
    finally:
        await r.close()


@pytest.mark.parametrize("spoiled", sorted(SPOILED))
@pytest.mark.parametrize("store_kind", ["sqlite", "memory"])
async def test_a_full_resync_stages_pages_as_text_and_checks_a_spoiled_one_entry_by_entry(
    env, caplog, store_kind: str, spoiled: str
) -> None:
    """A full resync into a cache that holds documents pulls in the page form and stages each
    page's text as it is, with the revisions; a spoiled page (see SPOILED) is staged entry by
    entry, the malformed entries logged and left out."""
    bad, refused = SPOILED[spoiled]
    seen = record_options(env)
    store = SQLiteStore(env.tmp / "edge.db") if store_kind == "sqlite" else PageMemoryStore()
    r = await hub_edge(env, store)
    try:
        items = await r.sync("items", mode="read")
        await items.wait_ready(timeout=5000 * MS)
        await env.hub.update("items", "d1", {"$set": {"name": "one"}})
        await items.wait_ready(timeout=5000 * MS)
        seen.clear()
        await items.resync(timeout=5000 * MS)  # pages as they are
        assert seen and all(o.get("page") is True for o in seen)
        assert await converged(env, items)
        hub_metas = await env.hub.store.get_meta_many("items", [d["_id"] for d in SEED])
        metas = await store.get_meta_many("items", [d["_id"] for d in SEED])
        assert {i: m.rev for i, m in metas.items()} == {i: m.rev for i, m in hub_metas.items()}

        def spoil(page: dict[str, Any]) -> dict[str, Any]:
            return {**page, **bad, "8:ok": {"v": 2}}

        rewrite_pages(env, spoil)
        with caplog.at_level(logging.WARNING, logger="aioserversync"):
            await items.resync(timeout=5000 * MS)
        assert sum("was refused" in m for m in caplog.messages) == refused
        assert sum("malformed pull entry" in m for m in caplog.messages) == 1
        assert await items.find_one({"_id": "ok"}) == {"_id": "ok", "v": 2}
        assert (await store.get_meta_many("items", ["ok"]))["ok"].rev == 8
        assert {d["_id"] for d in await items.find({})} == {d["_id"] for d in SEED} | {"ok"}
    finally:
        await r.close()


@pytest.mark.parametrize(
    "page", ["{not json", '["1:a", {}]', "", '{"1:a": {"s": "\\ud800"}}', '{"1:a": {"n": 1e999}}']
)
async def test_a_page_that_is_not_a_json_object_is_a_malformed_result(env, page: str) -> None:
    """What orjson does not read as an object (broken JSON, an array, a lone surrogate escape,
    a number out of range) never reaches the store: the pull fails as a malformed result and
    the collection reports it."""
    pull = env.hub.ddp._methods["serversync/pull"]  # fault injection: wrap the real handler

    async def broken(ctx: Any, *params: Any) -> Any:
        result = orjson.loads((await pull(ctx, *params)).value)
        result["page"] = page
        return WireResult(orjson.dumps(result))

    env.hub.ddp._methods["serversync/pull"] = broken
    r = await hub_edge(env, SQLiteStore(env.tmp / "edge.db"))
    try:
        items = await r.sync("items", mode="read")
        with pytest.raises(MeteorError, match="malformed serversync/pull page"):
            await items.wait_ready(timeout=5000 * MS)
        assert await items.find({}) == []
    finally:
        await r.close()


class FailingTwice(PageMemoryStore):
    """A store whose first two document writes fail, as a full disk would (not made real here):
    the page as text, then entry by entry."""

    failures = 0

    async def apply(self, batch: Any) -> Any:
        ops = list(batch)
        if self.failures < 2 and any(type(op) in (PutDocs, PutDoc) for op in ops):
            self.failures += 1
            raise StoreError("disk full (injected)")
        return await super().apply(ops)


async def test_a_collection_synced_while_connected_recovers_from_a_failed_catch_up(
    env, caplog
) -> None:
    """A collection added once the hub is known starts its catch-up in the background; a store
    failure there is logged and the collection resyncs, rather than the error being lost."""
    store = FailingTwice()
    r = await hub_edge(env, store)
    try:
        await wait_for_condition(lambda: r._hub.is_hub is True, message="hub known")
        with caplog.at_level(logging.WARNING, logger="aioserversync"):
            items = await r.sync("items", mode="read")
            await wait_for_condition(lambda: converged(env, items), timeout=10, message="resync")
        assert store.failures == 2
        assert any("could not be applied" in m for m in caplog.messages)
    finally:
        await r.close()


async def test_a_page_form_catch_up_with_writes_made_meanwhile_applies_every_entry(
    env,
) -> None:
    """A catch-up page asked for in the page form (nothing pending then) arrives after a local
    write: its entries then go through the pending path, the page's tombstones with its
    documents. They must go in revision order: with the tombstones first, one newer than the
    documents moved the checkpoint past them, and they were skipped as already applied (the
    edge kept old versions for good)."""
    pull = env.hub.ddp._methods["serversync/pull"]
    asked = asyncio.Event()
    release = asyncio.Event()

    async def held(ctx: Any, *params: Any) -> Any:
        if params[1] > 0:  # a catch-up
            asked.set()
            await release.wait()
        return await pull(ctx, *params)

    env.hub.ddp._methods["serversync/pull"] = held
    remote = await hub_edge(env, SQLiteStore(env.tmp / "edge.db"))
    try:
        items = await remote.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        await go_offline(env.proxy, remote)
        await env.hub.update("items", "d1", {"$set": {"name": "hub 1"}})
        await env.hub.update("items", "d2", {"$set": {"name": "hub 2"}})
        await env.hub.remove("items", "d3")  # the newest change: a tombstone
        env.proxy.restore()
        await asyncio.wait_for(asked.wait(), 5)
        await items.update("d4", {"$set": {"name": "edge"}})
        release.set()
        await wait_for_condition(lambda: items.is_live, message="live")
        await items.wait_drained(timeout=5000 * MS)
        assert await converged(env, items)
        assert await items.get("d1") == {"_id": "d1", "name": "hub 1", "n": 1}
    finally:
        release.set()
        await remote.close()

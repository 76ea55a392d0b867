"""Stock DDP behaviour of the hub: the plain publication and Meteor's mutator methods.

Stock Meteor clients (and simpleddp, ddp.js, edges in read/online-write mode) see an ordinary
Meteor app: every document on subscribe, live added/changed/removed, and the untrusted-caller
rules of allow/deny (ddp-facts §5.4).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from aioserversync.asyncio.client import DDPClient
from aioserversync.asyncio.sync import ServerSync
from aioserversync.exceptions import DuplicateKeyError, EJSONError
from aioserversync.hub import HubServing, ServerSyncServer
from aioserversync.stores import MemoryStore
from tests.conftest import MS
from tests.hub.conftest import MakeHub, call, call_data, call_error, client
from tests.utils import wait_for_condition

Hub = tuple[ServerSyncServer, HubServing]
AT = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


async def test_plain_publication_sends_all_documents_then_live_changes(hub: Hub) -> None:
    h, running = hub
    await h.insert("items", {"_id": "a", "name": "pen", "at": AT})
    await h.insert("items", {"_id": "b"})
    await h.insert("items", {"_id": "gone"})
    await h.remove("items", "gone")
    async with client(running.url) as c, client(running.url, "tok-bob") as writer:
        sid, initial = await c.sub_ready("items")
        assert initial == [
            {
                "msg": "added",
                "collection": "items",
                "id": "a",
                "fields": {"name": "pen", "at": {"$date": 1704164645678}},
            },
            {"msg": "added", "collection": "items", "id": "b"},  # no fields: key left out
        ]
        assert await call(writer, "/items/insert", {"_id": "c", "n": 1}) == "c"
        assert await call(writer, "/items/update", {"_id": "c"}, {"$inc": {"n": 1}}, {}) == 1
        assert await call(writer, "/items/update", "a", {"$unset": {"at": ""}}, {}) == 1
        assert await call(writer, "/items/remove", {"_id": "b"}) == 1
        await h.update("items", {"n": 2}, {"$set": {"local": True}}, multi=True)
        live = await c.barrier()
        assert live == [
            {"msg": "added", "collection": "items", "id": "c", "fields": {"n": 1}},
            {"msg": "changed", "collection": "items", "id": "c", "fields": {"n": 2}},
            {"msg": "changed", "collection": "items", "id": "a", "cleared": ["at"]},
            {"msg": "removed", "collection": "items", "id": "b"},
            {"msg": "changed", "collection": "items", "id": "c", "fields": {"local": True}},
        ]
        # Unsubscribing removes what the subscription published (strategy "no_merge").
        await c.send({"msg": "unsub", "id": sid})
        msgs = await c.until(lambda m: m["msg"] == "nosub")
        assert sorted(m["id"] for m in msgs[:-1] if m["msg"] == "removed") == ["a", "c"]


async def test_merge_strategy_publication_is_consistent_too(make_hub: MakeHub) -> None:
    h, running = await make_hub(rules={"items": {"strategy": "merge"}})
    await h.insert("items", {"_id": "a", "v": 1})
    async with client(running.url) as c:
        _, initial = await c.sub_ready("items")
        assert initial == [{"msg": "added", "collection": "items", "id": "a", "fields": {"v": 1}}]
        await h.update("items", "a", {"$set": {"v": 1}})  # no change: nothing sent
        await h.update("items", "a", {"$set": {"v": 2}})
        await h.remove("items", "a")
        assert await c.barrier() == [
            {"msg": "changed", "collection": "items", "id": "a", "fields": {"v": 2}},
            {"msg": "removed", "collection": "items", "id": "a"},
        ]


async def test_insert_without_id_uses_the_stub_id_from_the_random_seed(hub: Hub) -> None:
    _h, running = hub
    async with client(running.url) as c:
        _, result, _ = await c.call("/tasks/insert", {"text": "hi"}, seed="0123456789abcdef0123")
        assert result["result"] == "devBuvC559TzDB3E9"
        # The client's insertAsync name (Meteor 3) behaves the same.
        _, result, _ = await c.call(
            "/tasks/insertAsync", {"text": "again"}, seed="0123456789abcdef0123"
        )
        assert result["error"]["error"] == 409  # same seed, same id
        page = await call(c, "serversync/pull", "tasks", 0, 10)
        assert page["docs"] == [["devBuvC559TzDB3E9", 1, {"text": "hi"}]]


async def test_mutators_follow_meteors_untrusted_rules(hub: Hub) -> None:
    h, running = hub
    await h.insert("items", {"_id": "a", "s": "text", "n": 1})
    async with client(running.url) as c:
        assert await call_error(c, "/items/update", {"_id": {"$in": ["a"]}}, {"$set": {}}, {}) == {
            "isClientSafe": True,
            "error": 403,
            "reason": "Not permitted. Untrusted code may only update documents by ID.",
            "message": "Not permitted. Untrusted code may only update documents by ID. [403]",
            "errorType": "Meteor.Error",
        }
        error = await call_error(c, "/items/removeAsync", {"s": "text"})
        assert error["reason"] == (
            "Not permitted. Untrusted code may only removeAsync documents by ID."
        )
        error = await call_error(
            c, "/items/update", {"_id": "a"}, {"$set": {"n": 2}}, {"upsert": True}
        )
        assert error["reason"] == "Access denied. Upserts not allowed in a restricted collection."
        error = await call_error(c, "/items/update", {"_id": "a"}, {"n": 2}, {})
        assert error["error"] == 403 and "not replace them" in error["reason"]
        error = await call_error(c, "/items/update", {"_id": "a"}, {"$rename": {"n": "m"}}, {})
        assert error["reason"] == (
            "Access denied. Operator $rename not allowed in a restricted collection."
        )
        error = await call_error(c, "/items/insert", {"_id": "a"})
        assert error["error"] == 409
        assert error["reason"].startswith("MongoServerError: E11000 duplicate key error")
        error = await call_error(c, "/items/update", "a", {"$inc": {"s": 1}}, {})
        assert error["error"] == 409 and error["reason"].startswith("MongoServerError: ")
        assert (await call_error(c, "/items/insert", "not a document"))["error"] == 400
        # Missing documents: 0, no error.
        assert await call(c, "/items/update", {"_id": "nope"}, {"$set": {"x": 1}}, {}) == 0
        assert await call(c, "/items/remove", "nope") == 0
        page = await call(c, "serversync/pull", "items", 0, 10)
    assert page["docs"] == [["a", 1, {"s": "text", "n": 1}]]  # nothing changed


async def test_mutator_write_rule_sees_the_document_and_refuses_with_access_denied(
    make_hub: MakeHub,
) -> None:
    seen: list[tuple[Any, ...]] = []

    def write(identity: Any, coll: str, op: str, doc_id: Any, doc: Any) -> bool:
        seen.append((identity, op, doc_id, doc))
        return identity == "bob"

    h, running = await make_hub(rules={"items": {"write": write}})
    await h.insert("items", {"_id": "a", "v": 1})
    async with client(running.url, "tok-alice") as alice, client(running.url, "tok-bob") as bob:
        for method, params in (
            ("/items/insert", [{"_id": "x"}]),
            ("/items/update", [{"_id": "a"}, {"$set": {"v": 2}}, {}]),
            ("/items/remove", [{"_id": "a"}]),
        ):
            error = await call_error(alice, method, *params)
            assert (error["error"], error["reason"]) == (403, "Access denied")
        assert await call(bob, "/items/update", {"_id": "a"}, {"$set": {"v": 2}}, {}) == 1
    assert seen == [
        ("alice", "insert", "x", {"_id": "x"}),
        ("alice", "update", "a", {"_id": "a", "v": 2}),
        ("alice", "remove", "a", {"_id": "a", "v": 1}),
        ("bob", "update", "a", {"_id": "a", "v": 2}),
    ]
    assert h.revision("items") == 2


async def test_local_api_writes_are_stamped_and_published(hub: Hub) -> None:
    h, running = hub
    ids = [await h.insert("items", {"k": i % 2, "i": i}) for i in range(6)]
    assert all(isinstance(i, str) and len(i) == 17 for i in ids)
    async with client(running.url) as c:
        await c.sub_ready("serversync/changes", "items", 6)
        assert await h.update("items", {"k": 1}, {"$set": {"odd": True}}) == 1
        assert await h.update("items", {"k": 1}, {"$set": {"odd": True}}, multi=True) == 3
        assert await h.remove("items", {"k": 0}) == 3
        assert await h.update("items", {"k": 5}, {"$set": {"x": 1}}) == 0
        msgs = await c.barrier()
    revs = [m["fields"]["r"] for m in msgs]
    assert revs == [7, 8, 9, 10, 11, 12]  # the repeated $set of the first odd doc wrote nothing
    assert h.revision("items") == 12


async def test_local_insert_many_is_one_all_or_nothing_transaction(hub: Hub) -> None:
    h, running = hub
    await h.insert("items", {"_id": "taken"})
    async with client(running.url) as c:
        _, initial = await c.sub_ready("items")
        assert [m["id"] for m in initial if m["msg"] == "added"] == ["taken"]
        for bad in ([{"_id": "a"}, {"_id": "taken"}], [{"_id": "a"}, {"_id": "a"}]):
            with pytest.raises(DuplicateKeyError):
                await h.insert_many("items", bad)
        with pytest.raises(EJSONError):
            await h.insert_many("items", [{"_id": "a"}, {"_id": "b", "bad": {1}}])
        for bad_id in (None, ""):
            with pytest.raises(EJSONError, match="leave it out"):
                await h.insert_many("items", [{"_id": "a"}, {"_id": bad_id}])
            with pytest.raises(EJSONError, match="leave it out"):
                await h.insert("items", {"_id": bad_id})
        assert h.revision("items") == 1 and await h.store.get("items", "a") is None
        ids = await h.insert_many(
            "items", ({"i": i} if i else {"_id": "a", "i": 0} for i in range(5))
        )
        assert ids[0] == "a" and len(set(ids)) == 5 and await h.insert_many("items", []) == []
        assert h.revision("items") == 6  # one revision per document
        msgs = await c.barrier()
    assert [(m["msg"], m["id"], m["fields"]["i"]) for m in msgs] == [
        ("added", doc_id, i) for i, doc_id in enumerate(ids)
    ]


async def test_library_client_subscribes_and_calls_mutators(hub: Hub) -> None:
    h, running = hub
    await h.insert("items", {"_id": "a", "at": AT})
    async with DDPClient(running.url, heartbeat_interval=0, compression=None) as ddp:
        await ddp.login_with_token("tok-alice")
        events = ddp.data_events()
        sub = await ddp.subscribe("items")
        await sub.ready(timeout=5000 * MS)
        assert await ddp.call("/items/insert", {"_id": "b", "n": 1}) == "b"
        assert await ddp.call("/items/update", {"_id": "b"}, {"$set": {"n": 2}}, {}) == 1
        seen: list[tuple[str, str]] = []
        async for ev in events:
            kind = type(ev).__name__
            if kind in ("Added", "Changed"):
                seen.append((kind, ev.id))
            if len(seen) == 3:
                break
    assert seen == [("Added", "a"), ("Added", "b"), ("Changed", "b")]


async def test_online_write_edge_on_the_stock_path_syncs_both_ways(hub: Hub) -> None:
    h, running = hub
    await h.insert("items", {"_id": "a", "n": 1})
    url = f"http://127.0.0.1:{running.port}"
    async with ServerSync(
        url, store=MemoryStore(), token="tok-alice", heartbeat_interval=0, compression=None
    ) as edge:
        items = await edge.sync("items", via="stock")
        await items.wait_ready(timeout=5000 * MS)
        assert await items.get("a") == {"_id": "a", "n": 1}
        await items.insert({"_id": "from-edge", "v": 1})
        await items.wait_drained(timeout=5000 * MS)
        await h.update("items", "a", {"$set": {"n": 2}})

        async def edge_has_update() -> bool:
            return await items.get("a") == {"_id": "a", "n": 2}

        await wait_for_condition(edge_has_update, message="edge sees the hub's update")
    async with client(running.url) as c:
        page, _ = await call_data(c, "serversync/pull", "items", 0, 10)
    assert [d[0] for d in page["docs"]] == ["from-edge", "a"]


async def test_ids_of_every_meteor_kind_go_through_mutators_publication_and_pull(
    hub: Hub,
) -> None:
    """Numbers, null, ObjectIDs and dashed strings are ids as Meteor stringifies them (7.2)."""
    _h, running = hub
    oid = {"$type": "oid", "$value": "5f1d7a0b2c3e4f5a6b7c8d9e"}
    ids: list[Any] = [42, None, oid, "-dash", "5f1d7a0b2c3e4f5a6b7c8d9e"]
    wire = ["~42", "~null", "5f1d7a0b2c3e4f5a6b7c8d9e", "--dash", "-5f1d7a0b2c3e4f5a6b7c8d9e"]
    async with client(running.url) as c, client(running.url, "tok-bob") as writer:
        await c.sub_ready("items")
        for n, _id in enumerate(ids):
            assert await call(writer, "/items/insert", {"_id": _id, "n": n}) == _id
        assert await call(writer, "/items/update", 42, {"$inc": {"n": 10}}, {}) == 1
        assert await call(writer, "/items/remove", {"_id": "-dash"}) == 1
        assert (await call_error(writer, "/items/insert", {"_id": 42}))["error"] == 409
        # As in Meteor, null is not an id selector for untrusted code.
        assert (await call_error(writer, "/items/remove", {"_id": None}))["error"] == 403
        live = await c.barrier()
        page = await call(c, "serversync/pull", "items", 0, 10)
    assert [(m["msg"], m["id"]) for m in live] == [
        *(("added", w) for w in wire),
        ("changed", "~42"),
        ("removed", "--dash"),
    ]
    assert [row[:2] for row in page["docs"]] == [
        ["~null", 2],
        ["5f1d7a0b2c3e4f5a6b7c8d9e", 3],
        ["-5f1d7a0b2c3e4f5a6b7c8d9e", 5],
        ["~42", 6],
    ]


async def test_write_edge_mirrors_and_pushes_non_string_ids(hub: Hub) -> None:
    h, running = hub
    await h.insert("items", {"_id": 7, "n": 1})
    url = f"http://127.0.0.1:{running.port}"
    async with ServerSync(
        url, store=MemoryStore(), token="tok-alice", heartbeat_interval=0, compression=None
    ) as edge:
        items = await edge.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        assert await items.get(7) == {"_id": 7, "n": 1}
        await items.insert({"_id": 8.5, "n": 2})
        await items.update(7, {"$set": {"n": 3}})
        await items.wait_drained(timeout=5000 * MS)
        async with client(running.url) as c:
            page = await call(c, "serversync/pull", "items", 0, 10)
    assert [[row[0], row[2]] for row in page["docs"]] == [["~8.5", {"n": 2}], ["~7", {"n": 3}]]

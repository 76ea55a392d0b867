"""Hub protocol conformance, write side: ``serversync/push`` compare-and-set and idempotency."""

from __future__ import annotations

import asyncio
from typing import Any

from aioserversync.hub import HubServing, ServerSyncServer
from aioserversync.hub.collection import MUTATIONS_PREFIX
from tests.asyncio.test_server_support import RawClient
from tests.conftest import MS
from tests.hub.conftest import (
    MakeHub,
    call,
    call_data,
    call_error,
    client,
    feed_entries,
    insert_change,
    remove_change,
    update_change,
)
from tests.utils import wait_for_condition

Hub = tuple[ServerSyncServer, HubServing]


async def pull_all(c: RawClient, since: int = 0) -> dict[str, Any]:
    page = await call(c, "serversync/pull", "items", since, 1000)
    assert page["more"] is False
    return page


async def test_push_accepts_inserts_updates_and_removes_with_new_revisions(hub: Hub) -> None:
    h, running = hub
    async with client(running.url) as c:
        result = await call(
            c,
            "serversync/push",
            "items",
            [
                insert_change("m1", "a", {"name": "pen", "n": 1}),
                insert_change("m2", "b", {"name": "cup"}),
            ],
        )
        assert result == [
            {"mid": "m1", "status": "accepted", "rev": 1},
            {"mid": "m2", "status": "accepted", "rev": 2},
        ]
        result = await call(
            c,
            "serversync/push",
            "items",
            [update_change("m3", "a", 1, {"name": "ink"}, ["n"]), remove_change("m4", "b", 2)],
        )
        assert result == [
            {"mid": "m3", "status": "accepted", "rev": 3},
            {"mid": "m4", "status": "accepted", "rev": 4},
        ]
        assert (await pull_all(c))["docs"] == [["a", 3, {"name": "ink"}]]
        assert (await pull_all(c, 2))["docs"] == [["a", 3, {"name": "ink"}], ["b", 4, None]]
    assert h.revision("items") == 4


async def test_push_conflicts_on_a_stale_base_and_returns_the_current_document(hub: Hub) -> None:
    h, running = hub
    await h.insert("items", {"_id": "a", "v": 1})  # rev 1
    await h.update("items", "a", {"$set": {"v": 2}})  # rev 2
    async with client(running.url) as c:
        result = await call(
            c,
            "serversync/push",
            "items",
            [
                update_change("m1", "a", 1, {"v": 99}),
                remove_change("m2", "a", 1),
                update_change("m3", "gone", 1, {"v": 1}),
                remove_change("m4", "gone", None),
                insert_change("m5", "a", {"v": 5}),
            ],
        )
        assert result == [
            {"mid": "m1", "status": "conflict", "rev": 2, "doc": {"v": 2}},
            {"mid": "m2", "status": "conflict", "rev": 2, "doc": {"v": 2}},
            {"mid": "m3", "status": "conflict", "rev": None, "doc": None},
            {"mid": "m4", "status": "conflict", "rev": None, "doc": None},
            {"mid": "m5", "status": "conflict", "rev": 2, "doc": {"v": 2}},
        ]
        assert (await pull_all(c))["docs"] == [["a", 2, {"v": 2}]]
    assert h.revision("items") == 2  # nothing applied


async def test_insert_over_a_tombstone_is_accepted(hub: Hub) -> None:
    h, running = hub
    await h.insert("items", {"_id": "a"})
    await h.remove("items", "a")
    async with client(running.url) as c:
        result = await call(c, "serversync/push", "items", [insert_change("m1", "a", {"x": 1})])
        assert result == [{"mid": "m1", "status": "accepted", "rev": 3}]
        assert (await pull_all(c, 1))["docs"] == [["a", 3, {"x": 1}]]


async def test_changes_of_one_push_to_one_document_form_a_chain(hub: Hub) -> None:
    h, running = hub
    await h.insert("items", {"_id": "a", "v": 0})  # rev 1
    async with client(running.url) as c:
        # An edge sends every pending change with the revision of the first one.
        result = await call(
            c,
            "serversync/push",
            "items",
            [
                update_change("m1", "a", 1, {"v": 1}),
                update_change("m2", "a", 1, {"w": 2}),
                insert_change("m3", "new", {"k": 1}),
                update_change("m4", "new", None, {"k": 2}),
                remove_change("m5", "new", None),
            ],
        )
        assert [(r["status"], r.get("rev")) for r in result] == [
            ("accepted", 2),
            ("accepted", 3),
            ("accepted", 4),
            ("accepted", 5),
            ("accepted", 6),
        ]
        page = await pull_all(c, 1)
        assert page["docs"] == [["a", 3, {"v": 1, "w": 2}], ["new", 6, None]]
        # A chain broken by a conflict stays broken.
        result = await call(
            c,
            "serversync/push",
            "items",
            [update_change("m6", "a", 1, {"v": 7}), update_change("m7", "a", 1, {"v": 8})],
        )
        assert [r["status"] for r in result] == ["conflict", "conflict"]


async def test_push_rejects_what_the_write_rule_refuses_and_invalid_fields(
    make_hub: MakeHub,
) -> None:
    seen: list[tuple[Any, ...]] = []

    async def write(identity: Any, coll: str, op: str, doc_id: Any, doc: Any) -> bool:
        seen.append((identity, coll, op, doc_id, doc))
        return not (doc or {}).get("forbidden", False)

    h, running = await make_hub(rules={"items": {"write": write}})
    await h.insert("items", {"_id": "a", "v": 1})
    async with client(running.url) as c:
        result = await call(
            c,
            "serversync/push",
            "items",
            [
                insert_change("m1", "x", {"forbidden": True}),
                update_change("m2", "a", 1, {"forbidden": True}),
                insert_change("m3", "y", {"$bad": 1}),
                update_change("m4", "a", 1, {"a.b": 1}),
                update_change("m5", "a", 1, None, ["_id"]),
                insert_change("m6", "z", {"_id": "other"}),
                insert_change("m7", "ok", {"_id": "ok", "fine": True}),
            ],
        )
    denied = {"error": 403, "reason": "Access denied"}
    assert [r["status"] for r in result] == ["rejected"] * 6 + ["accepted"]
    assert result[0]["error"] == denied and result[1]["error"] == denied
    assert all(r["error"]["error"] == 400 for r in result[2:6])
    assert result[6] == {"mid": "m7", "status": "accepted", "rev": 2}
    assert seen[0] == ("alice", "items", "insert", "x", {"_id": "x", "forbidden": True})
    assert seen[1] == ("alice", "items", "update", "a", {"_id": "a", "v": 1, "forbidden": True})
    assert seen[-1] == ("alice", "items", "insert", "ok", {"_id": "ok", "fine": True})


async def test_push_whole_call_errors(make_hub: MakeHub) -> None:
    h, running = await make_hub()
    async with client(running.url) as c:
        assert (await call_error(c, "serversync/push", "nope", []))["error"] == 404
        for bad in (
            ("items", "x"),
            ("items", [5]),
            ("items", [{"op": "insert", "id": "a", "doc": {}}]),
            ("items", [{"mid": "m", "op": "upsert", "id": "a"}]),
            ("items", [{"mid": "m", "op": "insert", "id": 5, "doc": {}}]),
            ("items", [{"mid": "m", "op": "insert", "id": "a"}]),
            ("items", [{"mid": "m", "op": "update", "id": "a", "base": "1"}]),
            ("items", [{"mid": "m", "op": "update", "id": "a", "base": 1, "unset": "x"}]),
            ("items", [{"mid": "m", "op": "update", "id": "~{bad", "base": 1}]),
            (None, []),
        ):
            assert (await call_error(c, "serversync/push", *bad))["error"] == 400, bad
        assert await call(c, "serversync/push", "items", []) == []
    async with client(running.url, None) as anonymous:
        error = await call_error(
            anonymous, "serversync/push", "items", [insert_change("m", "a", {})]
        )
        assert error["error"] == 403
    assert h.revision("items") == 0


async def test_the_same_push_twice_applies_once_and_returns_the_stored_results(hub: Hub) -> None:
    h, running = hub
    await h.insert("items", {"_id": "a", "v": 1})
    changes = [
        insert_change("m1", "b", {"v": 1}),
        update_change("m2", "a", 1, {"v": 2}),
        update_change("m3", "a", 0, {"v": 3}),  # conflict
        remove_change("m1", "b", None),  # the same mid again: the first one's result
    ]
    async with client(running.url) as c:
        await c.sub_ready("serversync/changes", "items", 1)
        first, seen = await call_data(c, "serversync/push", "items", changes)
        assert first == [
            {"mid": "m1", "status": "accepted", "rev": 2},
            {"mid": "m2", "status": "accepted", "rev": 3},
            {"mid": "m3", "status": "conflict", "rev": 3, "doc": {"v": 2}},
            {"mid": "m1", "status": "accepted", "rev": 2},
        ]
        await h.update("items", "a", {"$set": {"v": 4}})  # rev 4
        second, more = await call_data(c, "serversync/push", "items", changes)
        seen += more
        # Stored outcomes; a repeated conflict reports the document as it is now.
        assert second[:2] == first[:2] and second[3] == first[3]
        assert second[2] == {"mid": "m3", "status": "conflict", "rev": 4, "doc": {"v": 4}}
        entries = feed_entries(seen + await c.barrier())
    assert h.revision("items") == 4
    assert [(e["r"], e.get("m")) for e in entries] == [(2, "m1"), (3, "m2"), (4, None)]


async def test_push_whose_link_drops_before_result_is_applied_once_when_resent(
    make_hub: MakeHub,
) -> None:
    entered = asyncio.Event()
    gate = asyncio.Event()

    async def write(identity: Any, coll: str, op: str, doc_id: Any, doc: Any) -> bool:
        if doc_id == "slow":
            entered.set()
            await gate.wait()  # holds the push until its link is gone
        return True

    h, running = await make_hub(rules={"items": {"write": write}})
    changes = [insert_change("k1", "slow", {"n": 1}), insert_change("k2", "other", {"n": 2})]
    async with client(running.url) as c:
        await c.send(
            {"msg": "method", "id": "p1", "method": "serversync/push", "params": ["items", changes]}
        )
        async with asyncio.timeout(5000 * MS):
            await entered.wait()
    # The client is gone without a result; the hub finishes the write regardless.
    await wait_for_condition(lambda: not h.ddp.sessions, message="session closed")
    gate.set()
    await wait_for_condition(lambda: h.revision("items") == 2, message="push committed")
    async with client(running.url) as c:
        resent = await call(c, "serversync/push", "items", changes)
        assert resent == [
            {"mid": "k1", "status": "accepted", "rev": 1},
            {"mid": "k2", "status": "accepted", "rev": 2},
        ]
        assert [d[:2] for d in (await pull_all(c))["docs"]] == [["slow", 1], ["other", 2]]
    assert h.revision("items") == 2
    records = await h.store.get_fields(MUTATIONS_PREFIX + "items", ["k1", "k2"])
    assert set(records) == {"k1", "k2"}


async def test_mutation_records_are_purged_with_the_tombstones(make_hub: MakeHub) -> None:
    h, running = await make_hub(tombstone_retention=1)
    side = MUTATIONS_PREFIX + "items"
    async with client(running.url) as c:
        await call(c, "serversync/push", "items", [insert_change("p1", "a", {})])  # rev 1
        await call(c, "serversync/push", "items", [remove_change("p2", "a", 1)])  # rev 2
        await call(c, "serversync/push", "items", [insert_change("p3", "b", {})])  # rev 3
        await h.purge("items")  # keeps revision 3 only
        assert h.collections["items"].purged == 2
        assert set(await h.store.get_fields(side, ["p1", "p2", "p3"])) == {"p3"}
        # A kept mutation id still replays; a purged one is judged afresh (a conflict here).
        result = await call(
            c,
            "serversync/push",
            "items",
            [insert_change("p3", "b", {}), remove_change("p2", "a", 1)],
        )
        assert result == [
            {"mid": "p3", "status": "accepted", "rev": 3},
            {"mid": "p2", "status": "conflict", "rev": None, "doc": None},
        ]


async def test_pushed_values_are_stored_in_their_wire_form_and_bad_ejson_is_refused(
    hub: Hub,
) -> None:
    h, running = hub
    doc = {
        "at": {"$date": 1704164645678},
        "bin": {"$binary": "AAEC+vs="},
        "oid": {"$type": "oid", "$value": "5f1d7a0b2c3e4f5a6b7c8d9e"},
        "esc": {"$escape": {"$date": 5}},
        "inf": {"$InfNaN": 1},
    }
    async with client(running.url) as c:
        result = await call(c, "serversync/push", "items", [insert_change("w1", "a", doc)])
        assert result[0]["status"] == "accepted"
        assert (await pull_all(c))["docs"] == [["a", 1, doc]]
        for bad in ({"x": {"$type": "nope", "$value": 1}}, {"x": {"$date": "not a date"}}):
            await c.send(
                {
                    "msg": "method",
                    "id": "b1",
                    "method": "serversync/push",
                    "params": ["items", [insert_change("w2", "b", bad)]],
                }
            )
            reply = await c.recv()
            assert (reply["msg"], reply["reason"]) == ("error", "Parse error")
        assert await c.barrier() == []  # refused frames get no result
    stored = await h.store.get("items", "a")
    assert stored is not None and stored["at"].year == 2024
    assert h.revision("items") == 1

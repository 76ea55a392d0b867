"""The hub on every store backend, restarts, stamping of existing documents, and retention."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from aioserversync.hub import ServerSyncServer
from aioserversync.hub.collection import MUTATIONS_PREFIX, now_ms
from aioserversync.hub.retention import Retention, kept_marks
from aioserversync.stores import MemoryStore, MongoStore, PutDoc, SQLiteStore
from aioserversync.stores.base import Store
from tests.hub.conftest import (
    TOKENS,
    call,
    client,
    feed_entries,
    insert_change,
    remove_change,
    update_change,
)

StoreFactory = Callable[[], Store]


@pytest.fixture(params=["memory", "sqlite", "mongo"])
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    """Makes store objects over the same data (a new object per hub, as after a restart)."""
    kind = request.param
    if kind == "memory":
        shared = MemoryStore()
        yield lambda: shared
    elif kind == "sqlite":
        yield lambda: SQLiteStore(tmp_path / "hub.sqlite3")
    else:
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            request.getfixturevalue("mongo_uri")
        )
        db = mongo[f"hub_{uuid.uuid4().hex[:10]}"]
        try:
            yield lambda: MongoStore(db)
        finally:
            await mongo.drop_database(db.name)
            await mongo.close()


async def start_hub(store: Store) -> ServerSyncServer:
    hub = ServerSyncServer(store, tokens=TOKENS, heartbeat_interval=0, purge_interval=0)
    hub.collection("items")
    return hub


async def test_the_protocol_on_every_store(store_factory: StoreFactory) -> None:
    hub = await start_hub(store_factory())
    async with hub.serve() as running, client(running.url) as c:
        await hub.insert("items", {"_id": "a", "v": 1})
        result = await call(
            c,
            "serversync/push",
            "items",
            [
                insert_change("m1", "b", {"v": 2}),
                update_change("m2", "a", 1, {"v": 3}),
                update_change("m3", "a", 1, {"v": 4}),
                remove_change("m4", "b", 1),
            ],
        )
        assert [(r["status"], r.get("rev")) for r in result] == [
            ("accepted", 2),
            ("accepted", 3),
            ("accepted", 4),
            ("conflict", 2),
        ]
        assert await call(c, "serversync/push", "items", [insert_change("m1", "b", {})]) == [
            result[0]
        ]
        page = await call(c, "serversync/pull", "items", 0, 10)
        assert page["docs"] == [["b", 2, {"v": 2}], ["a", 4, {"v": 4}]]
        await call(c, "serversync/push", "items", [remove_change("m5", "b", 2)])
        page = await call(c, "serversync/pull", "items", 3, 10)
        assert page["docs"] == [["a", 4, {"v": 4}], ["b", 5, None]]
        _, backlog = await c.sub_ready("serversync/changes", "items", 4)
        assert feed_entries(backlog) == [{"i": "b", "r": 5, "d": None}]
    # Restart on the same data: the counter continues and mutation ids are remembered.
    hub = await start_hub(store_factory())
    async with hub.serve() as running, client(running.url) as c:
        assert hub.revision("items") == 5
        assert await call(c, "serversync/push", "items", [insert_change("m1", "b", {})]) == [
            result[0]
        ]
        again = await call(c, "serversync/push", "items", [insert_change("m6", "c", {})])
        assert again == [{"mid": "m6", "status": "accepted", "rev": 6}]


async def test_existing_documents_get_revisions_once(store_factory: StoreFactory) -> None:
    store = store_factory()
    async with store:  # type: ignore[attr-defined]
        await store.apply([PutDoc("items", f"d{i}", {"i": i}) for i in range(3)])
    hub = await start_hub(store_factory())
    async with hub.serve() as running, client(running.url) as c:
        page = await call(c, "serversync/pull", "items", 0, 10)
        assert sorted((d[0], d[1]) for d in page["docs"]) == [("d0", 1), ("d1", 2), ("d2", 3)]
        assert sorted(d[2]["i"] for d in page["docs"]) == [0, 1, 2]
        await hub.insert("items", {"_id": "new"})
    hub = await start_hub(store_factory())
    async with hub.serve():
        assert hub.revision("items") == 4  # nothing stamped again


async def test_a_failed_listen_closes_the_hub(tmp_path: Path) -> None:
    blocker = await start_hub(SQLiteStore(tmp_path / "a.sqlite3"))
    async with blocker.serve() as taken:
        hub = await start_hub(SQLiteStore(tmp_path / "b.sqlite3"))
        with pytest.raises(OSError):
            async with hub.serve("127.0.0.1", taken.port):
                pass
        assert not hub.store.is_open  # type: ignore[attr-defined]


def test_retention_rules() -> None:
    by_count = Retention(100)
    assert by_count.upto(250, [], 0) == 150 and by_count.upto(50, [], 0) == 0
    assert not by_count.uses_marks and not by_count.wants_mark([], 0)
    forever = Retention(None)
    assert forever.upto(10**6, [], 0) == 0
    day = Retention(timedelta(days=1))
    ms_day = 86_400_000
    assert day.wants_mark([], 5)
    assert not day.wants_mark([[0, 1]], ms_day // 100 - 1)
    assert day.wants_mark([[0, 1]], ms_day // 100)
    marks = [[0, 10], [ms_day // 2, 20], [ms_day, 30], [2 * ms_day, 40]]
    assert day.upto(40, marks, ms_day - 1) == 0
    assert day.upto(40, marks, ms_day) == 10
    assert day.upto(40, marks, 2 * ms_day) == 30
    assert kept_marks(marks, 2 * ms_day, [day]) == [[ms_day, 30], [2 * ms_day, 40]]
    assert kept_marks(marks, 2 * ms_day, [day, Retention(timedelta(days=2))]) == marks
    for bad in (0, -5, timedelta(0), 1.5, "1d", True):
        with pytest.raises(ValueError):
            Retention(bad)  # type: ignore[arg-type]


async def test_age_retention_purges_tombstones_and_mutation_ids_older_than_the_age(
    tmp_path: Path,
) -> None:
    hub = ServerSyncServer(
        SQLiteStore(tmp_path / "hub.sqlite3"),
        tokens=TOKENS,
        heartbeat_interval=0,
        purge_interval=0,
        tombstone_retention=timedelta(hours=1),
        mutation_retention=timedelta(hours=2),
    )
    coll = hub.collection("items")
    side = MUTATIONS_PREFIX + "items"
    async with hub.serve() as running, client(running.url) as c:
        await call(c, "serversync/push", "items", [insert_change("p1", "a", {})])  # rev 1
        await call(c, "serversync/push", "items", [remove_change("p2", "a", 1)])  # rev 2
        t0 = now_ms()
        assert coll.marks and coll.marks[0][1] == 1
        assert await coll.purge(now=t0) == (0, 0)  # nothing is an hour old yet
        # The marks are the hub's clock: say revision 2 was reached three hours ago.
        coll.marks = [[t0 - 3 * 3_600_000, 2]]
        assert await coll.purge(now=t0) == (2, 2)
        assert set(await hub.store.get_fields(side, ["p1", "p2"])) == set()
        assert (await call(c, "serversync/pull", "items", 2, 10))["purged"] == 2
        stored = await hub.store.get_meta("serversync/purged/items")
    assert stored == 2

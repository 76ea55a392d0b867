"""MongoStore on a user's Motor database or collection (``motor.motor_asyncio``).

The :class:`~tests.stores.contract.StoreContract` of ``test_mongo.py`` runs unchanged against a
store built from an ``AsyncIOMotorClient`` database, on the session's nx-27017 server (or
``MONGODB_URI``), with the same known nx-27017 divergences. Each test uses its own database.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import monitoring

from aioserversync.exceptions import ConfigurationError
from aioserversync.stores import (
    MetaSet,
    MongoStore,
    OutboxAppend,
    OutboxRecord,
    PatchDoc,
    PutDoc,
    StageCommit,
    StagePut,
    Tombstone,
)
from tests.stores.contract import MakeStore, StoreContract
from tests.stores.test_mongo import NX_DIVERGENCES, REAL_MONGO

# Contract tests that fail through Motor on any server, by test id.
MOTOR_DIVERGENCES: dict[str, str] = {
    "test_a_batch_violating_a_unique_index_applies_nothing": (
        "MongoStore runs transactions with PyMongo async targets only, never through Motor (and "
        "nx-27017 is standalone anyway): the document writes before a refused one stay applied"
    ),
}


@pytest.fixture
async def motor_client(mongo_uri: str) -> AsyncIterator[AsyncIOMotorClient]:
    c: AsyncIOMotorClient = AsyncIOMotorClient(mongo_uri)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
async def db_name(motor_client: AsyncIOMotorClient) -> AsyncIterator[str]:
    name = f"m_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        await motor_client.drop_database(name)


class TestMotorStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _known_divergences(self, request: pytest.FixtureRequest) -> None:
        reason = MOTOR_DIVERGENCES.get(request.node.name)
        if reason is None and not REAL_MONGO:
            reason = NX_DIVERGENCES.get(request.node.name)
        if reason is not None:
            request.node.add_marker(pytest.mark.xfail(strict=True, reason=reason))

    @pytest.fixture
    def make_store(self, motor_client: AsyncIOMotorClient, db_name: str) -> MakeStore:
        return lambda: MongoStore(motor_client[db_name])


async def test_a_store_on_a_motor_collection_works_and_holds_only_that_collection(
    motor_client: AsyncIOMotorClient, db_name: str
) -> None:
    db = motor_client[db_name]
    async with MongoStore(db["things"]) as store:
        assert store.collection_name == "things"
        assert store.name == f"mongodb:{db_name}.things"
        result = await store.apply(
            [
                *(PutDoc("things", f"d{i}", {"n": i}, origin="R", rev=i) for i in range(5)),
                PatchDoc("things", "d1", {"n": 10}),
                Tombstone("things", "d4", rev=9),
                OutboxAppend(OutboxRecord("things", "d1", "update", {"n": 10})),
                MetaSet("ckpt", 1),
            ]
        )
        assert result.seqs == [1]
        assert await store.find("things", {"n": {"$gte": 2}}, sort=[("n", 1)]) == [
            {"_id": "d2", "n": 2},
            {"_id": "d3", "n": 3},
            {"_id": "d1", "n": 10},
        ]
        paged = [d["_id"] async for d in store.iter_find("things", sort=[("_id", 1)], batch_size=2)]
        assert paged == ["d0", "d1", "d2", "d3"]
        assert await store.count("things", {"n": {"$lt": 3}}) == 2
        assert {i async for i in store.iter_ids("things", origin="R")} == {"d0", "d1", "d2", "d3"}
        assert await store.max_rev("things") == 9
        assert [r.doc_id for r in await store.outbox_peek()] == ["d1"]
        assert await store.get_meta("ckpt") == 1

        staged = [StagePut("R", "things", "d0", {"n": 0}), StagePut("R", "things", "s", {"n": 7})]
        commit = await store.apply([*staged, StageCommit("R", "things", "R", diff_limit=10)])
        changes = commit.commits[0]
        assert (changes.added, changes.changed, changes.removed) == (1, 0, 3)
        assert await store.collections() == ["things"]

        with pytest.raises(ConfigurationError):
            await store.apply([PutDoc("other", "a", {})])
        with pytest.raises(ConfigurationError):
            await store.get("other", "a")

    assert await db["things"].find({}, sort=[("_id", 1)]).to_list(None) == [
        {"_id": "d0", "n": 0},
        {"_id": "s", "n": 7},
    ]
    names = await db.list_collection_names()
    assert all(n == "things" or n.startswith("__aioserversync_") for n in names)


async def test_a_motor_client_is_neither_a_database_nor_a_collection(
    motor_client: AsyncIOMotorClient,
) -> None:
    with pytest.raises(ConfigurationError):
        MongoStore(motor_client)


@pytest.mark.parametrize("target", ["database", "collection"])
async def test_closing_the_store_never_closes_the_motor_client(
    motor_client: AsyncIOMotorClient, db_name: str, target: str
) -> None:
    db = motor_client[db_name]
    store = MongoStore(db if target == "database" else db["items"])
    await store.open()
    await store.apply([PutDoc("items", "a", {"n": 1})])
    await store.close()
    await store.close()

    assert await db["items"].count_documents({}) == 1
    await db["items"].insert_one({"_id": "b", "n": 2})
    async with MongoStore(db if target == "database" else db["items"]) as again:
        assert await again.count("items") == 2


async def test_through_motor_batches_run_without_transactions(
    motor_client: AsyncIOMotorClient, db_name: str
) -> None:
    async with MongoStore(motor_client[db_name]) as store:
        assert store._transactions is False
        await store.apply([PutDoc("items", "a", {"n": 1}), MetaSet("ckpt", 1)])
        assert await store.get_meta("ckpt") == 1


class _CursorCommands(monitoring.CommandListener):
    """Records the ``find`` replies' cursor ids and the ``killCursors`` replies."""

    def __init__(self) -> None:
        self.find_cursor_ids: list[int] = []
        self.killed: list[list[int]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        reply: Any = event.reply
        if event.command_name == "find":
            self.find_cursor_ids.append(reply["cursor"]["id"])
        elif event.command_name == "killCursors":
            self.killed.append(list(reply["cursorsKilled"]))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_leaving_iter_find_early_kills_the_server_cursor(
    mongo_uri: str, db_name: str
) -> None:
    listener = _CursorCommands()
    watched: AsyncIOMotorClient = AsyncIOMotorClient(mongo_uri, event_listeners=[listener])
    try:
        async with MongoStore(watched[db_name]) as store:
            await store.apply([PutDoc("items", f"d{i}", {"n": i}) for i in range(5)])
            listener.find_cursor_ids.clear()
            stream = store.iter_find("items", sort=[("n", 1)], batch_size=2)
            assert await anext(stream) == {"_id": "d0", "n": 0}
            [cursor_id] = listener.find_cursor_ids
            assert cursor_id != 0  # three documents left on the server
            assert listener.killed == []
            await stream.aclose()
            assert listener.killed == [[cursor_id]]
            assert await store.count("items") == 5
    finally:
        watched.close()

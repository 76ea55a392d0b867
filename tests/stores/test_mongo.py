from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from bson import Binary, Int64, ObjectId
from pymongo import AsyncMongoClient
from pymongo.errors import InvalidOperation

from aioserversync.ejson import EJSONCustom
from aioserversync.exceptions import ConfigurationError, StoreError
from aioserversync.stores import (
    MetaSet,
    MongoStore,
    OutboxAppend,
    OutboxRecord,
    PutDoc,
    SetBase,
    StagePut,
    open_store,
)
from tests.mongo_server import mongo_uri_from_env
from tests.stores.contract import MakeStore, StoreContract

REAL_MONGO = mongo_uri_from_env() is not None

# Contract tests that nx-27017 gets wrong, by test id (see dependencies.md §8).
NX_DIVERGENCES: dict[str, str] = {
    "test_ejson_values_round_trip[decimal]": "nx-27017: Decimal128 is refused on write",
    "test_ejson_values_round_trip[nan]": "nx-27017: NaN is refused on write",
    "test_ejson_values_round_trip[inf]": "nx-27017: Infinity is refused on write (Invalid JSON)",
    "test_ejson_values_round_trip[regexp]": "nx-27017: BSON regular expressions are refused",
    "test_ejson_values_round_trip[escape]": "nx-27017: reads {'$date': 5} as a date",
    "test_sub_document_equality_with_sort_skip_limit": (
        "nx-27017: refuses sub-document equality ({'sub': {'x': 1}}: \"Operator 'x' is not valid\")"
    ),
    "test_patched_values_of_every_kind_match_a_model": (
        "nx-27017: $set on an existing document stores dates as strings and booleans as 1"
    ),
    "test_find_compares_dates": "nx-27017: date ranges misorder dates whose milliseconds differ",
    "test_a_batch_violating_a_unique_index_applies_nothing": (
        "nx-27017 is a standalone server (no setName): no transactions, so the document writes "
        "before a refused one stay applied"
    ),
}


@pytest.fixture
async def client(mongo_uri: str) -> AsyncIterator[AsyncMongoClient[dict]]:
    c: AsyncMongoClient[dict] = AsyncMongoClient(mongo_uri)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def db_name(client: AsyncMongoClient[dict]) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        await client.drop_database(name)


class TestMongoStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _known_divergences(self, request: pytest.FixtureRequest) -> None:
        reason = NX_DIVERGENCES.get(request.node.name)
        if reason is not None and not REAL_MONGO:
            request.node.add_marker(pytest.mark.xfail(strict=True, reason=reason))

    @pytest.fixture
    def make_store(self, client: AsyncMongoClient[dict], db_name: str) -> MakeStore:
        return lambda: MongoStore(client[db_name])


async def test_user_documents_stay_unpolluted(client: AsyncMongoClient[dict], db_name: str) -> None:
    async with MongoStore(client[db_name], side_prefix="side") as store:
        await store.apply(
            [
                PutDoc("items", "a", {"n": 1, "at": {"$date": 5}}, origin="R", rev=3),
                SetBase("items", "a", {"n": 0}),
                OutboxAppend(OutboxRecord("items", "a", "update")),
                MetaSet("ckpt", 1),
                StagePut("R", "items", "a", {"n": 2}),
            ]
        )
    raw = await client[db_name]["items"].find({}).to_list(None)
    assert raw == [{"_id": "a", "n": 1, "at": datetime(1970, 1, 1, 0, 0, 0, 5000)}]
    names = set(await client[db_name].list_collection_names())
    assert "items" in names
    assert all(n == "items" or n.startswith("side_") for n in names)


async def test_a_single_collection_store_holds_only_that_collection(
    client: AsyncMongoClient[dict], db_name: str
) -> None:
    async with MongoStore(client[db_name]["things"]) as store:
        assert store.collection_name == "things"
        await store.apply([PutDoc("things", "a", {"n": 1})])
        assert await store.find("things") == [{"_id": "a", "n": 1}]
        with pytest.raises(ConfigurationError):
            await store.apply([PutDoc("other", "a", {})])
        with pytest.raises(ConfigurationError):
            await store.get("other", "a")
        assert await store.collections() == ["things"]
    assert await client[db_name]["things"].count_documents({}) == 1


async def test_values_written_by_others_read_back_decoded(
    client: AsyncMongoClient[dict], db_name: str
) -> None:
    oid = ObjectId()
    await client[db_name]["items"].insert_one(
        {
            "_id": oid,
            "big": Int64(7),
            "uuid": Binary(b"\x01" * 16, 4),
            "naive": datetime(2024, 1, 1, 12, 0),
            "pt": {"EJSON$type": "point", "EJSON$value": {"x": 1}},
        }
    )
    async with MongoStore(client[db_name]) as store:
        doc = await store.get("items", str(oid))
        assert doc == {
            "_id": oid,
            "big": 7,
            "uuid": b"\x01" * 16,
            "naive": datetime(2024, 1, 1, 12, 0, tzinfo=UTC),
            "pt": EJSONCustom("point", {"x": 1}),
        }
        assert type(doc["big"]) is int
        fields = (await store.get_fields("items", [str(oid)]))[str(oid)]
        assert fields["naive"] == {"$date": 1704110400000}
        assert fields["pt"] == {"$type": "point", "$value": {"x": 1}}
        assert [i async for i in store.iter_ids("items", origin=None)] == [str(oid)]


async def test_without_transactions_a_checkpoint_never_gets_ahead_of_its_data(
    client: AsyncMongoClient[dict], db_name: str
) -> None:
    async with MongoStore(client[db_name]) as store:
        if store._transactions:
            pytest.skip("the server runs transactions: covered by the contract")
        await store.create_index("users", ["email"], unique=True)
        await store.apply([PutDoc("users", "u1", {"email": "a@x"})])
        with pytest.raises(StoreError):
            await store.apply(
                [
                    PutDoc("users", "u2", {"email": "b@x"}),
                    OutboxAppend(OutboxRecord("users", "u2", "insert")),
                    MetaSet("ckpt", 2),
                    PutDoc("users", "u3", {"email": "a@x"}),
                ]
            )
        assert await store.get_meta("ckpt") is None
        assert await store.outbox_count() == 0


async def test_a_store_from_url_owns_its_client_and_never_closes_others(
    client: AsyncMongoClient[dict], db_name: str, mongo_uri: str
) -> None:
    base, _, query = mongo_uri.partition("?")
    url = f"{base.rstrip('/')}/{db_name}" + (f"?{query}" if query else "")
    store = open_store(url)
    assert isinstance(store, MongoStore)
    async with store:
        await store.apply([PutDoc("items", "a", {"n": 1})])
        owned = store._owned_client
        assert owned is not None
    with pytest.raises(InvalidOperation):
        await owned["x"]["y"].find_one({})
    async with MongoStore(client[db_name]) as other:
        assert await other.count("items") == 1
    assert await client[db_name]["items"].count_documents({}) == 1  # still usable


@pytest.mark.real_mongo
async def test_a_replica_set_runs_batches_in_transactions(
    client: AsyncMongoClient[dict], db_name: str
) -> None:
    async with MongoStore(client[db_name]) as store:
        hello = await client.admin.command("hello")
        assert store._transactions is bool(hello.get("setName"))

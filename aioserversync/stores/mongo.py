"""MongoStore: a :class:`~aioserversync.stores.base.Store` on a user's MongoDB.

The user's documents live in the user's collections, unpolluted: decoded BSON documents with
``_id`` as ``ids.id_parse`` gives it (see :mod:`.mongo_codec` for the value mapping). Everything
else lives in side collections of the same database, named ``<side_prefix>_<part>``:

* ``docmeta``: origin and revision per document (``{c, i, o, r}``), ``bases``, ``tombstones``,
* ``outbox`` (``_id`` is the ``seq``; ``counters`` holds the last one), ``meta``, ``staging``.

Queries, sorts and projections go to MongoDB natively (selectors are checked by
:func:`aioserversync.query.compile_selector` first, so every store refuses the same malformed
input with :class:`~aioserversync.exceptions.QueryError`).

**Atomicity.** When the server supports transactions (a replica set or a sharded cluster) and the
target is a PyMongo async object, every :meth:`MongoStore.apply` runs in one transaction. On a
standalone server (or through Motor) there is no all-or-nothing: writes are ordered documents
first, then outbox, metadata and checkpoints, so a crash or a refused write part-way leaves an
at-least-once replay, never a checkpoint ahead of its data. A malformed batch is refused before
anything is written in both cases.

**Motor.** A Motor database or collection is accepted by duck typing (best effort until Motor's
end of support in May 2027): a collection is an object whose class has ``bulk_write`` and
``find`` and whose ``database`` is a database, one whose class has ``list_collection_names`` and
``get_collection``. ``tests/stores/test_motor.py`` runs the store contract against a Motor 3.7.1
database, and tests a Motor collection target, early exit from :meth:`MongoStore.iter_find`
(the server cursor is killed) and that closing the store leaves the Motor client usable.
Sessions and transactions are used with PyMongo only, so through Motor a batch is never atomic,
even on a replica set. A client the store did not create is never closed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConfigurationError as PyMongoConfigurationError
from pymongo.errors import OperationFailure, PyMongoError

from .. import query as _q
from ..exceptions import ConfigurationError, QueryError, StoreError
from ..typing import Document, Selector, WireFields
from .base import (
    Batch,
    BatchResult,
    SortSpec,
    StoreLifecycle,
)
from .mongo_apply import MongoWriter
from .mongo_codec import (
    doc_from_bson,
    to_bson,
    wire_from_bson,
)
from .mongo_side import QUERY_ERROR_CODES, MongoSideReads
from .wireform import index_keys

__all__ = ["MongoStore"]


# Methods are checked on the class: databases answer any attribute with a sub-collection. A
# collection's ``database`` is read from the instance (Motor sets it in ``__init__``).
def _is_collection(target: Any) -> bool:
    cls = type(target)
    return (
        hasattr(cls, "bulk_write")
        and hasattr(cls, "find")
        and _is_database(getattr(target, "database", None))
    )


def _is_database(target: Any) -> bool:
    cls = type(target)
    return hasattr(cls, "list_collection_names") and hasattr(cls, "get_collection")


class MongoStore(MongoSideReads, StoreLifecycle):
    """A store on a MongoDB database or on one of its collections; see the module docstring.

    Args:
        target: A PyMongo ``AsyncDatabase`` (local collection ``name`` is ``db[name]``) or
            ``AsyncCollection`` (the store then holds exactly that collection), or their Motor
            counterparts.
        side_prefix: Prefix of the side collections' names.
        name: A description for logs (default: built from the database and collection names).

    Raises:
        ConfigurationError: ``target`` is neither a database nor a collection, or the prefix is
            unusable.
    """

    def __init__(
        self, target: Any, *, side_prefix: str = "__aioserversync", name: str | None = None
    ) -> None:
        if _is_collection(target):
            self._db: Any = target.database
            self._single: Any = target
            self.collection_name: str | None = target.name
        elif _is_database(target):
            self._db = target
            self._single = None
            self.collection_name = None
        else:
            raise ConfigurationError(
                f"MongoStore needs an async MongoDB database or collection, got {target!r}"
            )
        if not isinstance(side_prefix, str) or not side_prefix or "$" in side_prefix:
            raise ConfigurationError(f"invalid side_prefix {side_prefix!r}")
        self._prefix = side_prefix
        suffix = f".{self.collection_name}" if self.collection_name else ""
        self.name = name or f"mongodb:{self._db.name}{suffix}"
        self._owned_client: AsyncMongoClient[Any] | None = None
        self._state = "new"
        self._transactions = False
        self._handles: dict[str, Any] = {}

    @classmethod
    def from_url(
        cls, url: str, *, side_prefix: str = "__aioserversync", **client_options: Any
    ) -> MongoStore:
        """Create a store with its own ``AsyncMongoClient`` (closed by :meth:`close`).

        Args:
            url: ``mongodb://host[:port]/database[?options]`` (or ``mongodb+srv://``); the
                database name is required.
            side_prefix: Prefix of the side collections' names.
            **client_options: Passed to ``AsyncMongoClient``.

        Raises:
            ConfigurationError: The URL is malformed or names no database.
        """
        try:
            client: AsyncMongoClient[Any] = AsyncMongoClient(url, **client_options)
            db = client.get_default_database()
        except (PyMongoConfigurationError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"invalid MongoDB store URL: {exc}") from exc
        host = url.split("@")[-1].split("/")[0]
        store = cls(db, side_prefix=side_prefix, name=f"mongodb://{host}/{db.name}")
        store._owned_client = client
        return store

    def __repr__(self) -> str:
        return f"MongoStore({self.name!r})"

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Create the side collections' indexes and detect transaction support. Idempotent.

        Raises:
            StoreError: The server cannot be reached or refused.
        """
        if self._state == "open":
            return
        try:
            hello = await self._db.command("hello")
            self._transactions = isinstance(self._db, AsyncDatabase) and bool(
                hello.get("setName") or hello.get("msg") == "isdbgrid"
            )
            h = self.target_collection
            await h("docmeta").create_index([("c", 1), ("o", 1), ("i", 1)])
            await h("docmeta").create_index([("c", 1), ("r", 1)])
            await h("bases").create_index([("c", 1), ("i", 1)])
            await h("tombstones").create_index([("c", 1), ("r", 1)])
            await h("outbox").create_index([("s", 1)])
            await h("outbox").create_index([("c", 1), ("d", 1)])
            await h("staging").create_index([("s", 1), ("c", 1)])
        except PyMongoError as exc:
            raise StoreError(f"cannot open {self.name}: {exc}") from exc
        self._state = "open"

    async def close(self) -> None:
        """Close the store, and the client only if :meth:`from_url` created it. Idempotent."""
        if self._state != "open":
            owned, self._owned_client = self._owned_client, None
            if owned is not None:
                await owned.close()
            return
        self._state = "closed"
        client, self._owned_client = self._owned_client, None
        if client is not None:
            await client.close()

    # ------------------------------------------------------------------ writes

    async def apply(self, batch: Batch) -> BatchResult:
        """Apply every operation of ``batch`` in order (atomically only in a transaction).

        Raises:
            StoreError: An operation was invalid (nothing written) or MongoDB refused a write.
            ConfigurationError: A collection name is invalid (nothing written).
            InvalidState: The store is not open.
        """
        self._check_open()
        writer = MongoWriter(self)
        prepared = [writer.prepare(op) for op in batch]
        if not self._transactions:
            return await writer.run(prepared)
        try:
            async with (
                self._db.client.start_session() as session,
                await session.start_transaction(),
            ):
                writer.session = session
                return await writer.run(prepared)
        except PyMongoError as exc:
            raise StoreError(f"MongoDB transaction failed: {exc}") from exc

    # ------------------------------------------------------------------ documents

    async def get(self, collection: str, doc_id: str) -> Document | None:
        """Return one decoded document by wire id, or ``None``."""
        found = await self._by_ids(collection, [doc_id])
        raw = found.get(doc_id)
        return None if raw is None else doc_from_bson(raw)

    async def get_many(self, collection: str, doc_ids: Sequence[str]) -> dict[str, Document]:
        """Return the documents that exist among ``doc_ids``, keyed by wire id."""
        return {i: doc_from_bson(d) for i, d in (await self._by_ids(collection, doc_ids)).items()}

    async def get_fields(self, collection: str, doc_ids: Sequence[str]) -> dict[str, WireFields]:
        """Return wire-form fields (no ``_id``) of the documents that exist, keyed by wire id."""
        return {i: wire_from_bson(d) for i, d in (await self._by_ids(collection, doc_ids)).items()}

    def _query(
        self,
        selector: Selector | None,
        sort: SortSpec | None,
        projection: Mapping[str, Any] | None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        flt: dict[str, Any] = {}
        if selector:
            _q.compile_selector(selector)  # the same QueryError as the other stores
            flt = to_bson(dict(selector))
        kw: dict[str, Any] = {}
        if sort:
            kw["sort"] = list(_q.normalize_sort(sort))
        if projection:
            _q.apply_projection({"_id": ""}, projection)
            kw["projection"] = dict(projection)
        return flt, kw

    async def find(
        self,
        collection: str,
        selector: Selector | None = None,
        *,
        sort: SortSpec | None = None,
        skip: int = 0,
        limit: int = 0,
        projection: Mapping[str, Any] | None = None,
    ) -> list[Document]:
        """Return decoded documents matching a MongoDB selector (``limit=0``: no limit).

        Raises:
            QueryError: The selector, sort or projection is malformed or unsupported.
        """
        self._check_open()
        name = self.check_name(collection)
        flt, kw = self._query(selector, sort, projection)
        if skip > 0:
            kw["skip"] = int(skip)
        if limit > 0:
            kw["limit"] = int(limit)
        return [doc_from_bson(d) for d in await self._find_raw(f"u:{name}", flt, **kw)]

    async def iter_find(
        self,
        collection: str,
        selector: Selector | None = None,
        *,
        sort: SortSpec | None = None,
        projection: Mapping[str, Any] | None = None,
        batch_size: int = 1000,
    ) -> AsyncIterator[Document]:
        """Like :meth:`find`, streamed from a server cursor ``batch_size`` documents at a time."""
        self._check_open()
        name = self.check_name(collection)
        flt, kw = self._query(selector, sort, projection)
        cursor = self.target_collection(f"u:{name}").find(
            flt, batch_size=max(int(batch_size), 1), **kw
        )
        try:
            async for raw in cursor:
                yield doc_from_bson(raw)
        except OperationFailure as exc:
            if exc.code in QUERY_ERROR_CODES:
                raise QueryError(f"MongoDB refused the query: {exc}") from exc
            raise StoreError(f"MongoDB read failed: {exc}") from exc
        except PyMongoError as exc:
            raise StoreError(f"MongoDB read failed: {exc}") from exc
        finally:
            await cursor.close()

    async def count(self, collection: str, selector: Selector | None = None) -> int:
        """Count documents matching a selector (``count_documents``)."""
        self._check_open()
        name = self.check_name(collection)
        flt, _ = self._query(selector, None, None)
        try:
            n: int = await self.target_collection(f"u:{name}").count_documents(flt)
        except OperationFailure as exc:
            if exc.code in QUERY_ERROR_CODES:
                raise QueryError(f"MongoDB refused the query: {exc}") from exc
            raise StoreError(f"MongoDB count failed: {exc}") from exc
        except PyMongoError as exc:
            raise StoreError(f"MongoDB count failed: {exc}") from exc
        return n

    async def create_index(
        self, collection: str, keys: Sequence[str | tuple[str, int]], *, unique: bool = False
    ) -> None:
        """Create a MongoDB index over (dotted) fields. Idempotent.

        Raises:
            StoreError: Existing documents violate a new unique index, or MongoDB refused.
        """
        self._check_open()
        name = self.check_name(collection)
        specs = index_keys(keys)
        if [p for p, _ in specs] == ["_id"]:
            return
        try:
            await self.target_collection(f"u:{name}").create_index(specs, unique=bool(unique))
        except PyMongoError as exc:
            raise StoreError(f"cannot create index on {name!r}: {exc}") from exc

    async def collections(self) -> list[str]:
        """Return the names of the local collections that hold documents, bases or tombstones."""
        self._check_open()
        try:
            if self.collection_name is not None:
                candidates = [self.collection_name]
            else:
                names = await self._db.list_collection_names()
                candidates = [n for n in names if not n.startswith((self._prefix, "system."))]
            out: set[str] = set()
            for n in candidates:
                if await self.target_collection(f"u:{n}").find_one({}, projection={"_id": 1}):
                    out.add(n)
            for side in ("bases", "tombstones"):
                values = await self.target_collection(side).distinct("c")
                out.update(v for v in values if self.collection_name in (None, v))
        except PyMongoError as exc:
            raise StoreError(f"MongoDB read failed: {exc}") from exc
        return sorted(out)

"""SQLiteStore: the default durable :class:`~aioserversync.stores.base.Store`.

stdlib ``sqlite3`` on one dedicated thread (:class:`~.sqlite_worker.WorkerThread`), WAL mode,
``isolation_level=None`` with explicit ``BEGIN IMMEDIATE``/``COMMIT``. Every public call is one job
on that thread and every :meth:`SQLiteStore.apply` is one transaction, so a batch is all or nothing,
also under ``kill -9``. Documents are stored as the JSON text of their EJSON wire form (see
:mod:`.sqlite_schema`); selectors are translated to SQLite JSON1 by :mod:`aioserversync.query` and
post-filtered in Python only where the translation is not exact.

Guarantees and limits:

* ``synchronous="NORMAL"`` (default) keeps every committed batch through a process crash; a power
  loss may drop the last commits (never corrupting the file). Use ``"FULL"`` to keep them too.
* Unique indexes do not constrain documents in which an indexed field is missing or ``null``
  (SQLite treats NULLs as distinct), unlike MongoDB.
* ``iter_find`` and ``iter_ids`` read page by page; each page is a separate read, so a concurrent
  write may be seen by later pages. A sort that SQL cannot express is done in Python over all
  matching documents.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import orjson

from .. import query as _q
from ..exceptions import InvalidState, StoreError
from ..typing import Document, JSONValue, Selector, WireFields
from . import sqlite_read as rd
from .base import (
    _UNSET,
    Batch,
    BatchResult,
    DocMeta,
    OutboxRecord,
    OutboxState,
    RevEntry,
    SortSpec,
    StoreLifecycle,
)
from .sqlite_apply import apply_batch
from .sqlite_pull import changes_page
from .sqlite_schema import DEFAULT_PAGE_SIZE, SQLiteDB, Synchronous
from .sqlite_worker import WorkerThread
from .wireform import check_collection, check_id, dedupe, index_keys

__all__ = ["SQLiteStore"]

P = ParamSpec("P")
T = TypeVar("T")


class SQLiteStore(StoreLifecycle):
    """A store in one SQLite file; see the module docstring.

    Args:
        path: The database file (created if missing), or ``":memory:"`` for a private in-memory
            database (gone at close).
        synchronous: ``PRAGMA synchronous``: ``"NORMAL"`` (default), ``"FULL"``, ``"EXTRA"`` or
            ``"OFF"``.
        cache_mb: SQLite page cache size in MiB.
        wal_autocheckpoint: WAL pages that trigger a background checkpoint (``None``: 40 MiB
            worth of pages; 0: checkpoints only at close).
        busy_timeout: Seconds to wait for another process holding the write lock.
        page_size: Page size in bytes of a new database file: a power of two from 512 to 65536.
            A file that exists keeps the page size it was created with. The default, 16 KiB,
            writes batches about 1.7x as fast as SQLite's 4 KiB; a small commit writes 4x as
            many bytes to the WAL (docs/stores.md).

    Raises:
        StoreError: ``synchronous`` or ``page_size`` is not a valid value.
    """

    reads_page_text = True
    """A :class:`~aioserversync.stores.base.PutDocs` text is written in SQL, as it is: the sync
    engine asks a hub for whole pages as text (docs/protocol.md, 3.2) only for such stores."""

    def __init__(
        self,
        path: str | os.PathLike[str] = "aioserversync.db",
        *,
        synchronous: Synchronous = "NORMAL",
        cache_mb: int = 64,
        wal_autocheckpoint: int | None = None,
        busy_timeout: float = 5.0,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        self.path = os.fspath(path)
        self.name = "sqlite://:memory:" if self.path == ":memory:" else f"sqlite:///{self.path}"
        self._db = SQLiteDB(
            self.path,
            synchronous=synchronous,
            cache_mb=cache_mb,
            wal_autocheckpoint=wal_autocheckpoint,
            busy_timeout_ms=int(busy_timeout * 1000),
            page_size=page_size,
        )
        self._worker = WorkerThread("aioserversync-sqlite")
        self._state = "new"

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    async def open(self) -> None:
        """Open the file, create the schema and start the worker thread. Idempotent.

        A closed store can be opened again.

        Raises:
            StoreError: The file cannot be opened or has a newer schema.
        """
        if self._state == "open":
            return
        self._worker.start()
        try:
            await self._worker.run(self._db.open)
        except BaseException:
            self._worker.stop()
            raise
        self._state = "open"

    async def close(self) -> None:
        """Finish queued calls, close the connection and stop the thread. Idempotent."""
        if self._state != "open":
            return
        self._state = "closed"
        await self._worker.stop_after(self._db.close)

    async def _run(
        self, fn: Callable[Concatenate[SQLiteDB, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        if self._state != "open":
            raise InvalidState(
                f"{self.name} is {'closed' if self._state == 'closed' else 'not open'}"
            )
        try:
            return await self._worker.run(fn, self._db, *args, **kwargs)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite error: {exc}") from exc

    # ------------------------------------------------------------------ writes

    async def apply(self, batch: Batch) -> BatchResult:
        """Apply every operation of ``batch`` in order, in one transaction.

        Raises:
            StoreError: An operation was invalid, a unique index was violated, or SQLite failed;
                nothing was applied.
            ConfigurationError: A collection name is invalid; nothing was applied.
            InvalidState: The store is not open.
        """
        return await self._run(apply_batch, batch)

    # ------------------------------------------------------------------ documents

    async def get(self, collection: str, doc_id: str) -> Document | None:
        """Return one decoded document by wire id, or ``None``."""
        docs = await self._run(rd.get_docs, check_collection(collection), [check_id(doc_id)])
        return docs.get(doc_id)

    async def get_many(self, collection: str, doc_ids: Sequence[str]) -> dict[str, Document]:
        """Return the documents that exist among ``doc_ids``, keyed by wire id."""
        return await self._run(rd.get_docs, check_collection(collection), dedupe(doc_ids))

    async def get_fields(self, collection: str, doc_ids: Sequence[str]) -> dict[str, WireFields]:
        """Return wire-form fields (no ``_id``) of the documents that exist, keyed by wire id."""
        return await self._run(rd.get_fields, check_collection(collection), dedupe(doc_ids))

    def _compile(
        self,
        selector: Selector | None,
        sort: SortSpec | None,
        projection: Mapping[str, Any] | None,
    ) -> rd.FindQuery:
        where, params, matcher = "1", (), None
        if selector:
            plan = _q.compile_sql(selector, fields_col="fields", id_col="id")
            where, params = plan.where, tuple(plan.params)
            if not plan.exact:
                matcher = _q.compile_selector(selector)
        spec = _q.normalize_sort(sort) if sort else None
        order_sql = _q.sql_order_by(spec, fields_col="fields", id_col="id") if spec else None
        if projection:
            _q.apply_projection({"_id": ""}, projection)  # raises QueryError when malformed
        return rd.FindQuery(
            where=where,
            params=params,
            matcher=matcher,
            order_sql=order_sql,
            py_sort=spec if spec and order_sql is None else None,
            projection=projection or None,
        )

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
        coll = check_collection(collection)
        q = self._compile(selector, sort, projection)
        return await self._run(rd.find, coll, q, int(skip), int(limit))

    async def iter_find(
        self,
        collection: str,
        selector: Selector | None = None,
        *,
        sort: SortSpec | None = None,
        projection: Mapping[str, Any] | None = None,
        batch_size: int = 1000,
    ) -> AsyncIterator[Document]:
        """Like :meth:`find`, read ``batch_size`` rows per page.

        Raises:
            QueryError: The selector, sort or projection is malformed or unsupported.
        """
        coll = check_collection(collection)
        q = self._compile(selector, sort, projection)
        if q.py_sort is not None:
            for doc in await self._run(rd.find, coll, q, 0, 0):
                yield doc
            return
        size = max(int(batch_size), 1)
        after = 0
        offset = 0
        while True:
            docs, last, n = await self._run(rd.find_page, coll, q, after, offset, size)
            for doc in docs:
                yield doc
            if last is None:
                return
            after = last
            offset += n

    async def count(self, collection: str, selector: Selector | None = None) -> int:
        """Count documents matching a selector.

        Raises:
            QueryError: The selector is malformed or unsupported.
        """
        coll = check_collection(collection)
        return await self._run(rd.count, coll, self._compile(selector, None, None))

    async def create_index(
        self, collection: str, keys: Sequence[str | tuple[str, int]], *, unique: bool = False
    ) -> None:
        """Create expression indexes over (dotted) fields. Idempotent.

        A single non-unique key gets one index per expression of
        :func:`aioserversync.query.index_expressions` (value, JSON types, date milliseconds), so
        every branch of a translated condition can be served; the type and date indexes are
        partial (only rows with an array on the path, or a date there, have entries). A compound
        or unique index is one index over the value expression of each key. ``_id`` is always
        indexed and unique.

        A unique index compares values as SQLite does: documents where a key is missing or
        ``null`` are not constrained, and ``true`` equals ``1``.

        Raises:
            StoreError: Existing documents violate a new unique index, or SQLite failed.
            QueryError: A key path cannot be indexed.
        """
        coll = check_collection(collection)
        specs = index_keys(keys)
        if [p for p, _ in specs] == ["_id"]:
            return
        indexes: list[tuple[list[str], bool, str]] = []
        if len(specs) == 1 and not unique:
            path, direction = specs[0]
            suffix = " DESC" if direction < 0 else ""
            exprs = _q.index_expressions(path, fields_col="fields")
            # The value, then the JSON type of each prefix of a dotted path and the date
            # milliseconds. Those two kinds only serve documents holding an array on the way or a
            # date there, so their indexes are partial: most rows get no entry to maintain.
            indexes = [([exprs[0] + suffix], False, "")]
            indexes += [([e + suffix], False, f"{e}='array'") for e in exprs[1:-1]]
            indexes += [([e + suffix], False, f"{e} IS NOT NULL") for e in exprs[-1:]]
        else:
            terms = []
            for path, direction in specs:
                expr = "id" if path == "_id" else _q.index_expressions(path, fields_col="fields")[0]
                terms.append(expr + (" DESC" if direction < 0 else ""))
            indexes = [(terms, bool(unique), "")]
        await self._run(_create_indexes, coll, indexes)

    async def collections(self) -> list[str]:
        """Return the names of the local collections that hold documents, bases or tombstones."""
        return await self._run(rd.collections)

    # ------------------------------------------------------------------ sync metadata

    async def get_meta_many(self, collection: str, doc_ids: Sequence[str]) -> dict[str, DocMeta]:
        """Return :class:`DocMeta` for the documents (or bases) that exist among ``doc_ids``."""
        return await self._run(rd.meta_many, check_collection(collection), dedupe(doc_ids))

    async def iter_ids(
        self, collection: str, *, origin: str | None = _UNSET, batch_size: int = 1000
    ) -> AsyncIterator[str]:
        """Stream the wire ids of a collection, optionally only those of one origin.

        ``origin=None`` selects local-only documents; leaving it out selects all.
        """
        coll = check_collection(collection)
        any_origin = origin is _UNSET
        size = max(int(batch_size), 1)
        after = 0
        while True:
            ids, after = await self._run(rd.ids_page, coll, any_origin, origin, after, size)
            for doc_id in ids:
                yield doc_id
            if len(ids) < size:
                return

    async def based_ids(self, collection: str) -> list[str]:
        """Return the wire ids that have a base recorded."""
        return await self._run(rd.based_ids, check_collection(collection))

    # ------------------------------------------------------------------ outbox

    async def outbox_peek(
        self,
        *,
        collection: str | None = None,
        origin: str | None = None,
        states: Sequence[OutboxState] = ("pending",),
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[OutboxRecord]:
        """Return records in ``seq`` order, filtered by collection, origin and state."""
        return await self._run(
            rd.outbox_select, collection, origin, list(states), int(after_seq), int(limit)
        )

    async def outbox_for_docs(self, collection: str, doc_ids: Sequence[str]) -> list[OutboxRecord]:
        """Return every record (any state) for the given documents, in ``seq`` order."""
        return await self._run(rd.outbox_for_docs, check_collection(collection), dedupe(doc_ids))

    async def outbox_count(
        self,
        *,
        collection: str | None = None,
        origin: str | None = None,
        states: Sequence[OutboxState] = ("pending", "in_flight", "unknown"),
    ) -> int:
        """Count records."""
        return await self._run(rd.outbox_count, collection, origin, list(states))

    # ------------------------------------------------------------------ metadata

    async def get_meta(self, key: str) -> JSONValue:
        """Return a metadata value, or ``None``."""
        return await self._run(rd.get_meta, key)

    async def get_meta_prefix(self, prefix: str) -> dict[str, JSONValue]:
        """Return every metadata key starting with ``prefix``."""
        return await self._run(rd.get_meta_prefix, prefix)

    # ------------------------------------------------------------------ staging

    async def stage_get(
        self, scope: str, collection: str, doc_ids: Sequence[str]
    ) -> dict[str, WireFields]:
        """Return the staged fields of the given ids that are staged."""
        return await self._run(rd.stage_get, scope, check_collection(collection), dedupe(doc_ids))

    async def stage_revs(
        self, scope: str, collection: str, doc_ids: Sequence[str]
    ) -> dict[str, int]:
        """Return the hub revisions of the given staged ids that carry one."""
        return await self._run(rd.stage_revs, scope, check_collection(collection), dedupe(doc_ids))

    async def stage_count(self, scope: str, collection: str) -> int:
        """Count staged documents."""
        return await self._run(rd.stage_count, scope, check_collection(collection))

    # ------------------------------------------------------------------ hub revisions

    async def changes_since(self, collection: str, since: int, limit: int) -> list[RevEntry]:
        """Return up to ``limit`` documents and tombstones with ``rev > since``, by ``rev``."""
        return await self._run(rd.changes_since, check_collection(collection), since, limit)

    async def changes_page(
        self, collection: str, since: int, limit: int, max_bytes: int
    ) -> tuple[str, list[tuple[str, int]], int, bool] | None:
        """Hub side: the page after ``since`` with its documents as one JSON text.

        Returns ``(documents, tombstones, next, more)``: the JSON text of an object
        ``"<rev>:<id>"`` -> fields (the page form of docs/protocol.md, 3.2), the ``(id, rev)`` of
        the page's tombstones, the revision of its last change, and whether more follow. The
        same changes as :meth:`changes_since` with ``limit``; ``None`` when the documents'
        text would be over ``max_bytes``.
        """
        return await self._run(changes_page, check_collection(collection), since, limit, max_bytes)

    async def max_rev(self, collection: str) -> int:
        """Return the largest revision of any document or tombstone (0 if none)."""
        return await self._run(rd.max_rev, check_collection(collection))

    async def min_tombstone_rev(self, collection: str) -> int | None:
        """Hub side: the smallest tombstone revision still kept, or ``None``."""
        return await self._run(rd.min_tombstone_rev, check_collection(collection))


def _create_indexes(db: SQLiteDB, coll: str, indexes: list[tuple[list[str], bool, str]]) -> None:
    conn = db.conn
    try:
        conn.execute("BEGIN IMMEDIATE")
        tbl = db.create_table(coll)
        for terms, unique, where in indexes:
            key: list[object] = [terms, unique, where] if where else [terms, unique]
            digest = hashlib.sha1(orjson.dumps(key)).hexdigest()[:16]
            kind = "UNIQUE INDEX" if unique else "INDEX"
            partial = f" WHERE {where}" if where else ""
            conn.execute(
                f"CREATE {kind} IF NOT EXISTS {tbl}_ix_{digest} ON {tbl}({', '.join(terms)})"
                + partial
            )
        conn.execute("COMMIT")
    except BaseException as exc:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        finally:
            db.forget_created()
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"cannot create index on {coll!r}: {exc}") from exc
        raise
    db.commit_created()
    db.after_commit()

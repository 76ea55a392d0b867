"""MemoryStore: the reference :class:`~aioserversync.stores.base.Store`, held in plain dicts.

It has the same semantics as the durable stores (atomic batches, outbox, staging, tombstones,
revisions) and is meant for tests and ephemeral use. Documents are kept as wire-form JSON text, so
callers can never alias stored data, and reads decode them as the other stores do. Queries use the
Python matcher over every document of the collection: fine for tests, not for large data.

Atomicity: :meth:`MemoryStore.apply` runs without awaiting, records every change in an undo log,
and rolls the log back if any operation fails.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from .. import query as _q
from ..exceptions import InvalidState, StoreError
from ..typing import Document, JSONValue, Selector, WireFields
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
    rev_entries,
)
from .memory_apply import MemoryData
from .wireform import (
    check_collection,
    check_id,
    dedupe,
    index_keys,
    load_fields,
    load_json,
    row_to_doc,
)

__all__ = ["MemoryStore"]


class MemoryStore(StoreLifecycle):
    """A store held in memory; see the module docstring.

    Args:
        name: The description shown in logs and status output.
    """

    def __init__(self, name: str = "memory://") -> None:
        self.name = name
        self._state = "new"
        self._data = MemoryData()

    def __repr__(self) -> str:
        return f"MemoryStore({self.name!r})"

    async def open(self) -> None:
        """Open the store (data survives a close and reopen of the same object). Idempotent."""
        self._state = "open"

    async def close(self) -> None:
        """Close the store. Idempotent."""
        if self._state == "open":
            self._state = "closed"

    def _check_open(self) -> None:
        if self._state != "open":
            raise InvalidState(
                f"{self.name} is {'closed' if self._state == 'closed' else 'not open'}"
            )

    # ------------------------------------------------------------------ writes

    async def apply(self, batch: Batch) -> BatchResult:
        """Apply every operation of ``batch`` in order, atomically.

        Raises:
            StoreError: An operation was invalid or violated a unique index; nothing was applied.
            ConfigurationError: A collection name is invalid; nothing was applied.
            InvalidState: The store is not open.
        """
        self._check_open()
        return self._data.apply(batch)

    # ------------------------------------------------------------------ documents

    async def get(self, collection: str, doc_id: str) -> Document | None:
        """Return one decoded document by wire id, or ``None``."""
        self._check_open()
        row = self._data.docs.get(check_collection(collection), {}).get(check_id(doc_id))
        return None if row is None else row_to_doc(doc_id, row.fields)

    async def get_many(self, collection: str, doc_ids: Sequence[str]) -> dict[str, Document]:
        """Return the documents that exist among ``doc_ids``, keyed by wire id."""
        self._check_open()
        docs = self._data.docs.get(check_collection(collection), {})
        out: dict[str, Document] = {}
        for doc_id in dedupe(doc_ids):
            row = docs.get(doc_id)
            if row is not None:
                out[doc_id] = row_to_doc(doc_id, row.fields)
        return out

    async def get_fields(self, collection: str, doc_ids: Sequence[str]) -> dict[str, WireFields]:
        """Return wire-form fields (no ``_id``) of the documents that exist, keyed by wire id."""
        self._check_open()
        docs = self._data.docs.get(check_collection(collection), {})
        out: dict[str, WireFields] = {}
        for doc_id in dedupe(doc_ids):
            row = docs.get(doc_id)
            if row is not None:
                out[doc_id] = load_fields(row.fields)
        return out

    def _matching(self, collection: str, selector: Selector | None) -> list[Document]:
        matcher = _q.compile_selector(selector)
        docs = self._data.docs.get(check_collection(collection), {})
        out = []
        for doc_id, row in list(docs.items()):
            doc = row_to_doc(doc_id, row.fields)
            if matcher.matches(doc):
                out.append(doc)
        return out

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
        spec = _q.normalize_sort(sort) if sort else None
        if projection:
            _q.compile_projection(projection)  # refused even when nothing matches
        docs = self._matching(collection, selector)
        if spec:
            docs = _q.sort_documents(docs, spec)
        docs = docs[max(skip, 0) :]
        if limit > 0:
            docs = docs[:limit]
        if projection:
            docs = [_q.apply_projection(d, projection) for d in docs]
        return docs

    async def iter_find(
        self,
        collection: str,
        selector: Selector | None = None,
        *,
        sort: SortSpec | None = None,
        projection: Mapping[str, Any] | None = None,
        batch_size: int = 1000,
    ) -> AsyncIterator[Document]:
        """Like :meth:`find`, yielded one document at a time."""
        for doc in await self.find(collection, selector, sort=sort, projection=projection):
            yield doc

    async def count(self, collection: str, selector: Selector | None = None) -> int:
        """Count documents matching a selector."""
        self._check_open()
        if not selector:
            return len(self._data.docs.get(check_collection(collection), {}))
        return len(self._matching(collection, selector))

    async def create_index(
        self, collection: str, keys: Sequence[str | tuple[str, int]], *, unique: bool = False
    ) -> None:
        """Record an index; only unique ones matter here (they are enforced on every batch).

        Like SQLiteStore, a unique index does not constrain documents where a key is missing or
        ``null``.

        Raises:
            StoreError: If existing documents already violate a new unique index.
        """
        self._check_open()
        coll = check_collection(collection)
        paths = tuple(p for p, _ in index_keys(keys))
        if unique and paths not in self._data.unique.get(coll, []):
            self._data.unique.setdefault(coll, []).append(paths)
            try:
                self._data.check_unique(coll)
            except StoreError:
                self._data.unique[coll].remove(paths)
                raise

    async def collections(self) -> list[str]:
        """Return the names of the local collections that hold documents, bases or tombstones."""
        self._check_open()
        names = {
            n
            for t in (self._data.docs, self._data.bases, self._data.tombs)
            for n, d in t.items()
            if d
        }
        return sorted(names)

    # ------------------------------------------------------------------ sync metadata

    async def get_meta_many(self, collection: str, doc_ids: Sequence[str]) -> dict[str, DocMeta]:
        """Return :class:`DocMeta` for the documents (or bases) that exist among ``doc_ids``."""
        self._check_open()
        coll = check_collection(collection)
        docs = self._data.docs.get(coll, {})
        bases = self._data.bases.get(coll, {})
        out: dict[str, DocMeta] = {}
        for doc_id in dedupe(doc_ids):
            row = docs.get(doc_id)
            base = bases.get(doc_id)
            if row is None and base is None:
                continue
            out[doc_id] = DocMeta(
                origin=None if row is None else row.origin,
                rev=None if row is None else row.rev,
                has_base=base is not None,
                base=None if base is None or base.fields is None else load_fields(base.fields),
                base_rev=None if base is None else base.rev,
            )
        return out

    async def iter_ids(
        self, collection: str, *, origin: str | None = _UNSET, batch_size: int = 1000
    ) -> AsyncIterator[str]:
        """Stream the wire ids of a collection, optionally only those of one origin."""
        self._check_open()
        docs = self._data.docs.get(check_collection(collection), {})
        ids = [i for i, r in docs.items() if origin is _UNSET or r.origin == origin]
        for doc_id in sorted(ids):
            yield doc_id

    async def based_ids(self, collection: str) -> list[str]:
        """Return the wire ids that have a base recorded."""
        self._check_open()
        return sorted(self._data.bases.get(check_collection(collection), {}))

    # ------------------------------------------------------------------ outbox

    def _records(
        self,
        collection: str | None,
        origin: str | None,
        states: Sequence[OutboxState],
        after_seq: int = 0,
    ) -> list[OutboxRecord]:
        wanted = set(states)
        return [
            dataclasses.replace(r)
            for seq, r in sorted(self._data.outbox.items())
            if seq > after_seq
            and r.state in wanted
            and (collection is None or r.collection == collection)
            and (origin is None or r.origin == origin)
        ]

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
        self._check_open()
        recs = self._records(collection, origin, states, after_seq)
        return recs[:limit] if limit > 0 else recs

    async def outbox_for_docs(self, collection: str, doc_ids: Sequence[str]) -> list[OutboxRecord]:
        """Return every record (any state) for the given documents, in ``seq`` order."""
        self._check_open()
        wanted = set(dedupe(doc_ids))
        return [
            dataclasses.replace(r)
            for _, r in sorted(self._data.outbox.items())
            if r.collection == collection and r.doc_id in wanted
        ]

    async def outbox_count(
        self,
        *,
        collection: str | None = None,
        origin: str | None = None,
        states: Sequence[OutboxState] = ("pending", "in_flight", "unknown"),
    ) -> int:
        """Count records."""
        self._check_open()
        return len(self._records(collection, origin, states))

    # ------------------------------------------------------------------ metadata

    async def get_meta(self, key: str) -> JSONValue:
        """Return a metadata value, or ``None``."""
        self._check_open()
        return load_json(self._data.meta.get(key))

    async def get_meta_prefix(self, prefix: str) -> dict[str, JSONValue]:
        """Return every metadata key starting with ``prefix``."""
        self._check_open()
        return {k: load_json(v) for k, v in sorted(self._data.meta.items()) if k.startswith(prefix)}

    # ------------------------------------------------------------------ staging

    async def stage_get(
        self, scope: str, collection: str, doc_ids: Sequence[str]
    ) -> dict[str, WireFields]:
        """Return the staged fields of the given ids that are staged."""
        self._check_open()
        staged = self._data.staging.get((scope, check_collection(collection)), {})
        return {i: load_fields(staged[i]) for i in dedupe(doc_ids) if i in staged}

    async def stage_revs(
        self, scope: str, collection: str, doc_ids: Sequence[str]
    ) -> dict[str, int]:
        """Return the hub revisions of the given staged ids that carry one."""
        self._check_open()
        key = (scope, check_collection(collection))
        staged = self._data.staging.get(key, {})
        revs = self._data.staged_revs.get(key, {})
        out: dict[str, int] = {}
        for i in dedupe(doc_ids):
            rev = revs.get(i)
            if rev is not None and i in staged:
                out[i] = rev
        return out

    async def stage_count(self, scope: str, collection: str) -> int:
        """Count staged documents."""
        self._check_open()
        return len(self._data.staging.get((scope, check_collection(collection)), {}))

    # ------------------------------------------------------------------ hub revisions

    async def changes_since(self, collection: str, since: int, limit: int) -> list[RevEntry]:
        """Return up to ``limit`` documents and tombstones with ``rev > since``, by ``rev``."""
        self._check_open()
        coll = check_collection(collection)
        entries: list[tuple[int, str, str | None]] = [
            (r.rev, i, r.fields)
            for i, r in self._data.docs.get(coll, {}).items()
            if r.rev is not None and r.rev > since
        ]
        entries += [
            (rev, i, None) for i, rev in self._data.tombs.get(coll, {}).items() if rev > since
        ]
        entries.sort(key=lambda e: (e[0], e[1]))
        return rev_entries(
            (i, rev, None if text is None else text.encode())
            for rev, i, text in entries[: max(limit, 0)]
        )

    async def max_rev(self, collection: str) -> int:
        """Return the largest revision of any document or tombstone (0 if none)."""
        self._check_open()
        coll = check_collection(collection)
        revs = [r.rev for r in self._data.docs.get(coll, {}).values() if r.rev is not None]
        revs += list(self._data.tombs.get(coll, {}).values())
        return max(revs, default=0)

    async def min_tombstone_rev(self, collection: str) -> int | None:
        """Hub side: the smallest tombstone revision still kept, or ``None``."""
        self._check_open()
        return min(self._data.tombs.get(check_collection(collection), {}).values(), default=None)

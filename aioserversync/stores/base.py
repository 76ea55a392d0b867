"""The :class:`Store` protocol: the one interface the sync engine and the hub use for storage.

A store holds, per local collection:

* **documents**, with their per-document metadata: ``origin`` (which remote the document came
  from, or ``None`` for a purely local document) and ``rev`` (the remote revision, when the remote
  is our hub);
* **bases**: for documents with pending local changes, the remote version the change was made
  against (rxdb's "assumed master state"); ``None`` fields mean the remote did not have it;
* **tombstones** (hub side): removed ids with the revision of their removal;

and store-wide:

* the durable **outbox** of pending local writes, ordered by ``seq``;
* **metadata**: checkpoints, last successful sync, hub revision counters (plain JSON values);
* a **staging area** for resync rounds, keyed by a scope string (one per remote). Staged rows
  only matter to the round in progress (which restarts at the next connect): a store may discard
  them when it closes (SQLiteStore does).

Batches
-------
Every change goes through :meth:`Store.apply` with a list of operations (the dataclasses of
:mod:`aioserversync.stores.ops`, re-exported here). One ``apply`` is one transaction: all or
nothing, even under ``kill -9`` for SQLiteStore.

Value forms
-----------
Operations carry documents in EJSON **wire form** (``WireFields``: plain JSON, exactly DDP's
``fields``, without ``_id``), so data from the network is stored without a decode/encode round
trip. Reads return **decoded** documents (``datetime``, ``bytes``, ``ObjectId`` …) with ``_id``
first. Ids in operations are **wire ids** (``id_stringify`` form); ``_id`` in returned documents is
the parsed id.

Selectors, sorts and projections in reads are MongoDB's, over decoded values (a ``datetime`` in a
selector compares with stored dates).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeAlias, runtime_checkable

from ..typing import Document, JSONValue, Selector, WireFields
from .ops import _UNSET as _UNSET  # re-exported: the backends import it from here
from .ops import (
    Batch,
    BatchResult,
    ClearBase,
    DeleteDoc,
    DocChange,
    EncodedFields,
    MetaSet,
    Op,
    OutboxAppend,
    OutboxDelete,
    OutboxRecord,
    OutboxState,
    OutboxUpdate,
    PatchDoc,
    PurgeTombstones,
    PutDoc,
    PutDocs,
    SetBase,
    SetRev,
    StageClear,
    StageCommit,
    StageCommitResult,
    StageDelete,
    StageDocs,
    StagePatch,
    StagePut,
    Tombstone,
)

__all__ = [
    "Batch",
    "BatchResult",
    "ClearBase",
    "DeleteDoc",
    "DocChange",
    "DocMeta",
    "EncodedFields",
    "MetaSet",
    "Op",
    "OutboxAppend",
    "OutboxDelete",
    "OutboxRecord",
    "OutboxState",
    "OutboxUpdate",
    "PatchDoc",
    "PurgeTombstones",
    "PutDoc",
    "PutDocs",
    "RevEntry",
    "SetBase",
    "SetRev",
    "SortSpec",
    "StageClear",
    "StageCommit",
    "StageCommitResult",
    "StageDelete",
    "StageDocs",
    "StagePatch",
    "StagePut",
    "Store",
    "StoreLifecycle",
    "Tombstone",
]

SortSpec: TypeAlias = Sequence[tuple[str, int]] | Mapping[str, int]
"""A sort: ``[("field", 1), ("other", -1)]`` or ``{"field": 1}`` (dotted paths allowed)."""


# --------------------------------------------------------------------------- read results


@dataclass(frozen=True, slots=True)
class DocMeta:
    """Per-document sync metadata.

    Attributes:
        origin: The remote the document came from, or ``None``.
        rev: The remote revision, or ``None``.
        has_base: Whether a base is recorded.
        base: The base fields (wire form), ``None`` if none or if the remote did not have it.
        base_rev: The base's revision, if any.
    """

    origin: str | None
    rev: int | None
    has_base: bool = False
    base: WireFields | None = None
    base_rev: int | None = None


@dataclass(frozen=True, slots=True)
class RevEntry:
    """Hub side: one entry of :meth:`Store.changes_since`.

    Attributes:
        id: Wire id.
        rev: The document's (or tombstone's) revision.
        fields_json: The document's wire fields as JSON bytes, or ``None`` for a tombstone.
    """

    id: str
    rev: int
    fields_json: bytes | None


_REV_SET = tuple(RevEntry.__dict__[f].__set__ for f in ("id", "rev", "fields_json"))


def rev_entries(rows: Iterable[tuple[str, int, bytes | None]]) -> list[RevEntry]:
    """``[RevEntry(id, rev, fields_json) for each row]``, built faster.

    A hub's pull reads thousands of entries per page. A frozen dataclass's ``__init__`` sets each
    field through ``object.__setattr__``; filling the slots directly is cheaper, as for the
    operations built in :mod:`.ops` (the same objects, equal to the ones ``__init__`` builds).
    """
    new = object.__new__
    si, sr, sf = _REV_SET
    out: list[RevEntry] = []
    append = out.append
    for doc_id, rev, fields in rows:
        e = new(RevEntry)
        si(e, doc_id)
        sr(e, rev)
        sf(e, fields)
        append(e)
    return out


# --------------------------------------------------------------------------- the protocol


class StoreLifecycle:
    """Open/close bookkeeping shared by the stores: :attr:`is_open` and ``async with``.

    A store sets ``_state`` to ``"open"`` in :meth:`open` and to ``"closed"`` in :meth:`close`.
    """

    _state: str = "new"

    @property
    def is_open(self) -> bool:
        """Whether the store is open."""
        return self._state == "open"

    async def open(self) -> None:
        """Open the store."""
        raise NotImplementedError

    async def close(self) -> None:
        """Close the store."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@runtime_checkable
class Store(Protocol):
    """Asynchronous storage for synced collections; see the module docstring.

    Implementations: :class:`~aioserversync.stores.memory.MemoryStore`,
    :class:`~aioserversync.stores.sqlite.SQLiteStore`,
    :class:`~aioserversync.stores.mongo.MongoStore`. All pass ``tests/stores/contract.py``.
    Every method may raise :class:`~aioserversync.exceptions.StoreError` (backend failure),
    :class:`~aioserversync.exceptions.QueryError` or
    :class:`~aioserversync.exceptions.InvalidState` (used before :meth:`open` or after
    :meth:`close`).
    """

    name: str
    """A short description for logs and ``status`` output, e.g. ``"sqlite:///path/cache.db"``."""

    async def open(self) -> None:
        """Open the store (create files, tables, side collections). Idempotent."""
        ...

    async def close(self) -> None:
        """Close the store. Never closes a client the store did not create. Idempotent."""
        ...

    # ---- writes

    async def apply(self, batch: Batch) -> BatchResult:
        """Apply every operation of ``batch`` in order, atomically.

        Raises:
            StoreError: The backend failed; nothing was applied.
            ModifierError: Not raised here (modifiers are applied by the engine beforehand).
        """
        ...

    # ---- documents

    async def get(self, collection: str, doc_id: str) -> Document | None:
        """Return one decoded document by wire id, or ``None``."""
        ...

    async def get_many(self, collection: str, doc_ids: Sequence[str]) -> dict[str, Document]:
        """Return the documents that exist among ``doc_ids``, keyed by wire id."""
        ...

    async def get_fields(self, collection: str, doc_ids: Sequence[str]) -> dict[str, WireFields]:
        """Return wire-form fields (no ``_id``) of the documents that exist, keyed by wire id."""
        ...

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
        ...

    def iter_find(
        self,
        collection: str,
        selector: Selector | None = None,
        *,
        sort: SortSpec | None = None,
        projection: Mapping[str, Any] | None = None,
        batch_size: int = 1000,
    ) -> AsyncIterator[Document]:
        """Like :meth:`find`, streamed in pages so the result is never held in memory at once."""
        ...

    async def count(self, collection: str, selector: Selector | None = None) -> int:
        """Count documents matching a selector."""
        ...

    async def create_index(
        self, collection: str, keys: Sequence[str | tuple[str, int]], *, unique: bool = False
    ) -> None:
        """Create an index over (dotted) fields. Idempotent."""
        ...

    async def collections(self) -> list[str]:
        """Return the names of the local collections that hold documents or metadata."""
        ...

    # ---- sync metadata

    async def get_meta_many(self, collection: str, doc_ids: Sequence[str]) -> dict[str, DocMeta]:
        """Return :class:`DocMeta` for the documents (or bases) that exist among ``doc_ids``."""
        ...

    def iter_ids(
        self, collection: str, *, origin: str | None = _UNSET, batch_size: int = 1000
    ) -> AsyncIterator[str]:
        """Stream the wire ids of a collection, optionally only those of one origin.

        ``origin=None`` selects local-only documents; leaving it out selects all.
        """
        ...

    async def based_ids(self, collection: str) -> list[str]:
        """Return the wire ids that have a base recorded."""
        ...

    # ---- outbox

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
        ...

    async def outbox_for_docs(self, collection: str, doc_ids: Sequence[str]) -> list[OutboxRecord]:
        """Return every record (any state) for the given documents, in ``seq`` order."""
        ...

    async def outbox_count(
        self,
        *,
        collection: str | None = None,
        origin: str | None = None,
        states: Sequence[OutboxState] = ("pending", "in_flight", "unknown"),
    ) -> int:
        """Count records."""
        ...

    # ---- metadata

    async def get_meta(self, key: str) -> JSONValue:
        """Return a metadata value, or ``None``."""
        ...

    async def get_meta_prefix(self, prefix: str) -> dict[str, JSONValue]:
        """Return every metadata key starting with ``prefix``."""
        ...

    # ---- staging

    async def stage_get(
        self, scope: str, collection: str, doc_ids: Sequence[str]
    ) -> dict[str, WireFields]:
        """Return the staged fields of the given ids that are staged."""
        ...

    async def stage_revs(
        self, scope: str, collection: str, doc_ids: Sequence[str]
    ) -> dict[str, int]:
        """Return the hub revisions of the given staged ids that carry one.

        A staged put brings its revision (``StagePut.rev``, ``StageDocs`` with ``revs``); a
        patch keeps it; a delete forgets it.
        """
        ...

    async def stage_count(self, scope: str, collection: str) -> int:
        """Count staged documents."""
        ...

    # ---- hub revisions

    async def changes_since(self, collection: str, since: int, limit: int) -> list[RevEntry]:
        """Return up to ``limit`` documents and tombstones with ``rev > since``, by ``rev``.

        Documents without a revision are never returned.
        """
        ...

    async def max_rev(self, collection: str) -> int:
        """Return the largest revision of any document or tombstone (0 if none)."""
        ...

    async def min_tombstone_rev(self, collection: str) -> int | None:
        """Hub side: the smallest tombstone revision still kept, or ``None``."""
        ...

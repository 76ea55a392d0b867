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
Every change goes through :meth:`Store.apply` with a list of operations (the dataclasses below).
One ``apply`` is one transaction: all or nothing, even under ``kill -9`` for SQLiteStore.

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

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

from ..typing import Document, JSONValue, Selector, WireFields

__all__ = [
    "Batch",
    "BatchResult",
    "ClearBase",
    "DeleteDoc",
    "DocChange",
    "DocMeta",
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
    "RevEntry",
    "SetBase",
    "SortSpec",
    "StageClear",
    "StageCommit",
    "StageCommitResult",
    "StageDelete",
    "StagePatch",
    "StagePut",
    "Store",
    "Tombstone",
]

SortSpec: TypeAlias = Sequence[tuple[str, int]] | Mapping[str, int]
"""A sort: ``[("field", 1), ("other", -1)]`` or ``{"field": 1}`` (dotted paths allowed)."""

OutboxState: TypeAlias = Literal["pending", "in_flight", "unknown", "failed"]
"""``pending``: waiting to be pushed. ``in_flight``: sent, no outcome yet. ``unknown``: sent, then
the link dropped before ``result`` (reconciled after the next resync). ``failed``: permanently
rejected (dead letter, kept for inspection, never retried automatically)."""

_UNSET: Any = object()


# --------------------------------------------------------------------------- documents


@dataclass(frozen=True, slots=True)
class PutDoc:
    """Insert or replace a whole document (a ``rev`` drops any tombstone of the id).

    Attributes:
        collection: Local collection name.
        id: Wire id.
        fields: Wire-form fields, without ``_id``.
        origin: The remote it came from; ``None`` for a local-only document. Always written.
        rev: The remote revision, if known (hub). Always written.
    """

    collection: str
    id: str
    fields: WireFields
    origin: str | None = None
    rev: int | None = None


@dataclass(frozen=True, slots=True)
class PatchDoc:
    """Replace or remove top-level fields, exactly as a DDP ``changed`` does (no deep merge).

    If the document does not exist it is created from ``fields`` (``cleared`` is then ignored),
    as Meteor's client does for ``changed`` on an unknown id (ddp-facts §3.3). A name both in
    ``fields`` and in ``cleared`` ends up set. A ``rev`` drops any tombstone of the id.

    Attributes:
        collection: Local collection name.
        id: Wire id.
        fields: Top-level fields to set, wire form (may be empty).
        cleared: Top-level field names to remove.
        origin: Written only when not ``None``.
        rev: Written only when not ``None``.
    """

    collection: str
    id: str
    fields: WireFields | None = None
    cleared: Sequence[str] | None = None
    origin: str | None = None
    rev: int | None = None


@dataclass(frozen=True, slots=True)
class DeleteDoc:
    """Remove a document (and its base). Removing a missing id is a no-op."""

    collection: str
    id: str


@dataclass(frozen=True, slots=True)
class SetBase:
    """Record the remote version a pending local change was made against.

    Attributes:
        fields: The remote's fields (wire form), or ``None`` when the remote did not have the
            document (a local insert).
        rev: The remote revision of that version, if known.
    """

    collection: str
    id: str
    fields: WireFields | None
    rev: int | None = None


@dataclass(frozen=True, slots=True)
class ClearBase:
    """Forget the base of a document (no pending local change any more)."""

    collection: str
    id: str


@dataclass(frozen=True, slots=True)
class Tombstone:
    """Hub side: remove a document (and its base) and remember its removal at revision ``rev``."""

    collection: str
    id: str
    rev: int


@dataclass(frozen=True, slots=True)
class PurgeTombstones:
    """Hub side: forget tombstones with ``rev <= upto_rev``."""

    collection: str
    upto_rev: int


# --------------------------------------------------------------------------- outbox


@dataclass(slots=True)
class OutboxRecord:
    """One durable pending local write.

    Attributes:
        collection: Local collection name.
        doc_id: Wire id of the document.
        op: ``"insert"``, ``"update"``, ``"remove"``, or ``"call"`` (an arbitrary method).
        payload: Plain JSON (wire form): insert fields, an update modifier, method params, …
        origin: The remote this write is for.
        state: See :data:`OutboxState`.
        mutation_id: A unique id so the hub applies the write at most once.
        base_rev: The remote revision the change was made against (hub compare-and-set).
        attempts: Push attempts so far.
        error: The last error (plain JSON: the server's error object or a message), if any.
        created_at: Milliseconds since the epoch.
        updated_at: Milliseconds since the epoch.
        extra: Policy-specific plain JSON.
        seq: Assigned by the store on append; strictly increasing, never reused.
    """

    collection: str
    doc_id: str
    op: str
    payload: JSONValue = None
    origin: str | None = None
    state: OutboxState = "pending"
    mutation_id: str = ""
    base_rev: int | None = None
    attempts: int = 0
    error: JSONValue = None
    created_at: int = 0
    updated_at: int = 0
    extra: dict[str, JSONValue] = field(default_factory=dict)
    seq: int = 0


@dataclass(frozen=True, slots=True)
class OutboxAppend:
    """Append a record; its ``seq`` is assigned by the store and returned in :class:`BatchResult`.

    The record's own ``seq`` is ignored.
    """

    record: OutboxRecord


@dataclass(frozen=True, slots=True)
class OutboxUpdate:
    """Change fields of an existing record. Only the fields given (not ``_UNSET``) change.

    Updating a missing ``seq`` is a no-op.
    """

    seq: int
    state: OutboxState = _UNSET
    payload: JSONValue = _UNSET
    op: str = _UNSET
    attempts: int = _UNSET
    error: JSONValue = _UNSET
    base_rev: int | None = _UNSET
    updated_at: int = _UNSET
    extra: dict[str, JSONValue] = _UNSET

    def changes(self) -> dict[str, Any]:
        """Return the fields this update sets, by name."""
        names = ("state", "payload", "op", "attempts", "error", "base_rev", "updated_at", "extra")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not _UNSET}


@dataclass(frozen=True, slots=True)
class OutboxDelete:
    """Remove a record (acknowledged, or folded into another). Missing ``seq``: no-op."""

    seq: int


# --------------------------------------------------------------------------- metadata


@dataclass(frozen=True, slots=True)
class MetaSet:
    """Set (or, with ``value=None``, delete) a store-wide metadata key; values are plain JSON."""

    key: str
    value: JSONValue


# --------------------------------------------------------------------------- staging


@dataclass(frozen=True, slots=True)
class StageClear:
    """Empty the staging area of ``scope`` (all collections)."""

    scope: str


@dataclass(frozen=True, slots=True)
class StagePut:
    """Stage a whole document (a DDP ``added`` during a resync round)."""

    scope: str
    collection: str
    id: str
    fields: WireFields


@dataclass(frozen=True, slots=True)
class StagePatch:
    """Patch a staged document like :class:`PatchDoc` (creating it from ``fields`` if missing)."""

    scope: str
    collection: str
    id: str
    fields: WireFields | None = None
    cleared: Sequence[str] | None = None


@dataclass(frozen=True, slots=True)
class StageDelete:
    """Drop a staged document (a DDP ``removed`` during a resync round)."""

    scope: str
    collection: str
    id: str


@dataclass(frozen=True, slots=True)
class StageCommit:
    """Make the staged documents of one collection the new remote state, in this transaction.

    * Every staged document whose id is not in ``keep`` is written with ``origin`` and no ``rev``
      (inserted, or replaced when its stored fields differ). Identical documents, compared as
      Meteor's ``EJSON.equals`` does (key order ignored), are not rewritten nor reported; only
      their ``origin`` is set.
    * If ``sweep`` is true, every stored document of that collection with this ``origin`` that is
      not staged and not in ``keep`` is deleted, with its base.
    * Documents with another origin are never swept; ids in ``keep`` are neither written nor swept.
    * The staged rows of this collection stay until a :class:`StageClear`.

    Attributes:
        scope: The staging scope.
        collection: Local collection name.
        origin: The remote whose round this is.
        keep: Wire ids the engine handles itself (pending local changes).
        sweep: Whether to delete unstaged documents of this origin.
        diff_limit: Report individual :class:`DocChange` entries only if there are at most this
            many changes in total; otherwise ``changes`` is ``None`` and only the counts are set.
    """

    scope: str
    collection: str
    origin: str
    keep: frozenset[str] = frozenset()
    sweep: bool = True
    diff_limit: int = 0


Op: TypeAlias = (
    PutDoc
    | PatchDoc
    | DeleteDoc
    | SetBase
    | ClearBase
    | Tombstone
    | PurgeTombstones
    | OutboxAppend
    | OutboxUpdate
    | OutboxDelete
    | MetaSet
    | StageClear
    | StagePut
    | StagePatch
    | StageDelete
    | StageCommit
)
Batch: TypeAlias = Sequence[Op]


@dataclass(frozen=True, slots=True)
class DocChange:
    """One document changed by a :class:`StageCommit`.

    Attributes:
        op: ``"added"``, ``"changed"`` or ``"removed"``.
        id: Wire id.
        old: The previous stored fields (wire form), ``None`` for ``added``.
        new: The new fields (wire form), ``None`` for ``removed``.
    """

    op: Literal["added", "changed", "removed"]
    id: str
    old: WireFields | None
    new: WireFields | None


@dataclass(slots=True)
class StageCommitResult:
    """What a :class:`StageCommit` did."""

    collection: str
    added: int = 0
    changed: int = 0
    removed: int = 0
    changes: list[DocChange] | None = None


@dataclass(slots=True)
class BatchResult:
    """What :meth:`Store.apply` did.

    Attributes:
        seqs: The ``seq`` assigned to each :class:`OutboxAppend`, in batch order.
        commits: One result per :class:`StageCommit`, in batch order.
    """

    seqs: list[int] = field(default_factory=list)
    commits: list[StageCommitResult] = field(default_factory=list)


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


# --------------------------------------------------------------------------- the protocol


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

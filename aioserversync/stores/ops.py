"""The operations of a :meth:`~aioserversync.stores.base.Store.apply` batch, and its results.

One dataclass per operation: documents (:class:`PutDoc`, :class:`PutDocs`, :class:`PatchDoc`,
:class:`DeleteDoc`, :class:`SetRev`), bases (:class:`SetBase`, :class:`ClearBase`), hub
tombstones (:class:`Tombstone`, :class:`PurgeTombstones`), the outbox (:class:`OutboxRecord` and
:class:`OutboxAppend`, :class:`OutboxUpdate`, :class:`OutboxDelete`), metadata
(:class:`MetaSet`) and staging (:class:`StageClear`, :class:`StagePut`, :class:`StageDocs`,
:class:`StagePatch`, :class:`StageDelete`, :class:`StageCommit`); the :data:`Op` and
:data:`Batch` aliases; and what
``apply`` returns (:class:`BatchResult`, :class:`StageCommitResult`, :class:`DocChange`).

:mod:`aioserversync.stores.base` re-exports every public name here and describes value forms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from ..typing import JSONValue, WireFields
from .wireform import EncodedFields

__all__ = [
    "Batch",
    "BatchResult",
    "ClearBase",
    "DeleteDoc",
    "DocChange",
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
    "SetBase",
    "SetRev",
    "StageClear",
    "StageCommit",
    "StageCommitResult",
    "StageDelete",
    "StageDocs",
    "StagePatch",
    "StagePut",
    "Tombstone",
]

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
        fields: Wire-form fields, without ``_id``, or the same already serialised as
            :class:`EncodedFields`.
        origin: The remote it came from; ``None`` for a local-only document. Always written.
        rev: The remote revision, if known (hub). Always written.
    """

    collection: str
    id: str
    fields: WireFields | EncodedFields
    origin: str | None = None
    rev: int | None = None


@dataclass(frozen=True, slots=True)
class PutDocs:
    """Several :class:`PutDoc` of one origin, as one JSON object text: ``"<rev>:<id>"`` -> fields.

    Each key is the revision in decimal digits (empty for none), a colon, and the wire id (which
    may hold colons too); each value is the wire-form fields. ``docs`` must start with ``{``. A
    page of a hub's pull (its page form) reaches the store this way, and SQLiteStore reads the
    text as it is. An id given twice keeps its last entry.

    ``keys_checked`` says the caller has proven every key ``"<rev>:<id>"`` with a revision
    (:func:`~aioserversync.stores.wireform.revised_keys`): SQLiteStore then leaves out its own
    check of the keys, a fifth of the statement's time. The values are checked either way.
    """

    collection: str
    docs: str
    origin: str | None = None
    keys_checked: bool = False


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
class SetRev:
    """Set the remote revision of an existing document; a missing id is a no-op.

    What a write confirmed by the hub needs: the document already shows the change, only its
    revision is new. Unlike :class:`PatchDoc`, it never creates a document, so no lookup is
    needed first. Like any ``rev`` given to a document, it drops a tombstone of the id.
    """

    collection: str
    id: str
    rev: int


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
    """Stage a whole document (a DDP ``added`` during a resync round, a hub's full pull).

    ``fields`` is the wire form, or the same already serialised as :class:`EncodedFields`.
    ``rev`` is the hub revision of that version: the commit stores it with the document (for
    later compare-and-set pushes), also on a document whose fields did not change.
    """

    scope: str
    collection: str
    id: str
    fields: WireFields | EncodedFields
    rev: int | None = None


@dataclass(frozen=True, slots=True)
class StageDocs:
    """Stage several whole documents at once, given as one JSON object text: id -> fields.

    ``docs`` maps each wire id to its wire-form fields, written out as JSON (as ``orjson.dumps``
    of ``{id: fields, ...}`` writes it); it must start with ``{``. The same as one
    :class:`StagePut` per entry, in order, without revisions. A resync round's stream of DDP
    ``added`` reaches the store this way, a run of documents per operation: no object per
    document stays alive until the store runs the batch, which spares the cyclic garbage
    collector from walking (and promoting) them, and SQLite reads the text as it is.

    With ``revs``, each key is ``"<rev>:<id>"`` instead, as in :class:`PutDocs` (the revision in
    decimal digits, or empty for none), and each document is staged with its revision: a page
    of a hub's full pull in its page form, staged as the hub sent it. ``keys_checked`` is
    :class:`PutDocs`'s (with ``revs``).
    """

    scope: str
    collection: str
    docs: str
    revs: bool = False
    keys_checked: bool = False


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
    | PutDocs
    | PatchDoc
    | DeleteDoc
    | SetRev
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
    | StageDocs
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

"""Resolutions into store operations and change events.

Turns a :class:`~aioserversync.replication.reconcile.Resolution` into store operations and change
events, and keeps the in-memory index of pending writes in step with the store.
"""

from __future__ import annotations

from typing import Any

from .. import ejson
from ..exceptions import WriteConflict
from ..ids import id_parse, random_id
from ..replication.changes import ChangeEvent
from ..replication.diff import top_level_diff
from ..replication.reconcile import Resolution
from ..stores.base import (
    BatchResult,
    ClearBase,
    DeleteDoc,
    DocChange,
    Op,
    OutboxAppend,
    OutboxDelete,
    OutboxRecord,
    OutboxUpdate,
    PutDoc,
    SetBase,
)
from ..typing import WireFields
from .state import CollectionState, now_ms

__all__ = [
    "change_events",
    "decode_fields",
    "index_after",
    "index_new_records",
    "new_record",
    "resolution_events",
    "resolution_ops",
]


def decode_fields(fields: WireFields | None) -> dict[str, Any] | None:
    """Decode wire fields into a new dict of Python values (the input is left untouched)."""
    if fields is None:
        return None
    for v in fields.values():
        t = type(v)
        if t is dict or t is list:
            break
    else:
        # Only scalars (most live ``changed`` messages: a counter, a status): nothing to decode,
        # unless the object itself is a special one (at most two keys, all starting with "$").
        # A loop, not all() over a generator: this runs once per change event.
        if len(fields) > 2:
            return dict(fields)
        for k in fields:
            if k[:1] != "$":
                return dict(fields)
    decoded: dict[str, Any] = ejson.decode(fields)
    return decoded


def new_record(cs: CollectionState, doc_id: str, op: str) -> OutboxRecord:
    """A fresh pending outbox record for ``doc_id``."""
    t = now_ms()
    return OutboxRecord(
        collection=cs.local,
        doc_id=doc_id,
        op=op,
        origin=cs.origin,
        mutation_id=random_id(),
        created_at=t,
        updated_at=t,
    )


def resolution_ops(
    cs: CollectionState, doc_id: str, res: Resolution, *, rev: int | None = None
) -> tuple[list[Op], OutboxRecord | None]:
    """Return the operations that carry out ``res``, and the new record it appends (if any)."""
    ops: list[Op] = []
    if res.write_doc:
        if res.doc is None:
            ops.append(DeleteDoc(cs.local, doc_id))
        else:
            ops.append(PutDoc(cs.local, doc_id, res.doc, origin=cs.origin, rev=rev))
    if res.base_action == "set":
        # A base a resolution sets is the remote's version, the one at ``rev`` (hub path): later
        # pushes of the document are compare-and-set against it (``None``: removed at ``rev``).
        ops.append(SetBase(cs.local, doc_id, res.base, rev))
    elif res.base_action == "clear":
        ops.append(ClearBase(cs.local, doc_id))
    ops.extend(OutboxDelete(seq) for seq in res.delete_seqs)
    t = now_ms()
    ops.extend(OutboxUpdate(seq, state="pending", updated_at=t) for seq in res.requeue_seqs)
    record = None
    if res.new_record is not None:
        record = new_record(cs, doc_id, res.new_record)
        ops.append(OutboxAppend(record))
    return ops, record


async def commit_resolution(
    cs: CollectionState, doc_id: str, res: Resolution, ops: list[Op], record: OutboxRecord | None
) -> None:
    """Apply a resolution's operations, then update the pending index and tell the listeners.

    ``ops`` and ``record`` come from :func:`resolution_ops` (plus any operations of the caller's).
    """
    result = await cs.store.apply(ops)
    index_after(cs, doc_id, res)
    if record is not None:
        index_new_records(cs, [record], result)
    cs.hub.emit(resolution_events(cs, doc_id, res))


def index_after(cs: CollectionState, doc_id: str, res: Resolution) -> None:
    """Update the in-memory pending index after ``res`` was committed (new records excluded)."""
    for seq in res.delete_seqs:
        cs.drop_record(doc_id, seq)
    for seq in res.requeue_seqs:
        rec = cs.find_record(seq)
        if rec is not None:
            rec.state = "pending"


def index_new_records(
    cs: CollectionState, records: list[OutboxRecord], result: BatchResult, first: int = 0
) -> None:
    """Give appended records their store-assigned seqs and index them.

    Args:
        cs: The collection.
        records: The records appended, in batch order.
        result: The batch result.
        first: Index into ``result.seqs`` of the first of these records.
    """
    for rec, seq in zip(records, result.seqs[first : first + len(records)], strict=True):
        rec.seq = seq
        cs.add_record(rec)


def resolution_events(
    cs: CollectionState, doc_id: str, res: Resolution, *, source: str = "remote"
) -> list[ChangeEvent]:
    """Change events for a committed resolution (a conflict report, then the document change)."""
    events: list[ChangeEvent] = []
    _id = id_parse(doc_id)
    if res.conflict is not None:
        c = res.conflict
        cs.stats.conflicts += 1
        err = WriteConflict(
            f"the remote {'removed' if c.remote is None else 'changed'} {cs.local}/{doc_id} "
            f"since the local {c.op}; the remote won",
            collection=cs.local,
            doc_id=doc_id,
            local=_with_id(_id, decode_fields(c.local)),
            base=_with_id(_id, decode_fields(c.base)),
            remote=_with_id(_id, decode_fields(c.remote)),
        )
        events.append(ChangeEvent("conflict", cs.local, _id, origin=cs.origin, error=err))
    if res.write_doc:
        if res.doc is None:
            events.append(ChangeEvent("removed", cs.local, _id, origin=cs.origin))
        else:
            events.append(
                ChangeEvent("changed", cs.local, _id, decode_fields(res.doc), origin=cs.origin)
            )
    return events


def _with_id(_id: Any, fields: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if fields is None else {"_id": _id, **fields}


def change_events(cs: CollectionState, changes: list[DocChange]) -> list[ChangeEvent]:
    """Change events for the documents a resync round changed."""
    out: list[ChangeEvent] = []
    for ch in changes:
        _id = id_parse(ch.id)
        if ch.op == "added":
            out.append(ChangeEvent("added", cs.local, _id, decode_fields(ch.new), origin=cs.origin))
        elif ch.op == "removed":
            out.append(ChangeEvent("removed", cs.local, _id, origin=cs.origin))
        else:
            changed, cleared = top_level_diff(ch.old, ch.new or {})
            out.append(
                ChangeEvent(
                    "changed",
                    cs.local,
                    _id,
                    decode_fields(changed),
                    tuple(cleared),
                    origin=cs.origin,
                )
            )
    return out

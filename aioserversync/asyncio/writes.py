"""Local writes and outbox bookkeeping, run as applier jobs (one at a time, in order).

A local write is applied to the store and, when its policy queues it, recorded in the durable
outbox **in the same transaction**, so a write the caller saw succeed survives ``kill -9``. The
first pending change of a document also records its base: the remote version it was made
against. Later changes fold into the document's unsent record (:meth:`SyncPolicy.coalesce`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import ejson
from ..exceptions import DuplicateKeyError, EJSONError, InvalidDocument
from ..ids import check_new_id, id_stringify, random_id
from ..query import apply_update, validate_modifier
from ..replication.changes import ChangeEvent
from ..replication.diff import top_level_diff
from ..stores.base import (
    ClearBase,
    DeleteDoc,
    DocMeta,
    MetaSet,
    Op,
    OutboxAppend,
    OutboxDelete,
    OutboxRecord,
    OutboxUpdate,
    PutDoc,
    SetBase,
)
from ..typing import Document, WireFields
from .resolve import decode_fields, index_new_records, new_record
from .scope import UNJUDGED, scope_key
from .state import CollectionState, now_ms

__all__ = [
    "LocalWrite",
    "check_field_names",
    "check_modifier",
    "insert_write",
    "new_document",
    "plan_queue",
    "single_id",
    "write_local",
    "write_local_group",
]


def new_document(given: Any) -> dict[str, Any]:
    """A copy of a document to insert, with a new Meteor id when it has no ``_id``.

    Raises:
        TypeError: Not a mapping.
        EJSONError: An ``_id`` of ``None`` or ``""``: Meteor requires non-empty ids.
        InvalidDocument: A field name Meteor refuses (see :func:`check_field_names`).
    """
    if not isinstance(given, Mapping):
        raise TypeError(f"a document must be a mapping, got {type(given).__name__}")
    check_field_names(given)
    if "_id" not in given:
        return {"_id": random_id(), **given}
    check_new_id(given["_id"])
    return dict(given)


def check_field_names(value: Any, what: str = "document") -> None:
    """Refuse the field names Meteor's client refuses in a document it writes, at any depth.

    A name must not start with ``$`` nor contain ``.`` or NUL (minimongo's rule, MongoDB's
    field name restrictions): such a document would be refused by the hub's push, or stored by a
    server under a name no query can reach.

    Raises:
        InvalidDocument: Such a name.
    """
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, Mapping):
            for k, item in v.items():
                if type(k) is str and (k[:1] == "$" or "." in k or "\0" in k):
                    raise InvalidDocument(
                        f"{what} field name {k!r}: names must not start with '$' nor contain "
                        "'.' or NUL"
                    )
                if isinstance(item, Mapping | list):
                    stack.append(item)
        elif type(v) is list:
            stack.extend(x for x in v if isinstance(x, Mapping | list))


def check_modifier(modifier: Any) -> None:
    """Check an update's modifier (or replacement document) before anything is written.

    Raises:
        ModifierError: Malformed (see :func:`~aioserversync.query.validate_modifier`).
        InvalidDocument: A replacement with a field name Meteor refuses.
        EJSONError: A value EJSON cannot carry.
    """
    validate_modifier(modifier)
    if not any(type(k) is str and k[:1] == "$" for k in modifier):  # a replacement
        check_field_names(modifier, "replacement")
    ejson.encode(modifier)


def _encode_doc(doc: Mapping[str, Any]) -> tuple[Any, str, WireFields]:
    """Split a decoded document into ``(_id, wire id, wire fields)``."""
    _id = doc["_id"]
    fields = {k: v for k, v in doc.items() if k != "_id"}
    return _id, id_stringify(_id), ejson.encode(fields)


async def plan_queue(
    cs: CollectionState, wid: str, op: str, before: WireFields | None, rev: int | None = None
) -> tuple[list[Op], OutboxRecord | None, list[OutboxRecord], tuple[OutboxRecord, str] | None]:
    """Plan the outbox side of a queued local write.

    Args:
        cs: The collection.
        wid: The document's wire id.
        op: ``insert``, ``update`` or ``remove``.
        before: The document's local fields before this write (the base, if none is recorded).
        rev: The document's remote revision (the base's, for compare-and-set on the hub).

    Returns:
        ``(ops, new record or None, records dropped from the index, (record, new op) or None)``:
        the last two are applied to the in-memory index once the store committed ``ops``.
    """
    recs = cs.pending.get(wid, [])
    last = recs[-1] if recs else None
    ops: list[Op] = []
    if (
        last is not None
        and last.state == "pending"
        and (last.attempts == 0 or cs.source == "stock")
    ):
        # A record a hub may already have applied (sent, outcome unknown) keeps its change as
        # sent: the hub answers a repeat of its mutation id with that first outcome, so a later
        # change folded into it would be settled without ever being applied. It goes into a new
        # record instead (the stock path decides such records before sending them again).
        folded = cs.policy.coalesce(last.op, op)  # type: ignore[arg-type]
        if folded is None:
            ops.append(OutboxDelete(last.seq))
            if len(recs) == 1:
                ops.append(ClearBase(cs.local, wid))
            return ops, None, [last], None
        if folded != last.op:
            ops.append(OutboxUpdate(last.seq, op=folded, updated_at=now_ms()))
            return ops, None, [], (last, folded)
        return ops, None, [], None
    if not recs:
        ops.append(SetBase(cs.local, wid, before, rev if before is not None else None))
        if cs.scope_mark is not None:  # judged once settled: until then, judge at start
            ops.append(MetaSet(scope_key(cs), UNJUDGED))
            cs.scope_clean = False
    record = new_record(cs, wid, op)
    ops.append(OutboxAppend(record))
    return ops, record, [], None


@dataclass(slots=True)
class _Plan:
    """The store operations and in-memory effects of local writes, committed together."""

    ops: list[Op] = field(default_factory=list)
    records: list[OutboxRecord] = field(default_factory=list)
    dropped: list[OutboxRecord] = field(default_factory=list)
    retyped: list[tuple[OutboxRecord, str]] = field(default_factory=list)
    events: list[ChangeEvent] = field(default_factory=list)
    affected: list[Any] = field(default_factory=list)

    def extend(self, other: _Plan) -> None:
        self.ops += other.ops
        self.records += other.records
        self.dropped += other.dropped
        self.retyped += other.retyped
        self.events += other.events

    async def queue(
        self,
        cs: CollectionState,
        wid: str,
        op: str,
        before: WireFields | None,
        rev: int | None = None,
    ) -> None:
        """Add the outbox side of a queued write (see :func:`plan_queue`)."""
        q_ops, rec, drop, retype = await plan_queue(cs, wid, op, before, rev)
        self.ops += q_ops
        self.records += [rec] if rec is not None else []
        self.dropped += drop
        self.retyped += [retype] if retype is not None else []


async def _plan_insert(
    cs: CollectionState,
    plan: _Plan,
    doc: Document,
    exists: bool,
    queue: bool,
    fields: WireFields | None = None,
) -> None:
    """Plan the insert of ``doc``; ``fields`` are its fields in wire form, if already encoded."""
    if fields is None:
        _id, wid, fields = _encode_doc(doc)
    else:
        _id, wid = doc["_id"], id_stringify(doc["_id"])
    if exists:
        raise DuplicateKeyError(f"duplicate _id {_id!r} in {cs.local!r}")
    origin = cs.origin if cs.policy.pushes else None
    plan.ops.append(PutDoc(cs.local, wid, fields, origin=origin))
    if queue:
        await plan.queue(cs, wid, "insert", None)
    plan.events.append(
        ChangeEvent("added", cs.local, _id, decode_fields(fields), origin=origin, source="local")
    )
    plan.affected.append(_id)


async def _plan_change(
    cs: CollectionState,
    plan: _Plan,
    op: str,
    current: Document,
    new: Document | None,
    meta: DocMeta | None,
    queue: bool,
) -> None:
    """Plan the update (``new``) or removal (``new is None``) of one existing document."""
    _id, wid, before = _encode_doc(current)
    keep_origin = meta.origin if meta is not None else (cs.origin if cs.policy.pushes else None)
    if new is None:
        plan.ops.append(DeleteDoc(cs.local, wid))
        if meta is not None and meta.has_base:
            # DeleteDoc drops the base with the document: pending writes still need it.
            plan.ops.append(SetBase(cs.local, wid, meta.base, meta.base_rev))
        plan.events.append(
            ChangeEvent("removed", cs.local, _id, origin=keep_origin, source="local")
        )
    else:
        _, _, fields = _encode_doc(new)
        rev = meta.rev if meta is not None else None
        plan.ops.append(PutDoc(cs.local, wid, fields, origin=keep_origin, rev=rev))
        changed, cleared = top_level_diff(before, fields)
        plan.events.append(
            ChangeEvent(
                "changed",
                cs.local,
                _id,
                decode_fields(changed),
                tuple(cleared),
                origin=keep_origin,
                source="local",
            )
        )
    if queue:
        await plan.queue(cs, wid, op, before, meta.rev if meta is not None else None)
    plan.affected.append(_id)


async def _commit(cs: CollectionState, plan: _Plan) -> None:
    """Apply the plan's operations in one store transaction, then its in-memory effects."""
    result = await cs.store.apply(plan.ops)
    for rec in plan.dropped:
        cs.drop_record(rec.doc_id, rec.seq)
    for rec, op in plan.retyped:
        rec.op = op
    index_new_records(cs, plan.records, result)
    cs.hub.emit(plan.events)


async def write_local(
    cs: CollectionState,
    op: str,
    *,
    doc: Document | None = None,
    selector: Mapping[str, Any] | None = None,
    modifier: Mapping[str, Any] | None = None,
    multi: bool = False,
    queue: bool,
) -> list[Any]:
    """Apply one local insert, update or remove; return the affected ``_id`` values.

    Args:
        cs: The collection.
        op: ``insert``, ``update`` or ``remove``.
        doc: The document to insert (with ``_id``).
        selector: Which documents to update or remove.
        modifier: The update modifier (or a replacement document).
        multi: Update or remove every match instead of the first.
        queue: Record the write in the outbox (else it touches the cache only).

    Raises:
        DuplicateKeyError: An insert of an ``_id`` that exists.
        ModifierError: The modifier does not apply; nothing changed.
    """
    store = cs.store
    plan = _Plan()
    if op == "insert":
        assert doc is not None
        wid = id_stringify(doc["_id"])
        exists = (await store.get_fields(cs.local, [wid])).get(wid) is not None
        await _plan_insert(cs, plan, doc, exists, queue)
    else:
        docs = await store.find(cs.local, dict(selector or {}), limit=0 if multi else 1)
        metas = await store.get_meta_many(cs.local, [id_stringify(d["_id"]) for d in docs])
        # Every new version first: a modifier failing on any document changes none of them.
        news = [apply_update(d, dict(modifier or {})) if op == "update" else None for d in docs]
        for current, new in zip(docs, news, strict=True):
            meta = metas.get(id_stringify(current["_id"]))
            await _plan_change(cs, plan, op, current, new, meta, queue)
    if plan.ops:
        await _commit(cs, plan)
    return plan.affected


@dataclass(slots=True)
class LocalWrite:
    """One local write of one document, for :func:`write_local_group`.

    Attributes:
        op: ``insert``, ``update`` or ``remove``.
        wid: The document's wire id.
        doc: The document (insert).
        modifier: The update modifier or replacement (update).
        queue: Record it in the outbox.
        fields: The document's fields (without ``_id``) in wire form, when the caller already
            encoded them (see :func:`encode_document`).
    """

    op: str
    wid: str
    doc: Document | None = None
    modifier: dict[str, Any] | None = None
    queue: bool = False
    fields: WireFields | None = None


def insert_write(given: Any, *, queue: bool) -> LocalWrite:
    """The :class:`LocalWrite` inserting ``given`` (see :func:`new_document`), encoded now.

    The fields are encoded without ``_id``, as they are stored: a top level that looks like a
    special object (``{"$date": …}``) is escaped when it stands alone.

    Raises:
        TypeError: Not a mapping.
        EJSONError: A value or the ``_id`` EJSON cannot carry, or an ``_id`` of ``None``/``""``.
    """
    doc = new_document(given)
    _, wid, fields = _encode_doc(doc)
    return LocalWrite("insert", wid, doc=doc, queue=queue, fields=fields)


def single_id(selector: Mapping[str, Any]) -> str | None:
    """The wire id of a selector that is exactly ``{"_id": <value>}``, else ``None``."""
    if len(selector) != 1 or "_id" not in selector:
        return None
    value = selector["_id"]
    if isinstance(value, dict) and any(isinstance(k, str) and k.startswith("$") for k in value):
        return None  # an operator, not a value
    try:
        return id_stringify(value)
    except EJSONError:
        return None


async def write_local_group(
    cs: CollectionState, writes: list[LocalWrite], *, atomic: bool = False
) -> list[tuple[bool, Any]]:
    """Apply local writes of distinct documents in one store transaction (a group commit).

    Concurrent writers queue behind one another in the applier; the writes that wait together
    are read with one call per kind and committed with one transaction instead of three store
    round trips each. Each write's outcome is what :func:`write_local` would give it alone: the
    affected ``_id`` values, or its own error (a duplicate ``_id``, a modifier that does not
    apply), which leaves it out of the transaction. A failing transaction fails them all.

    Args:
        cs: The collection.
        writes: Writes of distinct documents.
        atomic: All or nothing: the first write's error is raised before anything is planned
            or written (only inserts are checked up front, so ``atomic`` takes inserts only).

    Returns:
        One ``(True, affected ids)`` or ``(False, exception)`` per write, in order.

    Raises:
        DuplicateKeyError: ``atomic`` and an insert's ``_id`` exists; nothing changed.
    """
    store = cs.store
    inserts = [w.wid for w in writes if w.op == "insert"]
    changes = [w.wid for w in writes if w.op != "insert"]
    exists = await store.get_fields(cs.local, inserts) if inserts else {}
    if atomic:
        assert not changes, "atomic groups hold inserts only"
        taken = next((w for w in writes if w.wid in exists), None)
        if taken is not None:
            assert taken.doc is not None
            raise DuplicateKeyError(f"duplicate _id {taken.doc['_id']!r} in {cs.local!r}")
    docs = await store.get_many(cs.local, changes) if changes else {}
    metas = await store.get_meta_many(cs.local, changes) if changes else {}
    total = _Plan()
    outcomes: list[tuple[bool, Any]] = []
    for w in writes:
        plan = _Plan()
        try:
            if w.op == "insert":
                assert w.doc is not None
                await _plan_insert(cs, plan, w.doc, w.wid in exists, w.queue, w.fields)
            elif (current := docs.get(w.wid)) is not None:
                new = apply_update(current, dict(w.modifier or {})) if w.op == "update" else None
                await _plan_change(cs, plan, w.op, current, new, metas.get(w.wid), w.queue)
        except Exception as exc:
            outcomes.append((False, exc))
            continue
        total.extend(plan)
        outcomes.append((True, plan.affected))
    if total.ops:
        try:
            await _commit(cs, total)
        except Exception as exc:
            return [(False, exc if ok else value) for ok, value in outcomes]
    return outcomes

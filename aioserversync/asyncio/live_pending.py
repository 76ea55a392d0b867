"""Remote changes to documents with pending local writes (the engine's slow path), in runs.

Each such change is decided by the collection's policy against the document's pending records
and base (:meth:`~aioserversync.policies.base.SyncPolicy.on_live_change`). Deciding one at a
time costs three store calls per change (read the base and the local copy, write the outcome);
while an outbox drains through the stock mutator methods, pushes come back as such changes (the
server's ``changed`` echo of a write usually arrives while its record is still in flight), one
store round trip after another. Consecutive changes of one collection to distinct documents are
decided together instead: one read of every base and local copy, one batch with every outcome.
Changes to the same document, hub feed entries and collections with a ``query=`` filter keep the
one-at-a-time path.

A hub entry (:func:`apply_hub_entry`) that echoes one of the edge's own pushes (its mutation id)
settles that push; one that follows such an echo while the push's result is still awaited
supersedes the push (:func:`apply_superseding`); any other goes to the policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..replication.reconcile import PendingDoc, RemoteOp, Resolution, record_target, remote_wins
from ..stores.base import (
    ClearBase,
    DeleteDoc,
    EncodedFields,
    Op,
    OutboxDelete,
    OutboxRecord,
    PatchDoc,
    PutDoc,
    SetBase,
    SetRev,
)
from ..typing import WireFields
from .describe import describe_feed_puts
from .resolve import (
    commit_resolution,
    index_after,
    index_new_records,
    resolution_events,
    resolution_ops,
)
from .state import CollectionState

if TYPE_CHECKING:
    from .engine import Engine, HubEntry

__all__ = ["apply_hub_entry", "apply_special", "apply_superseding", "remote_op"]


def remote_op(op: PutDoc | PatchDoc | DeleteDoc) -> RemoteOp:
    """The remote change a store operation stands for, as the policies take it."""
    if isinstance(op, PutDoc):
        fields = op.fields
        return RemoteOp("added", fields.decode() if isinstance(fields, EncodedFields) else fields)
    if isinstance(op, PatchDoc):
        return RemoteOp("changed", op.fields, tuple(op.cleared or ()))
    return RemoteOp("removed")


async def apply_special(
    engine: Engine, special: list[tuple[CollectionState, Op | HubEntry]]
) -> None:
    """Apply the slow-path operations of a batch, in order (see the module docstring)."""
    from .engine import HubEntry

    i, n = 0, len(special)
    while i < n:
        cs, op = special[i]
        if isinstance(op, HubEntry):
            await apply_hub_entry(engine, cs, op)
            i += 1
            continue
        run: list[PutDoc | PatchDoc | DeleteDoc] = []
        if cs.matcher is None:
            ids: set[str] = set()
            j = i
            while j < n:
                cs2, op2 = special[j]
                if cs2 is not cs or not isinstance(op2, PutDoc | PatchDoc | DeleteDoc):
                    break
                if op2.id in ids or op2.id not in cs.pending:
                    break
                ids.add(op2.id)
                run.append(op2)
                j += 1
        if len(run) > 1:
            await _apply_run(engine, cs, run)
            i += len(run)
        else:
            await engine._apply_special(cs, op)
            i += 1


async def _apply_run(
    engine: Engine, cs: CollectionState, ops: list[PutDoc | PatchDoc | DeleteDoc]
) -> None:
    """Decide changes to distinct pending documents of ``cs`` together: one read, one batch."""
    pending = await engine.load_pending(cs, [op.id for op in ops])
    batch: list[Op] = []
    decided: list[tuple[str, Resolution]] = []
    records: list[OutboxRecord] = []
    for op in ops:
        res = cs.policy.on_live_change(pending[op.id], remote_op(op))
        res_ops, record = resolution_ops(cs, op.id, res, rev=getattr(op, "rev", None))
        batch.extend(res_ops)
        decided.append((op.id, res))
        if record is not None:
            records.append(record)
    result = await cs.store.apply(batch)
    events: list[Any] = []
    for wid, res in decided:
        index_after(cs, wid, res)
        events.extend(resolution_events(cs, wid, res))
    if records:
        index_new_records(cs, records, result)
    cs.hub.emit(events)
    engine.after_index_change(cs)


async def apply_superseding(
    engine: Engine, cs: CollectionState, e: HubEntry, applied: OutboxRecord
) -> None:
    """A hub change to a document after our own push of it was applied (its echo came first).

    The push is in flight (or its session ended before its result), but the hub's feed showed
    it committed: this later change supersedes it, whoever made it. The push counts as settled
    (its result, if it comes, finds nothing left to do), and the document becomes the hub's.
    Later local writes of the document, made on top of the push, lose to the hub's change as in
    any conflict and are reported. (Without the echo, a change by someone else while a push is
    in flight is merged as :meth:`~aioserversync.policies.base.SyncPolicy.on_live_change`
    decides; the push's compare-and-set then fails against the hub's newer revision and the
    remote wins.)
    """
    wid = e.id
    pending = (await engine.load_pending(cs, [wid]))[wid]
    later = [r for r in pending.records if r.seq != applied.seq]
    if later:
        rest = PendingDoc(wid, later, pending.has_base, pending.base, pending.local)
        res = remote_wins(rest, e.fields, resolve=cs.policy.resolve)
    else:
        res = Resolution(doc=e.fields, write_doc=pending.local != e.fields, base_action="clear")
    res.delete_seqs.append(applied.seq)
    ops, record = resolution_ops(cs, wid, res, rev=e.rev)
    if not res.write_doc and e.fields is not None:
        ops.append(SetRev(cs.local, wid, e.rev))
    await commit_resolution(cs, wid, res, ops, record)
    cs.stats.pushed += 1
    engine.after_index_change(cs)


async def apply_hub_entry(engine: Engine, cs: CollectionState, e: HubEntry) -> None:
    """A hub change to a document with pending local writes."""
    store, wid = cs.store, e.id
    recs = cs.pending.get(wid, [])
    if not recs:  # decided by an earlier entry of the same batch: a plain change now
        op: Op = (
            DeleteDoc(cs.local, wid)
            if e.fields is None
            else PutDoc(cs.local, wid, e.fields, cs.origin, e.rev)
        )
        notify: list[tuple[CollectionState, Op]] = [(cs, op)]
        reported = cs.hub.listening or cs.has_hooks_down
        described = await describe_feed_puts(notify, {id(op)}) if reported else {}
        await store.apply([op])
        if reported:
            await engine.notify(notify, described)
        return
    mine = next((r for r in recs if e.mid and r.mutation_id == e.mid), None)
    if mine is not None:  # a mutation id is only ever seen again for a record that was sent
        # Our own push, committed: its result was lost (unknown), or it was queued again since,
        # or the result is still to come. Settle it now (a later result is then ignored).
        others = [r for r in recs if r is not mine]
        ops: list[Op] = [OutboxDelete(mine.seq)]
        if others:
            ops.append(SetBase(cs.local, wid, e.fields, e.rev))
            if e.fields is not None:
                ops.append(SetRev(cs.local, wid, e.rev))
        else:
            ops.append(ClearBase(cs.local, wid))
            if e.fields is None:
                ops.append(DeleteDoc(cs.local, wid))
            else:
                ops.append(PutDoc(cs.local, wid, e.fields, cs.origin, e.rev))
        await store.apply(ops)
        cs.drop_record(wid, mine.seq)
        cs.stats.pushed += 1
        engine.after_index_change(cs)
        return
    if cs.echoed:
        applied = next((r for r in recs if r.mutation_id in cs.echoed), None)
        if applied is not None and applied.state in ("in_flight", "unknown"):
            await apply_superseding(engine, cs, e, applied)
            return
    meta = (await store.get_meta_many(cs.local, [wid])).get(wid)
    if meta is not None and meta.has_base and meta.base_rev is not None and e.rev <= meta.base_rev:
        # No newer than the version the pending writes were made on: pulled again after a
        # restart (the stored checkpoint stays below unsettled echoes). Nothing to decide.
        return
    pending = await engine.load_pending(cs, [wid])
    p = pending[wid]
    if p.records and p.records[0].state == "unknown" and _landed(p.records[0], e.fields):
        # A hub entry is the whole document: one that shows what a write sent before the link
        # dropped asked for is that write, landed (a pull carries no mutation id). The write is
        # settled and later ones stay queued on top of it, as a resync round decides. An entry
        # showing anything else is a later revision than the write's base, whoever made it:
        # the remote wins, even if its fields equal the base's again (a revision moved past).
        res = cs.policy.reconcile(p, e.fields)
    else:
        remote = RemoteOp("removed") if e.fields is None else RemoteOp("added", e.fields)
        res = cs.policy.on_live_change(p, remote)
    res_ops, record = resolution_ops(cs, wid, res, rev=e.rev)
    if not res.write_doc and e.fields is not None and pending[wid].local is not None:
        res_ops.append(SetRev(cs.local, wid, e.rev))
    await commit_resolution(cs, wid, res, res_ops, record)
    engine.after_index_change(cs)


def _landed(rec: OutboxRecord, fields: WireFields | None) -> bool:
    """Whether a hub document (``None``: removed) shows what the sent record asked for."""
    if rec.op == "remove":
        return fields is None
    return fields is not None and fields == record_target(rec)

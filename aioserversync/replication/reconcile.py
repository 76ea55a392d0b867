"""Pure reconciliation of pending local writes against what the remote holds ("the remote wins").

Three documents decide every case (the rxdb model): the **local** version, the **base** (the remote
version the local change was made against) and the **remote** version now. These functions never
touch a store; they return a :class:`Resolution` that the engine turns into one atomic batch.

The rules, per document (the conflict table of ``docs/modes.md``):

========================  ===============  ==================================================
remote since base          local pending    result
========================  ===============  ==================================================
unchanged                  insert/update/   the local change is kept and pushed
                           remove
changed                    update           remote wins: local undone, conflict reported
changed                    remove           remote wins: document restored, conflict reported
removed                    update           remote wins: document removed, conflict reported
removed                    remove           both removed: settled, nothing reported
exists (someone else's)    insert           remote wins, conflict reported
========================  ===============  ==================================================

A write whose outcome is unknown (sent, then the link dropped before ``result``) is settled if the
remote now shows its target state, re-queued if the remote still shows the base, and otherwise
treated as a conflict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..stores.base import OutboxRecord
from ..typing import WireFields
from .diff import apply_patch

__all__ = [
    "ConflictInfo",
    "PendingDoc",
    "RemoteOp",
    "Resolution",
    "Resolver",
    "live_remote_change",
    "reconcile_round",
    "record_target",
    "remote_wins",
]

Resolver = Callable[[WireFields | None, WireFields | None, WireFields | None], WireFields | None]
"""``resolve(local, base, remote) -> fields``: the document to keep after a conflict (``None``
means absent). The default returns ``remote``."""

_ACTIVE = ("pending", "in_flight", "unknown")


@dataclass(slots=True)
class PendingDoc:
    """A document with pending local writes, as the engine sees it at decision time.

    Attributes:
        id: Wire id.
        records: Its active outbox records (pending, in flight or unknown), in ``seq`` order.
        has_base: Whether a base is recorded.
        base: The base fields (``None``: the remote did not have the document).
        local: The local fields now (``None``: absent locally).
    """

    id: str
    records: list[OutboxRecord]
    has_base: bool
    base: WireFields | None
    local: WireFields | None


@dataclass(frozen=True, slots=True)
class RemoteOp:
    """A live remote change: ``added`` (``fields`` whole), ``changed`` or ``removed``."""

    kind: Literal["added", "changed", "removed"]
    fields: WireFields | None = None
    cleared: Sequence[str] = ()

    def apply_to(self, current: WireFields | None) -> WireFields | None:
        """Return the document after this change (``None``: removed)."""
        if self.kind == "removed":
            return None
        if self.kind == "added":
            return dict(self.fields or {})
        return apply_patch(current, self.fields, self.cleared)


@dataclass(frozen=True, slots=True)
class ConflictInfo:
    """A conflict to report: the discarded local version, its base and the winning remote."""

    local: WireFields | None
    base: WireFields | None
    remote: WireFields | None
    op: str


@dataclass(slots=True)
class Resolution:
    """What to do with one pending document.

    Attributes:
        doc: The fields the local document must have (``None``: absent). Only used when
            ``write_doc`` is true.
        write_doc: Whether the local document must be written (or deleted).
        base: The new base, used when ``base_action == "set"``.
        base_action: ``"keep"``, ``"set"`` or ``"clear"``.
        delete_seqs: Records to delete (settled or discarded).
        requeue_seqs: Records to put back to ``pending`` (to be pushed again).
        settled_seqs: Records whose write is confirmed as applied remotely (a subset of
            ``delete_seqs``).
        new_record: If not ``None``, the op (``insert``/``update``/``remove``) of one new pending
            record to append (a merge from a custom resolver that must be pushed).
        conflict: A conflict to report, if any.
    """

    doc: WireFields | None = None
    write_doc: bool = False
    base: WireFields | None = None
    base_action: Literal["keep", "set", "clear"] = "keep"
    delete_seqs: list[int] = field(default_factory=list)
    requeue_seqs: list[int] = field(default_factory=list)
    settled_seqs: list[int] = field(default_factory=list)
    new_record: str | None = None
    conflict: ConflictInfo | None = None


def record_target(record: OutboxRecord) -> WireFields | None:
    """Return the state a sent record asked the remote to reach (``None`` for a remove)."""
    payload = record.payload
    if record.op == "remove" or not isinstance(payload, dict):
        return None
    target = payload.get("target")
    return target if isinstance(target, dict) else None


def _first_op(records: Sequence[OutboxRecord]) -> str:
    return records[0].op if records else "update"


def _remote_wins(
    p: PendingDoc, base: WireFields | None, remote: WireFields | None, resolve: Resolver | None
) -> Resolution:
    """Discard every record of ``p``; the document becomes ``remote`` (or a resolver's merge)."""
    seqs = [r.seq for r in p.records]
    op = p.records[-1].op if p.records else "update"
    if p.local == remote:
        # Both sides reached the same state: nothing was really lost.
        return Resolution(doc=remote, write_doc=True, base_action="clear", delete_seqs=seqs)
    conflict = ConflictInfo(local=p.local, base=base, remote=remote, op=op)
    merged = resolve(p.local, base, remote) if resolve is not None else remote
    if merged == remote:
        return Resolution(
            doc=remote, write_doc=True, base_action="clear", delete_seqs=seqs, conflict=conflict
        )
    # A custom resolver kept something of the local change: push it on top of the remote.
    if merged is None:
        new_op = "remove"
    elif remote is None:
        new_op = "insert"
    else:
        new_op = "update"
    return Resolution(
        doc=merged,
        write_doc=True,
        base=remote,
        base_action="set",
        delete_seqs=seqs,
        new_record=new_op,
        conflict=conflict,
    )


def remote_wins(
    p: PendingDoc, remote: WireFields | None, *, resolve: Resolver | None = None
) -> Resolution:
    """The remote holds ``remote`` and wins over every pending write of ``p``."""
    return _remote_wins(p, p.base if p.has_base else None, remote, resolve)


def reconcile_round(
    p: PendingDoc, remote: WireFields | None, *, resolve: Resolver | None = None
) -> Resolution:
    """Decide a pending document after a resync round showed the remote's full state.

    Args:
        p: The pending document (records may be pending, in flight or unknown; in flight counts
            as unknown, since the session that carried it has ended).
        remote: The document as the remote sent it in this round (``None``: not sent).
        resolve: Optional conflict resolver (default: the remote wins).
    """
    records = [r for r in p.records if r.state in _ACTIVE]
    base = p.base if p.has_base else None
    res = Resolution()
    settled: list[int] = []
    i = 0
    # Writes that were sent but whose outcome is unknown come first (seq order).
    while i < len(records) and records[i].state in ("unknown", "in_flight"):
        rec = records[i]
        target = record_target(rec)
        landed = remote is None if rec.op == "remove" else remote is not None and remote == target
        if landed:
            settled.append(rec.seq)
            base = remote
            i += 1
            continue
        if remote == base:
            res.requeue_seqs.append(rec.seq)
            i += 1
            # Later records were made on top of this one and stay pending behind it.
            continue
        rest = PendingDoc(p.id, records, p.has_base, base, p.local)
        out = _remote_wins(rest, base, remote, resolve)
        return out
    pending = records[i:]
    if not pending and not res.requeue_seqs:
        # Every record is confirmed: the remote state is the truth.
        return Resolution(
            doc=remote,
            write_doc=p.local != remote,
            base_action="clear",
            delete_seqs=settled,
            settled_seqs=list(settled),
        )
    if remote == base:
        # The remote did not change since the local change was made: keep it and push it.
        res.delete_seqs = settled
        res.settled_seqs = list(settled)
        if settled:
            res.base, res.base_action = base, "set"
        return res
    if remote is None and p.local is None and _first_op(pending) != "insert":
        # Removed on both sides.
        seqs = settled + [r.seq for r in records[i:]] + res.requeue_seqs
        return Resolution(
            doc=None, write_doc=False, base_action="clear", delete_seqs=seqs, settled_seqs=settled
        )
    rest = PendingDoc(p.id, records, p.has_base, base, p.local)
    out = _remote_wins(rest, base, remote, resolve)
    return out


def live_remote_change(
    p: PendingDoc, op: RemoteOp, *, resolve: Resolver | None = None
) -> Resolution:
    """Decide a live remote change to a document that has pending local writes.

    * If a write of this document is in flight, the change may be its own echo: the base
      follows the remote, and the local document takes the change only for fields it has not
      changed itself (a three-way merge), so neither the echo nor a concurrent change to other
      fields is lost. A remote removal while an update is in flight is a conflict.
    * Otherwise the remote changed since the base: the remote wins.
    """
    base = p.base if p.has_base else None
    new_remote = op.apply_to(base)
    in_flight = any(r.state == "in_flight" for r in p.records)
    if in_flight:
        if op.kind == "removed":
            if p.local is None:
                return Resolution(base=None, base_action="set")
            return _remote_wins(p, base, None, resolve)
        local = p.local
        if local is None:
            return Resolution(base=new_remote, base_action="set")
        merged = dict(local)
        old = base or {}
        # What the write in flight asked for: a field the change shows as it was sent is that
        # write's echo, already in the local document unless changed since (then the local
        # value stays, even one back at the base's: it is pushed next).
        flying = next(r for r in p.records if r.state == "in_flight")
        sent = record_target(flying) if flying.op != "remove" else None
        incoming = (op.fields or {}) if op.kind == "changed" else (new_remote or {})
        for k, v in incoming.items():
            if sent is not None and sent.get(k, _MISSING) == v:
                continue
            # Take the remote value only where the local side left the field as the base had it.
            if local.get(k, _MISSING) == old.get(k, _MISSING):
                merged[k] = v
        if op.kind == "changed":
            removed = list(op.cleared)
        else:
            removed = [k for k in old if k not in incoming]
        for k in removed:
            if sent is not None and k not in sent:
                continue  # the write in flight removed it too
            if k in merged and merged[k] == old.get(k, _MISSING):
                del merged[k]
        return Resolution(doc=merged, write_doc=merged != local, base=new_remote, base_action="set")
    return _remote_wins(p, base, new_remote, resolve)


_MISSING: Any = object()

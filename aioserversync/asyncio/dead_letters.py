"""Failed (dead-lettered) local writes: their event, finding them, and issuing one again.

Used by the outbox drainer (the ``rejected`` event) and by
:meth:`SyncedCollection.discard_failed` and :meth:`SyncedCollection.retry_failed`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .. import ejson
from ..exceptions import ConfigurationError, WriteRejected
from ..ids import id_parse
from ..replication.changes import ChangeEvent
from ..stores.base import OutboxDelete, OutboxRecord
from .state import CollectionState

__all__ = ["failed_records", "forget_records", "rejected_event", "retry_records", "towards"]

_PAGE = 1000


def towards(current: Mapping[str, Any], target: Mapping[str, Any]) -> dict[str, Any]:
    """A ``$set``/``$unset`` modifier turning ``current`` into ``target`` (top-level fields).

    Not a replacement document: Meteor refuses those from untrusted callers.
    """
    modifier: dict[str, Any] = {}
    sets = {k: v for k, v in target.items() if k != "_id"}
    unsets = {k: "" for k in current if k != "_id" and k not in target}
    if sets:
        modifier["$set"] = sets
    if unsets:
        modifier["$unset"] = unsets
    return modifier


async def failed_records(cs: CollectionState, seqs: Iterable[int] | None) -> list[OutboxRecord]:
    """The collection's failed records of this remote (all, or exactly ``seqs``), by ``seq``.

    Raises:
        ConfigurationError: A ``seq`` that is not a failed write of this collection.
    """
    out: list[OutboxRecord] = []
    after = 0
    while True:
        page = await cs.store.outbox_peek(
            collection=cs.local,
            origin=cs.origin,
            states=("failed",),
            after_seq=after,
            limit=_PAGE,
        )
        out.extend(page)
        if len(page) < _PAGE:
            break
        after = page[-1].seq
    if seqs is None:
        return out
    wanted = set(seqs)
    unknown = wanted.difference(rec.seq for rec in out)
    if unknown:
        raise ConfigurationError(
            f"not failed writes of {cs.local!r}: {sorted(unknown)} (see failed())"
        )
    return [rec for rec in out if rec.seq in wanted]


def rejected_event(cs: CollectionState, rec: OutboxRecord, error: Any) -> ChangeEvent:
    """A ``rejected`` change event for a dead-lettered record."""
    cs.stats.rejected += 1
    err = WriteRejected(
        f"the server rejected the {rec.op} of {cs.local}/{rec.doc_id}: {error}",
        collection=cs.local,
        doc_id=rec.doc_id,
        seq=rec.seq,
        cause_error=error if hasattr(error, "error") else None,
    )
    return ChangeEvent(
        "rejected", cs.local, id_parse(rec.doc_id), origin=cs.origin, source="local", error=err
    )


async def forget_records(cs: CollectionState, records: list[OutboxRecord]) -> None:
    """Delete dead letters from the outbox."""
    if records:
        await cs.store.apply([OutboxDelete(rec.seq) for rec in records])
        cs.stats.failed = max(0, cs.stats.failed - len(records))


async def retry_records(coll: Any, records: list[OutboxRecord]) -> int:
    """Issue failed writes again through ``coll`` (a ``SyncedCollection``); return how many.

    Oldest first; each dead letter is deleted once its write is issued (see ``retry_failed``).
    """
    done = 0
    for rec in records:
        doc_id = id_parse(rec.doc_id)
        raw = rec.payload.get("target") if isinstance(rec.payload, dict) else None
        target = ejson.decode(raw) if raw is not None else None
        if rec.op == "remove" or target is None:
            await coll.remove(doc_id)
        elif rec.op == "insert":
            await coll.insert({**target, "_id": doc_id})
        else:
            current = await coll.get(doc_id)
            modifier = towards(current, target) if current is not None else None
            if modifier:
                await coll.update(doc_id, modifier)
        await forget_records(coll._cs, [rec])
        done += 1
    return done

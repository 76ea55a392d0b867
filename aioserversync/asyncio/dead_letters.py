"""Failed (dead-lettered) local writes: their event, finding them, and issuing one again.

Used by the outbox drainer (the ``rejected`` event) and by
:meth:`SyncedCollection.discard_failed` and :meth:`SyncedCollection.retry_failed`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..exceptions import ConfigurationError, WriteRejected
from ..ids import id_parse
from ..replication.changes import ChangeEvent
from ..stores.base import OutboxRecord
from .state import CollectionState

__all__ = ["failed_records", "rejected_event", "towards"]

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

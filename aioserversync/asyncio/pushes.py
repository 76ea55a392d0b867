"""The next push window: which outbox records go out, and as what.

Per document only the first active record may be in flight; later ones wait behind it. A
record is sent as the difference between its target (the local document when it is first sent)
and the base it was made against: a stock mutator call, or a ``serversync/push`` change with the
base revision for the hub's compare-and-set.

On the hub path a record's change is kept with it once sent, and every later attempt sends that
same change under the same mutation id: if the first attempt was applied (its result lost), the
hub answers the repeat with the first outcome, which then stands for exactly what was applied.
Later local changes of the document are in records of their own (:func:`.writes.plan_queue`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..ids import id_parse
from ..replication.diff import top_level_diff
from ..stores.base import ClearBase, Op, OutboxDelete, OutboxRecord, OutboxUpdate
from ..typing import WireFields
from .state import CollectionState, now_ms

__all__ = ["PushItem", "prepare_pushes"]


@dataclass(slots=True)
class PushItem:
    """One record sent (or about to be sent) to the remote."""

    cs: CollectionState
    record: OutboxRecord
    op: str
    method: str
    params: list[Any]
    target: WireFields | None
    change: dict[str, Any] | None = None
    """The ``serversync/push`` change (hub path), else ``None``."""


async def prepare_pushes(
    collections: list[CollectionState], limit: int, hub_limit: int | None = None
) -> list[PushItem]:
    """Pick the next records to push and mark them in flight (durably, with their target).

    ``limit`` bounds the stock mutator calls sent at once; ``hub_limit`` the changes of one
    ``serversync/push`` (one call carries them all).

    Per document only the first active record may be in flight; later ones wait behind it.
    Records whose local state already equals the base are settled without a push.
    """
    items: list[PushItem] = []
    stock_sent = 0
    for cs in collections:
        room = (hub_limit or limit) if cs.source == "hub" else limit - stock_sent
        if not cs.live or not cs.policy.pushes or not cs.pending or room <= 0:
            continue
        firsts = sorted(
            (recs[0] for recs in cs.pending.values() if recs[0].state == "pending"),
            key=lambda r: r.seq,
        )[:room]
        if cs.source != "hub":
            stock_sent += len(firsts)
        if not firsts:
            continue
        ids = [r.doc_id for r in firsts]
        local = await cs.store.get_fields(cs.local, ids)
        metas = await cs.store.get_meta_many(cs.local, ids)
        ops: list[Op] = []
        flights: list[Op] = []
        settled: list[OutboxRecord] = []
        chosen: list[PushItem] = []
        t = now_ms()
        for rec in firsts:
            sent = _sent_change(rec) if cs.source == "hub" else None
            if sent is not None:  # sent before: the same change again (see the module doc)
                again, sent_target = sent
                flights.append(
                    OutboxUpdate(
                        rec.seq, state="in_flight", attempts=rec.attempts + 1, updated_at=t
                    )
                )
                item = PushItem(cs, rec, again["op"], "serversync/push", [], sent_target, again)
                chosen.append(item)
                continue
            target = local.get(rec.doc_id)
            meta = metas.get(rec.doc_id)
            base = meta.base if meta is not None else None
            plan: tuple[str, list[Any]] | None
            if cs.source == "hub":
                plan = _hub_plan(rec.op, target, base)
            else:
                plan = cs.policy.push_params(rec.op, id_parse(rec.doc_id), target, base)  # type: ignore[arg-type]
            if plan is None or (rec.op == "remove" and base is None):
                ops.append(OutboxDelete(rec.seq))
                if len(cs.pending.get(rec.doc_id, ())) == 1:
                    ops.append(ClearBase(cs.local, rec.doc_id))
                settled.append(rec)
                continue
            op, params = plan
            change = None
            payload: dict[str, Any] = {"target": target}
            if cs.source == "hub":
                change = _hub_change(rec, op, target, base, meta.base_rev if meta else None)
                payload["change"] = change
            flights.append(
                OutboxUpdate(
                    rec.seq,
                    state="in_flight",
                    payload=payload,
                    attempts=rec.attempts + 1,
                    updated_at=t,
                )
            )
            method = "serversync/push" if change else cs.policy.method_for(cs.remote, op)  # type: ignore[arg-type]
            chosen.append(PushItem(cs, rec, op, method, params, target, change))
        await cs.store.apply(ops + flights)
        for rec in settled:
            cs.drop_record(rec.doc_id, rec.seq)
        if settled:  # wake wait_drained(): these needed no push
            cs.stats.pending = cs.pending_count()
            cs.bump()
        for item in chosen:
            item.record.state = "in_flight"
            item.record.payload = (
                {"target": item.target}
                if item.change is None
                else {"target": item.target, "change": item.change}
            )
            item.record.attempts += 1
        items.extend(chosen)
    return items


def _hub_plan(
    op: str, target: WireFields | None, base: WireFields | None
) -> tuple[str, list[Any]] | None:
    """Like :meth:`SyncPolicy.push_params` for the hub path (no params: the change says it all)."""
    if op == "remove":
        return "remove", []
    if target is None:
        return None
    if op == "insert" or base is None:
        return "insert", []
    if target == base:
        return None
    return "update", []


def _hub_change(
    rec: OutboxRecord,
    op: str,
    target: WireFields | None,
    base: WireFields | None,
    base_rev: int | None,
) -> dict[str, Any]:
    """The ``serversync/push`` change for a record (docs/protocol.md §5), wire values."""
    change: dict[str, Any] = {"mid": rec.mutation_id, "op": op, "id": rec.doc_id}
    if op == "insert":
        change["base"] = None
        change["doc"] = target or {}
    elif op == "update":
        fields, cleared = top_level_diff(base, target or {})
        change["base"] = base_rev
        change["set"] = fields
        change["unset"] = cleared
    else:
        change["base"] = base_rev
    return change


def _sent_change(rec: OutboxRecord) -> tuple[dict[str, Any], WireFields | None] | None:
    """The ``serversync/push`` change a hub record was sent as, and its target, if it was sent."""
    payload = rec.payload
    if rec.attempts > 0 and isinstance(payload, dict):
        change = payload.get("change")
        if isinstance(change, dict) and change.get("mid") == rec.mutation_id:
            target = payload.get("target")
            return change, target if isinstance(target, dict) else None
    return None

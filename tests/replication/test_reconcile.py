"""The conflict table, decided by the pure reconciliation functions (no store, no loop)."""

from __future__ import annotations

import pytest

from aioserversync.replication.diff import apply_patch, modifier_for, top_level_diff
from aioserversync.replication.reconcile import (
    PendingDoc,
    RemoteOp,
    live_remote_change,
    reconcile_round,
)
from aioserversync.stores.base import OutboxRecord

BASE = {"name": "pen", "n": 1}


def rec(op: str, seq: int = 1, state: str = "pending", target: dict | None = None) -> OutboxRecord:
    payload = {"target": target} if target is not None else None
    return OutboxRecord("items", "d1", op, payload=payload, state=state, seq=seq)  # type: ignore[arg-type]


def pending(records, *, base=BASE, has_base=True, local=None) -> PendingDoc:
    return PendingDoc("d1", list(records), has_base, base, local)


# ----------------------------------------------------------------- rows with a local change


def test_local_insert_remote_absent_is_kept_and_pushed() -> None:
    p = pending([rec("insert")], base=None, local={"name": "new"})
    res = reconcile_round(p, None)
    assert not res.write_doc and not res.delete_seqs and res.conflict is None


def test_local_update_remote_unchanged_is_kept() -> None:
    p = pending([rec("update")], local={"name": "pen", "n": 2})
    res = reconcile_round(p, dict(BASE))
    assert not res.write_doc and res.delete_seqs == [] and res.conflict is None


def test_local_remove_remote_unchanged_is_kept() -> None:
    p = pending([rec("remove")], local=None)
    res = reconcile_round(p, dict(BASE))
    assert not res.write_doc and res.delete_seqs == [] and res.conflict is None


def test_update_vs_update_remote_wins_and_reports() -> None:
    local = {"name": "pen", "n": 2}
    remote = {"name": "pen", "n": 5}
    res = reconcile_round(pending([rec("update")], local=local), remote)
    assert res.write_doc and res.doc == remote
    assert res.delete_seqs == [1] and res.base_action == "clear"
    assert res.conflict is not None
    assert (res.conflict.local, res.conflict.base, res.conflict.remote) == (local, BASE, remote)


def test_remote_update_vs_local_remove_restores_document() -> None:
    remote = {"name": "pen", "n": 5}
    res = reconcile_round(pending([rec("remove")], local=None), remote)
    assert res.write_doc and res.doc == remote and res.conflict is not None
    assert res.delete_seqs == [1]


def test_remote_remove_vs_local_update_removes_document() -> None:
    res = reconcile_round(pending([rec("update")], local={"name": "pen", "n": 2}), None)
    assert res.write_doc and res.doc is None and res.conflict is not None
    assert res.conflict.remote is None


def test_removed_on_both_sides_settles_silently() -> None:
    res = reconcile_round(pending([rec("remove")], local=None), None)
    assert res.conflict is None and res.delete_seqs == [1] and res.base_action == "clear"


def test_same_change_on_both_sides_is_not_a_conflict() -> None:
    same = {"name": "pen", "n": 7}
    res = reconcile_round(pending([rec("update")], local=dict(same)), dict(same))
    assert res.conflict is None and res.delete_seqs == [1]


def test_pending_insert_when_remote_has_the_id_remote_wins() -> None:
    p = pending([rec("insert")], base=None, local={"name": "mine"})
    res = reconcile_round(p, {"name": "theirs"})
    assert res.doc == {"name": "theirs"} and res.conflict is not None


# ----------------------------------------------------------------- unknown outcomes


def test_unknown_insert_that_landed_is_settled() -> None:
    doc = {"name": "new"}
    p = pending([rec("insert", state="unknown", target=doc)], base=None, local=dict(doc))
    res = reconcile_round(p, dict(doc))
    assert res.settled_seqs == [1] and res.delete_seqs == [1] and res.conflict is None


def test_unknown_insert_that_did_not_land_is_requeued() -> None:
    doc = {"name": "new"}
    p = pending([rec("insert", state="unknown", target=doc)], base=None, local=dict(doc))
    res = reconcile_round(p, None)
    assert res.requeue_seqs == [1] and not res.delete_seqs and res.conflict is None


def test_unknown_update_landed_then_later_pending_change_stays() -> None:
    first = {"name": "pen", "n": 2}
    p = pending(
        [rec("update", 1, "unknown", first), rec("update", 2)], local={"name": "pen", "n": 3}
    )
    res = reconcile_round(p, dict(first))
    assert res.settled_seqs == [1] and res.delete_seqs == [1]
    assert res.base_action == "set" and res.base == first and res.conflict is None


def test_unknown_update_with_foreign_remote_change_is_conflict() -> None:
    p = pending(
        [rec("update", 1, "in_flight", {"name": "pen", "n": 2})], local={"name": "pen", "n": 2}
    )
    res = reconcile_round(p, {"name": "pen", "n": 9})
    assert res.conflict is not None and res.doc == {"name": "pen", "n": 9}


def test_custom_resolver_keeps_local_fields_and_queues_a_push() -> None:
    def resolve(local, base, remote):
        merged = dict(remote)
        merged.update({k: v for k, v in local.items() if base.get(k) != v})
        return merged

    local = {"name": "pencil", "n": 1}
    remote = {"name": "pen", "n": 5}
    res = reconcile_round(pending([rec("update")], local=local), remote, resolve=resolve)
    assert res.doc == {"name": "pencil", "n": 5}
    assert res.new_record == "update" and res.base == remote and res.conflict is not None


# ----------------------------------------------------------------- live changes


def test_live_change_without_in_flight_is_remote_wins() -> None:
    p = pending([rec("update")], local={"name": "pen", "n": 2})
    res = live_remote_change(p, RemoteOp("changed", {"n": 3}))
    assert res.doc == {"name": "pen", "n": 3} and res.conflict is not None


def test_live_echo_while_in_flight_merges_three_ways() -> None:
    # Local changed n; the remote (echo or someone else) changed n to the same and name too.
    p = pending([rec("update", state="in_flight")], local={"name": "pen", "n": 2})
    res = live_remote_change(p, RemoteOp("changed", {"n": 2, "name": "ink"}))
    assert res.conflict is None
    assert res.base == {"name": "ink", "n": 2} and res.base_action == "set"
    assert res.doc == {"name": "ink", "n": 2}


def test_live_change_in_flight_keeps_locally_changed_field() -> None:
    p = pending([rec("update", state="in_flight")], local={"name": "pen", "n": 2})
    res = live_remote_change(p, RemoteOp("changed", {"n": 4}))
    assert res.doc == {"name": "pen", "n": 2} and not res.write_doc
    assert res.base == {"name": "pen", "n": 4} and res.conflict is None


def test_live_remove_while_update_in_flight_is_conflict() -> None:
    p = pending([rec("update", state="in_flight")], local={"name": "pen", "n": 2})
    res = live_remote_change(p, RemoteOp("removed"))
    assert res.doc is None and res.write_doc and res.conflict is not None


# ----------------------------------------------------------------- diffs


@pytest.mark.parametrize(
    ("old", "new", "fields", "cleared"),
    [
        ({"a": 1}, {"a": 1}, {}, []),
        ({"a": 1}, {"a": 2}, {"a": 2}, []),
        ({"a": 1, "b": 2}, {"a": 1}, {}, ["b"]),
        (None, {"a": {"x": [1]}}, {"a": {"x": [1]}}, []),
        ({"a": {"x": 1, "y": 2}}, {"a": {"y": 2, "x": 1}}, {}, []),
    ],
)
def test_top_level_diff(old, new, fields, cleared) -> None:
    assert top_level_diff(old, new) == (fields, cleared)
    assert apply_patch(old, fields, cleared) == new


def test_modifier_for() -> None:
    assert modifier_for({"a": 1, "b": 2}, {"a": 3}) == {"$set": {"a": 3}, "$unset": {"b": ""}}
    assert modifier_for({"a": 1}, {"a": 1}) is None

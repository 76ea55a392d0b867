"""Mergebox: Meteor's per-session merge rules (ddp-facts §3.3) and publication strategies."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioserversync.exceptions import ConfigurationError, LocalProtocolError
from aioserversync.protocol.mergebox import (
    MERGE,
    NO_MERGE,
    NO_MERGE_NO_HISTORY,
    Mergebox,
    WireOp,
    ejson_equal,
)


def box(*subs: str, strategy: Any = MERGE) -> Mergebox:
    mb = Mergebox()
    for s in subs:
        mb.add_sub(s, strategy)
    return mb


def added(id: str, **fields: Any) -> WireOp:
    return WireOp("added", "c", id, fields)


def changed(
    id: str, fields: dict[str, Any] | None = None, cleared: list[str] | None = None
) -> WireOp:
    return WireOp("changed", "c", id, fields, cleared)


# --------------------------------------------------------------------------- equality


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, True),
        (1, 1.0, True),
        (True, 1, False),
        (0, False, False),
        ([1, {"x": [2]}], [1, {"x": [2]}], True),
        ([1, 2], [2, 1], False),
        ({"$date": 5}, {"$date": 5.0}, True),
        ({"a": None}, {}, False),
        ({"a": 1}, {"b": 1}, False),
        ("1", 1, False),
        (None, None, True),
        ([], {}, False),
    ],
)
def test_ejson_equal(a: Any, b: Any, equal: bool) -> None:
    assert ejson_equal(a, b) is equal
    assert ejson_equal(b, a) is equal


# --------------------------------------------------------------------------- merge strategy


def test_first_added_passes_the_fields_through_without_copying() -> None:
    mb = box("A")
    fields = {"text": "hi"}
    op = mb.added("A", "c", "x", fields)
    assert op == added("x", text="hi")
    assert op is not None and op.fields is fields
    assert mb.get("c", "x") is fields
    assert mb.holders("c", "x") == ("A",)


def test_id_key_is_never_published() -> None:
    mb = box("A")
    assert mb.added("A", "c", "x", {"_id": "x", "a": 1}) == added("x", a=1)
    assert mb.changed("A", "c", "x", {"_id": "y"}) is None


def test_second_sub_adding_same_doc_gets_changed_not_added() -> None:
    mb = box("A", "B")
    mb.added("A", "c", "x", {"a": 1, "b": 2})
    assert mb.added("B", "c", "x", {"a": 1, "b": 99, "n": 3}) == changed("x", {"n": 3})
    assert mb.get("c", "x") == {"a": 1, "b": 2, "n": 3}
    assert mb.holders("c", "x") == ("A", "B")


def test_second_sub_with_nothing_new_sends_nothing() -> None:
    mb = box("A", "B")
    mb.added("A", "c", "x", {"a": 1})
    assert mb.added("B", "c", "x", {"a": 1}) is None
    assert mb.added("B", "c", "x", {}) is None


def test_repeated_added_from_same_sub_acts_as_change() -> None:
    mb = box("A")
    mb.added("A", "c", "x", {"a": 1, "b": 2})
    assert mb.added("A", "c", "x", {"a": 5}) == changed("x", {"a": 5})
    assert mb.get("c", "x") == {"a": 5, "b": 2}


def test_precedence_first_setter_wins_and_next_is_promoted() -> None:
    mb = box("A", "B")
    mb.added("A", "c", "x", {"v": 1})
    mb.added("B", "c", "x", {"v": 2})
    assert mb.get("c", "x") == {"v": 1}
    # A is the winner: its change is visible.
    assert mb.changed("A", "c", "x", {"v": 3}) == changed("x", {"v": 3})
    # B is not: nothing is sent.
    assert mb.changed("B", "c", "x", {"v": 4}) is None
    # A clears: B's value is next in line.
    assert mb.changed("A", "c", "x", None, ["v"]) == changed("x", {"v": 4})
    # B clears: nobody has it any more.
    assert mb.changed("B", "c", "x", None, ["v"]) == changed("x", None, ["v"])
    assert mb.get("c", "x") == {}


def test_promotion_of_an_equal_value_is_suppressed() -> None:
    mb = box("A", "B")
    mb.added("A", "c", "x", {"v": {"k": 1, "j": 2}})
    mb.added("B", "c", "x", {"v": {"j": 2, "k": 1}})
    assert mb.changed("A", "c", "x", None, ["v"]) is None
    assert mb.removed("B", "c", "x") == changed("x", None, ["v"])


def test_sub_setting_a_field_again_after_clearing_goes_last() -> None:
    mb = box("A", "B")
    mb.added("A", "c", "x", {"v": 1})
    mb.added("B", "c", "x", {"v": 2})
    mb.changed("A", "c", "x", None, ["v"])
    assert mb.changed("A", "c", "x", {"v": 9}) is None  # B now wins
    assert mb.get("c", "x") == {"v": 2}


def test_removed_only_when_the_last_sub_drops_the_document() -> None:
    mb = box("A", "B")
    mb.added("A", "c", "x", {"a": 1, "shared": 0})
    mb.added("B", "c", "x", {"b": 2, "shared": 5})
    assert mb.removed("A", "c", "x") == changed("x", {"shared": 5}, ["a"])
    assert mb.get("c", "x") == {"b": 2, "shared": 5}
    assert mb.removed("B", "c", "x") == WireOp("removed", "c", "x")
    assert mb.get("c", "x") is None and len(mb) == 0


def test_stopping_a_sub_promotes_and_removes() -> None:
    mb = box("A", "B")
    mb.added("A", "c", "x", {"a": 1, "v": "A"})
    mb.added("A", "c", "only-a", {"z": 0})
    mb.added("B", "c", "x", {"v": "B"})
    mb.added("B", "c", "only-b", {})
    ops = mb.remove_sub("A")
    assert sorted(ops, key=lambda o: o.id) == [
        WireOp("removed", "c", "only-a"),
        changed("x", {"v": "B"}, ["a"]),
    ]
    assert not mb.has_sub("A")
    assert sorted(mb.remove_sub("B")) == [
        WireOp("removed", "c", "only-b"),
        WireOp("removed", "c", "x"),
    ]
    assert len(mb) == 0


def test_stopping_the_last_holder_removes_every_document() -> None:
    mb = box("A")
    for i in range(5):
        mb.added("A", "c", f"d{i}", {"i": i})
    mb.added("A", "other", "o", {})
    ops = mb.remove_sub("A")
    assert sorted((o.collection, o.id, o.kind) for o in ops) == sorted(
        [("c", f"d{i}", "removed") for i in range(5)] + [("other", "o", "removed")]
    )
    assert mb.collections() == []


def test_unchanged_values_are_suppressed() -> None:
    mb = box("A")
    mb.added("A", "c", "x", {"a": {"k": 1, "j": [1, 2]}, "n": 1})
    assert mb.changed("A", "c", "x", {"a": {"j": [1, 2], "k": 1}, "n": 1.0}) is None
    assert mb.changed("A", "c", "x", {"n": True}) == changed("x", {"n": True})
    assert mb.changed("A", "c", "x", None, ["missing"]) is None


def test_change_only_reports_what_changed() -> None:
    mb = box("A")
    mb.added("A", "c", "x", {"a": 1, "b": 2, "c": 3})
    assert mb.changed("A", "c", "x", {"a": 1, "b": 20}, ["c", "zz"]) == changed(
        "x", {"b": 20}, ["c"]
    )
    assert mb.get("c", "x") == {"a": 1, "b": 20}


def test_changes_never_mutate_the_callers_dicts() -> None:
    mb = box("A", "B")
    fields = {"a": 1, "b": 2}
    mb.added("A", "c", "x", fields)
    mb.changed("A", "c", "x", {"a": 5}, ["b"])
    assert fields == {"a": 1, "b": 2}
    shared = {"v": 1}
    mb.added("A", "c", "y", shared)
    mb.added("B", "c", "y", {"v": 2})
    mb.changed("A", "c", "y", {"v": 3})
    assert shared == {"v": 1}


def test_whole_input_dict_is_reused_when_everything_changed() -> None:
    mb = box("A")
    mb.added("A", "c", "x", {"a": 1})
    change = {"a": 2, "b": 3}
    op = mb.changed("A", "c", "x", change)
    assert op is not None and op.fields is change


def test_back_to_a_single_holder_keeps_working() -> None:
    mb = box("A", "B")
    mb.added("A", "c", "x", {"v": 1})
    mb.added("B", "c", "x", {"w": 2})
    mb.removed("B", "c", "x")
    assert mb.holders("c", "x") == ("A",)
    assert mb.changed("A", "c", "x", {"v": 2}) == changed("x", {"v": 2})
    assert mb.added("B", "c", "x", {"v": 7}) is None
    assert mb.remove_sub("A") == [changed("x", {"v": 7})]


def test_misuse_raises_local_protocol_error() -> None:
    mb = box("A", "B")
    mb.added("A", "c", "x", {})
    with pytest.raises(LocalProtocolError):
        mb.changed("B", "c", "x", {"a": 1})
    with pytest.raises(LocalProtocolError):
        mb.removed("B", "c", "x")
    with pytest.raises(LocalProtocolError):
        mb.changed("A", "c", "nope", {"a": 1})
    with pytest.raises(LocalProtocolError):
        mb.removed("A", "other", "x")
    with pytest.raises(LocalProtocolError):
        mb.added("Z", "c", "x", {})
    with pytest.raises(LocalProtocolError):
        mb.add_sub("A")
    with pytest.raises(ConfigurationError):
        mb.add_sub("Q", "fastest")  # type: ignore[arg-type]
    assert mb.remove_sub("never-registered") == []


def test_diff_between_two_views() -> None:
    old = box("A")
    old.added("A", "c", "gone", {"a": 1})
    old.added("A", "c", "kept", {"a": 1, "b": 2})
    old.added("A", "c", "same", {"a": 1})
    new = box("A")
    new.added("A", "c", "kept", {"a": 1, "b": 3, "n": 0})
    new.added("A", "c", "same", {"a": 1})
    new.added("A", "c", "new", {"z": 9})
    new.added("A", "d", "other", {})
    assert old.diff(new) == [
        WireOp("removed", "c", "gone"),
        changed("kept", {"b": 3, "n": 0}),
        WireOp("added", "c", "new", {"z": 9}),
        WireOp("added", "d", "other", {}),
    ]
    gone = box("A")
    assert gone.diff(box()) == []
    mixed = box("A")
    mixed.added("A", "c", "k", {"a": 1, "b": 2})
    other = box("A")
    other.added("A", "c", "k", {"a": 1})
    assert mixed.diff(other) == [changed("k", None, ["b"])]


# --------------------------------------------------------------------------- other strategies


def test_no_merge_passes_everything_through_and_removes_on_stop() -> None:
    mb = box("A", "B", strategy=NO_MERGE)
    assert mb.strategy_of("A") == NO_MERGE
    assert mb.added("A", "c", "x", {"a": 1}) == added("x", a=1)
    assert mb.added("B", "c", "x", {"a": 1}) == added("x", a=1)  # duplicate added is allowed
    assert mb.changed("A", "c", "x", {"a": 1}) == changed("x", {"a": 1})  # no diffing
    assert mb.changed("A", "c", "never-added", None, ["q"]) == changed("never-added", None, ["q"])
    assert mb.changed("A", "c", "x") is None
    mb.added("A", "c", "y", {})
    mb.added("A", "c", "z", {})
    assert mb.removed("A", "c", "z") == WireOp("removed", "c", "z")
    assert len(mb) == 0  # no field tracking at all
    assert sorted(mb.remove_sub("A")) == [WireOp("removed", "c", "x"), WireOp("removed", "c", "y")]
    assert mb.remove_sub("B") == [WireOp("removed", "c", "x")]


def test_no_merge_no_history_remembers_nothing() -> None:
    mb = box("A", strategy=NO_MERGE_NO_HISTORY)
    for i in range(100):
        assert mb.added("A", "c", f"d{i}", {"i": i}) == added(f"d{i}", i=i)
    assert mb.removed("A", "c", "d0") == WireOp("removed", "c", "d0")
    assert mb.strategy_of("A") == NO_MERGE_NO_HISTORY
    assert mb.remove_sub("A") == []
    assert len(mb) == 0


def test_strategies_mix_in_one_session() -> None:
    mb = Mergebox()
    mb.add_sub("M", MERGE)
    mb.add_sub("N", NO_MERGE)
    mb.added("M", "c", "x", {"a": 1})
    assert mb.added("N", "c", "x", {"a": 1}) == added("x", a=1)
    assert mb.holders("c", "x") == ("M",)
    assert mb.remove_sub("N") == [WireOp("removed", "c", "x")]
    assert mb.get("c", "x") == {"a": 1}


# --------------------------------------------------------------------------- property


SUBS = ("A", "B", "C")
IDS = ("x", "y")
KEYS = ("k", "l", "m")
values = st.one_of(st.integers(0, 2), st.sampled_from([True, None, "s", [1], {"o": 1}]))
fields_st = st.dictionaries(st.sampled_from(KEYS), values, max_size=3)
action = st.one_of(
    st.tuples(st.just("added"), st.sampled_from(SUBS), st.sampled_from(IDS), fields_st),
    st.tuples(
        st.just("changed"),
        st.sampled_from(SUBS),
        st.sampled_from(IDS),
        fields_st,
        st.lists(st.sampled_from(KEYS), max_size=2, unique=True),
    ),
    st.tuples(st.just("removed"), st.sampled_from(SUBS), st.sampled_from(IDS)),
    st.tuples(st.just("stop"), st.sampled_from(SUBS)),
)


def apply_client(client: dict[str, dict[str, Any]], op: WireOp) -> None:
    """What a strict client does; it fails on anything the merge rules forbid."""
    if op.kind == "added":
        assert op.id not in client, f"second added for {op.id}"
        client[op.id] = dict(op.fields or {})
    elif op.kind == "changed":
        assert op.id in client, f"changed for unknown {op.id}"
        assert op.fields or op.cleared, "empty changed"
        doc = client[op.id]
        for k, v in (op.fields or {}).items():
            assert not ejson_equal(doc.get(k, object()), v), "unchanged value sent"
            doc[k] = v
        for k in op.cleared or ():
            assert k in doc, "cleared a field the client does not have"
            del doc[k]
    else:
        assert op.id in client, f"removed for unknown {op.id}"
        del client[op.id]


@settings(max_examples=300, deadline=None)
@given(st.lists(action, max_size=40))
def test_client_view_always_matches_the_publications(actions: list[tuple[Any, ...]]) -> None:
    mb = box(*SUBS)
    client: dict[str, dict[str, Any]] = {}
    # Model: what each subscription publishes.
    model: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in SUBS}
    for act in actions:
        kind, sub = act[0], act[1]
        if kind == "stop":
            ops = mb.remove_sub(sub)
            model[sub] = {}
            mb.add_sub(sub)
        elif kind == "added":
            ops = [mb.added(sub, "c", act[2], act[3])]
            model[sub].setdefault(act[2], {}).update(act[3])
        elif act[2] not in model[sub]:
            continue
        elif kind == "changed":
            ops = [mb.changed(sub, "c", act[2], act[3], act[4])]
            doc = model[sub][act[2]]
            doc.update(act[3])
            for k in act[4]:
                doc.pop(k, None)
        else:
            ops = [mb.removed(sub, "c", act[2])]
            del model[sub][act[2]]
        for op in ops:
            if op is not None:
                apply_client(client, op)
        # Invariants: the client holds exactly the published documents; each visible field has
        # the value some holder publishes, and the merge box reports what the client sees.
        for doc_id in IDS:
            holders = [s for s in SUBS if doc_id in model[s]]
            assert (doc_id in client) == bool(holders)
            if not holders:
                continue
            keys = set().union(*(model[s][doc_id] for s in holders))
            assert set(client[doc_id]) == keys
            for k, v in client[doc_id].items():
                assert any(
                    k in model[s][doc_id] and ejson_equal(model[s][doc_id][k], v) for s in holders
                )
            assert mb.get("c", doc_id) == client[doc_id]

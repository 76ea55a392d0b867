"""The hot-path constructors build the same operations as the dataclasses; patch folding."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioserversync.exceptions import StoreError
from aioserversync.stores import EncodedFields, PatchDoc, PutDoc, StagePut
from aioserversync.stores.fast_ops import patch_doc, put_doc, stage_put
from aioserversync.stores.wireform import (
    fold_patches,
    patch_fields,
    revised_keys,
    split_rev_key,
)


def test_put_doc_equals_the_dataclass() -> None:
    fast = put_doc("items", "a", {"n": 1}, "origin", 7)
    slow = PutDoc("items", "a", {"n": 1}, "origin", 7)
    assert type(fast) is PutDoc
    assert fast == slow and repr(fast) == repr(slow)
    assert dataclasses.astuple(fast) == ("items", "a", {"n": 1}, "origin", 7)
    assert put_doc("items", "a", {}, None, None) == PutDoc("items", "a", {})


def test_stage_put_equals_the_dataclass() -> None:
    fast = stage_put("round:x", "items", "a", {"n": 1})
    assert type(fast) is StagePut
    assert fast == StagePut("round:x", "items", "a", {"n": 1})


def test_patch_doc_equals_the_dataclass() -> None:
    fast = patch_doc("items", "a", {"n": 1}, ("m",), "origin")
    slow = PatchDoc("items", "a", {"n": 1}, ("m",), "origin")
    assert type(fast) is PatchDoc
    assert fast == slow and repr(fast) == repr(slow)
    assert dataclasses.astuple(fast) == ("items", "a", {"n": 1}, ("m",), "origin", None)
    assert patch_doc("items", "a", None, None, None) == PatchDoc("items", "a")


def test_fast_built_operations_stay_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        put_doc("items", "a", {}, None, None).id = "b"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        stage_put("s", "items", "a", {}).id = "b"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        patch_doc("items", "a", {}, (), None).fields = {}  # type: ignore[misc]


def test_encoded_fields_hold_the_json_text_of_a_dict() -> None:
    enc = EncodedFields({"n": 1, "at": {"$date": 5}, "s": "é"})
    assert enc.text == '{"n":1,"at":{"$date":5},"s":"é"}'
    assert enc.decode() == {"n": 1, "at": {"$date": 5}, "s": "é"}
    assert enc == EncodedFields({"n": 1, "at": {"$date": 5}, "s": "é"})
    assert StagePut("r", "items", "a", enc) == stage_put("r", "items", "a", enc)


@pytest.mark.parametrize("bad", [[1], "text", None, {"d": datetime.now(UTC)}, {1: "int key"}])
def test_encoded_fields_refuse_what_is_not_a_dict_of_plain_json(bad: object) -> None:
    with pytest.raises(StoreError):
        EncodedFields(bad)  # type: ignore[arg-type]


def test_encoded_fields_from_json_text_take_the_canonical_spelling() -> None:
    enc = EncodedFields.from_json('{ "n" : 1.50, "n2": 1, "n2": 2, "at": {"$date": 5} }')
    assert enc.text == '{"n":1.5,"n2":2,"at":{"$date":5}}'
    assert enc == EncodedFields({"n": 1.5, "n2": 2, "at": {"$date": 5}})
    assert EncodedFields.from_json(b'{"s":"\\u00e9"}').text == '{"s":"é"}'


@pytest.mark.parametrize("bad", ["", "{", "[1]", '"text"', "null", "1", '{"a":1}x'])
def test_encoded_fields_from_json_refuse_what_is_not_an_object(bad: str) -> None:
    with pytest.raises(StoreError):
        EncodedFields.from_json(bad)


FOLD_CASES = [
    # (current, [(fields, cleared), ...])
    (None, [({"a": 1}, ["x"]), ({"b": 2}, ["a"])]),  # created by the first; later clears apply
    ({"a": 1, "b": 2}, [({"a": 3}, None), (None, ["b"]), ({"b": 4}, ["b"])]),
    ({"$escape": {"$date": 5}}, [({"n": 1}, None)]),  # an escaped document, unwrapped
    ({"x": 1}, [(None, ["x"]), ({"$date": 7}, None)]),  # ends special-looking: wrapped again
    ({"x": 1}, [({"$escape": {"$binary": "AA=="}}, None)]),  # escaped patch fields
    ({"x": 1}, [({}, []), (None, None)]),
]


@pytest.mark.parametrize(("current", "patches"), FOLD_CASES)
def test_fold_patches_equals_patch_fields_one_by_one(current: object, patches: list) -> None:
    ops = [PatchDoc("items", "d", fields, cleared) for fields, cleared in patches]
    expected = current
    for op in ops:
        expected = patch_fields(  # type: ignore[assignment]
            expected,  # type: ignore[arg-type]
            op.fields,
            op.cleared if expected is not None else None,
        )
    before = repr(current)
    assert fold_patches(current, ops) == expected  # type: ignore[arg-type]
    assert repr(current) == before  # never modified


@pytest.mark.parametrize(
    "bad",
    [
        PatchDoc("items", "d", [1]),
        PatchDoc("items", "d", None, "ab"),
        PatchDoc("items", "d", None, [3]),
    ],  # type: ignore[arg-type]
)
def test_fold_patches_refuses_what_patch_fields_refuses(bad: PatchDoc) -> None:
    with pytest.raises(StoreError):
        patch_fields({"a": 1}, bad.fields, bad.cleared)
    with pytest.raises(StoreError):
        fold_patches({"a": 1}, [bad])


_KEY_CHARS = st.sampled_from(["0", "1", "9", ":", "a", "-", " ", "\n", "é", "\u0661"])


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.text(_KEY_CHARS, max_size=22), max_size=6))
def test_revised_keys_agree_with_split_rev_key(keys: list[str]) -> None:
    """``revised_keys`` (one regular expression over all the keys) accepts exactly the keys that
    ``split_rev_key`` splits with a revision, except that a key holding a newline may be refused
    although it is one (never the reverse)."""
    one_by_one = [(s := split_rev_key(k)) is not None and s[0] is not None for k in keys]
    got = revised_keys(keys)
    if got:
        assert all(one_by_one), keys
    elif not any("\n" in k for k in keys):
        assert not all(one_by_one), keys


def test_revised_keys_examples() -> None:
    assert revised_keys([])
    assert revised_keys(["1:a", "0:", "123456789012345678:x:y", "7:é\u2028"])
    assert revised_keys({"5:a": 1, "6:b": 2})  # a page's parsed dict, by its keys
    for bad in ["", ":a", "a", "1", "-1:a", " 1:a", "1 :a", "\u0661:a", "1234567890123456789:a"]:
        assert not revised_keys(["1:a", bad]), bad
    assert not revised_keys(["1:a\n"]) and not revised_keys(["1:a\nb"])  # refused, though keys


def test_revised_keys_take_a_large_page_in_one_pass() -> None:
    keys = [f"{i + 1}:{i:017d}" for i in range(300_000)]
    assert revised_keys(keys)
    assert not revised_keys([*keys, "x:y"])

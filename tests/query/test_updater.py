"""Update modifiers and replacements, table-driven, with MongoDB's results and errors."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from aioserversync.exceptions import ModifierError, StoreError
from aioserversync.query import apply_update, is_replacement, validate_modifier

NOW = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)

CASES: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    # $set: creates objects on the way, pads arrays, keeps the position of existing fields
    ({"_id": 1, "a": 1, "b": 2}, {"$set": {"a": 9}}, {"_id": 1, "a": 9, "b": 2}),
    ({"_id": 1}, {"$set": {"a.b.c": 1}}, {"_id": 1, "a": {"b": {"c": 1}}}),
    ({"_id": 1, "a": [1]}, {"$set": {"a.3": 5}}, {"_id": 1, "a": [1, None, None, 5]}),
    ({"_id": 1, "a": []}, {"$set": {"a.1.b": 5}}, {"_id": 1, "a": [None, {"b": 5}]}),
    ({"_id": 1, "a": {"0": 1}}, {"$set": {"a.0": 2}}, {"_id": 1, "a": {"0": 2}}),
    ({"_id": 1}, {"$set": {"a.0": 2}}, {"_id": 1, "a": {"0": 2}}),
    ({"_id": 1, "a": [{"b": 1}]}, {"$set": {"a.0.c": 2}}, {"_id": 1, "a": [{"b": 1, "c": 2}]}),
    ({"_id": 1, "a": 1}, {"$set": {"a": True}}, {"_id": 1, "a": True}),
    # MongoDB 5.0+: new fields in path order, all-digit names numerically
    ({"_id": 1}, {"$set": {"z": 1, "b": 2}, "$inc": {"a": 1}}, {"_id": 1, "a": 1, "b": 2, "z": 1}),
    (
        {"_id": 1},
        {"$set": {"f.10": 1, "f.9": 2, "f.a": 3}},
        {"_id": 1, "f": {"9": 2, "10": 1, "a": 3}},
    ),
    # $unset: removes, nulls array elements, ignores missing and blocked paths
    ({"_id": 1, "a": 1, "b": 2}, {"$unset": {"a": ""}}, {"_id": 1, "b": 2}),
    ({"_id": 1, "a": [1, 2]}, {"$unset": {"a.0": 1}}, {"_id": 1, "a": [None, 2]}),
    ({"_id": 1}, {"$unset": {"a.b": 1}}, {"_id": 1}),
    ({"_id": 1, "a": 5}, {"$unset": {"a.b": 1}}, {"_id": 1, "a": 5}),
    # $inc / $mul: type promotion
    ({"_id": 1, "n": 1}, {"$inc": {"n": 2}}, {"_id": 1, "n": 3}),
    ({"_id": 1, "n": 1}, {"$inc": {"n": 0.5}}, {"_id": 1, "n": 1.5}),
    ({"_id": 1, "n": Decimal("1.1")}, {"$inc": {"n": 1}}, {"_id": 1, "n": Decimal("2.1")}),
    ({"_id": 1}, {"$inc": {"n": -2}}, {"_id": 1, "n": -2}),
    ({"_id": 1, "n": 3}, {"$mul": {"n": 2}}, {"_id": 1, "n": 6}),
    ({"_id": 1}, {"$mul": {"n": 2}}, {"_id": 1, "n": 0}),
    ({"_id": 1}, {"$mul": {"n": 2.5}}, {"_id": 1, "n": 0.0}),
    # $min / $max: BSON order across types
    ({"_id": 1, "a": 5}, {"$min": {"a": 3}}, {"_id": 1, "a": 3}),
    ({"_id": 1, "a": 5}, {"$min": {"a": 7}}, {"_id": 1, "a": 5}),
    ({"_id": 1, "a": 5}, {"$max": {"a": "x"}}, {"_id": 1, "a": "x"}),
    ({"_id": 1, "a": 5}, {"$min": {"a": None}}, {"_id": 1, "a": None}),
    ({"_id": 1}, {"$max": {"a": 1}}, {"_id": 1, "a": 1}),
    # $rename
    ({"_id": 1, "a": 1, "b": 2}, {"$rename": {"a": "c"}}, {"_id": 1, "b": 2, "c": 1}),
    ({"_id": 1, "a": {"b": 1}}, {"$rename": {"a.b": "c.d"}}, {"_id": 1, "a": {}, "c": {"d": 1}}),
    ({"_id": 1, "a": 1, "b": 2}, {"$rename": {"a": "b"}}, {"_id": 1, "b": 1}),
    ({"_id": 1, "b": 2}, {"$rename": {"a": "c"}}, {"_id": 1, "b": 2}),
    ({"_id": 1, "a": None}, {"$rename": {"a": "c"}}, {"_id": 1, "c": None}),
    ({"_id": 1, "a": [1]}, {"$rename": {"a.x": "c"}}, {"_id": 1, "a": [1]}),
    # $push and its modifiers: position, then sort, then slice
    ({"_id": 1}, {"$push": {"a": 1}}, {"_id": 1, "a": [1]}),
    ({"_id": 1, "a": [1]}, {"$push": {"a": [2]}}, {"_id": 1, "a": [1, [2]]}),
    ({"_id": 1, "a": [1]}, {"$push": {"a": {"$each": [2, 3]}}}, {"_id": 1, "a": [1, 2, 3]}),
    (
        {"_id": 1, "a": [3, 1]},
        {"$push": {"a": {"$each": [2, 5], "$sort": 1, "$slice": 3}}},
        {"_id": 1, "a": [1, 2, 3]},
    ),
    (
        {"_id": 1, "a": [1, 2]},
        {"$push": {"a": {"$each": [9], "$position": 1}}},
        {"_id": 1, "a": [1, 9, 2]},
    ),
    (
        {"_id": 1, "a": [1, 2]},
        {"$push": {"a": {"$each": [9], "$position": -1}}},
        {"_id": 1, "a": [1, 9, 2]},
    ),
    (
        {"_id": 1, "a": [1, 2, 3]},
        {"$push": {"a": {"$each": [], "$slice": -2}}},
        {"_id": 1, "a": [2, 3]},
    ),
    (
        {"_id": 1, "a": [{"s": 2}, {"s": 1}, {"t": 0}]},
        {"$push": {"a": {"$each": [], "$sort": {"s": -1}}}},
        {"_id": 1, "a": [{"s": 2}, {"s": 1}, {"t": 0}]},
    ),
    (
        {"_id": 1, "a": [{"s": 2}, {"s": 1}, {"t": 0}]},
        {"$push": {"a": {"$each": [], "$sort": {"s": 1}}}},
        {"_id": 1, "a": [{"t": 0}, {"s": 1}, {"s": 2}]},
    ),
    # $addToSet: BSON equality (key order matters), $each deduplicated
    ({"_id": 1, "a": [1, 2]}, {"$addToSet": {"a": 2}}, {"_id": 1, "a": [1, 2]}),
    ({"_id": 1, "a": [1]}, {"$addToSet": {"a": 1.0}}, {"_id": 1, "a": [1]}),
    ({"_id": 1, "a": [1]}, {"$addToSet": {"a": True}}, {"_id": 1, "a": [1, True]}),
    (
        {"_id": 1, "a": [{"x": 1, "y": 2}]},
        {"$addToSet": {"a": {"y": 2, "x": 1}}},
        {"_id": 1, "a": [{"x": 1, "y": 2}, {"y": 2, "x": 1}]},
    ),
    (
        {"_id": 1, "a": [1]},
        {"$addToSet": {"a": {"$each": [2, 3, 3, 1]}}},
        {"_id": 1, "a": [1, 2, 3]},
    ),
    # $pull: value, condition, sub-document query, regular expression
    ({"_id": 1, "a": [1, 2, 3, 2]}, {"$pull": {"a": 2}}, {"_id": 1, "a": [1, 3]}),
    ({"_id": 1, "a": [1, 5, 8]}, {"$pull": {"a": {"$gte": 5}}}, {"_id": 1, "a": [1]}),
    (
        {"_id": 1, "a": [{"b": 1, "c": 2}, {"b": 2}, 3]},
        {"$pull": {"a": {"b": 1}}},
        {"_id": 1, "a": [{"b": 2}, 3]},
    ),
    ({"_id": 1, "a": [{"b": 1}, 3, {}]}, {"$pull": {"a": {}}}, {"_id": 1, "a": [3]}),
    (
        {"_id": 1, "a": ["apple", "kiwi"]},
        {"$pull": {"a": re.compile("^a")}},
        {"_id": 1, "a": ["kiwi"]},
    ),
    ({"_id": 1, "a": [[1, 2], [3]]}, {"$pull": {"a": {"$in": [1]}}}, {"_id": 1, "a": [[3]]}),
    ({"_id": 1, "a": [[1, 2], [3]]}, {"$pull": {"a": [3]}}, {"_id": 1, "a": [[1, 2]]}),
    ({"_id": 1}, {"$pull": {"a": 1}}, {"_id": 1}),
    # $pullAll, $pop
    ({"_id": 1, "a": [1, 2, 1.0, 3]}, {"$pullAll": {"a": [1, 3]}}, {"_id": 1, "a": [2]}),
    ({"_id": 1, "a": [1, 2, 3]}, {"$pop": {"a": 1}}, {"_id": 1, "a": [1, 2]}),
    ({"_id": 1, "a": [1, 2, 3]}, {"$pop": {"a": -1}}, {"_id": 1, "a": [2, 3]}),
    ({"_id": 1, "a": []}, {"$pop": {"a": 1}}, {"_id": 1, "a": []}),
    ({"_id": 1}, {"$pop": {"a": 1}}, {"_id": 1}),
    # $currentDate
    ({"_id": 1}, {"$currentDate": {"t": True}}, {"_id": 1, "t": NOW}),
    ({"_id": 1}, {"$currentDate": {"t": {"$type": "date"}}}, {"_id": 1, "t": NOW}),
    ({"_id": 1}, {"$currentDate": {"t": {"$type": "timestamp"}}}, {"_id": 1, "t": NOW}),
    # $setOnInsert only applies to an upsert's insert
    ({"_id": 1}, {"$setOnInsert": {"a": 1}, "$set": {"b": 2}}, {"_id": 1, "b": 2}),
    # $set of _id to the same value is allowed
    ({"_id": 1, "a": 1}, {"$set": {"_id": 1}}, {"_id": 1, "a": 1}),
    # replacement keeps _id first
    ({"_id": 1, "a": 1}, {"b": 2}, {"_id": 1, "b": 2}),
    ({"_id": 1, "a": 1}, {"b": 2, "_id": 1}, {"_id": 1, "b": 2}),
    ({"_id": 1, "a": 1}, {}, {"_id": 1}),
]


@pytest.mark.parametrize(("doc", "modifier", "expected"), CASES)
def test_updates(doc: dict[str, Any], modifier: dict[str, Any], expected: dict[str, Any]) -> None:
    before = copy.deepcopy(doc)
    out = apply_update(doc, modifier, now=NOW)
    assert out == expected
    assert list(out) == list(expected)  # key order
    assert repr(out) == repr(expected)  # types (1 vs 1.0 vs True)
    assert doc == before  # the input is untouched
    validate_modifier(modifier)


def test_set_on_insert_applies_to_upsert_inserts() -> None:
    out = apply_update(
        {"_id": 1}, {"$setOnInsert": {"a": 1}, "$set": {"b": 2}}, is_upsert_insert=True
    )
    assert out == {"_id": 1, "a": 1, "b": 2}


def test_current_date_defaults_to_now_in_whole_milliseconds() -> None:
    before = datetime.now(UTC)
    out = apply_update({"_id": 1}, {"$currentDate": {"t": True}})
    assert out["t"].microsecond % 1000 == 0
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= out["t"]


def test_result_does_not_alias_modified_containers() -> None:
    doc = {"_id": 1, "a": {"b": [1, 2]}, "c": {"d": 1}}
    out = apply_update(doc, {"$push": {"a.b": 3}})
    assert doc["a"]["b"] == [1, 2]
    assert out["a"]["b"] == [1, 2, 3]
    assert out["a"] is not doc["a"]
    value = {"x": [1]}
    out2 = apply_update(doc, {"$set": {"v": value}})
    value["x"].append(2)
    assert out2["v"] == {"x": [1]}


def test_upsert_insert_may_set_id_when_missing() -> None:
    assert apply_update({}, {"$set": {"_id": "k", "a": 1}}, is_upsert_insert=True) == {
        "_id": "k",
        "a": 1,
    }
    assert apply_update({}, {"_id": "k", "a": 1}) == {"_id": "k", "a": 1}


@pytest.mark.parametrize(
    ("doc", "modifier", "message"),
    [
        ({"_id": 1}, {"$foo": {"a": 1}}, "Unknown modifier"),
        ({"_id": 1}, {"$set": {"a": 1}, "b": 2}, "cannot mix"),
        ({"_id": 1}, {"$set": {}}, "is empty"),
        ({"_id": 1}, {"$set": 5}, "Modifiers operate on fields"),
        ({"_id": 1}, [("$set", {"a": 1})], "must be a dict"),
        ({"_id": 1}, {"$set": {"a": 1}, "$unset": {"a": 1}}, "conflict"),
        ({"_id": 1}, {"$set": {"a": 1, "a.b": 2}}, "conflict"),
        ({"_id": 1}, {"$inc": {"a.b": 1}, "$set": {"a": 2}}, "conflict"),
        ({"_id": 1}, {"$rename": {"a": "b"}, "$set": {"b.c": 1}}, "conflict"),
        ({"_id": 1}, {"$rename": {"a": "a.b"}}, "conflict"),
        ({"_id": 1}, {"$rename": {"a": "a"}}, "must differ"),
        ({"_id": 1}, {"$rename": {"a": 5}}, "must be a string"),
        ({"_id": 1}, {"$set": {"": 1}}, "non-empty"),
        ({"_id": 1}, {"$set": {"a..b": 1}}, "empty part"),
        ({"_id": 1}, {"$set": {"a.$": 1}}, "positional"),
        ({"_id": 1}, {"$set": {"a.$[]": 1}}, "positional"),
        ({"_id": 1}, {"$set": {"$a": 1}}, "starting with '$'"),
        ({"_id": 1}, {"$inc": {"a": "1"}}, "non-numeric argument"),
        ({"_id": 1}, {"$inc": {"a": True}}, "non-numeric argument"),
        ({"_id": 1, "a": "x"}, {"$inc": {"a": 1}}, "non-numeric type"),
        ({"_id": 1, "a": True}, {"$mul": {"a": 2}}, "non-numeric type"),
        ({"_id": 1, "a": 2**62}, {"$mul": {"a": 4}}, "overflow"),
        ({"_id": 1, "a": 5}, {"$push": {"a": 1}}, "must be an array"),
        ({"_id": 1, "a": {}}, {"$addToSet": {"a": 1}}, "must be an array"),
        ({"_id": 1}, {"$push": {"a": {"$each": 1}}}, "must be an array"),
        ({"_id": 1}, {"$push": {"a": {"$slice": 1}}}, "need $each"),
        ({"_id": 1}, {"$push": {"a": {"$each": [1], "$slice": "x"}}}, "must be an integer"),
        ({"_id": 1}, {"$push": {"a": {"$each": [1], "$sort": 2}}}, "$sort"),
        ({"_id": 1}, {"$push": {"a": {"$each": [1], "$bogus": 1}}}, "unrecognized"),
        ({"_id": 1}, {"$addToSet": {"a": {"$each": [1], "$slice": 1}}}, "unrecognized"),
        ({"_id": 1}, {"$pop": {"a": 2}}, "1 or -1"),
        ({"_id": 1, "a": 1}, {"$pop": {"a": 1}}, "non-array"),
        ({"_id": 1, "a": "s"}, {"$pull": {"a": 1}}, "non-array"),
        ({"_id": 1}, {"$pullAll": {"a": 1}}, "requires an array"),
        ({"_id": 1}, {"$pull": {"a": {"$foo": 1}}}, "invalid $pull condition"),
        ({"_id": 1}, {"$currentDate": {"a": "now"}}, "$currentDate"),
        ({"_id": 1, "a": 5}, {"$set": {"a.b": 1}}, "Cannot create field 'b'"),
        ({"_id": 1, "a": None}, {"$set": {"a.b": 1}}, "Cannot create field 'b'"),
        ({"_id": 1, "a": [1]}, {"$set": {"a.b": 1}}, "Cannot create field 'b'"),
        ({"_id": 1, "a": [1]}, {"$inc": {"a.x.y": 1}}, "Cannot use the part"),
        ({"_id": 1, "a": None}, {"$pop": {"a.b": 1}}, "Cannot use the part"),
        ({"_id": 1, "a": [{"b": 1}]}, {"$rename": {"a.0.b": "c"}}, "array element"),
        ({"_id": 1, "a": [{}]}, {"$rename": {"c": "a.0.b"}, "$set": {"c": 1}}, "conflict"),
        ({"_id": 1, "a": [{}], "c": 1}, {"$rename": {"c": "a.0.b"}}, "array element"),
        ({"_id": 1}, {"$set": {"_id": 2}}, "immutable field '_id'"),
        ({"_id": 1}, {"$set": {"_id": 1.0}}, "immutable field '_id'"),
        ({"_id": 1}, {"$unset": {"_id": 1}}, "immutable field '_id'"),
        ({"_id": 1}, {"$rename": {"_id": "x"}}, "immutable field '_id'"),
        ({"_id": 1}, {"_id": 2, "a": 1}, "_id"),
        ({"_id": 1}, {"$set": {"a": {1, 2}}}, "not a valid"),
        ({"_id": 1}, {"$set": {"a": {3: 1}}}, "keys must be strings"),
    ],
)
def test_modifier_errors(doc: dict[str, Any], modifier: Any, message: str) -> None:
    before = copy.deepcopy(doc)
    with pytest.raises(ModifierError, match=re.escape(message)) as info:
        apply_update(doc, modifier)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, StoreError)
    assert doc == before


def test_validate_modifier_catches_static_errors_only() -> None:
    validate_modifier({"$inc": {"a": 1}})  # whether "a" is numeric depends on the document
    with pytest.raises(ModifierError):
        validate_modifier({"$set": {"a": 1}, "$unset": {"a.b": ""}})
    with pytest.raises(ModifierError):
        validate_modifier({"$set": {}})


def test_is_replacement() -> None:
    assert is_replacement({"a": 1})
    assert is_replacement({})
    assert not is_replacement({"$set": {"a": 1}})
    assert not is_replacement({"a": 1, "$set": {"b": 1}})
    assert not is_replacement([("a", 1)])

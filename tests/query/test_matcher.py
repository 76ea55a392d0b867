"""Table tests of selector semantics, run through both the Python matcher and the SQL translation.

The null/missing/array tables reproduce MongoDB's ``jstests/core/null_query_semantics.js``
(without the ``undefined`` documents, which EJSON cannot carry); the rest follow the MongoDB
manual. Every case checks the matcher, then the SQL on a real SQLite table of wire-form rows.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from bson import ObjectId

from aioserversync.ejson import RegExp
from aioserversync.query import compile_selector
from tests.query.sqlhelp import Table

NULL_DOCS: dict[str, dict[str, Any]] = {
    "a_empty_subobject": {"a": {}},
    "a_null": {"a": None},
    "a_number": {"a": 4},
    "a_subobject_b_not_null": {"a": {"b": "hi"}},
    "a_subobject_b_null": {"a": {"b": None}},
    "no_a": {},
    "a_double_array": {"a": [[]]},
    "a_empty_array": {"a": []},
    "a_object_array_all_b_nulls": {"a": [{"b": None}, {"b": None}, {}]},
    "a_object_array_no_b_nulls": {"a": [{"b": 1}, {"b": 3}, {"b": "string"}]},
    "a_object_array_some_b_nulls": {"a": [{"b": None}, {"b": 3}, {"b": None}]},
    "a_object_array_some_b_missing": {"a": [{"b": 3}, {}]},
    "a_value_array_all_nulls": {"a": [None, None]},
    "a_value_array_no_nulls": {"a": [1, "string", 4]},
    "a_value_array_with_null": {"a": [1, "string", None, 4]},
}

NON_ARRAY = {
    "a_empty_subobject",
    "a_null",
    "a_number",
    "a_subobject_b_not_null",
    "a_subobject_b_null",
    "no_a",
}
ALL = set(NULL_DOCS)
A_NULL = {"a_null", "no_a", "a_value_array_all_nulls", "a_value_array_with_null"}
AB_NULL = {
    "a_empty_subobject",
    "a_null",
    "a_number",
    "a_subobject_b_null",
    "no_a",
    "a_object_array_all_b_nulls",
    "a_object_array_some_b_nulls",
    "a_object_array_some_b_missing",
}

NULL_CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"a": {"$eq": None}}, A_NULL),
    ({"a": None}, A_NULL),
    ({"a": {"$ne": None}}, ALL - A_NULL),
    ({"a": {"$not": {"$gte": None}}}, ALL - A_NULL),
    ({"a": {"$in": [None, 75]}}, A_NULL),
    ({"$or": [{"a": None}, {"a": 75}]}, A_NULL),
    ({"a": {"$nin": [None, 75]}}, ALL - A_NULL),
    (
        {"a": {"$nin": [None, re.compile("^str.*")]}},
        ALL - A_NULL - {"a_value_array_no_nulls"},
    ),
    ({"a": {"$exists": False}}, {"no_a"}),
    ({"a.b": {"$eq": None}}, AB_NULL),
    ({"a.b": {"$ne": None}}, ALL - AB_NULL),
    ({"a.b": {"$in": [None, 75]}}, AB_NULL),
    ({"$or": [{"a.b": None}, {"a.b": 75}]}, AB_NULL),
    ({"a.b": {"$nin": [None, 75]}}, ALL - AB_NULL),
    (
        {"a.b": {"$nin": [None, re.compile("^str.*")]}},
        ALL - AB_NULL - {"a_object_array_no_b_nulls"},
    ),
    (
        {"a.b": {"$exists": False}},
        {"no_a", "a_empty_subobject", "a_null", "a_number"}
        | {
            "a_double_array",
            "a_empty_array",
            "a_value_array_all_nulls",
            "a_value_array_no_nulls",
            "a_value_array_with_null",
        },
    ),
    (
        {"a": {"$elemMatch": {"$eq": None}}},
        {"a_value_array_all_nulls", "a_value_array_with_null"},
    ),
    (
        {"a": {"$elemMatch": {"$ne": None}}},
        {
            "a_double_array",
            "a_object_array_all_b_nulls",
            "a_object_array_no_b_nulls",
            "a_object_array_some_b_nulls",
            "a_object_array_some_b_missing",
            "a_value_array_no_nulls",
            "a_value_array_with_null",
        },
    ),
    ({"a.b": {"$elemMatch": {"$eq": None}}}, set()),
    ({"a.b": {"$elemMatch": {"$ne": None}}}, set()),
    (
        {"a": {"$elemMatch": {"b": {"$eq": None}}}},
        {
            "a_double_array",
            "a_object_array_all_b_nulls",
            "a_object_array_some_b_nulls",
            "a_object_array_some_b_missing",
        },
    ),
    (
        {"a": {"$elemMatch": {"b": {"$ne": None}}}},
        {
            "a_object_array_no_b_nulls",
            "a_object_array_some_b_nulls",
            "a_object_array_some_b_missing",
        },
    ),
]


@pytest.fixture(scope="module")
def null_table() -> Table:
    t = Table(indexed=["a", "a.b"])
    t.load([{"_id": k, **d} for k, d in NULL_DOCS.items()])
    return t


@pytest.mark.parametrize(("selector", "expected"), NULL_CASES)
def test_null_query_semantics(null_table: Table, selector: Any, expected: set[str]) -> None:
    m = compile_selector(selector)
    assert {k for k, d in NULL_DOCS.items() if m.matches(d)} == expected
    assert null_table.find_ids(selector)[0] == expected


# --------------------------------------------------------------------------- operators

D1 = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
D2 = D1 + timedelta(milliseconds=1)
O1, O2 = ObjectId("5f1d7f0e2a8b4c3d2e1f0a9b"), ObjectId("5f1d7f0e2a8b4c3d2e1f0a9c")

DOCS: dict[str, dict[str, Any]] = {
    "int": {"v": 5},
    "float": {"v": 5.5},
    "neg": {"v": -2},
    "big": {"v": 2**40},
    "true": {"v": True},
    "false": {"v": False},
    "one": {"v": 1},
    "zero": {"v": 0},
    "str": {"v": "pen"},
    "str2": {"v": "Pencil"},
    "empty_str": {"v": ""},
    "null": {"v": None},
    "missing": {},
    "date": {"v": D1},
    "date2": {"v": D2},
    "oid": {"v": O1},
    "oid2": {"v": O2},
    "bin": {"v": b"\x00\x01"},
    "dec": {"v": Decimal("5.25")},
    "nan": {"v": math.nan},
    "inf": {"v": math.inf},
    "ninf": {"v": -math.inf},
    "regex": {"v": RegExp("^p", "i")},
    "obj": {"v": {"x": 1, "y": 2}},
    "obj_rev": {"v": {"y": 2, "x": 1}},
    "arr": {"v": [1, 5, "pen"]},
    "arr_nested": {"v": [[1, 5], 7]},
    "arr_objs": {"v": [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}]},
    "arr_empty": {"v": []},
    "dotted_obj": {"v": {"w": {"z": 3}}},
    "idx": {"v": [10, {"1": 20}, 30]},
    "special_keys": {"v": {"$date": "not a date", "k": 1}},
}
NUMBERS = {"int", "float", "neg", "big", "one", "zero", "dec"}

OPERATOR_CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"v": 5}, {"int", "arr"}),  # not inside the nested array
    ({"v": 1}, {"one", "arr"}),  # never true
    ({"v": True}, {"true"}),
    ({"v": 0}, {"zero"}),  # never false
    ({"v": 5.0}, {"int", "arr"}),
    ({"v": Decimal("5.25")}, {"dec"}),
    ({"v": Decimal("5")}, {"int", "arr"}),
    ({"v": "pen"}, {"str", "arr"}),
    ({"v": D1}, {"date"}),
    ({"v": D1 + timedelta(microseconds=400)}, {"date"}),  # dates compare by whole ms
    ({"v": O1}, {"oid"}),
    ({"v": b"\x00\x01"}, {"bin"}),
    ({"v": math.nan}, {"nan"}),
    ({"v": math.inf}, {"inf"}),
    ({"v": {"x": 1, "y": 2}}, {"obj"}),  # key order matters
    ({"v": {"y": 2, "x": 1}}, {"obj_rev"}),
    ({"v": [1, 5]}, {"arr_nested"}),
    ({"v": [1, 5, "pen"]}, {"arr"}),
    ({"v": []}, {"arr_empty"}),
    ({"v": {"$eq": RegExp("^p", "i")}}, {"regex"}),
    ({"v": {"$gt": 5}}, {"float", "big", "inf", "dec", "arr_nested", "idx"}),
    ({"v": {"$gte": 5}}, {"int", "float", "big", "inf", "dec", "arr", "arr_nested", "idx"}),
    ({"v": {"$lt": 1}}, {"neg", "zero", "ninf"}),
    ({"v": {"$lte": 1}}, {"neg", "zero", "one", "ninf", "arr"}),
    ({"v": {"$gt": 5, "$lt": 6}}, {"float", "dec"}),
    ({"v": {"$gt": 4, "$lt": 2}}, {"arr"}),  # each test may pass on a different element
    ({"v": {"$gte": math.nan}}, {"nan"}),
    ({"v": {"$gt": math.nan}}, set()),
    ({"v": {"$lt": math.inf}}, NUMBERS | {"ninf", "arr", "arr_nested", "idx"}),
    ({"v": {"$gt": Decimal("5.2")}}, {"float", "big", "inf", "dec", "arr_nested", "idx"}),
    ({"v": {"$gt": "pen"}}, set()),
    ({"v": {"$gte": "pen"}}, {"str", "arr"}),
    ({"v": {"$lt": "pen"}}, {"str2", "empty_str"}),
    ({"v": {"$gt": D1}}, {"date2"}),
    ({"v": {"$lte": D1}}, {"date"}),
    ({"v": {"$gt": O1}}, {"oid2"}),
    ({"v": {"$gt": False}}, {"true"}),
    ({"v": {"$lt": True}}, {"false"}),
    ({"v": {"$gte": None}}, {"null", "missing"}),
    ({"v": {"$ne": 5}}, set(DOCS) - {"int", "arr"}),
    ({"v": {"$in": [5, "pen", None]}}, {"int", "str", "arr", "null", "missing"}),
    ({"v": {"$in": [re.compile("^P")]}}, {"str2"}),
    ({"v": {"$in": [RegExp("^p", "i")]}}, {"str", "str2", "arr", "regex"}),
    ({"v": {"$nin": [5, "pen"]}}, set(DOCS) - {"int", "str", "arr"}),
    ({"v": {"$exists": True}}, set(DOCS) - {"missing"}),
    ({"v": {"$exists": False}}, {"missing"}),
    ({"v": {"$size": 3}}, {"arr", "idx"}),
    ({"v": {"$size": 0}}, {"arr_empty"}),
    ({"v": {"$all": [1, 5]}}, {"arr"}),
    ({"v": {"$all": [[1, 5]]}}, {"arr_nested"}),
    ({"v": {"$all": []}}, set()),
    ({"v": {"$elemMatch": {"$gt": 1, "$lt": 6}}}, {"arr"}),
    ({"v": {"$elemMatch": {"x": 2, "y": "b"}}}, {"arr_objs"}),
    ({"v": {"$elemMatch": {"x": 1, "y": "b"}}}, set()),
    ({"v.x": 1, "v.y": "b"}, {"arr_objs"}),  # without $elemMatch: any element each
    ({"v": {"$all": [{"$elemMatch": {"x": 1}}, {"$elemMatch": {"y": "b"}}]}}, {"arr_objs"}),
    ({"v": {"$regex": "^p"}}, {"str", "arr"}),
    ({"v": {"$regex": "^p", "$options": "i"}}, {"str", "str2", "arr", "regex"}),
    ({"v": re.compile("^p", re.IGNORECASE)}, {"str", "str2", "arr", "regex"}),
    ({"v": {"$not": re.compile("^p")}}, set(DOCS) - {"str", "arr"}),
    (
        {"v": {"$not": {"$gt": 1}}},
        set(DOCS) - {"int", "float", "big", "inf", "dec", "arr", "arr_nested", "idx"},
    ),
    ({"v": {"$type": "number"}}, NUMBERS | {"nan", "inf", "ninf", "arr", "arr_nested", "idx"}),
    ({"v": {"$type": "int"}}, {"int", "neg", "one", "zero", "arr", "arr_nested", "idx"}),
    ({"v": {"$type": "long"}}, {"big"}),
    ({"v": {"$type": "double"}}, {"float", "nan", "inf", "ninf"}),
    ({"v": {"$type": "decimal"}}, {"dec"}),
    ({"v": {"$type": "string"}}, {"str", "str2", "empty_str", "arr"}),
    ({"v": {"$type": "bool"}}, {"true", "false"}),
    ({"v": {"$type": "null"}}, {"null"}),
    ({"v": {"$type": "date"}}, {"date", "date2"}),
    ({"v": {"$type": "objectId"}}, {"oid", "oid2"}),
    ({"v": {"$type": "binData"}}, {"bin"}),
    ({"v": {"$type": "regex"}}, {"regex"}),
    ({"v": {"$type": "array"}}, {"arr", "arr_nested", "arr_objs", "arr_empty", "idx"}),
    (
        {"v": {"$type": "object"}},
        {"obj", "obj_rev", "arr_objs", "dotted_obj", "idx", "special_keys"},
    ),
    ({"v": {"$type": [2, "bool"]}}, {"str", "str2", "empty_str", "arr", "true", "false"}),
    ({"v.w.z": 3}, {"dotted_obj"}),
    ({"v.1": 20}, {"idx"}),  # the object element's field "1" ...
    ({"v.1": {"1": 20}}, {"idx"}),  # ... and the element at position 1
    ({"v.0": 10}, {"idx"}),
    ({"v.0": 1}, {"arr"}),  # the element at a position is not walked into
    ({"v.0.1": 5}, {"arr_nested"}),
    ({"v.k": 1}, {"special_keys"}),
    ({"$and": [{"v": {"$type": "string"}}, {"v": {"$ne": "pen"}}]}, {"str2", "empty_str"}),
    ({"$or": [{"v": 5}, {"v": "pen"}]}, {"int", "str", "arr"}),
    ({"$nor": [{"v": {"$exists": True}}]}, {"missing"}),
    ({}, set(DOCS)),
    ({"$comment": "ignored", "v": 5.5}, {"float"}),
]


@pytest.fixture(scope="module")
def op_table() -> Table:
    t = Table(indexed=["v"])
    t.load([{"_id": k, **d} for k, d in DOCS.items()])
    return t


@pytest.mark.parametrize(("selector", "expected"), OPERATOR_CASES)
def test_operators(op_table: Table, selector: Any, expected: set[str]) -> None:
    m = compile_selector(selector)
    assert {k for k, d in DOCS.items() if m.matches(d)} == expected
    assert op_table.find_ids(selector)[0] == expected


def test_id_shorthand_and_id_conditions() -> None:
    t = Table()
    docs = [{"_id": "abc", "n": 1}, {"_id": O1, "n": 2}, {"_id": "-x", "n": 3}]
    t.load(docs)
    for selector, expected in [
        ("abc", {"abc"}),
        (O1, {str(O1)}),
        ({"_id": "-x"}, {"--x"}),
        ({"_id": {"$in": ["abc", O1]}}, {"abc", str(O1)}),
        ({"_id": {"$ne": "abc"}}, {str(O1), "--x"}),
        ({"_id": {"$nin": ["abc", "-x"]}}, {str(O1)}),
        ({"_id": {"$exists": True}}, {"abc", str(O1), "--x"}),
        ({"_id.x": None}, {"abc", str(O1), "--x"}),
    ]:
        m = compile_selector(selector)
        assert {d["n"] for d in docs if m.matches(d)} == {
            {"abc": 1, str(O1): 2, "--x": 3}[i] for i in expected
        }, selector
        ids, exact = t.find_ids(selector)
        assert ids == expected, selector
        assert exact, selector


def test_matcher_repr_and_call() -> None:
    m = compile_selector({"a": 1})
    assert m({"a": [2, 1]}) is True
    assert m.selector == {"a": 1}
    assert "Matcher" in repr(m)

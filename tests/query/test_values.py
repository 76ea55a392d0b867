"""Value brackets, type numbers and the less common BSON values, in the matcher and in SQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from bson import ObjectId
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.regex import Regex
from bson.timestamp import Timestamp

from aioserversync.ejson import EJSONCustom, RegExp
from aioserversync.query import compile_selector, compile_sql
from aioserversync.query.values import (
    MISSING,
    bracket,
    compare,
    equal,
    is_number,
    regex_parts,
    sort_bytes,
    type_code,
)
from tests.query.sqlhelp import Table


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (1, 16),
        (2**31, 18),
        (Int64(1), 18),
        (1.5, 1),
        (Decimal("1"), 19),
        ("s", 2),
        ({}, 3),
        (EJSONCustom("t", 1), 3),
        ([], 4),
        (b"", 5),
        (bytearray(b"x"), 5),
        (ObjectId(), 7),
        (True, 8),
        (datetime(2024, 1, 1, tzinfo=UTC), 9),
        (None, 10),
        (RegExp("a"), 11),
        (re.compile("a"), 11),
        (Regex("a", "i"), 11),
        (Timestamp(1, 2), 17),
        (MinKey(), -1),
        (MaxKey(), 127),
        (MISSING, None),
    ],
)
def test_type_codes(value: Any, code: int | None) -> None:
    assert type_code(value) == code


def test_bracket_refuses_non_bson_values() -> None:
    with pytest.raises(TypeError):
        bracket(object())
    with pytest.raises(TypeError):
        regex_parts("not a regex")


def test_min_and_max_keys_bound_everything() -> None:
    for v in (None, -1e308, "", {}, [], b"", ObjectId(), False, Timestamp(0, 0), RegExp("")):
        assert compare(MinKey(), v) == -1
        assert compare(MaxKey(), v) == 1
        assert sort_bytes(MinKey()) < sort_bytes(v) < sort_bytes(MaxKey())
    m = compile_selector({"a": {"$gt": MinKey()}})
    assert m.matches({"a": None})
    assert not m.matches({})
    assert compile_selector({"a": {"$lte": MaxKey()}}).matches({"a": "x"})
    assert compile_selector({"a": {"$gte": MinKey()}}).matches({"a": MinKey()})
    assert not compile_selector({"a": {"$lt": MinKey()}}).matches({"a": 1})


def test_regex_flags_from_every_source() -> None:
    assert regex_parts(re.compile("a", re.I | re.X)) == ("a", "ix")
    assert regex_parts(Regex("a", re.M | re.S)) == ("a", "ms")
    assert regex_parts(Regex("a", "mi")) == ("a", "im")
    assert regex_parts(RegExp("a", "mi")) == ("a", "im")
    assert compare(Timestamp(1, 2), Timestamp(1, 3)) == -1
    assert compare(EJSONCustom("t", 1), {"EJSON$type": "t", "EJSON$value": 1}) == 0


def test_numbers() -> None:
    assert is_number(Int64(3)) and not is_number(True)
    assert equal(Int64(3), 3.0)
    assert equal("a", "a") and not equal(1, True)
    assert sort_bytes(Decimal("-Infinity")) == sort_bytes(float("-inf"))
    assert sort_bytes(Decimal("1E+400")) > sort_bytes(1e308)


STORED: dict[str, Any] = {
    "custom": EJSONCustom("money", {"amount": 5}),
    "bin": b"\x00\x01",
    "regex": RegExp("^a", "mi"),
    "obj": {"k": [1, {"z": None}]},
    "arr": [b"\x00", ObjectId("5f1d7f0e2a8b4c3d2e1f0a9b"), RegExp("x")],
    "date_arr": [datetime(2024, 1, 1, tzinfo=UTC), {"$date": "user object"}],
    "int_big": 2**62,
    "neg_zero": -0.0,
}


@pytest.mark.parametrize(
    "selector",
    [
        {"v": b"\x00\x01"},
        {"v": {"$gt": b"\x00"}},
        {"v": {"$gte": {"k": [1]}}},
        {"v": {"$lt": [b"\x01"]}},
        {"v": {"$gt": RegExp("^a", "")}},
        {"v": RegExp("^a", "im")},
        {"v": {"$eq": RegExp("^a", "im")}},
        {"v": RegExp("^a", "gmi")},
        {"v": re.compile("^a", re.M | re.I)},
        {"v": {"$type": "object"}},
        {"v": {"$type": "regex"}},
        {"v": {"$type": "binData"}},
        {"v": {"$type": "long"}},
        {"v": {"$type": "date"}},
        {"v": EJSONCustom("money", {"amount": 5})},
        {"v": {"$gt": MinKey()}},
        {"v": {"$lt": MaxKey()}},
        {"v": Timestamp(1, 1)},
        {"v": {"$gte": Timestamp(1, 1)}},
        {"v": MinKey()},
        {"v": 0},
        {"v": {"$in": [b"\x00", ObjectId("5f1d7f0e2a8b4c3d2e1f0a9b"), 0.0]}},
        {"v.k.1.z": None},
        {"v": {"$elemMatch": {"$type": "date"}}},
        {"v.$date": "user object"},
        {"_id": {"$gt": "a"}},
        {"_id": 5},
        {"_id": {"$in": []}},
        {"_id": {"$in": [re.compile("^b")]}},
    ],
)
def test_exotic_operands_agree_in_sql(selector: Any) -> None:
    t = Table(indexed=["v"])
    docs = [{"_id": k, "v": v} for k, v in STORED.items()]
    t.load(docs)
    m = compile_selector(selector)
    assert t.find_ids(selector)[0] == {d["_id"] for d in docs if m.matches(d)}
    compile_sql(selector)  # translation never raises for a valid selector

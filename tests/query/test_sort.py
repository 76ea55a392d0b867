"""MongoDB sort order in Python (``sort_documents``) and in SQL (``sql_order_by``)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from bson import ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioserversync.ejson import RegExp
from aioserversync.exceptions import QueryError
from aioserversync.query import normalize_sort, sort_documents, sort_key, sql_order_by
from aioserversync.query.values import compare, sort_bytes
from tests.query.sqlhelp import Table
from tests.query.strategies import documents, values

# BSON order, lowest first (MongoDB manual, "Comparison/Sort Order").
ORDERED: list[Any] = [
    None,
    -math.inf,
    -(2**40),
    -1.5,
    Decimal("-1"),
    0,
    Decimal("0.1"),
    0.5,
    1,
    2**40,
    math.inf,
    "",
    "B",
    "a",
    "ab",
    "é",
    {},
    {"b": None},  # pairs compare by value type first, then by key
    {"a": 1},
    {"a": 1, "b": 0},
    [],
    [0],
    [0, 1],
    [1],
    b"",
    b"\xff",
    b"\x00\x00",
    ObjectId("5f1d7f0e2a8b4c3d2e1f0a9b"),
    ObjectId("5f1d7f0e2a8b4c3d2e1f0a9c"),
    False,
    True,
    datetime(1969, 12, 31, tzinfo=UTC),
    datetime(2024, 1, 1, tzinfo=UTC),
    RegExp("a", ""),
    RegExp("a", "i"),
    RegExp("b", ""),
]


def test_values_compare_in_bson_order() -> None:
    for i, a in enumerate(ORDERED):
        for j, b in enumerate(ORDERED):
            expected = (i > j) - (i < j)
            assert compare(a, b) == expected, (a, b)
            assert ((sort_bytes(a) > sort_bytes(b)) - (sort_bytes(a) < sort_bytes(b))) == expected


def test_numbers_compare_across_types_and_nan_is_lowest() -> None:
    assert compare(1, 1.0) == 0
    assert compare(Decimal("1.0"), 1) == 0
    assert compare(math.nan, -math.inf) == -1
    assert compare(math.nan, Decimal("NaN")) == 0
    assert compare(Decimal("0.1"), 0.1) == -1  # 0.1 as a double is slightly above 1/10
    assert sort_bytes(1) == sort_bytes(1.0) == sort_bytes(Decimal("1.00"))
    assert compare(re.compile("a", re.I), RegExp("a", "i")) == 0


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(values, values)
def test_sort_bytes_order_is_compare_order(a: Any, b: Any) -> None:
    c = compare(a, b)
    ba, bb = sort_bytes(a), sort_bytes(b)
    assert ((ba > bb) - (ba < bb)) == c
    assert (ba == bb) == (c == 0)


def _ids(docs: list[dict[str, Any]]) -> list[Any]:
    return [d["_id"] for d in docs]


DOCS = [
    {"_id": "num", "a": 5},
    {"_id": "str", "a": "x"},
    {"_id": "null", "a": None},
    {"_id": "missing"},
    {"_id": "arr", "a": [7, 1]},
    {"_id": "empty", "a": []},
    {"_id": "date", "a": datetime(2024, 1, 1, tzinfo=UTC)},
    {"_id": "bool", "a": True},
    {"_id": "obj", "a": {"k": 1}},
    {"_id": "arrstr", "a": ["b", 3]},
]


def test_ascending_uses_smallest_element_and_empty_array_sorts_first() -> None:
    got = _ids(sort_documents(DOCS, [("a", 1)]))
    # [] < null = missing < 1 (arr) < 3 (arrstr) < 5 < "x" < {k:1} < true < date
    assert got == ["empty", "null", "missing", "arr", "arrstr", "num", "str", "obj", "bool", "date"]


def test_descending_uses_largest_element() -> None:
    got = _ids(sort_documents(DOCS, {"a": -1}))
    # date > true > {k:1} > "x" > "b" (arrstr) > 7 (arr) > 5 > null = missing > []
    assert got == ["date", "bool", "obj", "str", "arrstr", "arr", "num", "null", "missing", "empty"]


def test_dotted_paths_through_arrays_and_ties_keep_input_order() -> None:
    docs = [
        {"_id": 1, "a": [{"b": 3}, {"b": 1}]},
        {"_id": 2, "a": {"b": 2}},
        {"_id": 3, "a": [{"c": 1}]},
        {"_id": 4, "a": [{"b": 2}]},
    ]
    assert _ids(sort_documents(docs, [("a.b", 1)])) == [3, 1, 2, 4]
    assert _ids(sort_documents(docs, [("a.b", -1)])) == [1, 2, 4, 3]
    assert _ids(sort_documents(docs, [("a.b", -1), ("_id", -1)])) == [1, 4, 2, 3]


def test_sort_key_matches_sort_documents() -> None:
    key = sort_key([("a", 1)])
    assert sorted(DOCS, key=key) == sort_documents(DOCS, [("a", 1)])
    assert sort_documents(DOCS, None) == DOCS
    assert sort_documents(DOCS, []) == DOCS


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        (None, []),
        ([], []),
        ({"a": 1, "b": -1}, [("a", 1), ("b", -1)]),
        ([("a", 1), ("b.c", -1)], [("a", 1), ("b.c", -1)]),
        (("a", -1), [("a", -1)]),
        ("a", [("a", 1)]),
        (["a", ["b", "desc"]], [("a", 1), ("b", -1)]),
        ([("a", "ascending"), ("b", 1.0)], [("a", 1), ("b", 1)]),
    ],
)
def test_normalize_sort(sort: Any, expected: list[tuple[str, int]]) -> None:
    assert normalize_sort(sort) == expected


@pytest.mark.parametrize(
    "sort",
    [
        {"a": 2},
        {"a": True},
        {"a": "up"},
        [("a", 1), ("a", -1)],
        {"$natural": 1},
        {"a..b": 1},
        [("a", 1, 2)],
        5,
        {"a": {"$meta": "textScore"}},
    ],
)
def test_bad_sorts_raise_query_error(sort: Any) -> None:
    with pytest.raises(QueryError):
        normalize_sort(sort)
    with pytest.raises(QueryError):
        sql_order_by(sort)


def test_sql_order_by_matches_python_on_mixed_types() -> None:
    t = Table()
    docs = [*DOCS, {"_id": "dec", "a": Decimal("5.5")}, {"_id": "nan", "a": math.nan}]
    t.load(docs)
    for sort in ([("a", 1)], [("a", -1)], [("a", 1), ("_id", -1)]):
        assert t.sorted_ids(sort) == _ids(sort_documents(docs, sort)), sort
    assert sql_order_by(None) is None
    assert sql_order_by([("_id.x", 1)]) is None


def test_sql_order_by_on_ids_of_every_kind() -> None:
    t = Table()
    docs = [
        {"_id": "b"},
        {"_id": ObjectId("5f1d7f0e2a8b4c3d2e1f0a9b")},
        {"_id": "-dash"},
        {"_id": 7},
        {"_id": "a"},
        {"_id": 1.5},
        {"_id": True},
    ]
    t.load(docs)
    from aioserversync.ids import id_stringify

    for d in (1, -1):
        expected = [id_stringify(x["_id"]) for x in sort_documents(docs, [("_id", d)])]
        assert t.sorted_ids([("_id", d)]) == expected


SORT_PATHS = ["a", "b", "a.b", "a.0", "c"]


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(documents, min_size=2, max_size=6),
    st.lists(
        st.tuples(st.sampled_from(SORT_PATHS), st.sampled_from([1, -1])),
        min_size=1,
        max_size=2,
        unique_by=lambda x: x[0],
    ),
)
def test_sql_order_by_matches_sort_documents(docs: list[dict[str, Any]], sort: Any) -> None:
    docs = [{"_id": f"{i:02d}", **d} for i, d in enumerate(docs)]
    t = Table()
    t.load(docs)
    expected = sort_documents(docs, sort)
    assert t.sorted_ids(sort) == _ids(expected)
    assert sorted(docs, key=sort_key(sort)) == expected

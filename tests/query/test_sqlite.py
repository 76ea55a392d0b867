"""The SQLite translation: index use, JSON1 pitfalls, key quoting, inexact plans, limits."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

import pytest

from aioserversync import ejson
from aioserversync.exceptions import QueryError
from aioserversync.query import (
    compile_selector,
    compile_sql,
    index_expressions,
    register_sqlite_functions,
)
from tests.query.sqlhelp import Table, wire_fields


def _bulk(table: Table, n: int) -> None:
    docs = [
        {
            "_id": f"d{i}",
            "color": None if i % 97 == 0 else True if i % 89 == 0 else f"c{i % 50}",
            "n": i,
            "a": {"b": i % 7},
            "at": datetime.fromtimestamp(1_700_000_000 + i, UTC),
        }
        for i in range(n)
    ]
    table.load(docs)


def _uses_index_only(details: list[str]) -> bool:
    """The plan reads the table through indexes, never by a full scan of ``docs``."""
    return any("USING INDEX" in d for d in details) and not any(
        d.startswith("SCAN docs") for d in details
    )


@pytest.mark.parametrize(
    "selector",
    [
        {"color": "c3"},
        {"color": {"$in": ["c1", "c2"]}},
        {"n": {"$gt": 10, "$lte": 20}},
        {"n": {"$lt": 3}},
        {"color": {"$gte": "c40"}},
        {"color": None},
        {"color": True},
        {"a.b": 3},
        {"a.b": {"$gte": 5}},
        {"at": {"$gte": datetime(2023, 11, 14, 22, 13, 30, tzinfo=UTC)}},
    ],
)
def test_indexed_conditions_are_served_by_indexes(selector: Any) -> None:
    table = Table(indexed=["color", "n", "a.b", "at"])
    _bulk(table, 500)
    details = table.plan_details(selector)
    assert _uses_index_only(details), details
    # and the answer is right
    m = compile_selector(selector)
    rows = table.conn.execute("SELECT id, fields FROM docs").fetchall()
    expected = {i for i, f in rows if m.matches({"_id": i, **ejson.loads(f)})}
    assert table.find_ids(selector)[0] == expected
    assert expected


def test_single_value_index_serves_scalar_and_array_branches() -> None:
    # With only the value expression indexed (as the first column of a compound index), the
    # array-contains branch still finds arrays through the JSON text's first character.
    table = Table()
    table.conn.execute(f"CREATE INDEX only_value ON docs ({index_expressions('color')[0]})")
    _bulk(table, 300)
    table.conn.execute("INSERT INTO docs VALUES ('arr', ?)", (wire_fields({"color": ["c3", "x"]}),))
    details = table.plan_details({"color": "c3"})
    assert _uses_index_only(details), details
    assert "arr" in table.find_ids({"color": "c3"})[0]


def test_index_expressions() -> None:
    assert index_expressions("color") == [
        "json_extract(fields,'$.\"color\"')",
        'json_extract(fields,\'$."color"."$date"\')',
    ]
    assert index_expressions("a.b", fields_col="f") == [
        'json_extract(f,\'$."a"."b"\')',
        "json_type(f,'$.\"a\"')",
        'json_extract(f,\'$."a"."b"."$date"\')',
    ]
    assert index_expressions("_id") == []
    with pytest.raises(QueryError):
        index_expressions("a..b")
    with pytest.raises(QueryError):
        index_expressions('we"ird')
    with pytest.raises(QueryError):
        index_expressions("a.$date")


def test_json1_null_and_missing_are_both_sql_null() -> None:
    conn = sqlite3.connect(":memory:")
    raw = conn.execute(
        """SELECT json_extract('{"a":null}','$.a') IS NULL, json_extract('{}','$.a') IS NULL,
                  json_type('{"a":null}','$.a'), json_type('{}','$.a')"""
    ).fetchone()
    assert raw == (1, 1, "null", None)
    t = Table()
    t.load([{"_id": "null", "a": None}, {"_id": "missing"}, {"_id": "one", "a": 1}])
    assert t.find_ids({"a": None})[0] == {"null", "missing"}
    assert t.find_ids({"a": {"$exists": False}})[0] == {"missing"}
    assert t.find_ids({"a": {"$type": "null"}})[0] == {"null"}
    assert t.find_ids({"a": {"$ne": None}})[0] == {"one"}


def test_json1_true_is_one_but_booleans_are_not_numbers() -> None:
    conn = sqlite3.connect(":memory:")
    assert conn.execute("""SELECT json_extract('{"a":true}','$.a')""").fetchone() == (1,)
    t = Table(indexed=["a"])
    t.load([{"_id": "t", "a": True}, {"_id": "one", "a": 1}, {"_id": "f", "a": False}])
    assert t.find_ids({"a": 1})[0] == {"one"}
    assert t.find_ids({"a": True})[0] == {"t"}
    assert t.find_ids({"a": {"$gte": 0}})[0] == {"one"}
    assert t.find_ids({"a": {"$in": [0, 1]}})[0] == {"one"}
    assert t.find_ids({"a": {"$type": "bool"}})[0] == {"t", "f"}


def test_strings_never_equal_json_text_of_objects() -> None:
    t = Table(indexed=["a"])
    t.load(
        [{"_id": "obj", "a": {"x": 1}}, {"_id": "str", "a": '{"x":1}'}, {"_id": "arr", "a": [1]}]
    )
    assert t.find_ids({"a": '{"x":1}'})[0] == {"str"}
    assert t.find_ids({"a": "[1]"})[0] == set()
    assert t.find_ids({"a": {"$gt": "{"}})[0] == {"str"}


@pytest.mark.parametrize("key", ["a b", "a'b", "a[0]", "ü-ñ", "x$", "x-y", "1", "a]b"])
def test_unusual_keys_are_quoted(key: str) -> None:
    t = Table(indexed=[key, f"o.{key}"])
    t.load(
        [
            {"_id": "hit", key: 7, "o": {key: "v"}},
            {"_id": "miss", key: 8, "o": {"other": "v"}},
        ]
    )
    plan = compile_sql({key: 7})
    assert plan.exact
    assert t.find_ids({key: 7})[0] == {"hit"}
    assert t.find_ids({f"o.{key}": "v"})[0] == {"hit"}


def test_dollar_keys_inside_paths() -> None:
    t = Table()
    t.load([{"_id": "hit", "o": {"$x": 1}}, {"_id": "miss", "o": {"x": 1}}])
    assert compile_sql({"o.$x": 1}).exact
    assert t.find_ids({"o.$x": 1})[0] == {"hit"}


def test_keys_sqlite_cannot_address_fall_back_to_the_matcher() -> None:
    for key in ['a"b', "a\\b", "tab\there"]:
        t = Table()
        t.load([{"_id": "hit", key: 1}, {"_id": "miss", key: 2}])
        plan = compile_sql({key: 1})
        assert not plan.exact
        assert t.find_ids({key: 1})[0] == {"hit"}
        assert t.find_ids({key: {"$ne": 1}})[0] == {"miss"}


def test_dotted_keys_in_data_are_not_paths() -> None:
    t = Table()
    t.load([{"_id": "flat", "a.b": 1}, {"_id": "nested", "a": {"b": 1}}])
    assert t.find_ids({"a.b": 1})[0] == {"nested"}


def test_escaped_user_objects() -> None:
    # A user object shaped like an EJSON special is stored as {"$escape": {...}}.
    doc = {"_id": "esc", "a": {"$date": 5}, "b": {"$type": "x", "$value": 1}}
    assert '"$escape"' in wire_fields(doc)
    t = Table()
    t.load([doc, {"_id": "date", "a": datetime(2024, 1, 1, tzinfo=UTC)}])
    assert t.find_ids({"a": {"$eq": {"$date": 5}}})[0] == {"esc"}
    assert t.find_ids({"a": {"$type": "object"}})[0] == {"esc"}
    assert t.find_ids({"a": {"$type": "date"}})[0] == {"date"}
    assert t.find_ids({"a.$date": 5})[0] == {"esc"}
    assert not compile_sql({"a.$date": 5}).exact


def test_subdocument_equality_is_inexact_but_right() -> None:
    t = Table()
    t.load([{"_id": "xy", "a": {"x": 1, "y": 2}}, {"_id": "yx", "a": {"y": 2, "x": 1.0}}])
    plan = compile_sql({"a": {"x": 1, "y": 2}})
    assert not plan.exact
    assert t.find_ids({"a": {"x": 1, "y": 2}})[0] == {"xy"}
    assert t.find_ids({"a": {"y": 2, "x": 1}})[0] == {"yx"}  # 1 == 1.0, key order matters
    # a negation of an inexact test cannot be translated: it becomes a superset too
    assert not compile_sql({"a": {"$ne": {"x": 1, "y": 2}}}).exact
    assert t.find_ids({"a": {"$ne": {"x": 1, "y": 2}}})[0] == {"yx"}


def test_alternative_column_names() -> None:
    t = Table()
    t.load([{"_id": "k1", "a": 1}, {"_id": "k2", "a": 2}])
    plan = compile_sql(
        {"a": {"$gte": 2}, "_id": {"$in": ["k1", "k2"]}}, fields_col="d.fields", id_col="d.id"
    )
    rows = t.conn.execute(f"SELECT d.id FROM docs AS d WHERE {plan.where}", plan.params)
    assert [r[0] for r in rows] == ["k2"]


def test_very_deep_selectors_stay_within_sqlites_parser_limits() -> None:
    sel: dict[str, Any] = {"a.b.c": 1}
    for _ in range(6):
        sel = {"a.b.c": {"$elemMatch": {"$or": [sel, {"a.b": {"$ne": None}}]}}}
    t = Table()
    t.load([{"_id": "x", "a": {"b": {"c": [1]}}}])
    ids, exact = t.find_ids(sel)  # runs without "parser stack overflow"
    m = compile_selector(sel)
    assert ids == ({"x"} if m.matches({"_id": "x", "a": {"b": {"c": [1]}}}) else set())
    assert not exact


def test_functions_must_be_registered_on_the_connection() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE docs (id TEXT, fields TEXT)")
    conn.execute("INSERT INTO docs VALUES ('x', ?)", ('{"a":"pen"}',))
    plan = compile_sql({"a": {"$regex": "^p"}})
    with pytest.raises(sqlite3.OperationalError, match="no such function"):
        conn.execute(f"SELECT id FROM docs WHERE {plan.where}", plan.params).fetchall()
    register_sqlite_functions(conn)
    assert conn.execute(f"SELECT id FROM docs WHERE {plan.where}", plan.params).fetchall() == [
        ("x",)
    ]
    assert conn.execute("SELECT 'pen' REGEXP '^p', 'pen' REGEXP '^x'").fetchone() == (1, 0)


def test_sql_functions_tolerate_bad_input() -> None:
    conn = sqlite3.connect(":memory:")
    register_sqlite_functions(conn)
    row = conn.execute(
        """SELECT aioserversync_regexp('(', '', 'x'), aioserversync_regexp('a', '', 5),
                  aioserversync_num_test('nope', 'eq', 'i:1'),
                  aioserversync_num_test(NULL, 'eq', 'i:1'),
                  aioserversync_special_num('{', 'eq', 'i:1'), aioserversync_ejson_kind('[1]'),
                  aioserversync_ejson_kind('not json'), aioserversync_sort_bracket('{', 'a', 1),
                  aioserversync_id_sort('~{', 0)"""
    ).fetchone()
    assert row == (0, 0, 0, 0, 0, None, None, 5, 5)


def test_decimal_nan_and_infinity_compare_exactly_in_sql() -> None:
    from decimal import Decimal

    docs = [
        {"_id": "d1", "v": Decimal("0.1")},
        {"_id": "f1", "v": 0.1},
        {"_id": "big", "v": Decimal("12345678901234567890.5")},
        {"_id": "dnan", "v": Decimal("NaN")},
        {"_id": "fnan", "v": float("nan")},
        {"_id": "dinf", "v": Decimal("-Infinity")},
    ]
    t = Table(indexed=["v"])
    t.load(docs)
    for sel in [
        {"v": Decimal("0.1")},
        {"v": 0.1},
        {"v": {"$gt": 0.1}},
        {"v": {"$lt": Decimal("0.1")}},
        {"v": {"$gt": 12345678901234567890}},
        {"v": float("nan")},
        {"v": {"$lt": float("-1e308")}},
        {"v": {"$in": [Decimal("0.1"), float("nan")]}},
    ]:
        m = compile_selector(sel)
        assert t.find_ids(sel) == ({d["_id"] for d in docs if m.matches(d)}, True), sel


def test_plans_are_cached_per_selector_and_callers_cannot_corrupt_them() -> None:
    first = compile_sql({"a": "x"})
    first.params.append("junk")
    again = compile_sql({"a": "x"})
    assert again.params == ["x", "x"]
    assert again.where == first.where
    t = Table()
    t.load([{"_id": "int", "a": 1}, {"_id": "bool", "a": True}, {"_id": "float", "a": 1.5}])
    assert t.find_ids({"a": 1})[0] == {"int"}
    assert t.find_ids({"a": True})[0] == {"bool"}
    assert t.find_ids({"a": 1.5})[0] == {"float"}
    assert compile_sql({"a": 1}, fields_col="f").where != compile_sql({"a": 1}).where

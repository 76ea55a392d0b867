"""Bad selectors are refused with QueryError (a ValueError), never a crash; good ones parse."""

from __future__ import annotations

import re
from typing import Any

import pytest

from aioserversync.exceptions import QueryError, StoreError
from aioserversync.query import compile_selector, compile_sql
from aioserversync.query.selector import And, Field, Not, parse_selector


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ([1, 2], "must be a dict"),
        (5, "must be a dict"),
        ({"$where": "this.a == 1"}, "unsupported"),
        ({"$expr": {"$eq": ["$a", 1]}}, "unsupported"),
        ({"$text": {"$search": "x"}}, "unsupported"),
        ({"$foo": 1}, "unknown top level operator"),
        ({"$and": []}, "non-empty array"),
        ({"$or": {"a": 1}}, "non-empty array"),
        ({"$nor": [1]}, "must be objects"),
        ({"a": {"$foo": 1}}, "unknown operator"),
        ({"a": {"$gt": 1, "b": 2}}, "unknown operator"),
        ({"a": {"$in": 5}}, "needs an array"),
        ({"a": {"$nin": "x"}}, "needs an array"),
        ({"a": {"$in": [{"$gt": 1}]}}, "cannot nest"),
        ({"a": {"$all": 1}}, "needs an array"),
        ({"a": {"$all": [{"$elemMatch": {"b": 1}}, 2]}}, "consistent"),
        ({"a": {"$size": "2"}}, "needs a number"),
        ({"a": {"$size": 1.5}}, "whole number"),
        ({"a": {"$size": -1}}, "negative"),
        ({"a": {"$size": True}}, "needs a number"),
        ({"a": {"$type": "nosuch"}}, "unknown type"),
        ({"a": {"$type": 99}}, "invalid numerical type"),
        ({"a": {"$type": []}}, "at least one"),
        ({"a": {"$type": {}}}, "number or a string"),
        ({"a": {"$regex": 5}}, "string or a regular expression"),
        ({"a": {"$regex": "("}}, "invalid regular expression"),
        ({"a": {"$regex": "a", "$options": "q"}}, "option"),
        ({"a": {"$options": "i"}}, "needs a $regex"),
        ({"a": {"$regex": re.compile("a", re.I), "$options": "m"}}, "both"),
        ({"a": {"$elemMatch": 5}}, "needs an object"),
        ({"a": {"$not": 5}}, "regex or a document"),
        ({"a": {"$not": {}}}, "cannot be empty"),
        ({"a": {"$not": {"b": 1}}}, "unknown operator"),
        ({"a": {"$ne": re.compile("x")}}, "regex"),
        ({"a": {"$near": [1, 2]}}, "unsupported"),
        ({"a": {"$mod": [2, 0]}}, "unsupported"),
        ({"a..b": 1}, "empty part"),
        ({"": 1}, "empty part"),
        ({"a": {1, 2}}, "not a valid"),
        ({"a": {"$eq": object()}}, "not a valid"),
        ({"a": {"b": {3: 1}}}, "keys must be strings"),
        ({"a": {"$in": [re.compile(b"x")]}}, "bytes"),
    ],
)
def test_bad_selectors_raise_query_error(selector: Any, message: str) -> None:
    with pytest.raises(QueryError, match=re.escape(message)) as info:
        compile_selector(selector)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, StoreError)
    with pytest.raises(QueryError):
        compile_sql(selector)


def test_negations_become_not_nodes() -> None:
    node = parse_selector({"a": {"$ne": 1, "$exists": True}})
    assert isinstance(node, And)
    assert isinstance(node.children[0], Not)
    assert isinstance(node.children[1], Field)
    assert node.children[1].parts == ("a",)


def test_literal_object_with_dollar_key_after_plain_key_is_equality() -> None:
    # Only the first key decides whether an object is an operator document, as in MongoDB.
    m = compile_selector({"a": {"b": 1, "$c": 2}})
    assert m.matches({"a": {"b": 1, "$c": 2}})
    assert not m.matches({"a": {"b": 1}})


def test_empty_object_is_equality_not_an_empty_operator_set() -> None:
    m = compile_selector({"a": {}})
    assert m.matches({"a": {}})
    assert not m.matches({})
    assert not m.matches({"a": {"b": 1}})


def test_elem_match_with_logical_operator_is_a_document_match() -> None:
    m = compile_selector({"a": {"$elemMatch": {"$or": [{"b": 1}, {"c": 2}]}}})
    assert m.matches({"a": [{"c": 2}]})
    assert not m.matches({"a": [1, 2]})

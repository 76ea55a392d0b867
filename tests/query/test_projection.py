"""Projections: inclusion, exclusion, ``_id`` rules, dotted paths into objects and arrays."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from aioserversync.exceptions import QueryError
from aioserversync.query import apply_projection

DOC: dict[str, Any] = {
    "_id": "k",
    "a": 1,
    "b": {"c": 2, "d": 3},
    "e": [{"f": 1, "g": 2}, {"g": 3}, 7, [{"f": 4}]],
    "h": "x",
}

CASES: list[tuple[Any, dict[str, Any]]] = [
    (None, DOC),
    ({}, DOC),
    ({"a": 1}, {"_id": "k", "a": 1}),
    ({"h": True, "a": 1}, {"_id": "k", "a": 1, "h": "x"}),  # document order, not projection order
    ({"a": 1, "_id": 0}, {"a": 1}),
    ({"_id": 1}, {"_id": "k"}),
    ({"_id": 0}, {k: v for k, v in DOC.items() if k != "_id"}),
    ({"b.c": 1}, {"_id": "k", "b": {"c": 2}}),
    ({"e.f": 1}, {"_id": "k", "e": [{"f": 1}, {}, [{"f": 4}]]}),
    ({"a.z": 1}, {"_id": "k"}),  # a scalar on the way disappears
    ({"b.z": 1}, {"_id": "k", "b": {}}),  # an object without the field stays
    ({"missing": 1}, {"_id": "k"}),
    ({"a": 0}, {"_id": "k", "b": {"c": 2, "d": 3}, "e": DOC["e"], "h": "x"}),
    ({"b.c": 0, "_id": 0}, {"a": 1, "b": {"d": 3}, "e": DOC["e"], "h": "x"}),
    (
        {"e.g": 0},
        {"_id": "k", "a": 1, "b": DOC["b"], "e": [{"f": 1}, {}, 7, [{"f": 4}]], "h": "x"},
    ),
    ({"a": 0, "_id": 1}, {"_id": "k", "b": DOC["b"], "e": DOC["e"], "h": "x"}),
    ({"a": 1.0, "h": 5}, {"_id": "k", "a": 1, "h": "x"}),
]


@pytest.mark.parametrize(("projection", "expected"), CASES)
def test_projection(projection: Any, expected: dict[str, Any]) -> None:
    before = copy.deepcopy(DOC)
    out = apply_projection(DOC, projection)
    assert out == expected
    assert list(out) == list(expected)
    assert before == DOC
    assert out is not DOC


@pytest.mark.parametrize(
    "projection",
    [
        {"a": 1, "b": 0},
        {"a": 1, "a.b": 1},
        {"a.b": 1, "a": 1},
        {"a": {"$slice": 1}},
        {"e.$": 1},
        {"a": "yes"},
        {"a..b": 1},
        [("a", 1)],
    ],
)
def test_bad_projections(projection: Any) -> None:
    with pytest.raises(QueryError):
        apply_projection(DOC, projection)

"""Hypothesis strategies for documents, selectors and modifiers over a small key space.

Keys come from a handful of names (including array positions ``"0"``/``"1"``) so that generated
selectors and modifiers actually meet the generated documents.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from hypothesis import strategies as st

KEYS = ["a", "b", "c", "0", "1"]
PATHS = ["a", "b", "c", "a.b", "a.c", "b.a", "a.0", "a.1", "a.b.c", "a.0.b", "a.1.b", "b.0"]
DATES = [
    datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
    datetime(2024, 1, 2, 3, 4, 5, 679000, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
]
OIDS = [ObjectId("5f1d7f0e2a8b4c3d2e1f0a9b"), ObjectId("5f1d7f0e2a8b4c3d2e1f0a9c")]
STRINGS = ["", "a", "b", "ab", "B", "é"]

scalars = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([2**40, -(2**31) - 1, 2**31]),
    st.sampled_from([0.5, -1.5, 2.0, 1e20]),
    st.sampled_from(STRINGS),
    st.none(),
    st.booleans(),
    st.sampled_from(DATES),
    st.sampled_from(OIDS),
)


def _dicts(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(KEYS), children, max_size=3)


_level1 = st.one_of(scalars, st.lists(scalars, max_size=3), _dicts(scalars))
values: st.SearchStrategy[Any] = st.one_of(
    scalars,
    scalars,
    st.lists(_level1, max_size=3),
    _dicts(_level1),
)
documents = st.dictionaries(st.sampled_from(KEYS[:3]), values, max_size=3)

# --------------------------------------------------------------------------- selectors

cmp_values = st.one_of(scalars, st.lists(scalars, max_size=2), _dicts(scalars))


def _field_ops(depth: int) -> st.SearchStrategy[Any]:
    simple = st.one_of(
        st.builds(lambda op, v: {op: v}, st.sampled_from(["$eq", "$ne"]), cmp_values),
        st.builds(
            lambda op, v: {op: v},
            st.sampled_from(["$gt", "$gte", "$lt", "$lte"]),
            scalars,
        ),
        st.builds(
            lambda op, v: {op: v},
            st.sampled_from(["$in", "$nin"]),
            st.lists(cmp_values, max_size=3),
        ),
        st.builds(lambda b: {"$exists": b}, st.booleans()),
        st.builds(lambda n: {"$size": n}, st.integers(0, 2)),
        st.builds(
            lambda t: {"$type": t},
            st.sampled_from(
                [
                    "string",
                    "number",
                    "array",
                    "object",
                    "null",
                    "bool",
                    "date",
                    "objectId",
                    "int",
                    "long",
                    "double",
                    2,
                    3,
                    4,
                ]
            ),
        ),
        st.builds(lambda vs: {"$all": vs}, st.lists(scalars, min_size=1, max_size=2)),
        st.builds(
            lambda r, o: {"$regex": r, "$options": o} if o else {"$regex": r},
            st.sampled_from(["^a", "b$", "A", "é", ".*"]),
            st.sampled_from(["", "i"]),
        ),
        st.builds(lambda lo, hi: {"$gt": lo, "$lte": hi}, st.integers(-3, 3), st.integers(-3, 3)),
    )
    if depth <= 0:
        return simple
    inner = _field_ops(depth - 1)
    return st.one_of(
        simple,
        st.builds(lambda ops: {"$not": ops}, simple),
        st.builds(lambda ops: {"$elemMatch": ops}, simple),
        st.builds(lambda sel: {"$elemMatch": sel}, _selector(depth - 1)),
        inner,
    )


def _selector(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    leaf = st.one_of(
        st.builds(lambda p, v: {p: v}, st.sampled_from(PATHS), cmp_values),
        st.builds(lambda p, ops: {p: ops}, st.sampled_from(PATHS), _field_ops(max(depth - 1, 0))),
    )
    if depth <= 0:
        return leaf
    sub = st.lists(_selector(depth - 1), min_size=1, max_size=2)
    return st.one_of(
        leaf,
        st.builds(lambda op, xs: {op: xs}, st.sampled_from(["$and", "$or", "$nor"]), sub),
        st.builds(lambda a, b: {**a, **b}, leaf, leaf),
    )


selectors = _selector(2)

# --------------------------------------------------------------------------- modifiers

UPDATE_PATHS = ["a", "b", "c", "a.b", "a.c", "a.0", "a.1", "a.1.b", "b.c", "a.b.c", "c.2"]
numbers = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -1.5, 2**31, 2.0]))
small_values = st.one_of(scalars, st.lists(scalars, max_size=3), _dicts(scalars))


def _op_entry(op: str) -> st.SearchStrategy[Any]:
    if op in ("$set", "$min", "$max"):
        return small_values
    if op == "$unset":
        return st.just("")
    if op in ("$inc", "$mul"):
        return st.one_of(numbers, st.sampled_from(["x", None]))
    if op == "$push":
        return st.one_of(
            small_values,
            st.builds(
                lambda each, sl, so, pos: {
                    "$each": each,
                    **({"$slice": sl} if sl is not None else {}),
                    **({"$sort": so} if so is not None else {}),
                    **({"$position": pos} if pos is not None else {}),
                },
                st.lists(st.one_of(st.integers(-3, 3), _dicts(st.integers(-3, 3))), max_size=3),
                st.one_of(st.none(), st.integers(-3, 3)),
                st.one_of(st.none(), st.sampled_from([1, -1, {"a": 1}, {"b": -1}])),
                st.one_of(st.none(), st.integers(-3, 3)),
            ),
        )
    if op == "$addToSet":
        return st.one_of(
            small_values, st.builds(lambda xs: {"$each": xs}, st.lists(scalars, max_size=3))
        )
    if op == "$pull":
        return st.one_of(
            scalars,
            st.builds(lambda v: {"$gte": v}, st.integers(-3, 3)),
            st.builds(lambda v: {"$in": v}, st.lists(scalars, max_size=2)),
            st.builds(lambda k, v: {k: v}, st.sampled_from(["a", "b"]), st.integers(-3, 3)),
        )
    if op == "$pullAll":
        return st.lists(scalars, max_size=3)
    if op == "$pop":
        return st.sampled_from([1, -1])
    # $rename
    return st.sampled_from(UPDATE_PATHS)


OPS = [
    "$set",
    "$unset",
    "$inc",
    "$mul",
    "$min",
    "$max",
    "$push",
    "$addToSet",
    "$pull",
    "$pullAll",
    "$pop",
    "$rename",
]


_ENTRIES = {op: _op_entry(op) for op in OPS}
_OP_LISTS = st.lists(st.sampled_from(OPS), min_size=1, max_size=3, unique=True)
_PATH_LISTS = st.lists(st.sampled_from(UPDATE_PATHS), min_size=1, max_size=2, unique=True)


@st.composite
def modifiers(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for op in draw(_OP_LISTS):
        out[op] = {p: draw(_ENTRIES[op]) for p in draw(_PATH_LISTS)}
    return out

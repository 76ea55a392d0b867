"""Known divergences of mongomock 4.3.0's ``filter_applies`` from MongoDB.

Each detector recognises a (selector, document) pair on which mongomock is known to answer
differently from MongoDB, with the reason. The expected MongoDB answers for every category are
asserted by table tests taken from MongoDB's own ``jstests/core/null_query_semantics.js`` and the
MongoDB manual (see ``test_matcher.py``), so an excluded pair is still covered there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from aioserversync.query.paths import is_index

LOGICAL = ("$and", "$or", "$nor")


def iter_conditions(sel: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield (path, condition) for every field condition, including inside $elemMatch objects."""
    for k, v in sel.items():
        if k in LOGICAL:
            for sub in v:
                yield from iter_conditions(sub, prefix)
        elif not k.startswith("$"):
            path = prefix + k
            yield path, v
            if isinstance(v, dict):
                for op, arg in v.items():
                    if op == "$elemMatch" and isinstance(arg, dict):
                        yield from iter_conditions(arg, path + ".$.")
                    if op == "$not" and isinstance(arg, dict):
                        yield path, arg


def iter_values(v: Any) -> Iterator[Any]:
    yield v
    if isinstance(v, dict):
        for x in v.values():
            yield from iter_values(x)
    elif isinstance(v, list):
        for x in v:
            yield from iter_values(x)


def _prefix_values(doc: Any, parts: list[str]) -> Iterator[Any]:
    """Values met at proper prefixes of a path (walking arrays the way MongoDB does)."""
    if not parts or not isinstance(doc, dict):
        return
    v = doc.get(parts[0])
    if len(parts) == 1:
        return
    yield v
    if isinstance(v, dict):
        yield from _prefix_values(v, parts[1:])
    elif isinstance(v, list):
        for i, e in enumerate(v):
            yield e
            if isinstance(e, dict):
                yield from _prefix_values(e, parts[1:])
            if is_index(parts[1]) and int(parts[1]) == i and len(parts) > 2:
                if isinstance(e, dict):
                    yield from _prefix_values(e, parts[2:])
                elif isinstance(e, list):
                    yield e


def _paths(sel: dict[str, Any]) -> list[str]:
    return [p.split(".$.")[-1] for p, _ in iter_conditions(sel)]


def empty_object_condition(sel: dict[str, Any], doc: dict[str, Any]) -> bool:
    """mongomock reads ``{a: {}}`` as "no condition"; MongoDB compares with an empty object."""
    return any(c == {} for _, c in iter_conditions(sel)) or any(
        isinstance(c, dict) and any(x == {} for x in iter_values(c))
        for _, c in iter_conditions(sel)
    )


def bool_number_equality(sel: dict[str, Any], doc: dict[str, Any]) -> bool:
    """mongomock uses Python ``==``, so ``True == 1`` and ``False == 0``; BSON keeps them apart."""
    sel_vals = [x for _, c in iter_conditions(sel) for x in iter_values(c)]
    doc_vals = list(iter_values(doc))

    def has_bool(vals: list[Any]) -> bool:
        return any(isinstance(x, bool) for x in vals)

    def has_01(vals: list[Any]) -> bool:
        return any(
            not isinstance(x, bool) and isinstance(x, int | float) and x in (0, 1) for x in vals
        )

    return (has_bool(doc_vals) and has_01(sel_vals)) or (has_01(doc_vals) and has_bool(sel_vals))


def null_range(sel: dict[str, Any], doc: dict[str, Any]) -> bool:
    """mongomock's ``$gte``/``$lte`` null ignore missing fields; MongoDB matches them."""
    return any(
        isinstance(c, dict) and any(op in ("$gte", "$lte") and arg is None for op, arg in c.items())
        for _, c in iter_conditions(sel)
    )


def dotted_through_non_object(sel: dict[str, Any], doc: dict[str, Any]) -> bool:
    """mongomock mishandles a dotted path that meets a scalar, null or an array on the way.

    MongoDB treats a scalar or null prefix as a missing field (``{"a.b": null}`` matches
    ``{a: 4}``), and an array prefix yields only what its object elements (and an indexed
    position) hold: ``{"a.b": {$ne: null}}`` matches ``{a: [1, 2]}`` and ``{a: []}``.
    """
    for path in _paths(sel):
        parts = path.split(".")
        if len(parts) < 2:
            continue
        for v in _prefix_values(doc, parts):
            if not isinstance(v, dict):
                return True
    return False


def elem_match_nested_arrays(sel: dict[str, Any], doc: dict[str, Any]) -> bool:
    """mongomock's object ``$elemMatch`` skips array elements; MongoDB reads them as objects.

    ``{a: {$elemMatch: {b: null}}}`` matches ``{a: [[]]}`` in MongoDB.
    """
    for _, c in iter_conditions(sel):
        if (
            isinstance(c, dict)
            and "$elemMatch" in c
            and any(
                isinstance(x, list) and any(isinstance(e, list) for e in x)
                for x in iter_values(doc)
            )
        ):
            return True
    return False


def all_with_null(sel: dict[str, Any], doc: dict[str, Any]) -> bool:
    """mongomock's ``$all: [null]`` ignores missing fields; MongoDB's is ``{a: null}``, repeated."""
    return any(
        isinstance(c, dict) and isinstance(c.get("$all"), list) and None in c["$all"]
        for _, c in iter_conditions(sel)
    )


def size_of_non_array(sel: dict[str, Any], doc: dict[str, Any]) -> bool:
    """mongomock's ``$size`` counts objects' keys and treats a truthy scalar as size 1.

    MongoDB's ``$size`` only matches arrays.
    """
    if not any(isinstance(x, dict) and "$size" in x for x in iter_values(sel)):
        return False
    return any(not isinstance(v, list) and v is not doc for v in iter_values(doc))


def array_operand_nested_arrays(sel: dict[str, Any], doc: dict[str, Any]) -> bool:
    """mongomock compares an array operand with the field only, not with array elements.

    MongoDB's ``{c: []}`` (or ``$eq``/``$in``/``$all`` of an array) also matches an array element
    equal to it: it matches ``{c: [[]]}``.
    """
    has_list_operand = any(
        isinstance(x, list) and not isinstance(x, str) and x is not c and not _is_op_list(c, x)
        for _, c in iter_conditions(sel)
        for x in iter_values(c)
    ) or any(isinstance(c, list) for _, c in iter_conditions(sel))
    nested = any(
        isinstance(v, list) and any(isinstance(e, list) for e in v) for v in iter_values(doc)
    )
    return has_list_operand and nested


def _is_op_list(c: Any, x: Any) -> bool:
    # The list argument of $in/$nin/$all itself is not an array operand.
    return isinstance(c, dict) and any(c.get(op) is x for op in ("$in", "$nin", "$all") if op in c)


def type_int_long(sel: dict[str, Any], doc: dict[str, Any]) -> bool:
    """mongomock's ``$type`` "int"/"long" ignore the value's size.

    PyMongo stores a Python int as int32 when it fits and int64 otherwise, so MongoDB's
    ``$type: "long"`` matches ``2**31``.
    """
    return any(
        isinstance(x, dict) and x.get("$type") in ("int", "long", 16, 18) for x in iter_values(sel)
    )


DETECTORS: dict[str, Callable[[dict[str, Any], dict[str, Any]], bool]] = {
    "empty_object_condition": empty_object_condition,
    "bool_number_equality": bool_number_equality,
    "null_range": null_range,
    "dotted_through_non_object": dotted_through_non_object,
    "elem_match_nested_arrays": elem_match_nested_arrays,
    "all_with_null": all_with_null,
    "size_of_non_array": size_of_non_array,
    "array_operand_nested_arrays": array_operand_nested_arrays,
    "type_int_long": type_int_long,
}


def known_bug(sel: dict[str, Any], doc: dict[str, Any]) -> str | None:
    """The name of the first detector that recognises the pair, or ``None``."""
    for name, detect in DETECTORS.items():
        if detect(sel, doc):
            return name
    return None

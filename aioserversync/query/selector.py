"""Parse and validate a MongoDB selector into the tree of :mod:`.nodes`.

``$ne``, ``$nin``, ``$not`` and ``$exists: false`` are negations of the whole field test
(``{a: {$ne: 1}}`` means "no value at ``a`` equals 1"), so they become :class:`Not` at document
level and :class:`VNot` inside ``$elemMatch``.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from bson import ObjectId
from bson.decimal128 import Decimal128
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.regex import Regex as BSONRegex
from bson.timestamp import Timestamp

from ..ejson import EJSONCustom, RegExp
from ..exceptions import QueryError
from .nodes import (
    FALSE,
    TRUE,
    And,
    Cmp,
    ElemMatchDoc,
    ElemMatchValue,
    Eq,
    Exists,
    Field,
    In,
    Node,
    Not,
    Or,
    Regex,
    Size,
    Type,
    VAnd,
    VFalse,
    VNot,
    VPred,
)
from .paths import LEAF_ARRAY, LEAF_BOTH, split_path
from .values import TYPE_ALIASES, regex_parts

__all__ = [
    "And",
    "Cmp",
    "ElemMatchDoc",
    "ElemMatchValue",
    "Eq",
    "Exists",
    "Field",
    "In",
    "Node",
    "Not",
    "Or",
    "Regex",
    "Size",
    "Type",
    "VAnd",
    "VFalse",
    "VNot",
    "VPred",
    "normalize_value",
    "parse_selector",
]

_UNSUPPORTED_TOP: Final = frozenset({"$where", "$expr", "$text", "$jsonSchema", "$sampleRate"})
_UNSUPPORTED_FIELD: Final = frozenset(
    {
        "$near",
        "$nearSphere",
        "$geoWithin",
        "$geoIntersects",
        "$within",
        "$box",
        "$center",
        "$centerSphere",
        "$polygon",
        "$geometry",
        "$maxDistance",
        "$minDistance",
        "$bitsAllSet",
        "$bitsAllClear",
        "$bitsAnySet",
        "$bitsAnyClear",
        "$mod",
        "$jsonSchema",
    }
)
_PATHLESS: Final = frozenset({"$and", "$or", "$nor", "$where", "$expr", "$text", "$comment"})
_REGEX_TYPES: Final = (RegExp, re.Pattern, BSONRegex)
_OPTION_FLAGS: Final = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


# --------------------------------------------------------------------------- values


def normalize_value(v: Any, *, what: str = "value") -> Any:
    """Return a selector/update value in the form the engine compares.

    Tuples become lists, ``Decimal128`` becomes ``Decimal``, ``bytearray``/``memoryview`` become
    ``bytes``; anything that is not a BSON/EJSON value raises.

    Raises:
        QueryError: For values that cannot be stored (sets, arbitrary objects, non-string keys).
    """
    t = type(v)
    if t is str or t is int or t is float or t is bool or v is None:
        return v
    if isinstance(v, dict):
        out: dict[str, Any] = {}
        for k, x in v.items():
            if not isinstance(k, str):
                raise QueryError(f"object keys must be strings, got {k!r} in {what}")
            out[k] = normalize_value(x, what=what)
        return out
    if isinstance(v, list | tuple):
        return [normalize_value(x, what=what) for x in v]
    if isinstance(v, Decimal128):
        return v.to_decimal()
    if isinstance(v, bytearray | memoryview):
        return bytes(v)
    if isinstance(
        v,
        str
        | int
        | float
        | Decimal
        | datetime
        | bytes
        | ObjectId
        | RegExp
        | re.Pattern
        | BSONRegex
        | EJSONCustom
        | Timestamp
        | MinKey
        | MaxKey,
    ):
        if isinstance(v, re.Pattern) and not isinstance(v.pattern, str):
            raise QueryError("bytes regular expressions are not supported")
        return v
    raise QueryError(f"{type(v).__name__} is not a valid {what}")


def _is_operator_doc(v: Any) -> bool:
    if not isinstance(v, dict) or not v:
        return False
    first = next(iter(v))
    return isinstance(first, str) and first.startswith("$")


def _compile_regex(pattern: Any, options: str) -> Regex:
    flags = 0
    kept = []
    for c in options:
        if c in _OPTION_FLAGS:
            flags |= _OPTION_FLAGS[c]
        elif c not in "gyu":  # JavaScript-only or no-op (Python str patterns are Unicode)
            raise QueryError(f"invalid regular expression option {c!r}")
        kept.append(c)
    if not isinstance(pattern, str):
        raise QueryError("$regex must be a string or a regular expression")
    try:
        compiled = re.compile(pattern, flags)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        raise QueryError(f"invalid regular expression {pattern!r}: {exc}") from exc
    return Regex(pattern, "".join(sorted(set(kept))), compiled)


def _regex_from_value(v: Any, options: str | None = None) -> Regex:
    if isinstance(v, re.Pattern) and not isinstance(v.pattern, str):
        raise QueryError("bytes regular expressions are not supported")
    if isinstance(v, str):
        return _compile_regex(v, options or "")
    pattern, flags = regex_parts(v)
    if options:
        if flags:
            raise QueryError("options set in both $regex and $options")
        flags = options
    return _compile_regex(pattern, flags)


# --------------------------------------------------------------------------- parsing


def parse_selector(selector: Any) -> Node:
    """Parse a selector into a document node.

    ``None`` and ``{}`` match everything. A string or ObjectId is Meteor's shorthand for
    ``{"_id": value}``.

    Raises:
        QueryError: For malformed selectors, unknown operators, and unsupported ones
            (``$where``, ``$expr``, ``$text``, geo and bitwise operators).
    """
    if selector is None:
        return TRUE
    if isinstance(selector, str | ObjectId):
        return _field("_id", selector)
    if not isinstance(selector, dict):
        raise QueryError(f"a selector must be a dict, got {type(selector).__name__}")
    return _parse_doc(selector)


def _parse_doc(sel: dict[str, Any]) -> Node:
    children: list[Node] = []
    for key, value in sel.items():
        if not isinstance(key, str):
            raise QueryError(f"selector keys must be strings, got {key!r}")
        if key.startswith("$"):
            children.extend(_parse_top_operator(key, value))
        else:
            children.append(_field(key, value))
    return children[0] if len(children) == 1 else And(tuple(children))


def _parse_top_operator(key: str, value: Any) -> list[Node]:
    if key in ("$and", "$or", "$nor"):
        if not isinstance(value, list | tuple) or not value:
            raise QueryError(f"{key} must be a non-empty array")
        subs = []
        for item in value:
            if not isinstance(item, dict):
                raise QueryError(f"{key} entries must be objects")
            subs.append(_parse_doc(item))
        if key == "$and":
            return subs
        if key == "$or":
            return [subs[0] if len(subs) == 1 else Or(tuple(subs))]
        return [Not(subs[0] if len(subs) == 1 else Or(tuple(subs)))]
    if key == "$comment":
        return []
    if key in _UNSUPPORTED_TOP:
        raise QueryError(f"{key} is unsupported")
    raise QueryError(f"unknown top level operator: {key}")


def _field(path: str, value: Any) -> Node:
    parts = split_path(path)
    if _is_operator_doc(value):
        preds = _parse_ops(value)
    elif isinstance(value, _REGEX_TYPES):
        preds = [_regex_from_value(value)]
    else:
        preds = [Eq(normalize_value(value, what="selector value"))]
    nodes = [_to_node(path, parts, p) for p in preds]
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def _to_node(path: str, parts: tuple[str, ...], pred: VPred) -> Node:
    if isinstance(pred, VNot):
        return Not(_to_node(path, parts, pred.pred))
    if isinstance(pred, VAnd):
        subs = tuple(_to_node(path, parts, p) for p in pred.preds)
        return subs[0] if len(subs) == 1 else And(subs)
    if isinstance(pred, VFalse):
        return FALSE
    leaf = LEAF_ARRAY if isinstance(pred, Size | ElemMatchValue | ElemMatchDoc) else LEAF_BOTH
    return Field(path, parts, pred, leaf)


def _truthy(v: Any) -> bool:
    if v is None:
        return False
    if isinstance(v, bool | int | float | Decimal):
        return bool(v)
    return True


def _parse_ops(ops: dict[str, Any]) -> list[VPred]:
    """Parse an operator document (``{$gt: 1, $lt: 5}``) into value predicates."""
    out: list[VPred] = []
    if "$options" in ops and "$regex" not in ops:
        raise QueryError("$options needs a $regex")
    for op, arg in ops.items():
        if not isinstance(op, str) or not op.startswith("$"):
            raise QueryError(f"unknown operator: {op!r}")
        if op == "$options":
            if not isinstance(arg, str):
                raise QueryError("$options must be a string")
            continue
        out.append(_parse_op(op, arg, ops))
    return out


def _value_operand(op: str, arg: Any) -> Any:
    if _is_operator_doc(arg) and op in ("$in", "$nin", "$all"):
        raise QueryError(f"cannot nest $ under {op}")
    return normalize_value(arg, what=f"{op} operand")


def _parse_op(op: str, arg: Any, ops: dict[str, Any]) -> VPred:
    if op == "$eq":
        return Eq(normalize_value(arg, what="$eq operand"))
    if op == "$ne":
        if isinstance(arg, _REGEX_TYPES):
            raise QueryError("can't have a regex as the argument to $ne")
        return VNot(Eq(normalize_value(arg, what="$ne operand")))
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return Cmp(op[1:], normalize_value(arg, what=f"{op} operand"))
    if op in ("$in", "$nin"):
        pred = _parse_in(op, arg)
        return VNot(pred) if op == "$nin" else pred
    if op == "$exists":
        return Exists() if _truthy(arg) else VNot(Exists())
    if op == "$regex":
        options = ops.get("$options")
        if not isinstance(arg, str | RegExp | re.Pattern | BSONRegex):
            raise QueryError("$regex must be a string or a regular expression")
        return _regex_from_value(arg, options if isinstance(options, str) else None)
    if op == "$type":
        return _parse_type(arg)
    if op == "$size":
        if isinstance(arg, bool) or not isinstance(arg, int | float | Decimal):
            raise QueryError("$size needs a number")
        if arg != arg or arg in (float("inf"), float("-inf")) or int(arg) != arg:
            raise QueryError("$size must be a whole number")
        if arg < 0:
            raise QueryError("$size may not be negative")
        return Size(int(arg))
    if op == "$all":
        return _parse_all(arg)
    if op == "$elemMatch":
        return _parse_elem_match(arg)
    if op == "$not":
        return _parse_not(arg)
    if op in _UNSUPPORTED_FIELD:
        raise QueryError(f"{op} is unsupported")
    raise QueryError(f"unknown operator: {op}")


def _parse_in(op: str, arg: Any) -> In:
    if not isinstance(arg, list | tuple):
        raise QueryError(f"{op} needs an array")
    values: list[Any] = []
    regexes: list[Regex] = []
    for item in arg:
        if isinstance(item, _REGEX_TYPES):
            regexes.append(_regex_from_value(item))
        else:
            values.append(_value_operand(op, item))
    return In(tuple(values), tuple(regexes))


def _parse_type(arg: Any) -> Type:
    items = list(arg) if isinstance(arg, list | tuple) else [arg]
    if not items:
        raise QueryError("$type must match at least one type")
    codes: set[int] = set()
    for item in items:
        if isinstance(item, str):
            if item == "number":
                codes.add(0)
            elif item in TYPE_ALIASES:
                codes.add(TYPE_ALIASES[item])
            else:
                raise QueryError(f"unknown type name alias: {item}")
        elif isinstance(item, int | float) and not isinstance(item, bool):
            if item != item or int(item) != item or int(item) not in TYPE_ALIASES.values():
                raise QueryError(f"invalid numerical type code: {item}")
            codes.add(int(item))
        else:
            raise QueryError("type must be represented as a number or a string")
    return Type(frozenset(codes))


def _parse_all(arg: Any) -> VPred:
    if not isinstance(arg, list | tuple):
        raise QueryError("$all needs an array")
    if not arg:
        return VFalse()
    first = arg[0]
    if isinstance(first, dict) and first and next(iter(first)) == "$elemMatch":
        preds: list[VPred] = []
        for item in arg:
            if not (isinstance(item, dict) and len(item) == 1 and "$elemMatch" in item):
                raise QueryError("$all/$elemMatch has to be consistent")
            preds.append(_parse_elem_match(item["$elemMatch"]))
        return VAnd(tuple(preds))
    preds = []
    for item in arg:
        if isinstance(item, _REGEX_TYPES):
            preds.append(_regex_from_value(item))
        elif isinstance(item, dict) and "$elemMatch" in item:
            raise QueryError("$all/$elemMatch has to be consistent")
        else:
            preds.append(Eq(_value_operand("$all", item)))
    return VAnd(tuple(preds))


def _parse_elem_match(arg: Any) -> VPred:
    if not isinstance(arg, dict):
        raise QueryError("$elemMatch needs an object")
    if _is_operator_doc(arg) and next(iter(arg)) not in _PATHLESS:
        return ElemMatchValue(tuple(_parse_ops(arg)))
    return ElemMatchDoc(_parse_doc(arg))


def _parse_not(arg: Any) -> VPred:
    if isinstance(arg, _REGEX_TYPES):
        return VNot(_regex_from_value(arg))
    if not isinstance(arg, dict):
        raise QueryError("$not needs a regex or a document")
    if not arg:
        raise QueryError("$not cannot be empty")
    if not _is_operator_doc(arg):
        raise QueryError(f"unknown operator in $not: {next(iter(arg))!r}")
    preds = _parse_ops(arg)
    return VNot(preds[0] if len(preds) == 1 else VAnd(tuple(preds)))

"""Operand parsing and value arithmetic for the update operators.

Kept apart from :mod:`.updater` (which walks and rewrites documents): these functions validate a
single operator's argument, and compute new values (``$inc``, ``$mul``, ``$push`` modifiers,
``$pull`` conditions) the way MongoDB does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from re import Pattern
from typing import Any, Final

from bson.regex import Regex

from ..ejson import RegExp
from ..exceptions import ModifierError, QueryError
from .matcher import compile_selector
from .selector import normalize_value
from .sort import normalize_sort, sort_key
from .values import equal, is_number, sort_bytes

__all__ = [
    "ArraySpec",
    "add_numbers",
    "multiply_numbers",
    "parse_array_spec",
    "pull_test",
    "push_values",
    "value_arg",
]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_PUSH_MODIFIERS: Final = frozenset({"$each", "$slice", "$sort", "$position"})


def value_arg(v: Any, op: str) -> Any:
    """Normalise an operand value (fresh containers, BSON types only).

    Raises:
        ModifierError: If the value cannot be stored.
    """
    try:
        return normalize_value(v, what=f"{op} value")
    except QueryError as exc:
        raise ModifierError(str(exc)) from exc


# --------------------------------------------------------------------------- arithmetic


def _to_decimal(v: Any) -> Decimal:
    if isinstance(v, Decimal):
        return v
    if isinstance(v, float):
        # MongoDB converts a double to Decimal128 with 15 significant digits.
        return Decimal(format(v, ".15g")) if v == v else Decimal("NaN")
    return Decimal(int(v))


def _check_int(v: Any, op: str) -> Any:
    if isinstance(v, int) and not _INT64_MIN <= v <= _INT64_MAX:
        raise ModifierError(f"integer overflow applying {op}")
    return v


def add_numbers(a: Any, b: Any) -> Any:
    """``a + b`` with MongoDB's type promotion (int, then double, then Decimal)."""
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        try:
            return _to_decimal(a) + _to_decimal(b)
        except InvalidOperation as exc:
            raise ModifierError(f"invalid decimal arithmetic: {exc}") from exc
    if isinstance(a, float) or isinstance(b, float):
        return float(a) + float(b)
    return _check_int(int(a) + int(b), "$inc")


def multiply_numbers(a: Any, b: Any) -> Any:
    """``a * b`` with MongoDB's type promotion (int, then double, then Decimal)."""
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        try:
            return _to_decimal(a) * _to_decimal(b)
        except InvalidOperation as exc:
            raise ModifierError(f"invalid decimal arithmetic: {exc}") from exc
    if isinstance(a, float) or isinstance(b, float):
        return float(a) * float(b)
    return _check_int(int(a) * int(b), "$mul")


def zero_like(v: Any) -> Any:
    """Zero of the same numeric type (what ``$mul`` stores into a missing field)."""
    if isinstance(v, Decimal):
        return Decimal(0)
    if isinstance(v, float):
        return 0.0
    return 0


def numeric_arg(v: Any, op: str) -> Any:
    """Validate the operand of ``$inc``/``$mul``.

    Raises:
        ModifierError: If it is not a number.
    """
    if not is_number(v):
        word = "increment" if op == "$inc" else "multiply"
        raise ModifierError(f"Cannot {word} with non-numeric argument: {v!r}")
    return int(v) if isinstance(v, int) else v


# --------------------------------------------------------------------------- $push / $addToSet


@dataclass(frozen=True, slots=True)
class ArraySpec:
    """A parsed ``$push``/``$addToSet`` operand.

    Attributes:
        each: The values to add, in order.
        slice: Keep the first ``n`` (``n >= 0``) or the last ``-n`` elements.
        sort: ``1``/``-1`` to sort elements, or a sort on fields of object elements.
        position: Where to insert (negative counts from the end).
    """

    each: tuple[Any, ...]
    slice: int | None = None
    sort: int | list[tuple[str, int]] | None = None
    position: int | None = None


def _int_arg(v: Any, what: str) -> int:
    if isinstance(v, bool) or not is_number(v) or v != v or int(v) != v:
        raise ModifierError(f"{what} must be an integer, got {v!r}")
    return int(v)


def parse_array_spec(op: str, arg: Any) -> ArraySpec:
    """Parse the operand of ``$push`` or ``$addToSet``.

    Raises:
        ModifierError: For bad ``$each``/``$slice``/``$sort``/``$position`` values, modifiers
            without ``$each``, or modifiers ``$addToSet`` does not take.
    """
    if not (isinstance(arg, dict) and arg and next(iter(arg)) == "$each"):
        if isinstance(arg, dict) and any(isinstance(k, str) and k.startswith("$") for k in arg):
            if "$each" in arg:
                raise ModifierError(f"{op}: $each must come first")
            raise ModifierError(f"{op}: modifiers need $each")
        return ArraySpec((value_arg(arg, op),))
    allowed = _PUSH_MODIFIERS if op == "$push" else frozenset({"$each"})
    for k in arg:
        if k not in allowed:
            raise ModifierError(f"unrecognized clause in {op}: {k}")
    each = arg["$each"]
    if not isinstance(each, list | tuple):
        raise ModifierError(f"The argument to $each in {op} must be an array")
    values = tuple(value_arg(x, op) for x in each)
    slice_ = _int_arg(arg["$slice"], "$slice") if "$slice" in arg else None
    position = _int_arg(arg["$position"], "$position") if "$position" in arg else None
    sort: int | list[tuple[str, int]] | None = None
    if "$sort" in arg:
        s = arg["$sort"]
        if isinstance(s, int | float) and not isinstance(s, bool) and s in (1, -1):
            sort = int(s)
        elif isinstance(s, dict) and s:
            try:
                sort = normalize_sort(s)
            except QueryError as exc:
                raise ModifierError(f"$sort: {exc}") from exc
        else:
            raise ModifierError("$sort must be 1, -1 or a non-empty sort document")
    return ArraySpec(values, slice_, sort, position)


def push_values(current: list[Any], spec: ArraySpec) -> list[Any]:
    """Return ``current`` with ``spec`` applied: insert, then sort, then slice."""
    out = list(current)
    if spec.position is None:
        out.extend(spec.each)
    else:
        pos = spec.position
        if pos < 0:
            pos = max(0, len(out) + pos)
        out[pos:pos] = spec.each
    if spec.sort is not None:
        if isinstance(spec.sort, int):
            out.sort(key=sort_bytes, reverse=spec.sort < 0)
        else:
            key = sort_key(spec.sort)
            out.sort(key=lambda e: key(e if isinstance(e, dict) else {}))
    if spec.slice is not None:
        n = spec.slice
        out = out[:n] if n >= 0 else (out[n:] if -n < len(out) else out)
    return out


def add_to_set(current: list[Any], values: tuple[Any, ...]) -> list[Any]:
    """Return ``current`` plus each value not already present (BSON equality)."""
    out = list(current)
    for v in values:
        if not any(equal(v, e) for e in out):
            out.append(v)
    return out


# --------------------------------------------------------------------------- $pull


def pull_test(arg: Any) -> Callable[[Any], bool]:
    """Compile a ``$pull`` condition into a test of one array element, as MongoDB's ``PullNode``.

    * an operator document (``{$gte: 6}``) or a regular expression tests the element as a field
      value (so an array element passes when one of its own elements does);
    * another document (``{"item": "B"}``, even ``{}``) is a query an object element must match;
    * anything else must be equal (BSON equality).

    Raises:
        ModifierError: If the condition is not a valid query.
    """
    try:
        if isinstance(arg, dict):
            first = next(iter(arg), None)
            if isinstance(first, str) and first.startswith("$") and first not in _PATHLESS:
                wrapped = compile_selector({"v": arg})
                return lambda e: wrapped.matches({"v": e})
            doc_matcher = compile_selector(arg)
            return lambda e: isinstance(e, dict) and doc_matcher.matches(e)
        value = normalize_value(arg, what="$pull value")
        if isinstance(value, RegExp | Pattern | Regex):
            wrapped = compile_selector({"v": value})
            return lambda e: wrapped.matches({"v": e})
        return lambda e: equal(e, value)
    except QueryError as exc:
        raise ModifierError(f"invalid $pull condition: {exc}") from exc


_PATHLESS: Final = frozenset({"$and", "$or", "$nor", "$where", "$expr", "$text", "$comment"})

"""BSON value semantics on decoded EJSON values: type brackets, comparison, equality, sort bytes.

MongoDB compares values of different types by a fixed *canonical type order* and never compares
across brackets in queries (``{a: {$gt: 1}}`` does not match a string). The brackets, lowest first:

====================  ==========================================================================
bracket               Python values
====================  ==========================================================================
MinKey                ``bson.min_key.MinKey``
undefined / missing   :data:`MISSING` (also the sort key of an empty array)
null                  ``None``
numbers               ``int``, ``float`` (NaN lowest), ``decimal.Decimal``; ``bool`` is *not* one
strings               ``str`` (compared by code point, which is UTF-8 byte order)
objects               ``dict`` (pair by pair: value bracket, key, value; key order matters),
                      :class:`~aioserversync.ejson.EJSONCustom`
arrays                ``list`` (compared element by element)
binary                ``bytes`` (by length, then content)
ObjectId              ``bson.ObjectId``
booleans              ``bool``
dates                 ``datetime`` (by whole milliseconds, as EJSON carries them)
timestamps            ``bson.Timestamp``
regular expressions   :class:`~aioserversync.ejson.RegExp`, ``re.Pattern``, ``bson.Regex``
MaxKey                ``bson.max_key.MaxKey``
====================  ==========================================================================

:func:`sort_bytes` encodes a value so that plain byte comparison gives exactly this order; the
encoding is prefix-free, so inverting its bytes gives the descending order.
"""

from __future__ import annotations

import math
import re
import struct
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from bson import ObjectId
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.regex import Regex
from bson.timestamp import Timestamp

from ..ejson import EJSONCustom, RegExp, date_to_ms

__all__ = [
    "ARRAY",
    "BINARY",
    "BOOL",
    "DATE",
    "MAXKEY",
    "MINKEY",
    "MISSING",
    "NULL",
    "NUMBER",
    "OBJECT",
    "OID",
    "REGEX",
    "STRING",
    "TIMESTAMP",
    "TYPE_ALIASES",
    "UNDEFINED",
    "bracket",
    "compare",
    "equal",
    "invert",
    "is_nan",
    "is_number",
    "regex_parts",
    "sort_bytes",
    "type_code",
]


class _Missing:
    """The value of a path that does not exist (MongoDB's EOO / ``undefined``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
"""Sentinel for a missing field; never stored in documents."""

# Canonical type brackets (MongoDB's ``canonicalizeBSONType``).
MINKEY: Final = -1
UNDEFINED: Final = 0
NULL: Final = 5
NUMBER: Final = 10
STRING: Final = 15
OBJECT: Final = 20
ARRAY: Final = 25
BINARY: Final = 30
OID: Final = 35
BOOL: Final = 40
DATE: Final = 45
TIMESTAMP: Final = 47
REGEX: Final = 50
MAXKEY: Final = 127

_FAST_BRACKET: dict[type, int] = {
    str: STRING,
    int: NUMBER,
    float: NUMBER,
    bool: BOOL,
    type(None): NULL,
    dict: OBJECT,
    list: ARRAY,
    datetime: DATE,
    bytes: BINARY,
    ObjectId: OID,
    Decimal: NUMBER,
    RegExp: REGEX,
    _Missing: UNDEFINED,
}


def bracket(v: Any) -> int:
    """Return the canonical type bracket of a decoded value (one of the module constants)."""
    b = _FAST_BRACKET.get(type(v))
    if b is not None:
        return b
    if isinstance(v, bool):
        return BOOL
    if isinstance(v, int | float | Decimal):
        return NUMBER
    if isinstance(v, str):
        return STRING
    if isinstance(v, dict | EJSONCustom):
        return OBJECT
    if isinstance(v, list | tuple):
        return ARRAY
    if isinstance(v, datetime):
        return DATE
    if isinstance(v, bytes | bytearray | memoryview):
        return BINARY
    if isinstance(v, re.Pattern | Regex):
        return REGEX
    if isinstance(v, Timestamp):
        return TIMESTAMP
    if isinstance(v, MinKey):
        return MINKEY
    if isinstance(v, MaxKey):
        return MAXKEY
    raise TypeError(f"{type(v).__name__} is not a BSON value")


def is_number(v: Any) -> bool:
    """Whether ``v`` is in the numbers bracket (``int``, ``float``, ``Decimal``; not ``bool``)."""
    t = type(v)
    if t is int or t is float or t is Decimal:
        return True
    return isinstance(v, int | float | Decimal) and not isinstance(v, bool)


def is_nan(v: Any) -> bool:
    """Whether a number is NaN (float or Decimal, quiet or signalling)."""
    if type(v) is float:
        return v != v
    if isinstance(v, Decimal):
        return v.is_nan()
    return isinstance(v, float) and v != v


def regex_parts(v: Any) -> tuple[str, str]:
    """Return ``(pattern, sorted flags)`` of a regular expression value, as BSON stores it."""
    if isinstance(v, RegExp):
        return v.pattern, "".join(sorted(v.flags))
    if isinstance(v, re.Pattern):
        letters = [c for bit, c in _RE_BITS if v.flags & bit]
        return str(v.pattern), "".join(sorted(letters))
    if isinstance(v, Regex):
        raw: Any = v.flags
        if isinstance(raw, str):
            return str(v.pattern), "".join(sorted(raw))
        letters = [c for bit, c in _RE_BITS if raw & bit]
        return str(v.pattern), "".join(sorted(letters))
    raise TypeError("not a regular expression")


_RE_BITS: Final = (
    (re.IGNORECASE, "i"),
    (re.MULTILINE, "m"),
    (re.DOTALL, "s"),
    (re.VERBOSE, "x"),
)


def _custom_as_object(v: EJSONCustom) -> dict[str, Any]:
    # Meteor stores custom EJSON types in MongoDB as {EJSON$type, EJSON$value}.
    return {"EJSON$type": v.type, "EJSON$value": v.value}


def _cmp_numbers(a: Any, b: Any) -> int:
    an, bn = is_nan(a), is_nan(b)
    if an or bn:
        return 0 if an and bn else (-1 if an else 1)
    return -1 if a < b else (1 if a > b else 0)


def _cmp_str(a: str, b: str) -> int:
    return -1 if a < b else (1 if a > b else 0)


def _cmp_items(a: list[tuple[str, Any]], b: list[tuple[str, Any]]) -> int:
    for (ka, va), (kb, vb) in zip(a, b, strict=False):
        ba, bb = bracket(va), bracket(vb)
        if ba != bb:
            return -1 if ba < bb else 1
        if ka != kb:
            return -1 if ka < kb else 1
        c = _cmp_same(ba, va, vb)
        if c:
            return c
    return (len(a) > len(b)) - (len(a) < len(b))


def _cmp_lists(a: Any, b: Any) -> int:
    for va, vb in zip(a, b, strict=False):
        c = compare(va, vb)
        if c:
            return c
    return (len(a) > len(b)) - (len(a) < len(b))


def _cmp_same(br: int, a: Any, b: Any) -> int:
    if br == NUMBER:
        return _cmp_numbers(a, b)
    if br == STRING:
        return _cmp_str(a, b)
    if br == OBJECT:
        da = _custom_as_object(a) if isinstance(a, EJSONCustom) else a
        db = _custom_as_object(b) if isinstance(b, EJSONCustom) else b
        return _cmp_items(list(da.items()), list(db.items()))
    if br == ARRAY:
        return _cmp_lists(a, b)
    if br == DATE:
        ma, mb = date_to_ms(a), date_to_ms(b)
        return (ma > mb) - (ma < mb)
    if br == BOOL:
        return (bool(a) > bool(b)) - (bool(a) < bool(b))
    if br == OID:
        return int(a.binary > b.binary) - int(a.binary < b.binary)
    if br == BINARY:
        ba, bb = bytes(a), bytes(b)
        if len(ba) != len(bb):
            return -1 if len(ba) < len(bb) else 1
        return (ba > bb) - (ba < bb)
    if br == REGEX:
        pa, pb = regex_parts(a), regex_parts(b)
        return int(pa > pb) - int(pa < pb)
    if br == TIMESTAMP:
        ta, tb = (a.time, a.inc), (b.time, b.inc)
        return (ta > tb) - (ta < tb)
    return 0  # null, missing, MinKey, MaxKey


def compare(a: Any, b: Any) -> int:
    """Compare two decoded values in BSON order; return -1, 0 or 1.

    NaN equals NaN and sorts below every other number. Dates compare by whole milliseconds.
    """
    ba, bb = bracket(a), bracket(b)
    if ba != bb:
        return -1 if ba < bb else 1
    return _cmp_same(ba, a, b)


def equal(a: Any, b: Any) -> bool:
    """BSON equality: numbers across int/float/Decimal, ``bool`` apart, key order significant."""
    ta = type(a)
    if ta is type(b) and (ta is str or ta is int):
        return bool(a == b)
    return compare(a, b) == 0


# --------------------------------------------------------------------------- $type

TYPE_ALIASES: Final[dict[str, int]] = {
    "double": 1,
    "string": 2,
    "object": 3,
    "array": 4,
    "binData": 5,
    "undefined": 6,
    "objectId": 7,
    "bool": 8,
    "date": 9,
    "null": 10,
    "regex": 11,
    "dbPointer": 12,
    "javascript": 13,
    "symbol": 14,
    "javascriptWithScope": 15,
    "int": 16,
    "timestamp": 17,
    "long": 18,
    "decimal": 19,
    "minKey": -1,
    "maxKey": 127,
}
"""``$type`` string aliases and their BSON type numbers (``"number"`` is handled apart)."""

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def type_code(v: Any) -> int | None:
    """Return the BSON type number a value is stored as (``None`` for :data:`MISSING`).

    Python ints are ``int`` (16) when they fit in 32 bits and ``long`` (18) otherwise, as PyMongo
    encodes them; ``bson.Int64`` is always ``long``.
    """
    t = type(v)
    if t is str:
        return 2
    if t is bool:
        return 8
    if t is int:
        return 16 if _INT32_MIN <= v <= _INT32_MAX else 18
    if t is float:
        return 1
    if v is None:
        return 10
    if v is MISSING:
        return None
    br = bracket(v)
    if br == NUMBER:
        if isinstance(v, Int64):
            return 18
        if isinstance(v, Decimal):
            return 19
        if isinstance(v, float):
            return 1
        return 16 if _INT32_MIN <= v <= _INT32_MAX else 18
    return _BRACKET_TYPE[br]


_BRACKET_TYPE: Final[dict[int, int]] = {
    STRING: 2,
    OBJECT: 3,
    ARRAY: 4,
    BINARY: 5,
    OID: 7,
    BOOL: 8,
    DATE: 9,
    NULL: 10,
    REGEX: 11,
    TIMESTAMP: 17,
    MINKEY: -1,
    MAXKEY: 127,
}


# --------------------------------------------------------------------------- sort bytes

_EXP_BIAS = 2**31


def _digits_body(d: Decimal) -> bytes:
    """Order-preserving body for a positive finite number: exponent, then digits, then 0."""
    sign, digits, _exp = d.as_tuple()
    del sign
    ds = "".join(map(str, digits)).rstrip("0")
    adj = d.adjusted()
    adj = max(-_EXP_BIAS, min(_EXP_BIAS - 1, adj))
    return struct.pack(">I", adj + _EXP_BIAS) + bytes(int(c) + 1 for c in ds) + b"\x00"


def _number_body(v: Any) -> bytes:
    if is_nan(v):
        return b"\x00"
    if isinstance(v, float) and math.isinf(v):
        return b"\x01" if v < 0 else b"\x05"
    d = v if isinstance(v, Decimal) else Decimal(v)
    if d.is_infinite():
        return b"\x01" if d < 0 else b"\x05"
    if d == 0:
        return b"\x03"
    if d > 0:
        return b"\x04" + _digits_body(d)
    return b"\x02" + bytes(255 - x for x in _digits_body(-d))


def _string_body(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass").replace(b"\x00", b"\x00\xff") + b"\x00\x01"


def _body(br: int, v: Any) -> bytes:
    if br == NUMBER:
        return _number_body(v)
    if br == STRING:
        return _string_body(v)
    if br == OBJECT:
        obj = _custom_as_object(v) if isinstance(v, EJSONCustom) else v
        parts = []
        for k, x in obj.items():
            bx = bracket(x)
            parts.append(bytes((bx + 2,)) + _string_body(k) + _body(bx, x))
        return b"".join(parts) + b"\x00"
    if br == ARRAY:
        parts = []
        for x in v:
            bx = bracket(x)
            parts.append(bytes((bx + 2,)) + _body(bx, x))
        return b"".join(parts) + b"\x00"
    if br == DATE:
        return struct.pack(">Q", (date_to_ms(v) + 2**63) & (2**64 - 1))
    if br == BOOL:
        return b"\x01" if v else b"\x00"
    if br == OID:
        return bytes(v.binary)
    if br == BINARY:
        raw = bytes(v)
        return struct.pack(">I", len(raw)) + b"\x00" + raw
    if br == REGEX:
        p, f = regex_parts(v)
        return _string_body(p) + _string_body(f)
    if br == TIMESTAMP:
        return struct.pack(">II", v.time, v.inc)
    return b""


def sort_bytes(v: Any) -> bytes:
    """Encode a value so that byte order is BSON order; the encoding is prefix-free.

    Numbers are encoded exactly (as decimal digits), so ints, floats and Decimals interleave
    correctly. Inverting every byte of an encoding reverses the order.
    """
    br = bracket(v)
    return bytes((br + 2,)) + _body(br, v)


def invert(b: bytes) -> bytes:
    """Invert every byte: the descending twin of a :func:`sort_bytes` encoding."""
    return b.translate(_INVERT)


_INVERT: Final = bytes(255 - i for i in range(256))

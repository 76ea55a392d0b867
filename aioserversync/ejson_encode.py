"""Encoding Python values to Meteor EJSON: :func:`encode` (wire structure) and :func:`dumps` (text).

The type mapping is in :mod:`aioserversync.ejson`, which re-exports both functions.
"""

from __future__ import annotations

import base64
import math
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
from bson import Decimal128, ObjectId, Regex

from .ejson_types import _PY_FLAG_LETTERS, EJSONCustom, EJSONType, RegExp, date_to_ms
from .exceptions import EJSONError

__all__ = ["dumps", "encode"]

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
_SAFE_INT = 2**53


def _would_decode_special(obj: dict[str, Any]) -> bool:
    # Meteor's escape rule: one or two keys matching any converter's JSON shape.
    n = len(obj)
    if n == 1:
        return any(k in obj for k in ("$date", "$InfNaN", "$binary", "$escape"))
    if n == 2:
        return ("$regexp" in obj and "$flags" in obj) or ("$type" in obj and "$value" in obj)
    return False


def _regexp_flags(p: re.Pattern[Any]) -> str:
    return "".join(letter for bit, letter in _PY_FLAG_LETTERS if p.flags & bit)


def _encode_any(v: Any, strict: bool) -> Any:
    t = type(v)
    if t is str or v is None or t is bool:
        return v
    if t is int:
        if v < _INT_MIN or v > _INT_MAX or (strict and not -_SAFE_INT <= v <= _SAFE_INT):
            raise EJSONError(f"integer {v} is out of range for EJSON (JavaScript numbers)")
        return v
    if t is float:
        if v != v:
            return {"$InfNaN": 0}
        if v in (math.inf, -math.inf):
            return {"$InfNaN": 1 if v > 0 else -1}
        return v
    if t is dict:
        out: dict[str, Any] = {}
        for k, x in v.items():
            if type(k) is not str:
                raise EJSONError(f"EJSON object keys must be strings, got {k!r}")
            out[k] = _encode_any(x, strict)
        if len(out) <= 2 and _would_decode_special(out):
            return {"$escape": out}
        return out
    if t is list or t is tuple:
        return [_encode_any(x, strict) for x in v]
    return _encode_other(v, strict)


def _encode_other(v: Any, strict: bool) -> Any:
    if isinstance(v, datetime):
        return {"$date": date_to_ms(v)}
    if isinstance(v, bytes | bytearray | memoryview):
        return {"$binary": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, ObjectId):
        return {"$type": "oid", "$value": str(v)}
    if isinstance(v, Decimal):
        return {"$type": "Decimal", "$value": str(v)}
    if isinstance(v, Decimal128):
        return {"$type": "Decimal", "$value": str(v.to_decimal())}
    if isinstance(v, RegExp):
        return {"$regexp": v.pattern, "$flags": v.flags}
    if isinstance(v, re.Pattern):
        if not isinstance(v.pattern, str):
            raise EJSONError("bytes regular expressions cannot be EJSON")
        return {"$regexp": v.pattern, "$flags": _regexp_flags(v)}
    if isinstance(v, Regex):
        return {"$regexp": str(v.pattern), "$flags": _bson_regex_flags(v)}
    if isinstance(v, EJSONCustom):
        return {"$type": v.type, "$value": v.value}
    if isinstance(v, EJSONType):
        return {"$type": v.ejson_type(), "$value": v.ejson_value()}
    # Subclasses of the JSON types (bson.Int64, str enums, OrderedDict, …) encode as their base.
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        return _encode_any(int(v), strict)
    if isinstance(v, float):
        return _encode_any(float(v), strict)
    if isinstance(v, str):
        return str(v)
    if isinstance(v, dict):
        return _encode_any(dict(v), strict)
    if isinstance(v, list | tuple):
        return _encode_any(list(v), strict)
    if isinstance(v, date):
        raise EJSONError("a date without a time is not EJSON; use a datetime")
    raise EJSONError(f"{type(v).__name__} values cannot be encoded as EJSON")


def _bson_regex_flags(r: Regex[Any]) -> str:
    flags = r.flags if isinstance(r.flags, int) else 0
    return "".join(letter for bit, letter in _PY_FLAG_LETTERS if flags & bit)


def encode(value: Any, *, strict_integers: bool = False) -> Any:
    """Turn a Python value into its EJSON wire structure (plain dicts, lists and scalars).

    Args:
        value: Any value of the types in the :mod:`aioserversync.ejson` table, nested in dicts,
            lists and tuples.
        strict_integers: Refuse integers that JavaScript cannot hold exactly (beyond 2**53).

    Raises:
        EJSONError: For values EJSON cannot carry (sets, naive dates without time, non-string
            keys, integers out of range, …).
    """
    return _encode_any(value, strict_integers)


def dumps(value: Any, *, strict_integers: bool = False) -> bytes:
    """Encode a value as EJSON JSON text (UTF-8 bytes, key order kept, never NaN literals).

    Raises:
        EJSONError: As :func:`encode`, or for strings orjson refuses (lone surrogates).
    """
    try:
        return orjson.dumps(_encode_any(value, strict_integers))
    except orjson.JSONEncodeError as exc:
        raise EJSONError(str(exc)) from exc

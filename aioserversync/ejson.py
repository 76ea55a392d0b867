"""Meteor EJSON: encode Python values to the JSON Meteor expects, and decode them back.

Type mapping (ddp-facts §6):

================================  ==============================================================
Python                            wire form
================================  ==============================================================
``datetime`` (aware, or naive     ``{"$date": <int ms since epoch>}``; decoded as aware UTC. Finer
taken as UTC)                     than a millisecond is lost, exactly as in Meteor.
``bytes``/``bytearray``           ``{"$binary": "<standard base64>"}``; decoded as ``bytes``
``bson.ObjectId``                 ``{"$type": "oid", "$value": "<24 lowercase hex>"}``
``decimal.Decimal``               ``{"$type": "Decimal", "$value": "1.5"}`` (mongo-decimal)
``float`` NaN / +inf / -inf       ``{"$InfNaN": 0}`` / ``{"$InfNaN": 1}`` / ``{"$InfNaN": -1}``
:class:`RegExp`, ``re.Pattern``   ``{"$regexp": "...", "$flags": "..."}``
registered custom types           ``{"$type": name, "$value": <JSON>}``
unknown ``$type`` on input        :class:`EJSONCustom` (kept opaque; encodes back unchanged)
a dict that looks special         ``{"$escape": {...}}`` (one level; the values stay EJSON)
================================  ==============================================================

orjson pitfalls, handled explicitly:

* **NaN and infinities**: orjson silently writes ``null`` for them, so the encoder walks the value
  first and turns them into ``$InfNaN``. Literal ``NaN`` in input is refused by orjson and reported
  as :class:`~aioserversync.exceptions.EJSONError`.
* **Integers**: orjson cannot write integers outside the signed/unsigned 64-bit range; the encoder
  refuses them with :class:`~aioserversync.exceptions.EJSONError` rather than a bare ``TypeError``.
  On input, integers beyond 64 bits come back as ``float``: that is what a JavaScript peer means by
  them, since every JavaScript number is a double. Integers above 2**53 lose precision in any
  JavaScript peer; pass ``strict_integers=True`` to :func:`encode`/:func:`dumps` to refuse them.

Only the ``fields``, ``params`` and ``result`` members of DDP messages are EJSON (ddp-facts §0);
the protocol core decodes exactly those.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, runtime_checkable

import orjson
from bson import Decimal128, ObjectId, Regex

from .exceptions import EJSONError

__all__ = [
    "EJSONCustom",
    "EJSONType",
    "RegExp",
    "add_type",
    "date_to_ms",
    "decode",
    "decode_inplace",
    "dumps",
    "encode",
    "loads",
    "ms_to_date",
    "remove_type",
    "validate",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
_SAFE_INT = 2**53
_REGEXP_FLAGS = "gimuy"
_PY_FLAG_LETTERS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"))


@dataclass(frozen=True, slots=True)
class RegExp:
    """A JavaScript regular expression as EJSON carries it.

    Attributes:
        pattern: The source text.
        flags: JavaScript flags (``g i m u y``; Meteor's decoder drops the others).
    """

    pattern: str
    flags: str = ""

    def compile(self) -> re.Pattern[str]:
        """Compile to a Python pattern, mapping the flags Python knows (``i``, ``m``, ``s``)."""
        flags = 0
        for bit, letter in _PY_FLAG_LETTERS:
            if letter in self.flags:
                flags |= bit
        return re.compile(self.pattern, flags)


@dataclass(frozen=True, slots=True)
class EJSONCustom:
    """A custom EJSON value of a type nobody registered, kept opaque so it round-trips.

    Attributes:
        type: The ``$type`` name.
        value: The plain-JSON ``$value``.
    """

    type: str
    value: Any


@runtime_checkable
class EJSONType(Protocol):
    """A class that knows its own EJSON form (like Meteor's ``typeName``/``toJSONValue``)."""

    def ejson_type(self) -> str:
        """Return the ``$type`` name."""
        ...

    def ejson_value(self) -> Any:
        """Return the plain-JSON ``$value``."""
        ...


def _decimal_from_json(value: Any) -> Decimal:
    try:
        return Decimal(value)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise EJSONError(f"invalid Decimal value {value!r}") from exc


def _oid_from_json(value: Any) -> ObjectId:
    if not isinstance(value, str) or not ObjectId.is_valid(value):
        raise EJSONError(f"invalid ObjectID value {value!r}")
    return ObjectId(value)


_FACTORIES: dict[str, Callable[[Any], Any]] = {"oid": _oid_from_json, "Decimal": _decimal_from_json}
_BUILTIN_TYPES = frozenset(_FACTORIES)


def add_type(name: str, factory: Callable[[Any], Any]) -> None:
    """Register a custom EJSON type, like Meteor's ``EJSON.addType``.

    Encoding uses the value's :class:`EJSONType` methods; decoding calls ``factory($value)``.

    Args:
        name: The ``$type`` name.
        factory: Builds the Python value from the plain-JSON ``$value``.

    Raises:
        EJSONError: If ``name`` is a built-in type or already registered.
    """
    if name in _FACTORIES:
        raise EJSONError(f"EJSON type {name!r} is already registered")
    _FACTORIES[name] = factory


def remove_type(name: str) -> None:
    """Unregister a custom type added with :func:`add_type` (built-in types stay)."""
    if name not in _BUILTIN_TYPES:
        _FACTORIES.pop(name, None)


def date_to_ms(value: datetime) -> int:
    """Whole milliseconds since the epoch; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - EPOCH) // _MS


def ms_to_date(ms: float) -> datetime:
    """An aware UTC datetime from milliseconds since the epoch."""
    return EPOCH + timedelta(milliseconds=ms)


def _clean_flags(flags: str) -> str:
    # Meteor's decoder: keep g i m u y, drop earlier duplicates, cut at 50 characters.
    kept = [c for c in flags if c in _REGEXP_FLAGS]
    out = [c for i, c in enumerate(kept) if c not in kept[i + 1 :]]
    return "".join(out)[:50]


# --------------------------------------------------------------------------- decoding


def _decode_special(obj: dict[str, Any]) -> Any:
    """Return the decoded special value, or ``obj`` itself when it is a plain object."""
    n = len(obj)
    if n == 1:
        if "$date" in obj:
            v = obj["$date"]
            if type(v) is int or type(v) is float:
                try:
                    return ms_to_date(v)
                except (OverflowError, ValueError) as exc:
                    raise EJSONError(f"$date out of range: {v!r}") from exc
            if isinstance(v, str):
                try:
                    d = datetime.fromisoformat(v.replace("Z", "+00:00"))
                except ValueError as exc:
                    raise EJSONError(f"invalid $date string {v!r}") from exc
                return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)
            raise EJSONError(f"invalid $date value {v!r}")
        if "$InfNaN" in obj:
            s = obj["$InfNaN"]
            if type(s) is bool or not isinstance(s, int | float):
                raise EJSONError(f"invalid $InfNaN value {s!r}")
            return math.inf if s > 0 else -math.inf if s < 0 else math.nan
        if "$binary" in obj:
            b = obj["$binary"]
            if not isinstance(b, str):
                raise EJSONError(f"invalid $binary value {b!r}")
            try:
                return base64.b64decode(b, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise EJSONError(f"invalid base64 in $binary: {b[:40]!r}") from exc
        if "$escape" in obj:
            inner = obj["$escape"]
            if type(inner) is not dict:
                raise EJSONError(f"invalid $escape value {inner!r}")
            for k, x in inner.items():
                tx = type(x)
                if tx is dict or tx is list:
                    inner[k] = _decode_any(x)
            return inner
        return obj
    if "$regexp" in obj and "$flags" in obj:
        p, f = obj["$regexp"], obj["$flags"]
        if not isinstance(p, str) or not isinstance(f, str):
            raise EJSONError(f"invalid $regexp {obj!r}")
        return RegExp(p, _clean_flags(f))
    if "$type" in obj and "$value" in obj:
        name = obj["$type"]
        if not isinstance(name, str):
            raise EJSONError(f"invalid $type {name!r}")
        factory = _FACTORIES.get(name)
        if factory is None:
            return EJSONCustom(name, obj["$value"])
        try:
            return factory(obj["$value"])
        except EJSONError:
            raise
        except Exception as exc:
            raise EJSONError(f"EJSON type {name!r} failed to decode: {exc}") from exc
    return obj


def _decode_any(v: Any) -> Any:
    t = type(v)
    if t is dict:
        if len(v) <= 2:
            for k in v:
                if not k.startswith("$"):
                    break
            else:
                special = _decode_special(v)
                if special is not v:
                    return special
        for k, x in v.items():
            tx = type(x)
            if tx is dict or tx is list:
                v[k] = _decode_any(x)
        return v
    if t is list:
        for i, x in enumerate(v):
            tx = type(x)
            if tx is dict or tx is list:
                v[i] = _decode_any(x)
        return v
    return v


def decode_inplace(value: Any) -> Any:
    """Decode a freshly parsed JSON value, reusing (and changing) its containers.

    This is the fast path for values nobody else holds, such as the output of ``orjson.loads``.

    Raises:
        EJSONError: If a special object is malformed (bad base64, bad ``$date``, …).
    """
    return _decode_any(value)


def decode(value: Any) -> Any:
    """Decode an EJSON wire value into Python values, leaving the input untouched.

    Raises:
        EJSONError: If a special object is malformed.
    """
    return _decode_any(orjson.loads(orjson.dumps(value)))


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON text and decode it as EJSON.

    Raises:
        EJSONError: On invalid JSON (including ``NaN`` literals) or invalid EJSON.
    """
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise EJSONError(f"invalid JSON: {exc}") from exc
    return _decode_any(parsed)


# --------------------------------------------------------------------------- encoding


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
        value: Any value of the types in the module table, nested in dicts, lists and tuples.
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


# --------------------------------------------------------------------------- validation


def _validate_special(obj: dict[str, Any]) -> bool:
    """Check a candidate special object; return True if its values must not be walked further."""
    n = len(obj)
    if n == 1:
        if "$date" in obj:
            v = obj["$date"]
            if type(v) is bool or not isinstance(v, int | float | str):
                raise EJSONError(f"invalid $date value {v!r}")
            return True
        if "$InfNaN" in obj:
            s = obj["$InfNaN"]
            if type(s) is bool or not isinstance(s, int | float):
                raise EJSONError(f"invalid $InfNaN value {s!r}")
            return True
        if "$binary" in obj:
            b = obj["$binary"]
            if not isinstance(b, str):
                raise EJSONError(f"invalid $binary value {b!r}")
            try:
                binascii.a2b_base64(b, strict_mode=True)
            except (binascii.Error, ValueError) as exc:
                raise EJSONError(f"invalid base64 in $binary: {b[:40]!r}") from exc
            return True
        if "$escape" in obj:
            inner = obj["$escape"]
            if type(inner) is not dict:
                raise EJSONError(f"invalid $escape value {inner!r}")
            for x in inner.values():
                _validate_any(x)
            return True
        return False
    if "$regexp" in obj and "$flags" in obj:
        if not isinstance(obj["$regexp"], str) or not isinstance(obj["$flags"], str):
            raise EJSONError(f"invalid $regexp {obj!r}")
        return True
    if "$type" in obj and "$value" in obj:
        name = obj["$type"]
        if not isinstance(name, str):
            raise EJSONError(f"invalid $type {name!r}")
        if name == "oid":
            _oid_from_json(obj["$value"])
        return True
    return False


def _validate_any(v: Any) -> None:
    t = type(v)
    if t is dict:
        if len(v) <= 2:
            for k in v:
                if not k.startswith("$"):
                    break
            else:
                if _validate_special(v):
                    return
        for x in v.values():
            tx = type(x)
            if tx is dict or tx is list:
                _validate_any(x)
    elif t is list:
        for x in v:
            tx = type(x)
            if tx is dict or tx is list:
                _validate_any(x)


def validate(value: Any) -> None:
    """Check that a parsed JSON value is valid EJSON wire data, without converting it.

    Cheaper than :func:`decode`; used where data is stored in wire form as received.

    Raises:
        EJSONError: If a special object is malformed.
    """
    _validate_any(value)

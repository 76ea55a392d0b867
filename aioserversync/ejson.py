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

This module decodes and validates; encoding is in :mod:`aioserversync.ejson_encode` and the types
and custom type registry in :mod:`aioserversync.ejson_types`. Every public name of both is
re-exported here.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from .ejson_encode import dumps, encode
from .ejson_types import (
    _FACTORIES,
    _FAST_MS_LIMIT,
    DATE_MAX_MS,
    DATE_MIN_MS,
    EPOCH,
    EJSONCustom,
    EJSONType,
    RegExp,
    _clean_flags,
    _decimal_from_json,
    _fromtimestamp,
    _oid_from_json,
    add_type,
    date_to_ms,
    ms_to_date,
    remove_type,
)
from .exceptions import EJSONError

__all__ = [
    "EPOCH",
    "EJSONCustom",
    "EJSONType",
    "RegExp",
    "add_type",
    "date_to_ms",
    "decode",
    "decode_fields",
    "decode_inplace",
    "dumps",
    "encode",
    "loads",
    "may_hold_special",
    "ms_to_date",
    "only_int_dates",
    "remove_type",
    "validate",
]

# A {"$date": <integer>} object written without spaces, as JSON.stringify and orjson write it.
# Its digits are bounded so that a match is always within DATE_MIN_MS..DATE_MAX_MS (about years
# 1653 to 5138); a date further out is checked the slow way, and refused beyond the range.
_INT_DATE_B = re.compile(rb'\{"\$date":(?:[0-9]{1,14}|-[0-9]{1,13})\}')
_INT_DATE_S = re.compile(r'\{"\$date":(?:[0-9]{1,14}|-[0-9]{1,13})\}')
_LARGE = 256
_PASSTHROUGH = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


# --------------------------------------------------------------------------- decoding


def _decode_date(v: Any) -> datetime:
    if type(v) is int or type(v) is float:
        try:
            return ms_to_date(v)
        except (OverflowError, ValueError, OSError) as exc:
            raise EJSONError(f"$date out of range: {v!r}") from exc
    if isinstance(v, str):
        try:
            d = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError as exc:
            raise EJSONError(f"invalid $date string {v!r}") from exc
        return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)
    raise EJSONError(f"invalid $date value {v!r}")


def _decode_small(obj: dict[str, Any]) -> Any:
    """Decode an object of at most two keys: a special value, or the object decoded in place.

    Meteor's rule (``fromJSONValueHelper``): a candidate has at most two keys, all starting with
    ``$``. Each converter needs exactly its own keys (one for Date, InfNaN, Binary and Escape, two
    for RegExp and Custom), so testing for those keys at the right size is the same test.
    """
    if len(obj) == 1:
        if "$date" in obj:
            return _decode_date(obj["$date"])
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
            _decode_dict(inner)
            return inner
    elif len(obj) == 2:
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
        if "$regexp" in obj and "$flags" in obj:
            p, f = obj["$regexp"], obj["$flags"]
            if not isinstance(p, str) or not isinstance(f, str):
                raise EJSONError(f"invalid $regexp {obj!r}")
            return RegExp(p, _clean_flags(f))
    _decode_dict(obj)
    return obj


def _decode_dict(obj: dict[str, Any]) -> None:
    # Replacing the value of an existing key while iterating is allowed (the size is unchanged).
    # The common {"$date": <int>} is converted inline: it is most of the special values seen.
    for k, x in obj.items():
        t = type(x)
        if t is dict:
            n = len(x)
            if n == 1 and "$date" in x:
                v = x["$date"]
                if type(v) is int and 0 <= v < _FAST_MS_LIMIT:
                    obj[k] = _fromtimestamp(v / 1000, UTC)
                else:
                    obj[k] = _decode_date(v)
            elif n <= 2:
                special = _decode_small(x)
                if special is not x:
                    obj[k] = special
            else:
                _decode_dict(x)
        elif t is list:
            _decode_list(x)


def _decode_list(arr: list[Any]) -> None:
    for i, x in enumerate(arr):
        t = type(x)
        if t is dict:
            n = len(x)
            if n == 1 and "$date" in x:
                v = x["$date"]
                if type(v) is int and 0 <= v < _FAST_MS_LIMIT:
                    arr[i] = _fromtimestamp(v / 1000, UTC)
                else:
                    arr[i] = _decode_date(v)
            elif n <= 2:
                special = _decode_small(x)
                if special is not x:
                    arr[i] = special
            else:
                _decode_dict(x)
        elif t is list:
            _decode_list(x)


def _decode_any(v: Any) -> Any:
    t = type(v)
    if t is dict:
        if len(v) <= 2:
            return _decode_small(v)
        _decode_dict(v)
    elif t is list:
        _decode_list(v)
    return v


def decode_fields(fields: dict[str, Any], *, source: str | bytes | None = None) -> dict[str, Any]:
    """Decode the ``fields`` object of a data message in place and return it.

    The top level is decoded too: Meteor escapes a document whose only fields look special
    (``{"$escape": {"$date": 1}}``), so the returned object may be a different dict.

    Args:
        fields: The freshly parsed object (it is changed in place; use the return value).
        source: The JSON text ``fields`` was parsed from, or a larger text containing it (such as
            the whole DDP frame). When :func:`may_hold_special` says it cannot hold a special
            object, the walk is skipped.

    Raises:
        EJSONError: If a special object is malformed, or ``fields`` decodes to something other
            than an object.
    """
    if source is not None and not may_hold_special(source):
        return fields
    if len(fields) <= 2:
        # Only an escaped object can stand for a document here ({"$escape": {...}}).
        out = _decode_small(fields)
        if type(out) is not dict:
            raise EJSONError(f"fields must decode to an object, not {type(out).__name__}")
        return out
    _decode_dict(fields)
    return fields


def may_hold_special(source: str | bytes) -> bool:
    """Whether JSON text may hold an EJSON special object: it has a ``$`` or a backslash.

    Every special object has a key starting with ``$``, written literally unless escaped.
    """
    if isinstance(source, str):
        return "$" in source or "\\" in source
    return source.find(b"$") != -1 or source.find(b"\\") != -1


def only_int_dates(source: str | bytes) -> bool:
    r"""Whether the JSON text alone proves its only special objects are ``{"$date": <int>}``.

    Sound because the text parsed as JSON: every special object needs a key starting with ``$``,
    written literally unless the text holds a backslash escape. So with no backslash in the text,
    when every ``$`` in it is the one of a ``{"$date":<digits>}`` match, there is no other
    special object (an unescaped ``{"`` can only open an object whose first key follows).
    """
    text: Any
    backslash: Any
    dollar: Any
    opening: Any
    date_re: re.Pattern[Any]
    if isinstance(source, str):
        text, backslash, dollar, opening, date_re = source, "\\", "$", '{"$date":', _INT_DATE_S
    else:
        text, backslash, dollar, opening, date_re = source, b"\\", b"$", b'{"$date":', _INT_DATE_B
    if text.find(backslash) != -1:
        return False
    markers = text.count(dollar)
    if markers == 0:
        return True
    if markers > 8:
        # Many dates (a pull result, a large document): each match holds exactly one ``$``, so
        # when there are as many matches as ``$`` signs, every ``$`` belongs to a date.
        return bool(len(date_re.findall(text)) == markers)
    pos = 0
    for _ in range(markers):
        pos = text.find(opening, pos)
        if pos < 0:
            return False
        m = date_re.match(text, pos)
        if m is None:
            return False
        pos = m.end()
    return True


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
    try:
        copy = orjson.loads(orjson.dumps(value))
    except (orjson.JSONEncodeError, orjson.JSONDecodeError) as exc:
        raise EJSONError(f"not an EJSON wire value: {exc}") from exc
    return _decode_any(copy)


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


# --------------------------------------------------------------------------- validation


def _validate_special(obj: dict[str, Any]) -> bool:
    """Check a candidate special object; return True if its values must not be walked further."""
    n = len(obj)
    if n == 1:
        if "$date" in obj:
            v = obj["$date"]
            if type(v) is bool or not isinstance(v, int | float | str):
                raise EJSONError(f"invalid $date value {v!r}")
            if isinstance(v, str):
                _decode_date(v)  # an ISO string must parse
            elif not DATE_MIN_MS <= v < DATE_MAX_MS + 1:
                raise EJSONError(f"$date out of range: {v!r}")
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
        elif name == "Decimal":
            _decimal_from_json(obj["$value"])
        return True
    return False


def _validate_any(v: Any) -> None:
    t = type(v)
    if t is dict:
        if len(v) <= 2:
            if len(v) == 1:
                d = v.get("$date")
                if type(d) is int and DATE_MIN_MS <= d <= DATE_MAX_MS:
                    return
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


def validate(value: Any, *, source: str | bytes | None = None) -> None:
    r"""Check that a parsed JSON value is valid EJSON wire data, without converting it.

    Cheaper than :func:`decode`; used where data is stored in wire form as received. Without
    ``source``, a large list (or a small dict holding one) is written back to JSON text (by
    orjson, in C) and that text is searched the same way, which is cheaper than walking it when
    its only special values are integer dates.

    Args:
        value: The parsed value.
        source: The JSON text ``value`` was parsed from, or a larger text containing it (such as
            the whole DDP frame). When given, the text is searched first: when every ``$`` in
            it belongs to a ``{"$date":<integer>}`` object (the usual case), the value is valid
            and is not walked. Backslash escapes or anything else fall back to the walk.

    Raises:
        EJSONError: If a special object is malformed.
    """
    if source is not None and only_int_dates(source):
        return
    t = type(value)
    large = t is list and len(value) >= _LARGE
    if t is dict and len(value) <= 4:  # an envelope such as a pull result: {"docs": [...], ...}
        for x in value.values():
            if type(x) is list and len(x) >= _LARGE:
                large = True
                break
    if large:
        # A large value without its source text (a pull result): writing it back out (orjson,
        # in C) and searching that text is cheaper than walking it in Python (measured 2x for
        # 10k documents) whenever its only specials are dates. Small values are walked.
        try:
            text = orjson.dumps(value, option=_PASSTHROUGH)
        except TypeError:  # not plain JSON (orjson.JSONEncodeError): the walk decides
            text = None
        if text is not None and only_int_dates(text):
            return
    _validate_any(value)

"""The Python types Meteor EJSON maps to, dates in milliseconds, and the custom type registry.

Used by :mod:`aioserversync.ejson`, which re-exports every public name here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, runtime_checkable

from bson import ObjectId

from .exceptions import EJSONError

__all__ = [
    "DATE_MAX_MS",
    "DATE_MIN_MS",
    "EPOCH",
    "EJSONCustom",
    "EJSONType",
    "RegExp",
    "add_type",
    "date_to_ms",
    "ms_to_date",
    "remove_type",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_REGEXP_FLAGS = "gimuy"
_PY_FLAG_LETTERS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"))
_FAST_MS_LIMIT = 2**32 * 1000  # below 2**32 seconds a double holds ms / 1000 within 2**-21 s
DATE_MIN_MS = -62135596800000
"""The earliest ``$date`` a ``datetime`` holds: 0001-01-01T00:00:00Z, in ms since the epoch."""
DATE_MAX_MS = 253402300799999
"""The latest whole-millisecond ``$date`` a ``datetime`` holds: 9999-12-31T23:59:59.999Z.

JavaScript dates reach further (±8.64e15 ms); a ``$date`` outside this range is refused as
invalid EJSON (:class:`~aioserversync.exceptions.EJSONError`) when received, by validation as
by decoding, rather than stored and failing later when read.
"""
_fromtimestamp = datetime.fromtimestamp


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
    if type(ms) is int and 0 <= ms < _FAST_MS_LIMIT:
        # Exact here: ms / 1000 is within 0.48 µs of the true value, and fromtimestamp rounds to
        # the nearest microsecond. About three times faster than the timedelta sum below.
        return _fromtimestamp(ms / 1000, UTC)
    return EPOCH + timedelta(milliseconds=ms)


def _clean_flags(flags: str) -> str:
    # Meteor's decoder: cut at 50 characters, keep g i m u y, drop earlier duplicates.
    kept = [c for c in flags[:50] if c in _REGEXP_FLAGS]
    return "".join(c for i, c in enumerate(kept) if c not in kept[i + 1 :])

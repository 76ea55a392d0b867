"""Value conversion between decoded EJSON values and BSON, and the key layout of side collections.

Decoded → BSON (what :class:`~aioserversync.stores.mongo.MongoStore` writes and queries with):
``datetime``, ``bytes``, ``ObjectId``, numbers, strings stay; ``Decimal`` becomes ``Decimal128``;
:class:`~aioserversync.ejson.RegExp` becomes ``bson.Regex``; a custom EJSON value becomes
``{"EJSON$type": name, "EJSON$value": value}``, exactly as Meteor's MongoDB driver stores it, so
documents written by Meteor and by this library read the same.

BSON → decoded: ``Decimal128`` → ``Decimal``, ``Regex`` → ``RegExp``, ``Int64`` → ``int``, any
``Binary`` → ``bytes``, naive ``datetime`` → aware UTC, ``EJSON$type`` objects → the custom value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bson import Binary, Decimal128, Int64, Regex
from bson.codec_options import CodecOptions

from ..ejson import EJSONCustom, EJSONType, RegExp, decode, encode
from ..exceptions import EJSONError, StoreError
from ..ids import id_parse, id_stringify
from ..typing import Document, WireFields
from .wireform import EncodedFields

__all__ = [
    "CODEC_OPTIONS",
    "doc_from_bson",
    "fields_to_bson",
    "key",
    "to_bson",
    "value_from_bson",
    "wire_from_bson",
    "wire_id_of",
]

CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True, tzinfo=UTC)

_PY_FLAGS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"), (re.VERBOSE, "x"))
_SCALARS = (str, int, float, bool, type(None))


def key(*parts: str) -> str:
    """Join key parts unambiguously (each part length-prefixed): ``key("a", "b") == "1:a1:b"``."""
    return "".join(f"{len(p)}:{p}" for p in parts)


def to_bson(value: Any) -> Any:
    """Convert a decoded value (document, selector operand, …) to what PyMongo can encode.

    Raises:
        StoreError: For values BSON cannot hold (integers beyond 64 bits).
    """
    t = type(value)
    if t is str or t is float or t is bool or value is None:
        return value
    if t is int:
        if not -(2**63) <= value < 2**63:
            raise StoreError(f"integer {value} does not fit in BSON (64-bit signed)")
        return value
    if t is dict:
        return {k: to_bson(v) for k, v in value.items()}
    if t is list or t is tuple:
        return [to_bson(v) for v in value]
    if isinstance(value, datetime | bytes | Binary):
        return value
    if isinstance(value, Decimal):
        try:
            return Decimal128(value)
        except Exception as exc:  # decimal.InvalidOperation and friends
            raise StoreError(f"Decimal {value} does not fit in Decimal128") from exc
    if isinstance(value, RegExp):
        return Regex(value.pattern, value.flags.replace("g", "").replace("y", "").replace("u", ""))
    if isinstance(value, re.Pattern):
        return value
    if isinstance(value, EJSONCustom):
        return {"EJSON$type": value.type, "EJSON$value": value.value}
    if isinstance(value, EJSONType):
        return {"EJSON$type": value.ejson_type(), "EJSON$value": value.ejson_value()}
    if isinstance(value, Mapping):
        return {k: to_bson(v) for k, v in value.items()}
    return value  # ObjectId, Int64, Decimal128, Regex and other BSON types pass through


def fields_to_bson(doc_id: Any, fields: WireFields | EncodedFields) -> dict[str, Any]:
    """Build the stored BSON document ``{"_id": doc_id, **decoded fields}`` from wire fields.

    Raises:
        StoreError: If ``fields`` is not a dict or not valid EJSON wire form.
    """
    if type(fields) is EncodedFields:
        fields = fields.decode()
    if type(fields) is not dict:
        raise StoreError(f"fields must be a dict in EJSON wire form, got {type(fields).__name__}")
    try:
        decoded = decode(fields)
    except (EJSONError, TypeError) as exc:
        raise StoreError(f"fields are not EJSON wire form: {exc}") from exc
    if type(decoded) is not dict:
        raise StoreError("fields do not decode to an object")
    out: dict[str, Any] = {"_id": doc_id}
    for k, v in decoded.items():
        if k != "_id":
            out[k] = to_bson(v)
    return out


def _regex_flags(flags: Any) -> str:
    if isinstance(flags, str):
        return "".join(c for c in flags if c in "imsux")
    return "".join(letter for bit, letter in _PY_FLAGS if flags & bit)


def value_from_bson(value: Any) -> Any:
    """Convert a value read from MongoDB to its decoded EJSON form (see the module docstring)."""
    t = type(value)
    if t is str or t is int or t is float or t is bool or value is None:
        return value
    if t is dict:
        if len(value) == 2 and "EJSON$type" in value and "EJSON$value" in value:
            try:
                return decode({"$type": value["EJSON$type"], "$value": value["EJSON$value"]})
            except EJSONError:
                return EJSONCustom(str(value["EJSON$type"]), value["EJSON$value"])
        return {k: value_from_bson(v) for k, v in value.items()}
    if t is list:
        return [value_from_bson(v) for v in value]
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, Int64):
        return int(value)
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, Regex):
        return RegExp(str(value.pattern), _regex_flags(value.flags))
    if isinstance(value, Binary | bytes):
        return bytes(value)
    if isinstance(value, Mapping):
        return {k: value_from_bson(v) for k, v in value.items()}
    return value


def doc_from_bson(raw: Mapping[str, Any]) -> Document:
    """A decoded document with ``_id`` first (if projected), from a document read from MongoDB."""
    doc: Document = {"_id": value_from_bson(raw["_id"])} if "_id" in raw else {}
    for k, v in raw.items():
        if k != "_id":
            doc[k] = value_from_bson(v)
    return doc


def wire_id_of(raw: Mapping[str, Any]) -> str:
    """The wire id of a document read from MongoDB.

    Raises:
        StoreError: If its ``_id`` is of a type Meteor cannot address.
    """
    try:
        return id_stringify(value_from_bson(raw.get("_id")))
    except EJSONError as exc:
        raise StoreError(f"document _id {raw.get('_id')!r} has no Meteor wire form") from exc


def wire_from_bson(raw: Mapping[str, Any]) -> WireFields:
    """The wire-form fields (without ``_id``) of a document read from MongoDB.

    Raises:
        StoreError: If a value has no EJSON form (BSON Timestamp, MinKey, Code, …).
    """
    try:
        fields = encode({k: value_from_bson(v) for k, v in raw.items() if k != "_id"})
    except EJSONError as exc:
        raise StoreError(
            f"document {raw.get('_id')!r} holds a value EJSON cannot carry: {exc}"
        ) from exc
    assert type(fields) is dict
    return fields


def parse_id(wire_id: str) -> Any:
    """The stored ``_id`` for a wire id (``id_parse``, converted to BSON).

    Raises:
        StoreError: If the wire id is not a string or not a valid Meteor id.
    """
    if type(wire_id) is not str:
        raise StoreError(f"document ids must be wire-id strings, got {type(wire_id).__name__}")
    try:
        return to_bson(id_parse(wire_id))
    except EJSONError as exc:
        raise StoreError(f"invalid wire id {wire_id!r}") from exc

"""Shared type aliases.

``Document`` is a decoded document: a dict whose values are Python EJSON values (``datetime``,
``bytes``, ``ObjectId``, …). ``WireFields`` is the same data in EJSON *wire* form: plain JSON
values exactly as DDP ``fields`` carry them (``{"$date": ms}``, …), never containing ``_id``.
``WireId`` is a document id in ``MongoID.idStringify`` form (ddp-facts §7.2).
"""

from __future__ import annotations

from typing import Any, Literal, NewType, TypeAlias

__all__ = [
    "Document",
    "JSONValue",
    "Mode",
    "Selector",
    "SubId",
    "WireFields",
    "WireId",
]

JSONValue: TypeAlias = Any
"""A value made only of dicts with string keys, lists, strings, numbers, booleans and None."""

Document: TypeAlias = dict[str, Any]
WireFields: TypeAlias = dict[str, Any]
WireId = NewType("WireId", str)
SubId = NewType("SubId", str)
Selector: TypeAlias = dict[str, Any]
Mode: TypeAlias = Literal["read", "online-write", "write"]

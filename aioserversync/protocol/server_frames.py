"""Server-to-client DDP frames, built without a protocol object.

Each function returns the UTF-8 JSON of one message, ready to be sent as a WebSocket text frame.
:class:`~aioserversync.protocol.server.ServerProtocol` queues them; a hub can build a frame once
and send the same bytes to many sessions.

Rules (ddp-facts §0, §3.2, §4.3): ``fields``, ``params`` and ``result`` are EJSON, everything else
(the error object and its ``details``, ``offendingMessage``) is plain JSON, in which a Date is an
ISO string as ``JSON.stringify`` writes it. ``fields`` and ``cleared`` are left out when empty,
``_id`` never appears inside ``fields``, and ids are wire ids (``id_stringify`` form).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from .. import ejson
from ..exceptions import LocalProtocolError, MeteorError
from .connection import encode_message
from .mergebox import WireOp

__all__ = [
    "SERVER_ID_FRAME",
    "added_frame",
    "changed_frame",
    "error_frame",
    "nosub_frame",
    "op_frame",
    "ready_frame",
    "removed_frame",
    "result_frame",
    "updated_frame",
]

SERVER_ID_FRAME = b'{"server_id":"0"}'
"""The welcome frame Meteor servers up to 2.2 sent before anything else (ddp-facts §1.2)."""

MISSING: Any = object()
"""Marks an absent ``result`` (a method that returned nothing) or ``offendingMessage``."""


def _plain_default(value: Any) -> Any:
    """Serialise what plain JSON cannot hold the way ``JSON.stringify`` would, never failing."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _dumps_plain(msg: dict[str, Any]) -> bytes:
    # For members that are plain JSON rather than EJSON (error objects and their details,
    # offendingMessage): Dates become ISO strings, as in Meteor.
    try:
        return orjson.dumps(msg, default=_plain_default, option=orjson.OPT_PASSTHROUGH_DATETIME)
    except orjson.JSONEncodeError as exc:
        raise LocalProtocolError(f"cannot serialise DDP message: {exc}") from exc


def _dumps(msg: dict[str, Any]) -> bytes:
    # orjson over-allocates its output buffer and shrinks it in place; frames that stay queued
    # for a while then make the allocator slow (measured 3-10x on 100k queued frames). A copy
    # into an exact-size bytes object frees the big buffer at once and is cheaper overall.
    try:
        return memoryview(orjson.dumps(msg)).tobytes()
    except orjson.JSONEncodeError as exc:
        raise LocalProtocolError(f"cannot serialise DDP message: {exc}") from exc


def _wire_fields(fields: dict[str, Any], wire: bool) -> dict[str, Any]:
    out = fields if wire else ejson.encode(fields)
    if "_id" in out:
        out = {k: v for k, v in out.items() if k != "_id"}
    return out


def added_frame(
    collection: str, id: str, fields: dict[str, Any] | None = None, *, wire: bool = False
) -> bytes:
    """Build an ``added`` frame (``fields`` left out when empty; ``_id`` never included).

    Args:
        collection: The collection name.
        id: The document id in wire form (``id_stringify``).
        fields: Python values (EJSON-encoded here), or wire values when ``wire`` is true.
        wire: ``fields`` is already EJSON-encoded.

    Raises:
        EJSONError: If a field value cannot be encoded.
        LocalProtocolError: If the message cannot be serialised.
    """
    if fields:
        f = _wire_fields(fields, wire)
        if f:
            return _dumps({"msg": "added", "collection": collection, "id": id, "fields": f})
    return _dumps({"msg": "added", "collection": collection, "id": id})


def changed_frame(
    collection: str,
    id: str,
    fields: dict[str, Any] | None = None,
    cleared: Sequence[str] | None = None,
    *,
    wire: bool = False,
) -> bytes | None:
    """Build a ``changed`` frame, or return ``None`` when it would carry nothing.

    ``fields`` and ``cleared`` are left out when empty (ddp-facts §3.2). Arguments as
    :func:`added_frame`; ``cleared`` names removed top-level fields.
    """
    msg: dict[str, Any] = {"msg": "changed", "collection": collection, "id": id}
    if fields:
        f = _wire_fields(fields, wire)
        if f:
            msg["fields"] = f
    if cleared:
        msg["cleared"] = list(cleared)
    if len(msg) == 3:
        return None
    return _dumps(msg)


def removed_frame(collection: str, id: str) -> bytes:
    """Build a ``removed`` frame (``id`` in wire form)."""
    return _dumps({"msg": "removed", "collection": collection, "id": id})


def op_frame(op: WireOp) -> bytes | None:
    """Build the frame of a merge box operation (wire values), or ``None`` for an empty change."""
    kind = op.kind
    if kind == "added":
        return added_frame(op.collection, op.id, op.fields, wire=True)
    if kind == "changed":
        return changed_frame(op.collection, op.id, op.fields, op.cleared, wire=True)
    return removed_frame(op.collection, op.id)


def ready_frame(sub_ids: Iterable[str]) -> bytes:
    """Build a ``ready`` frame for one or more subscriptions."""
    return encode_message({"msg": "ready", "subs": list(sub_ids)})


def nosub_frame(sub_id: str, error: MeteorError | None = None) -> bytes:
    """Build a ``nosub`` frame, with Meteor's error object when ``error`` is given."""
    if error is None:
        return encode_message({"msg": "nosub", "id": sub_id})
    return _dumps_plain({"msg": "nosub", "id": sub_id, "error": error.to_wire()})


def result_frame(
    method_id: str,
    result: Any = MISSING,
    *,
    error: MeteorError | None = None,
    wire: bool = False,
) -> bytes:
    """Build a ``result`` frame.

    Args:
        method_id: The method call's id.
        result: The return value (EJSON-encoded here unless ``wire``). Left out entirely, the
            message has no ``result`` key, which is what a JavaScript method returning
            ``undefined`` produces (ddp-facts §4.2).
        error: Send this error instead of a result (``to_wire()``; ``details`` stays plain JSON).
        wire: ``result`` is already EJSON-encoded.

    Raises:
        EJSONError: If ``result`` cannot be encoded.
    """
    if error is not None:
        return _dumps_plain({"msg": "result", "id": method_id, "error": error.to_wire()})
    if result is MISSING:
        return encode_message({"msg": "result", "id": method_id})
    value = result if wire else ejson.encode(result)
    return encode_message({"msg": "result", "id": method_id, "result": value})


def updated_frame(method_ids: Iterable[str]) -> bytes:
    """Build an ``updated`` frame."""
    return encode_message({"msg": "updated", "methods": list(method_ids)})


def error_frame(reason: str, offending: Any = MISSING) -> bytes:
    """Build a top-level ``error`` frame, with ``offendingMessage`` when given."""
    msg: dict[str, Any] = {"msg": "error", "reason": reason}
    if offending is not MISSING:
        msg["offendingMessage"] = offending
    return _dumps_plain(msg)

"""The data messages a merge box emits, and EJSON equality of wire values.

:class:`WireOp` is one ``added``, ``changed`` or ``removed`` to send; :func:`ejson_equal` compares
two EJSON wire values as Meteor's ``EJSON.equals`` does, which is how the merge box suppresses
values the client already has. :mod:`aioserversync.protocol.mergebox` re-exports both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

__all__ = ["WireOp", "ejson_equal"]

_MISSING: Any = object()


class WireOp(NamedTuple):
    """One data message to send: ``added``, ``changed`` or ``removed``.

    Attributes:
        kind: ``"added"``, ``"changed"`` or ``"removed"``.
        collection: The collection name.
        id: The document id in wire form (``id_stringify``).
        fields: Wire-form fields (``added``/``changed``); never holds ``_id``.
        cleared: Names of removed fields (``changed`` only).
    """

    kind: Literal["added", "changed", "removed"]
    collection: str
    id: str
    fields: dict[str, Any] | None = None
    cleared: Sequence[str] | None = None


def _op(values: tuple[Any, ...]) -> WireOp:
    # NamedTuple.__new__ is a Python function; building through tuple.__new__ is ~3x cheaper
    # on this hot path.
    return tuple.__new__(WireOp, values)


def ejson_equal(a: Any, b: Any) -> bool:
    """Compare two EJSON wire values as Meteor's ``EJSON.equals`` does.

    Key order is ignored; numbers compare by value whatever their Python type; booleans equal
    only booleans.
    """
    if a is b:
        return True
    ta = type(a)
    tb = type(b)
    if ta is dict:
        if tb is not dict or len(a) != len(b):
            return False
        for k, v in a.items():
            w = b.get(k, _MISSING)
            if w is _MISSING or not ejson_equal(v, w):
                return False
        return True
    if ta is list:
        if tb is not list or len(a) != len(b):
            return False
        return all(ejson_equal(x, y) for x, y in zip(a, b, strict=True))
    if ta is bool or tb is bool:
        return ta is tb and a == b
    if (ta is int or ta is float) and (tb is int or tb is float):
        return bool(a == b)
    return ta is tb and bool(a == b)

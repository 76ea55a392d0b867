"""How remote operations are described to ``changes()`` listeners and sync-down hooks."""

from __future__ import annotations

from typing import Any

from ..replication.diff import top_level_diff
from ..stores.base import DeleteDoc, EncodedFields, Op, PatchDoc, PutDoc
from ..typing import WireFields
from .state import CollectionState

__all__ = ["Description", "describe", "describe_feed_puts"]

Description = tuple[str, Any, tuple[str, ...]]
"""``(kind, wire fields, cleared)``: kind is ``added``, ``changed`` or ``removed``."""


def describe(op: Op) -> Description:
    """Describe a store operation as the change event it stands for."""
    if isinstance(op, PutDoc):
        return "added", op.fields, ()
    if isinstance(op, PatchDoc):
        return "changed", op.fields or {}, tuple(op.cleared or ())
    return "removed", None, ()


async def describe_feed_puts(
    notify: list[tuple[CollectionState, Op]], feed_puts: set[int]
) -> dict[int, Description]:
    """Describe the hub feed's whole-document writes as ``added`` or ``changed``.

    A feed entry carries the whole document, not what changed: for listeners and hooks the
    local copy before the batch tells an insert from an update, and gives the changed and
    cleared top-level fields. Only runs when someone listens (``notify`` is then non-empty).
    """
    wanted: dict[CollectionState, list[str]] = {}
    for cs, op in notify:
        if id(op) in feed_puts:
            wanted.setdefault(cs, []).append(op.id)  # type: ignore[union-attr]
    current: dict[CollectionState, dict[str, WireFields]] = {}
    for cs, ids in wanted.items():
        current[cs] = dict(await cs.store.get_fields(cs.local, ids))
    out: dict[int, Description] = {}
    for cs, op in notify:
        if id(op) not in feed_puts:
            if isinstance(op, DeleteDoc):
                current.get(cs, {}).pop(op.id, None)
            continue
        assert isinstance(op, PutDoc)
        fields = op.fields
        if isinstance(fields, EncodedFields):
            fields = fields.decode()
        docs = current[cs]
        old = docs.get(op.id)
        if old is None:
            out[id(op)] = ("added", fields, ())
        else:
            changed, cleared = top_level_diff(old, fields)
            out[id(op)] = ("changed", changed, tuple(cleared))
        docs[op.id] = fields
    return out

"""Top-level document diffs in EJSON wire form, as DDP ``changed`` messages express them.

DDP replaces top-level fields whole (ddp-facts §3.2), so every diff here is top-level: a set of
fields to replace and a list of fields to clear. Wire-form values compare exactly (dict equality
ignores key order, as ``EJSON.equals`` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..typing import WireFields

__all__ = ["apply_patch", "modifier_for", "top_level_diff"]


def top_level_diff(old: WireFields | None, new: WireFields) -> tuple[WireFields, list[str]]:
    """Return ``(fields, cleared)`` that turn ``old`` into ``new``.

    Args:
        old: The previous fields (``None`` counts as empty).
        new: The new fields.
    """
    if not old:
        return dict(new), []
    changed = {k: v for k, v in new.items() if k not in old or old[k] != v}
    cleared = [k for k in old if k not in new]
    return changed, cleared


def apply_patch(
    fields: WireFields | None, changed: WireFields | None, cleared: Sequence[str] | None
) -> WireFields:
    """Return a copy of ``fields`` with top-level ``changed`` set and ``cleared`` removed."""
    out = dict(fields) if fields else {}
    if cleared:
        for k in cleared:
            out.pop(k, None)
    if changed:
        out.update(changed)
    return out


def modifier_for(old: WireFields | None, new: WireFields) -> dict[str, Any] | None:
    """Return a ``$set``/``$unset`` modifier (wire values) turning ``old`` into ``new``.

    Returns ``None`` when nothing differs.
    """
    changed, cleared = top_level_diff(old, new)
    modifier: dict[str, Any] = {}
    if changed:
        modifier["$set"] = changed
    if cleared:
        modifier["$unset"] = {k: "" for k in cleared}
    return modifier or None

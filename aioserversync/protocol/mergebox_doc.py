"""One document of a merge view: who holds it, and the field-level merge rules.

:class:`_Doc` keeps, while a single subscription holds a document, only that subscription and a
reference to its field dict; once several hold it, a private dict of the visible values and, per
field, the precedence list of every holder's value. Its methods apply a subscription's changes
and clears under the rules of :mod:`aioserversync.protocol.mergebox` and return the wire
operation that keeps the client's copy right.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .wireops import _MISSING, WireOp, ejson_equal

__all__: list[str] = []  # internal to the merge box


class _Doc:
    """One document of a merge view.

    While one subscription holds it: ``subs`` is that subscription's id, ``fields`` its field dict
    (possibly shared with the caller, so replaced rather than mutated) and ``prec`` is ``None``.
    Once several hold it: ``subs`` is the list of their ids in arrival order, ``fields`` a private
    dict of the visible values and ``prec`` maps each field to its precedence list of
    ``(sub_id, value)`` pairs, the visible one first.
    """

    __slots__ = ("fields", "prec", "subs")

    def __init__(self, sub_id: str, fields: dict[str, Any]) -> None:
        self.subs: str | list[str] = sub_id
        self.fields = fields
        self.prec: dict[str, list[tuple[str, Any]]] | None = None

    def holds(self, sub_id: str) -> bool:
        subs = self.subs
        return subs == sub_id if type(subs) is str else sub_id in subs

    def make_shared(self) -> None:
        owner = self.subs
        assert type(owner) is str
        self.prec = {k: [(owner, v)] for k, v in self.fields.items()}
        self.fields = dict(self.fields)
        self.subs = [owner]

    def make_single(self) -> None:
        subs = self.subs
        assert type(subs) is list and len(subs) == 1
        self.subs = subs[0]
        self.prec = None

    def change(
        self,
        sub_id: str,
        collection: str,
        wire_id: str,
        fields: dict[str, Any],
        cleared: Sequence[str],
    ) -> WireOp | None:
        out: dict[str, Any] = {}
        out_cleared: list[str] = []
        prec = self.prec
        if prec is None:
            # Single holder: compare with the visible values, then replace the (maybe shared)
            # dict instead of mutating it.
            current = self.fields
            for key, value in fields.items():
                old = current.get(key, _MISSING)
                if old is _MISSING or not ejson_equal(old, value):
                    out[key] = value
            for key in cleared:
                if key in current and key not in out_cleared:
                    out_cleared.append(key)
            if not out and not out_cleared:
                return None
            new = dict(current)
            new.update(out)
            for key in out_cleared:
                new.pop(key, None)
                out.pop(key, None)
            self.fields = new
        else:
            visible = self.fields
            for key, value in fields.items():
                entries = prec.get(key)
                if entries is None:
                    prec[key] = [(sub_id, value)]
                    visible[key] = value
                    out[key] = value
                    continue
                for i, (holder, old) in enumerate(entries):
                    if holder == sub_id:
                        entries[i] = (sub_id, value)
                        if i == 0:
                            visible[key] = value
                            if not ejson_equal(old, value):
                                out[key] = value
                        break
                else:
                    entries.append((sub_id, value))
            for key in cleared:
                self.clear_field(sub_id, key, out, out_cleared)
        if not out and not out_cleared:
            return None
        # Reuse the caller's dict when it is exactly what changed (a hub can then send its
        # pre-encoded frame); promoted values of other holders make ``out`` differ.
        out_fields = fields if out.keys() == fields.keys() else out
        out_clear = cleared if len(out_cleared) == len(cleared) else out_cleared
        return WireOp("changed", collection, wire_id, out_fields or None, out_clear or None)

    def clear_field(
        self, sub_id: str, key: str, out: dict[str, Any], out_cleared: list[str]
    ) -> None:
        prec = self.prec
        assert prec is not None
        entries = prec.get(key)
        if entries is None:
            return
        for i, entry in enumerate(entries):
            if entry[0] == sub_id:
                value = entry[1]
                del entries[i]
                break
        else:
            return
        if not entries:
            del prec[key]
            del self.fields[key]
            out.pop(key, None)
            out_cleared.append(key)
        elif i == 0:
            promoted = entries[0][1]
            self.fields[key] = promoted
            if ejson_equal(value, promoted):
                out.pop(key, None)
            else:
                out[key] = promoted

"""Range hints: let SQLite serve ``{a: {$gte: x, $lt: y}}`` with one two-sided index range.

MongoDB reads ``{a: {$gte: x, $lt: y}}`` as two independent field tests (an array passes when
one element is ``>= x`` and another ``< y``), so the translation is an ``AND`` of two ``OR``
conditions and SQLite can use an index for only one of the bounds. A *hint* is an extra
condition implied by both tests: the value lies in ``[x, y)``, or it is an array, a special
number object, or a prefix of the path is an array. Adding it changes no result but gives SQLite
a bounded range to search.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from ..ejson import date_to_ms
from .nodes import Cmp, Field, Node
from .paths import LEAF_BOTH
from .sqlexpr import SPECIAL_KEYS, AnyLoc, Frag, Loc
from .values import DATE, NUMBER, STRING, bracket

__all__ = ["range_hints"]

_LOW: Final = {"gt": ">", "gte": ">="}
_HIGH: Final = {"lt": "<", "lte": "<="}


def _bound(v: Any) -> Any:
    """The SQL value of a bound, or ``None`` when it cannot be bound exactly."""
    if isinstance(v, bool):
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, int):
        return v if -(2**63) <= v < 2**63 else None
    if isinstance(v, Decimal) and v.is_finite() and Decimal(float(v)) == v:
        return float(v)
    return None


def range_hints(children: tuple[Node, ...], root: AnyLoc) -> list[Frag]:
    """Hints for each path that has both a lower and an upper comparison among ``children``."""
    groups: dict[tuple[str, ...], list[Cmp]] = {}
    for c in children:
        if isinstance(c, Field) and c.leaf == LEAF_BOTH and isinstance(c.pred, Cmp):
            groups.setdefault(c.parts, []).append(c.pred)
    hints = []
    for parts, cmps in groups.items():
        low = next((c for c in cmps if c.op in _LOW), None)
        high = next((c for c in cmps if c.op in _HIGH), None)
        if low is None or high is None or parts[0] == "_id":
            continue
        hint = _hint(parts, low, high, root)
        if hint is not None:
            hints.append(hint)
    return hints


def _hint(parts: tuple[str, ...], low: Cmp, high: Cmp, root: AnyLoc) -> Frag | None:
    br = bracket(low.value)
    if br != bracket(high.value) or br not in (NUMBER, STRING, DATE):
        return None
    if any(p in SPECIAL_KEYS for p in parts):
        return None
    locs: list[Loc] = []
    cur: Any = root
    for p in parts:
        cur = cur.key(p)
        if not isinstance(cur, Loc):
            return None
        locs.append(cur)
    full = locs[-1]
    val = full.value
    if br == DATE:
        assert isinstance(low.value, datetime) and isinstance(high.value, datetime)
        d = full.key("$date")
        assert isinstance(d, Loc)
        lo = date_to_ms(low.value) + (1 if low.op == "gt" else 0)
        hi = date_to_ms(high.value) + (1 if high.op == "lte" else 0)
        scalar = f"{d.value}>=? AND {d.value}<?"
        params: tuple[Any, ...] = (lo, hi)
    else:
        lo_v, hi_v = _bound(low.value), _bound(high.value)
        if lo_v is None or hi_v is None:
            return None
        scalar = f"{val}{_LOW[low.op]}? AND {val}{_HIGH[high.op]}?"
        params = (lo_v, hi_v)
    terms = [f"({scalar})", f"({val}>='[' AND {val}<'\\')"]
    if br == NUMBER:
        terms.append(f"({val}>='{{' AND {val}<'|')")  # NaN, infinities and Decimals
    terms += [f"{loc.type}='array'" for loc in locs[:-1]]
    return Frag(" OR ".join(terms), params)

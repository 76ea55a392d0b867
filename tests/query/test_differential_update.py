"""Differential tests: ``apply_update`` against montydb 2.5.6 (memory storage).

For every generated (document, modifier) pair both engines must fail, or produce the same
document: same values, same types, same key order (both apply paths in MongoDB 5.0's order).
Known montydb divergences from MongoDB are named exclusions (the detectors below); the MongoDB
behaviour for each is asserted in ``test_updater.py``.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bson.int64 import Int64
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from montydb import MontyClient

from aioserversync.exceptions import ModifierError
from aioserversync.query import apply_update
from aioserversync.query.values import equal
from tests.query.strategies import documents, modifiers

MIN_PAIRS = 2000


def normalize(v: Any) -> Any:
    """montydb returns naive UTC datetimes and ``Int64`` for large ints: map them back."""
    if isinstance(v, datetime) and v.tzinfo is None:
        return v.replace(tzinfo=UTC)
    if isinstance(v, Int64):
        return int(v)
    if isinstance(v, dict):
        return {k: normalize(x) for k, x in v.items()}
    if isinstance(v, list):
        return [normalize(x) for x in v]
    return v


def naive_dates(v: Any) -> Any:
    """montydb compares stored dates as naive UTC: give it operands in the same form."""
    if isinstance(v, datetime) and v.tzinfo is not None:
        return v.astimezone(UTC).replace(tzinfo=None)
    if isinstance(v, dict):
        return {k: naive_dates(x) for k, x in v.items()}
    if isinstance(v, list):
        return [naive_dates(x) for x in v]
    return v


def strict_same(a: Any, b: Any) -> bool:
    """Same structure, types, key order and values (NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(strict_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def _missing(doc: dict[str, Any], path: str) -> bool:
    cur: Any = doc
    for p in path.split("."):
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list) and p.isdigit() and int(p) < len(cur):
            cur = cur[int(p)]
        else:
            return True
    return False


# --------------------------------------------------------------------------- montydb divergences


def removal_creates_parents(doc: dict[str, Any], mod: dict[str, Any], *_: Any) -> bool:
    """montydb's ``$unset``/``$pull``/``$pullAll``/``$pop`` of a missing path create it as ``{}``.

    MongoDB leaves the document unchanged (dependencies.md §7 lists the ``$unset`` case).
    """
    return any(
        _missing(doc, p) for op in ("$unset", "$pull", "$pullAll", "$pop") for p in mod.get(op, {})
    )


def mul_missing_int(doc: dict[str, Any], mod: dict[str, Any], *_: Any) -> bool:
    """montydb's ``$mul`` of a missing field stores ``0.0`` whatever the multiplier's type.

    MongoDB stores zero of the multiplier's type (``0`` for an int).
    """
    return any(
        _missing(doc, p) and not isinstance(v, float) for p, v in mod.get("$mul", {}).items()
    )


def add_to_set_each_duplicates(doc: dict[str, Any], mod: dict[str, Any], *_: Any) -> bool:
    """montydb adds every ``$addToSet: {$each: […]}`` value, duplicates included.

    MongoDB's ``AddToSetNode`` deduplicates the ``$each`` list first (order kept).
    """
    for arg in mod.get("$addToSet", {}).values():
        if isinstance(arg, dict) and isinstance(arg.get("$each"), list):
            each = arg["$each"]
            if any(equal(x, y) for i, x in enumerate(each) for y in each[i + 1 :]):
                return True
    return False


def empty_object_operand(doc: dict[str, Any], mod: dict[str, Any], *_: Any) -> bool:
    """montydb drops ``$set``/``$min``/``$max`` of ``{}`` and refuses ``$addToSet`` of ``{}``.

    MongoDB stores the empty object like any other value.
    """
    return any(v == {} for op in mod.values() for v in op.values())


def _leaf_diffs(a: Any, b: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]] | None:
    """Paths where ``a`` and ``b`` differ only by Python-equal leaves (``None``: other diffs)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return None
        out: list[tuple[Any, ...]] = []
        for k in a:
            sub = _leaf_diffs(a[k], b[k], (*path, k))
            if sub is None:
                return None
            out += sub
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return None
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            sub = _leaf_diffs(x, y, (*path, i))
            if sub is None:
                return None
            out += sub
        return out
    if strict_same(a, b):
        return []
    return [path] if a == b else None


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def python_equal_write_skipped(
    doc: dict[str, Any], mod: dict[str, Any], mine: Any, theirs: Any
) -> bool:
    """montydb skips a write whose new value is Python-equal to the old one.

    ``0 == False`` and ``0 == 0.0`` in Python, so montydb keeps the old type; MongoDB writes the
    new value and its type. Recognised only where montydb's values are exactly the old ones.
    """
    if not (isinstance(mine, dict) and isinstance(theirs, dict)):
        return False
    diffs = _leaf_diffs(mine, theirs)
    if not diffs:
        return False
    try:
        return all(strict_same(_at(theirs, p), _at(doc, p)) for p in diffs)
    except (KeyError, IndexError, TypeError):
        return False


UPDATE_ORACLE_BUGS: dict[str, Callable[..., bool]] = {
    "removal_creates_parents": removal_creates_parents,
    "mul_missing_int": mul_missing_int,
    "add_to_set_each_duplicates": add_to_set_each_duplicates,
    "empty_object_operand": empty_object_operand,
    "python_equal_write_skipped": python_equal_write_skipped,
}


def test_apply_update_agrees_with_montydb() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coll = MontyClient(":memory:").db.diff
    stats: Counter[str] = Counter()
    unexplained: list[Any] = []

    @settings(
        max_examples=800,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(documents, min_size=3, max_size=3), modifiers())
    def check(docs: list[dict[str, Any]], mod: dict[str, Any]) -> None:
        for doc in docs:
            compare_one({"_id": 1, **doc}, mod)

    def compare_one(doc: dict[str, Any], mod: dict[str, Any]) -> None:
        snapshot = repr(doc)
        try:
            mine: Any = apply_update(doc, mod)
        except ModifierError:
            mine = ModifierError
        assert repr(doc) == snapshot, "the input document was modified"
        coll.delete_many({})
        coll.insert_one(dict(doc))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                coll.update_one({"_id": 1}, naive_dates(mod))
            theirs: Any = normalize(coll.find_one({"_id": 1}))
        except Exception:  # montydb raises its WriteError and a few others
            theirs = ModifierError
        if (mine is ModifierError and theirs is ModifierError) or (
            mine is not ModifierError and theirs is not ModifierError and strict_same(mine, theirs)
        ):
            stats["agree"] += 1
            return
        for name, detect in UPDATE_ORACLE_BUGS.items():
            if detect(doc, mod, mine, theirs):
                stats[f"excluded:{name}"] += 1
                return
        unexplained.append((doc, mod, mine, theirs))

    check()
    assert not unexplained, "\n".join(map(repr, unexplained[:5]))
    assert stats["agree"] >= MIN_PAIRS, stats
    excluded = sum(v for k, v in stats.items() if k.startswith("excluded:"))
    assert excluded < stats["agree"] * 0.1, stats

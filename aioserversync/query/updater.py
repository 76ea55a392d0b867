"""Update modifiers (``$set``, ``$inc``, ``$push`` …) and replacements on decoded documents.

Semantics follow MongoDB 5.0 and later:

* all paths of one modifier are checked together: the same path twice, or a path and one of its
  prefixes (``a`` and ``a.b``), is a conflict, across operators (``$rename`` counts its source
  and its target);
* paths are applied in MongoDB's order (field names compared as strings, all-digit names as
  numbers), so fields a modifier creates are appended in that order;
* ``$set`` creates missing objects along the path and pads arrays with ``null`` up to an index;
  walking into a scalar or naming a field of an array is an error; ``$unset``, ``$pull``,
  ``$pop`` and a ``$rename`` source ignore paths that do not exist;
* ``_id`` cannot change.

The input document is never modified. The result is a new document that shares untouched
sub-objects with the input; treat both as immutable.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from ..exceptions import ModifierError
from ..typing import Document
from .paths import is_index
from .update_ops import (
    ArraySpec,
    add_numbers,
    add_to_set,
    multiply_numbers,
    numeric_arg,
    parse_array_spec,
    pull_test,
    push_values,
    value_arg,
    zero_like,
)
from .values import MISSING, compare, equal, is_number

__all__ = ["apply_update", "is_replacement", "validate_modifier"]

OPERATORS: Final = frozenset(
    {
        "$set",
        "$unset",
        "$inc",
        "$mul",
        "$min",
        "$max",
        "$rename",
        "$push",
        "$pull",
        "$pullAll",
        "$addToSet",
        "$pop",
        "$currentDate",
        "$setOnInsert",
    }
)
_CREATING: Final = frozenset(
    {"$set", "$inc", "$mul", "$min", "$max", "$push", "$addToSet", "$currentDate", "$setOnInsert"}
)


@dataclass(frozen=True, slots=True)
class _Action:
    op: str
    parts: tuple[str, ...]
    arg: Any


def is_replacement(modifier: Any) -> bool:
    """Whether ``modifier`` is a whole-document replacement (no ``$`` operators at the top)."""
    return isinstance(modifier, dict) and not any(
        isinstance(k, str) and k.startswith("$") for k in modifier
    )


def validate_modifier(modifier: Any) -> None:
    """Check a modifier or replacement without applying it.

    Raises:
        ModifierError: For unknown operators, bad operands, empty operands, conflicting paths,
            and operators mixed with plain fields.
    """
    try:
        if is_replacement(modifier):
            _check_replacement(modifier)
        else:
            _parse(modifier)
    except RecursionError as exc:
        raise ModifierError("the modifier is nested too deeply") from exc


def apply_update(
    doc: Document,
    modifier: dict[str, Any],
    *,
    is_upsert_insert: bool = False,
    now: datetime | None = None,
) -> Document:
    """Apply a modifier (or a replacement) to a document and return the new document.

    Args:
        doc: The decoded document (it is not modified).
        modifier: ``{"$set": {…}, …}``, or a replacement document without operators.
        is_upsert_insert: The document is being inserted by an upsert: ``$setOnInsert`` applies.
        now: The time ``$currentDate`` writes (default: the current UTC time, to the millisecond).

    Raises:
        ModifierError: For invalid modifiers (see :func:`validate_modifier`), for operations that
            do not fit the document (``$inc`` of a string, ``$push`` to a non-array, a path
            through a scalar), and for any change of ``_id``. The input is left as it was.
    """
    try:
        if is_replacement(modifier):
            return _replace(doc, modifier)
        actions = _parse(modifier)
        w = _Writer(doc)
        stamp = _now(now)
        for a in actions:
            if a.op == "$setOnInsert" and not is_upsert_insert:
                continue
            w.apply(a, stamp)
    except RecursionError as exc:
        raise ModifierError("the modifier or document is nested too deeply") from exc
    out = w.root
    _check_id(doc, out)
    return out


def _now(now: datetime | None) -> datetime:
    t = now if now is not None else datetime.now(UTC)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


# --------------------------------------------------------------------------- replacement


def _check_replacement(rep: dict[str, Any]) -> None:
    for k in rep:
        if not isinstance(k, str):
            raise ModifierError(f"field names must be strings, got {k!r}")


def _replace(doc: Document, rep: dict[str, Any]) -> Document:
    _check_replacement(rep)
    body = {k: value_arg(v, "replacement") for k, v in rep.items() if k != "_id"}
    if "_id" in doc:
        if "_id" in rep and not _same(rep["_id"], doc["_id"]):
            raise ModifierError(
                "the (immutable) field '_id' was found to have been altered by the replacement"
            )
        return {"_id": doc["_id"], **body}
    if "_id" in rep:
        return {"_id": value_arg(rep["_id"], "replacement"), **body}
    return body


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and equal(a, b)


def _check_id(before: Document, after: Document) -> None:
    if "_id" not in before:
        return
    if "_id" not in after or not _same(before["_id"], after["_id"]):
        raise ModifierError(
            "Performing an update on the path '_id' would modify the immutable field '_id'"
        )


# --------------------------------------------------------------------------- parsing


def _split(path: Any, op: str) -> tuple[str, ...]:
    if not isinstance(path, str) or not path:
        raise ModifierError(f"{op}: field paths must be non-empty strings, got {path!r}")
    parts = tuple(path.split("."))
    for p in parts:
        if p == "":
            raise ModifierError(f"{op}: the path {path!r} has an empty part")
        if p == "$" or p.startswith("$["):
            raise ModifierError(f"{op}: positional operators are not supported ({path!r})")
        if p.startswith("$"):
            raise ModifierError(f"{op}: the path {path!r} has a field starting with '$'")
    return parts


def _cmp_part(a: str, b: str) -> int:
    if is_index(a) and is_index(b) and len(a) != len(b):
        return -1 if len(a) < len(b) else 1
    return (a > b) - (a < b)


def _path_order(a: _Action, b: _Action) -> int:
    for pa, pb in zip(a.parts, b.parts, strict=False):
        c = _cmp_part(pa, pb)
        if c:
            return c
    return (len(a.parts) > len(b.parts)) - (len(a.parts) < len(b.parts))


def _parse(modifier: Any) -> list[_Action]:
    if not isinstance(modifier, dict):
        raise ModifierError(f"a modifier must be a dict, got {type(modifier).__name__}")
    if not modifier:
        raise ModifierError("the update modifier is empty")
    actions: list[_Action] = []
    claimed: list[tuple[tuple[str, ...], str]] = []
    for op, operand in modifier.items():
        if not isinstance(op, str) or not op.startswith("$"):
            raise ModifierError(f"cannot mix update operators and plain fields ({op!r})")
        if op not in OPERATORS:
            raise ModifierError(f"Unknown modifier: {op}")
        if not isinstance(operand, dict):
            raise ModifierError(f"Modifiers operate on fields but we found {operand!r} for {op}")
        if not operand:
            raise ModifierError(f"'{op}' is empty. You must specify a field like so: {{{op}: …}}")
        for path, arg in operand.items():
            parts = _split(path, op)
            action = _Action(op, parts, _parse_arg(op, path, arg))
            if op == "$rename":
                target = action.arg
                claimed.append((parts, path))
                claimed.append((target, ".".join(target)))
                action = _Action(op, target, parts)  # applied at the target; arg = source
            else:
                claimed.append((parts, path))
            actions.append(action)
    _check_conflicts(claimed)
    return sorted(actions, key=functools.cmp_to_key(_path_order))


def _check_conflicts(claimed: list[tuple[tuple[str, ...], str]]) -> None:
    ordered = sorted(claimed)
    for (pa, sa), (pb, sb) in itertools.pairwise(ordered):
        if pb[: len(pa)] == pa:
            raise ModifierError(f"Updating the path '{sb}' would create a conflict at '{sa}'")


def _parse_arg(op: str, path: str, arg: Any) -> Any:
    if op in ("$set", "$setOnInsert", "$min", "$max"):
        return value_arg(arg, op)
    if op == "$unset":
        return None
    if op in ("$inc", "$mul"):
        return numeric_arg(arg, op)
    if op in ("$push", "$addToSet"):
        return parse_array_spec(op, arg)
    if op == "$pull":
        return pull_test(arg)
    if op == "$pullAll":
        if not isinstance(arg, list | tuple):
            raise ModifierError(f"$pullAll requires an array argument but was given {arg!r}")
        return tuple(value_arg(x, op) for x in arg)
    if op == "$pop":
        if isinstance(arg, bool) or not is_number(arg) or arg not in (1, -1):
            raise ModifierError(f"$pop expects 1 or -1, found: {arg!r}")
        return int(arg)
    if op == "$rename":
        if not isinstance(arg, str):
            raise ModifierError(f"The 'to' field for $rename must be a string: {path}: {arg!r}")
        target = _split(arg, op)
        if target == tuple(path.split(".")):
            raise ModifierError(f"The source and target field for $rename must differ: {path}")
        return target
    # $currentDate
    if isinstance(arg, bool):
        return "date"
    if isinstance(arg, dict) and len(arg) == 1 and arg.get("$type") in ("date", "timestamp"):
        return arg["$type"]
    raise ModifierError(f"$currentDate: {path} must be true or {{$type: 'date'|'timestamp'}}")


# --------------------------------------------------------------------------- applying


def _type_name(v: Any) -> str:
    return type(v).__name__


class _Writer:
    """Copy-on-write access to a document: containers are copied once, on first write."""

    __slots__ = ("owned", "root")

    def __init__(self, doc: Document) -> None:
        self.root: dict[str, Any] = dict(doc)
        self.owned: set[int] = {id(self.root)}

    def _own(self, parent: Any, key: Any, child: Any) -> Any:
        if id(child) in self.owned:
            return child
        copy = dict(child) if isinstance(child, dict) else list(child)
        parent[key] = copy
        self.owned.add(id(copy))
        return copy

    def _walk(
        self, parts: tuple[str, ...], create: bool, strict: bool = False
    ) -> tuple[Any, str] | None:
        """Return the (writable) container of the last part, or ``None`` if it is missing.

        ``create`` makes missing objects on the way. A path blocked by a scalar, or naming a
        field of an array, raises when creating or ``strict`` (MongoDB's "path not viable");
        otherwise it is a no-op (``$unset``).
        """
        cur: Any = self.root
        for i, p in enumerate(parts[:-1]):
            if isinstance(cur, list):
                if not is_index(p):
                    if create or strict:
                        raise ModifierError(
                            f"Cannot use the part ({p} of {'.'.join(parts)}) to traverse the "
                            f"element ({{{parts[i - 1]}: {cur!r}}})"
                        )
                    return None
                idx = int(p)
                child = cur[idx] if idx < len(cur) else MISSING
                key: Any = idx
            else:
                child = cur.get(p, MISSING)
                key = p
            if child is MISSING:
                if not create:
                    return None
                new: dict[str, Any] = {}
                _put(cur, key, new)
                self.owned.add(id(new))
                cur = new
            elif isinstance(child, dict | list):
                cur = self._own(cur, key, child)
            else:
                if create:
                    raise ModifierError(
                        f"Cannot create field '{parts[i + 1]}' in element {{{p}: {child!r}}}"
                    )
                if strict:
                    raise ModifierError(
                        f"Cannot use the part ({parts[i + 1]} of {'.'.join(parts)}) to traverse "
                        f"the element ({{{p}: {child!r}}})"
                    )
                return None
        return cur, parts[-1]

    def apply(self, a: _Action, now: datetime) -> None:
        if a.op == "$rename":
            self._rename(a.arg, a.parts)
            return
        strict = a.op != "$unset"
        found = self._walk(a.parts, a.op in _CREATING, strict)
        if found is None:
            return
        container, last = found
        if isinstance(container, list):
            if not is_index(last):
                if strict:
                    parent = a.parts[-2] if len(a.parts) > 1 else ""
                    raise ModifierError(
                        f"Cannot create field '{last}' in element {{{parent}: {container!r}}}"
                    )
                return
            key: Any = int(last)
            current = container[key] if key < len(container) else MISSING
        else:
            key = last
            current = container.get(last, MISSING)
        path = ".".join(a.parts)
        new = self._compute(a, path, current, now)
        if new is _UNSET:
            if isinstance(container, list):
                if key < len(container):
                    container[key] = None
            else:
                container.pop(key, None)
        elif new is not _KEEP:
            _put(container, key, new)

    def _compute(self, a: _Action, path: str, current: Any, now: datetime) -> Any:
        op = a.op
        if op in ("$set", "$setOnInsert"):
            return a.arg
        if op == "$unset":
            return _UNSET if current is not MISSING else _KEEP
        if op in ("$inc", "$mul"):
            if current is MISSING:
                return a.arg if op == "$inc" else zero_like(a.arg)
            if not is_number(current):
                raise ModifierError(
                    f"Cannot apply {op} to a value of non-numeric type. "
                    f"{{{path}: {current!r}}} has the field '{a.parts[-1]}' of non-numeric type "
                    f"{_type_name(current)}"
                )
            return add_numbers(current, a.arg) if op == "$inc" else multiply_numbers(current, a.arg)
        if op in ("$min", "$max"):
            if current is MISSING:
                return a.arg
            c = compare(a.arg, current)
            return a.arg if (c < 0 if op == "$min" else c > 0) else _KEEP
        if op == "$currentDate":
            return now  # EJSON has no timestamp type: {$type: "timestamp"} also stores a date
        if op in ("$push", "$addToSet"):
            spec: ArraySpec = a.arg
            if current is MISSING:
                current = []
            elif not isinstance(current, list):
                raise ModifierError(
                    f"The field '{path}' must be an array but is of type "
                    f"{_type_name(current)} in document"
                )
            if op == "$push":
                return push_values(current, spec)
            return add_to_set(current, spec.each)
        # $pull, $pullAll, $pop
        if current is MISSING:
            return _KEEP
        if not isinstance(current, list):
            raise ModifierError(f"Cannot apply {op} to a non-array value ({path})")
        if op == "$pop":
            if not current:
                return _KEEP
            return current[1:] if a.arg < 0 else current[:-1]
        if op == "$pull":
            test = a.arg
            return [e for e in current if not test(e)]
        values = a.arg
        return [e for e in current if not any(equal(e, v) for v in values)]

    def _rename(self, source: tuple[str, ...], target: tuple[str, ...]) -> None:
        if self._read(source) is MISSING:
            return
        cur: Any = self.root
        for p in target[:-1]:
            cur = cur.get(p) if isinstance(cur, dict) else None
            if isinstance(cur, list):
                raise ModifierError(
                    f"The destination field cannot be an array element: {'.'.join(target)}"
                )
        src = self._walk(source, False)
        assert src is not None
        container, last = src
        dst = self._walk(target, True)
        assert dst is not None
        tcontainer, tlast = dst
        value = container.pop(last)
        tcontainer[tlast] = value

    def _read(self, parts: tuple[str, ...]) -> Any:
        """The value at ``parts`` for a ``$rename`` source (``MISSING`` if it does not exist).

        Raises:
            ModifierError: The source exists but lies inside an array.
        """
        cur: Any = self.root
        through_array = False
        for p in parts:
            if isinstance(cur, dict) and p in cur:
                cur = cur[p]
            elif isinstance(cur, list) and is_index(p) and int(p) < len(cur):
                through_array = True
                cur = cur[int(p)]
            else:
                return MISSING
        if through_array:
            raise ModifierError(f"The source field cannot be an array element: {'.'.join(parts)}")
        return cur


def _put(container: Any, key: Any, value: Any) -> None:
    if isinstance(container, list):
        if key >= len(container):
            container.extend([None] * (key - len(container) + 1))
        container[key] = value
    else:
        container[key] = value


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_UNSET: Final = _Marker("UNSET")
_KEEP: Final = _Marker("KEEP")

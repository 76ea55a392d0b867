"""The parsed form of a selector: document nodes and value predicates.

* **document nodes** (:class:`And`, :class:`Or`, :class:`Not`, :class:`Field`) say how a whole
  document matches; a :class:`Field` holds when *any* value at its path satisfies its predicate
  (see :mod:`.paths` for how paths walk arrays);
* **value predicates** (:class:`Eq`, :class:`Cmp`, :class:`In`, :class:`Regex`, :class:`Exists`,
  :class:`Type`, :class:`Size`, :class:`ElemMatchValue`, :class:`ElemMatchDoc`, :class:`VNot`,
  :class:`VAnd`, :class:`VFalse`) test one value. They appear in a :class:`Field`, or inside
  ``$elemMatch`` where they test each array element as a single value.

:mod:`.selector` builds these from selector documents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from .paths import LEAF_BOTH

__all__ = [
    "FALSE",
    "TRUE",
    "And",
    "Cmp",
    "ElemMatchDoc",
    "ElemMatchValue",
    "Eq",
    "Exists",
    "Field",
    "In",
    "Node",
    "Not",
    "Or",
    "Regex",
    "Size",
    "Type",
    "VAnd",
    "VFalse",
    "VNot",
    "VPred",
]


# --------------------------------------------------------------------------- value predicates


@dataclass(frozen=True, slots=True)
class Eq:
    """The value equals ``value`` (BSON equality; ``None`` also matches a missing value)."""

    value: Any


@dataclass(frozen=True, slots=True)
class Cmp:
    """The value is in ``value``'s bracket and compares ``op`` (``gt``, ``gte``, ``lt``, ``lte``).

    Attributes:
        op: The comparison.
        value: The operand.
    """

    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class Regex:
    """A string value matches the expression, or the value is an equal regular expression.

    Attributes:
        pattern: The source text.
        flags: Every flag given, sorted (``g``, ``u`` and ``y`` count for equality only).
        compiled: The Python pattern, with the ``i``, ``m``, ``s`` and ``x`` flags.
    """

    pattern: str
    flags: str
    compiled: re.Pattern[str] = field(compare=False, hash=False, repr=False)


@dataclass(frozen=True, slots=True)
class In:
    """The value equals one of ``values`` or matches one of ``regexes``."""

    values: tuple[Any, ...]
    regexes: tuple[Regex, ...] = ()


@dataclass(frozen=True, slots=True)
class Exists:
    """The value exists (is not missing)."""


@dataclass(frozen=True, slots=True)
class Type:
    """The value's BSON type number is in ``codes`` (``0`` stands for the ``"number"`` alias)."""

    codes: frozenset[int]


@dataclass(frozen=True, slots=True)
class Size:
    """The value is an array of exactly ``n`` elements."""

    n: int


@dataclass(frozen=True, slots=True)
class ElemMatchValue:
    """The value is an array with one element satisfying every predicate."""

    preds: tuple[VPred, ...]


@dataclass(frozen=True, slots=True)
class ElemMatchDoc:
    """The value is an array with one object (or array) element matching ``node``."""

    node: Node


@dataclass(frozen=True, slots=True)
class VNot:
    """Negation of a predicate."""

    pred: VPred


@dataclass(frozen=True, slots=True)
class VAnd:
    """Every predicate holds."""

    preds: tuple[VPred, ...]


@dataclass(frozen=True, slots=True)
class VFalse:
    """Never holds (``$all: []``)."""


VPred: TypeAlias = (
    Eq
    | Cmp
    | Regex
    | In
    | Exists
    | Type
    | Size
    | ElemMatchValue
    | ElemMatchDoc
    | VNot
    | VAnd
    | VFalse
)

# --------------------------------------------------------------------------- document nodes


@dataclass(frozen=True, slots=True)
class Field:
    """Some value at ``path`` satisfies ``pred``.

    Attributes:
        path: The dotted path as written.
        parts: The path split on dots.
        pred: The value predicate.
        leaf: How a leaf array is walked (:data:`.paths.LEAF_BOTH` or :data:`.paths.LEAF_ARRAY`).
    """

    path: str
    parts: tuple[str, ...]
    pred: VPred
    leaf: int = LEAF_BOTH


@dataclass(frozen=True, slots=True)
class And:
    """Every child matches (an empty ``And`` always matches)."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Some child matches (an empty ``Or`` never matches)."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The child does not match."""

    child: Node


Node: TypeAlias = And | Or | Not | Field

TRUE: Final[Node] = And(())
FALSE: Final[Node] = Or(())

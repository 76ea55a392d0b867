"""Dotted field paths and MongoDB's rules for walking them through documents and arrays.

``iter_values(doc, parts)`` yields every value a query on ``parts`` looks at, exactly as MongoDB's
``BSONElementIterator`` does:

* a missing field, or a non-object met before the path ends, yields :data:`MISSING` once;
* an array at the end of the path yields each element, then the array itself;
* an array in the middle of the path is walked: each object element continues the path, and an
  element whose position equals the next (all-digit) part is used as ``a.<i>``; elements that are
  neither yield nothing (so ``{"a.b": null}`` does not match ``{a: [1, 2]}``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from ..exceptions import QueryError
from .values import MISSING

__all__ = [
    "EMPTY_ARRAY",
    "LEAF_ARRAY",
    "LEAF_BOTH",
    "LEAF_ELEMENTS",
    "array_as_doc",
    "is_index",
    "iter_values",
    "split_path",
]

LEAF_BOTH: Final = 0
"""Yield a leaf array's elements, then the array (most query operators)."""
LEAF_ARRAY: Final = 1
"""Yield a leaf array only, without its elements (``$size``, ``$elemMatch``)."""
LEAF_ELEMENTS: Final = 2
"""Yield a leaf array's elements only, and :data:`EMPTY_ARRAY` for an empty one (sort keys)."""


class _EmptyArray:
    __slots__ = ()

    def __repr__(self) -> str:
        return "EMPTY_ARRAY"


EMPTY_ARRAY: Final = _EmptyArray()
"""Yielded in :data:`LEAF_ELEMENTS` mode for an empty leaf array."""


def split_path(path: Any, *, what: str = "field path") -> tuple[str, ...]:
    """Split a dotted path into its parts.

    Raises:
        QueryError: If ``path`` is not a string, or has an empty part (``""``, ``"a..b"``).
    """
    if not isinstance(path, str):
        raise QueryError(f"{what} must be a string, got {type(path).__name__}")
    parts = tuple(path.split("."))
    if any(p == "" for p in parts):
        raise QueryError(f"{what} {path!r} has an empty part")
    return parts


def is_index(part: str) -> bool:
    """Whether a path part can address an array position (ASCII digits only)."""
    return part.isascii() and part.isdigit()


def array_as_doc(arr: list[Any]) -> dict[str, Any]:
    """View an array as the document MongoDB sees: keys ``"0"``, ``"1"`` and so on."""
    return {str(i): v for i, v in enumerate(arr)}


def iter_values(
    doc: dict[str, Any], parts: tuple[str, ...], start: int = 0, leaf: int = LEAF_BOTH
) -> Iterator[Any]:
    """Yield the values at ``parts[start:]`` in ``doc`` (see the module docstring)."""
    n = len(parts)
    i = start
    cur = doc
    while True:
        v = cur.get(parts[i], MISSING)
        if isinstance(v, dict):
            if i + 1 == n:
                yield v
                return
            cur = v
            i += 1
            continue
        if isinstance(v, list):
            break
        yield MISSING if i + 1 < n else v
        return
    if i + 1 == n:
        if leaf == LEAF_BOTH:
            yield from v
            yield v
        elif leaf == LEAF_ARRAY:
            yield v
        elif v:
            yield from v
        else:
            yield EMPTY_ARRAY
        return
    yield from _iter_array(v, parts, i + 1, leaf)


def _iter_array(arr: list[Any], parts: tuple[str, ...], j: int, leaf: int) -> Iterator[Any]:
    nxt = parts[j]
    offset = nxt if is_index(nxt) else None
    last = j + 1 == len(parts)
    for pos, e in enumerate(arr):
        if isinstance(e, dict):
            yield from iter_values(e, parts, j, leaf)
            if offset is not None and offset == str(pos):
                if last:
                    yield e
                else:
                    yield from iter_values(e, parts, j + 1, leaf)
        elif offset is not None and offset == str(pos):
            if last:
                yield e
            elif isinstance(e, list):
                yield from _iter_array(e, parts, j + 1, leaf)

"""Sort specifications and MongoDB sort order over decoded documents.

The sort key of one field follows MongoDB:

* values compare in BSON order (:mod:`.values`): null and missing first, then numbers, strings,
  objects, arrays, binary, ObjectId, booleans, dates, regular expressions;
* an array contributes its elements: the smallest one in an ascending sort, the largest one in a
  descending sort; an empty array sorts before null;
* a path through arrays collects the values from every element (``a.b`` over
  ``[{b: 3}, {b: 1}]`` gives 1 ascending, 3 descending).

Keys are bytes (:func:`.values.sort_bytes`), so sorting is plain byte comparison and stable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from ..ejson import date_to_ms
from ..exceptions import QueryError
from ..typing import Document
from .paths import EMPTY_ARRAY, LEAF_ELEMENTS, iter_values, split_path
from .values import (
    BOOL,
    DATE,
    MISSING,
    NULL,
    NUMBER,
    STRING,
    UNDEFINED,
    bracket,
    invert,
    is_nan,
    sort_bytes,
)

__all__ = ["field_sort_value", "normalize_sort", "sort_documents", "sort_key"]

_DIRECTIONS: dict[Any, int] = {
    "asc": 1,
    "ascending": 1,
    "desc": -1,
    "descending": -1,
}


def _direction(field: str, d: Any) -> int:
    if isinstance(d, str):
        if d.lower() in _DIRECTIONS:
            return _DIRECTIONS[d.lower()]
    elif not isinstance(d, bool) and isinstance(d, int | float) and d in (1, -1):
        return int(d)
    raise QueryError(f"invalid sort direction {d!r} for {field!r}; use 1 or -1")


def normalize_sort(sort: Any) -> list[tuple[str, int]]:
    """Validate a sort and return it as ``[(path, 1 | -1), …]``.

    Accepts ``None``, a mapping ``{"a": 1, "b": -1}``, a list of ``(path, direction)`` pairs, a
    single pair, or Meteor's forms (bare path strings sort ascending; ``"asc"``/``"desc"``).

    Raises:
        QueryError: For bad paths, bad directions, duplicates, or ``$`` keys such as ``$natural``.
    """
    if sort is None:
        return []
    items: Iterable[Any]
    if isinstance(sort, Mapping):
        items = list(sort.items())
    elif isinstance(sort, str):
        items = [(sort, 1)]
    elif isinstance(sort, list | tuple):
        if len(sort) == 2 and isinstance(sort[0], str) and not isinstance(sort[1], list | tuple):
            if not (isinstance(sort[1], str) and sort[1].lower() not in _DIRECTIONS):
                items = [tuple(sort)]
            else:
                items = sort
        else:
            items = sort
    else:
        raise QueryError(f"a sort must be a list of (field, direction) or a dict, not {sort!r}")
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    for item in items:
        if isinstance(item, str):
            path, d = item, 1
        elif isinstance(item, list | tuple) and len(item) == 2:
            path, d = item
        else:
            raise QueryError(f"invalid sort item {item!r}")
        split_path(path, what="sort field")
        if path.startswith("$"):
            raise QueryError(f"unsupported sort key {path!r}")
        if path in seen:
            raise QueryError(f"duplicate sort key {path!r}")
        seen.add(path)
        out.append((path, _direction(path, d)))
    return out


def field_sort_value(doc: Document, parts: tuple[str, ...], direction: int) -> Any:
    """Return the value a document sorts by for one field (``MISSING`` for an empty array)."""
    best: bytes | None = None
    best_value: Any = None
    for v in iter_values(doc, parts, 0, LEAF_ELEMENTS):
        if v is MISSING:
            v = None
        elif v is EMPTY_ARRAY:
            v = MISSING
        b = sort_bytes(v)
        if best is None or (b < best if direction > 0 else b > best):
            best, best_value = b, v
    return best_value


def sort_key(sort: Any) -> Callable[[Document], bytes]:
    """Return a key function giving MongoDB order for ``sort`` (see the module docstring).

    Raises:
        QueryError: If the sort is malformed (see :func:`normalize_sort`).
    """
    spec = [(split_path(p), d) for p, d in normalize_sort(sort)]

    def key(doc: Document) -> bytes:
        out = []
        for parts, d in spec:
            b = sort_bytes(field_sort_value(doc, parts, d))
            out.append(b if d > 0 else invert(b))
        return b"".join(out)

    return key


def sort_documents(docs: Iterable[Document], sort: Any) -> list[Document]:
    """Return the documents in MongoDB sort order; ties keep their input order.

    Sorts once per field, last field first (Python's sort is stable), with cheap tuple keys.

    Raises:
        QueryError: If the sort is malformed.
    """
    spec = normalize_sort(sort)
    out = list(docs)
    for path, direction in reversed(spec):
        out.sort(key=_field_key(split_path(path), direction), reverse=direction < 0)
    return out


def _value_key(v: Any) -> tuple[Any, ...]:
    """A tuple ordering like :func:`.values.sort_bytes`, cheaper for common scalars."""
    t = type(v)
    if t is str:
        return (STRING, v)
    if t is int or t is float:
        return (NUMBER, 0) if v != v else (NUMBER, 1, v)
    if v is None:
        return (NULL,)
    if t is bool:
        return (BOOL, v)
    if t is datetime:
        return (DATE, date_to_ms(v))
    if v is MISSING:
        return (UNDEFINED,)
    br = bracket(v)
    if br == NUMBER:
        return (NUMBER, 0) if is_nan(v) else (NUMBER, 1, v)
    if br == STRING:
        return (STRING, str(v))
    return (br, sort_bytes(v))


def _field_key(parts: tuple[str, ...], direction: int) -> Callable[[Document], tuple[Any, ...]]:
    if len(parts) == 1:
        key = parts[0]

        def flat(doc: Document) -> tuple[Any, ...]:
            v = doc.get(key)
            if type(v) is not list:
                return _value_key(v)
            if not v:
                return (UNDEFINED,)
            keys = [_value_key(e) for e in v]
            return min(keys) if direction > 0 else max(keys)

        return flat

    def walked(doc: Document) -> tuple[Any, ...]:
        return _value_key(field_sort_value(doc, parts, direction))

    return walked

"""Inclusion and exclusion projections, as MongoDB applies them to documents.

* ``{"a": 1, "b.c": 1}`` keeps ``_id``, ``a`` and ``b.c``; ``{"a": 0}`` drops ``a``; ``_id`` is kept
  unless ``{"_id": 0}``, the only exclusion allowed in an inclusion projection (and vice versa).
* Dotted paths walk objects and arrays: including ``a.b`` keeps ``b`` in ``a`` and in every
  object of an array ``a``; non-object array elements are dropped, an object without ``b`` stays
  as ``{}``, and a scalar ``a`` disappears. Excluding ``a.b`` removes ``b`` wherever it is found.
* Fields keep the document's order. The result is a new document; values that the projection
  keeps whole are shared with the input, not copied.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import QueryError
from ..typing import Document
from .paths import split_path

__all__ = ["apply_projection", "compile_projection"]

_Tree = dict[str, Any]  # path part -> True (leaf) or a subtree


def compile_projection(projection: Any) -> tuple[bool, _Tree, bool] | None:
    """Validate a projection; return ``(inclusive, tree, keep_id)``, or ``None`` for no-op.

    ``tree`` maps path parts to ``True`` (the whole value) or to a subtree; the ``_id`` rule is
    already folded into it.

    Raises:
        QueryError: For mixed inclusion/exclusion, path collisions, and operators such as
            ``$slice`` or ``$elemMatch`` (unsupported).
    """
    if projection is None:
        return None
    if not isinstance(projection, dict):
        raise QueryError(f"a projection must be a dict, got {type(projection).__name__}")
    if not projection:
        return None
    keep_id = True
    inclusive: bool | None = None
    tree: _Tree = {}
    for path, flag in projection.items():
        parts = split_path(path, what="projection field")
        if any(p.startswith("$") for p in parts):
            raise QueryError(f"unsupported projection path {path!r}")
        if isinstance(flag, bool):
            include = flag
        elif isinstance(flag, int | float) and flag == flag:
            include = bool(flag)
        else:
            raise QueryError(f"unsupported projection value for {path!r}: {flag!r}")
        if path == "_id":
            keep_id = include
            continue
        if inclusive is None:
            inclusive = include
        elif inclusive != include:
            raise QueryError("cannot mix inclusion and exclusion in a projection")
        _insert(tree, parts, path)
    if inclusive is None:  # only _id: {_id: 1} keeps only _id, {_id: 0} drops it
        inclusive = keep_id
    if (inclusive and keep_id) or (not inclusive and not keep_id):
        tree["_id"] = True
    return inclusive, tree, keep_id


def _insert(tree: _Tree, parts: tuple[str, ...], path: str) -> None:
    node = tree
    for i, p in enumerate(parts):
        last = i == len(parts) - 1
        existing = node.get(p)
        if existing is True or (last and existing is not None):
            raise QueryError(f"path collision at {path!r}")
        if last:
            node[p] = True
        else:
            node = node.setdefault(p, {})


def apply_projection(doc: Document, projection: Any) -> Document:
    """Return the projected document (see the module docstring).

    Raises:
        QueryError: If the projection is malformed (see :func:`compile_projection`).
    """
    compiled = compile_projection(projection)
    if compiled is None:
        return dict(doc)
    inclusive, tree, _keep_id = compiled
    return _include(doc, tree) if inclusive else _exclude(doc, tree)


def _include(obj: dict[str, Any], tree: _Tree) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in obj.items():
        sub = tree.get(k)
        if sub is None:
            continue
        if sub is True:
            out[k] = v
        elif isinstance(v, dict):
            out[k] = _include(v, sub)
        elif isinstance(v, list):
            out[k] = _include_list(v, sub)
    return out


def _include_list(arr: list[Any], tree: _Tree) -> list[Any]:
    out: list[Any] = []
    for e in arr:
        if isinstance(e, dict):
            out.append(_include(e, tree))
        elif isinstance(e, list):
            out.append(_include_list(e, tree))
    return out


def _exclude(obj: dict[str, Any], tree: _Tree) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in obj.items():
        sub = tree.get(k)
        if sub is None:
            out[k] = v
        elif sub is True:
            continue
        elif isinstance(v, dict):
            out[k] = _exclude(v, sub)
        elif isinstance(v, list):
            out[k] = _exclude_list(v, sub)
        else:
            out[k] = v
    return out


def _exclude_list(arr: list[Any], tree: _Tree) -> list[Any]:
    out: list[Any] = []
    for e in arr:
        if isinstance(e, dict):
            out.append(_exclude(e, tree))
        elif isinstance(e, list):
            out.append(_exclude_list(e, tree))
        else:
            out.append(e)
    return out

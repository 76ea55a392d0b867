"""The rows of :class:`~aioserversync.stores.memory.MemoryStore` and the undo log of its batches."""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["MISSING", "BaseRow", "Row", "Undo"]

MISSING: Any = object()
"""The absence of a key (in the undo log: the key was not there before)."""


class Row(NamedTuple):
    """A stored document: wire fields as JSON text, origin, rev."""

    fields: str
    origin: str | None
    rev: int | None


class BaseRow(NamedTuple):
    """A stored base: wire fields as JSON text (``None``: the remote had no document), rev."""

    fields: str | None
    rev: int | None


class Undo:
    """An undo log of dict writes, rolled back in reverse order."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: list[tuple[dict[Any, Any], Any, Any]] = []

    def set(self, d: dict[Any, Any], key: Any, value: Any) -> None:
        """Set ``d[key]``, recording what it was."""
        self.entries.append((d, key, d.get(key, MISSING)))
        d[key] = value

    def delete(self, d: dict[Any, Any], key: Any) -> None:
        """Delete ``d[key]`` if present, recording what it was."""
        old = d.get(key, MISSING)
        if old is not MISSING:
            self.entries.append((d, key, old))
            del d[key]

    def rollback(self) -> None:
        """Undo every recorded write, newest first, and empty the log."""
        for d, key, old in reversed(self.entries):
            if old is MISSING:
                d.pop(key, None)
            else:
                d[key] = old
        self.entries.clear()

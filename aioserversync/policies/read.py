"""``read``: a mirror. Local writes touch only the cache and are never sent."""

from __future__ import annotations

from typing import ClassVar

from .base import LocalOp, Route, SyncPolicy

__all__ = ["ReadPolicy"]


class ReadPolicy(SyncPolicy):
    """Mirror only. Local writes stay local and may be overwritten by the next remote change.

    Several remotes may feed one local collection; each document records its origin and each
    remote's sweep touches only its own documents.
    """

    name: ClassVar[str] = "read"
    pushes: ClassVar[bool] = False

    def route(self, op: LocalOp, *, live: bool, unsent_insert: bool = False) -> Route:
        """Every local write goes to the cache only."""
        return "local"

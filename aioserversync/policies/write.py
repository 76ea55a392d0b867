"""``write``: every local change is queued and reconciled per document; the remote wins."""

from __future__ import annotations

from typing import ClassVar

from .base import LocalOp, Route, SyncPolicy

__all__ = ["WritePolicy"]


class WritePolicy(SyncPolicy):
    """Inserts, updates and removes apply locally at once and are queued durably.

    Local updates of one document coalesce into one pending record. On push, the change is sent
    as a ``$set``/``$unset`` diff against the base (or as a remove). If the remote changed the
    document since the base, the remote wins and the local change is reported as a conflict.
    Against a hub (``ServerSyncServer``) pushes are compare-and-set on the document revision.
    """

    name: ClassVar[str] = "write"

    def route(self, op: LocalOp, *, live: bool, unsent_insert: bool = False) -> Route:
        """Every write is queued."""
        return "queue"

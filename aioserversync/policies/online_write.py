"""``online-write`` (the default): offline inserts are queued; updates and removes need the link."""

from __future__ import annotations

from typing import ClassVar

from .base import LocalOp, Route, SyncPolicy

__all__ = ["OnlineWritePolicy"]


class OnlineWritePolicy(SyncPolicy):
    """Inserts apply locally and are queued durably, then pushed exactly once.

    Updates and removes are sent to the server first and applied locally only on success; while
    the link is down they raise :class:`~aioserversync.exceptions.OfflineError` and change
    nothing. The one exception is a document that exists only as a local insert not yet sent:
    editing or removing it offline folds into that insert.
    """

    name: ClassVar[str] = "online-write"

    def route(self, op: LocalOp, *, live: bool, unsent_insert: bool = False) -> Route:
        """Inserts queue; updates and removes go straight to the server when live."""
        if op == "insert" or unsent_insert:
            return "queue"
        if not live:
            self.check_offline(op)
        return "direct"

"""Calling the user's sync hooks, and knowing when code runs inside one.

A sync hook runs inside the engine's work: a sync-down hook inside the job that applies the
remote's data, a sync-up hook inside the outbox drainer. Code in a hook that waits for sync
progress of its own remote (``wait_ready()`` before the first round, ``wait_drained()`` with
writes pending, ``resync()``) would wait for the hook itself. Those calls check
:func:`in_hook_of` and raise :class:`~aioserversync.exceptions.InvalidState` at once instead of
hanging. The mark is per task: a task the hook spawns is free to wait.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from contextvars import ContextVar
from typing import Any

from ..exceptions import InvalidState
from .state import Hook

__all__ = ["call_hook", "in_hook_of", "refuse_in_hook"]

logger = logging.getLogger("aioserversync.engine")

_IN_HOOK: ContextVar[tuple[asyncio.Task[Any] | None, str] | None] = ContextVar(
    "aioserversync_in_hook", default=None
)


async def call_hook(hook: Hook | None, op: str, _id: Any, doc: Any, origin: str = "") -> None:
    """Call a user hook (sync or async); its failure is logged, never raised into the engine.

    Args:
        hook: The hook, or ``None`` (nothing to do).
        op: The operation (``"added"``, ``"insert"`` …).
        _id: The document id.
        doc: The document or fields, as the hook's documentation says.
        origin: The origin key of the remote whose engine runs the hook.
    """
    if hook is None:
        return
    mark = _IN_HOOK.set((asyncio.current_task(), origin))
    try:
        result = hook(op, _id, doc)
        if result is not None and inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("sync hook %r failed", hook)
    finally:
        _IN_HOOK.reset(mark)


def in_hook_of(origin: str) -> bool:
    """Whether the calling task runs inside a sync hook of the remote ``origin``."""
    mark = _IN_HOOK.get()
    return mark is not None and mark[1] == origin and mark[0] is asyncio.current_task()


def refuse_in_hook(origin: str, what: str) -> None:
    """Raise if the calling task runs inside a sync hook of ``origin``.

    Raises:
        InvalidState: It does: ``what`` would wait for the hook itself.
    """
    if in_hook_of(origin):
        raise InvalidState(
            f"{what} called from a sync hook of {origin} would wait for the hook itself; "
            "call it from a task of its own (asyncio.create_task) instead"
        )

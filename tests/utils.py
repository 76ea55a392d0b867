"""Small helpers shared by the tests: bounded waits instead of sleeps."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from tests.conftest import MS


async def wait_for_condition(
    predicate: Callable[[], Any | Awaitable[Any]],
    *,
    timeout: float = 5000 * MS,
    interval: float = 5 * MS,
    message: str = "condition",
) -> Any:
    """Poll ``predicate`` (sync or async) until it returns a truthy value, within ``timeout`` s.

    This is a bounded wait on an observable condition, not a sleep used as synchronisation.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout:.2f}s waiting for {message}")
        await asyncio.sleep(interval)

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


def task_stacks() -> str:
    """Every pending task of the running loop with the frames it waits in (for a hang report)."""
    out = []
    for task in asyncio.all_tasks():
        frames = task.get_stack(limit=12)
        where = " <- ".join(
            f"{f.f_code.co_name} ({f.f_code.co_filename.rsplit('/', 2)[-1]}:{f.f_lineno})"
            for f in reversed(frames)
        )
        out.append(f"{task.get_name()}: {where or repr(task.get_coro())}")
    return "\n".join(sorted(out))


def hang_watchdog(seconds: float, log: Any) -> asyncio.TimerHandle:
    """Log :func:`task_stacks` if still running after ``seconds``; cancel the handle when done.

    For the long randomized tests: a hang past pytest-timeout then shows where each task waits.
    """
    return asyncio.get_running_loop().call_later(
        seconds, lambda: log.error("still running after %g s; tasks:\n%s", seconds, task_stacks())
    )

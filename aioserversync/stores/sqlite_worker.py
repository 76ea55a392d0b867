"""A private single-thread executor: every SQLite call of one store runs on the same thread.

sqlite3 connections must be used from the thread that made them (or serialised by hand), and one
writer per database is SQLite's model anyway. Each job is a whole store call (a batch is one job and
one transaction), so the cost of the hop (about 0.1 ms) is paid per call, not per row.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from ..exceptions import InvalidState

__all__ = ["WorkerThread"]

P = ParamSpec("P")
T = TypeVar("T")


class WorkerThread:
    """One dedicated thread that runs submitted callables in order.

    Args:
        name: The thread name (shown by debuggers and ``threading.enumerate()``).
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._executor: ThreadPoolExecutor | None = None

    @property
    def running(self) -> bool:
        """Whether the thread accepts jobs."""
        return self._executor is not None

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the thread and return its result.

        If the awaiting task is cancelled the job still runs to completion on the thread (a
        transaction is never cut in half); only its result is dropped.

        Raises:
            InvalidState: The thread is stopped.
        """
        executor = self._executor
        if executor is None:
            raise InvalidState(f"{self._name} is not running")
        loop = asyncio.get_running_loop()
        call: Callable[[], T] = functools.partial(fn, *args, **kwargs)
        return await loop.run_in_executor(executor, call)

    def stop(self) -> None:
        """Stop accepting jobs; jobs already queued still run. Idempotent."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)

    async def stop_after(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` as the last job, then stop the thread and wait for it to finish.

        Raises:
            InvalidState: The thread is stopped.
        """
        executor = self._executor
        if executor is None:
            raise InvalidState(f"{self._name} is not running")
        self._executor = None
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(executor, fn)
        finally:
            await loop.run_in_executor(None, functools.partial(executor.shutdown, wait=True))

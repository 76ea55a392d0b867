"""A private single-thread executor: every SQLite call of one store runs on the same thread.

sqlite3 connections must be used from the thread that made them (or serialised by hand), and one
writer per database is SQLite's model anyway. Each job is a whole store call (a batch is one job and
one transaction), so the cost of the hop is paid per call, not per row.

The hop is a plain queue and a result handed back with ``call_soon_threadsafe``: about 55 us a
round trip on the development VM, half of ``loop.run_in_executor`` with a one-thread
``ThreadPoolExecutor`` (about 110 us), which wraps each job in two futures. Small store calls
(``find_one``, the reads and writes of one local write) are mostly this hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from ..exceptions import InvalidState

__all__ = ["WorkerThread"]

P = ParamSpec("P")
T = TypeVar("T")

_Job = tuple[Callable[[], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


def _settle(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():  # the caller was cancelled: the job ran, its result is dropped
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


def _serve(jobs: queue.SimpleQueue[_Job | None]) -> None:
    while True:
        job = jobs.get()
        if job is None:
            return
        call, loop, fut = job
        result: Any = None
        error: BaseException | None = None
        try:
            result = call()
        except BaseException as exc:  # handed to the caller, like an executor does
            error = exc
        # A closed loop (RuntimeError): nobody waits for this result any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, fut, result, error)
        del job, call, fut, result, error


class WorkerThread:
    """One dedicated thread that runs submitted callables in order.

    Args:
        name: The thread name (shown by debuggers and ``threading.enumerate()``).
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the thread accepts jobs."""
        return self._jobs is not None

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._jobs is None:
            jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
            # A daemon thread: a store left open does not keep the process alive. A transaction
            # cut short by the interpreter's exit is rolled back by SQLite, as after a kill.
            thread = threading.Thread(target=_serve, args=(jobs,), name=self._name, daemon=True)
            thread.start()
            self._jobs, self._thread = jobs, thread

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the thread and return its result.

        If the awaiting task is cancelled the job still runs to completion on the thread (a
        transaction is never cut in half); only its result is dropped.

        Raises:
            InvalidState: The thread is stopped.
        """
        jobs = self._jobs
        if jobs is None:
            raise InvalidState(f"{self._name} is not running")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        call: Callable[[], T] = functools.partial(fn, *args, **kwargs) if args or kwargs else fn
        jobs.put((call, loop, fut))
        return await fut

    def stop(self) -> None:
        """Stop accepting jobs; jobs already queued still run. Idempotent."""
        jobs, self._jobs = self._jobs, None
        if jobs is not None:
            jobs.put(None)

    async def stop_after(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` as the last job, then stop the thread and wait for it to finish.

        Raises:
            InvalidState: The thread is stopped.
        """
        jobs, thread = self._jobs, self._thread
        if jobs is None or thread is None:
            raise InvalidState(f"{self._name} is not running")
        self._jobs = None
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        jobs.put((fn, loop, fut))
        jobs.put(None)
        try:
            await fut
        finally:
            await asyncio.to_thread(thread.join)

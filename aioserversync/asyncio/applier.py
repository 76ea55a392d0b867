"""The applier: one task that runs every store-changing job of a remote, strictly in order.

Remote data batches, resync-round commits, local writes and outbox bookkeeping all change the same
documents and the same in-memory index of pending writes. Running them one after another in a
single task makes each decision see exactly the state the previous job left, without locks, and
keeps the network reader free: it only builds operations and hands them over. The queue is
bounded, so a slow store slows the reader (backpressure) instead of growing memory.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from ..exceptions import InvalidState

__all__ = ["Applier"]

T = TypeVar("T")
GroupRunner = Callable[[list[Any]], Awaitable[list[tuple[bool, Any]]]]
logger = logging.getLogger("aioserversync.engine")


class _Group:
    """A queued job that runs the items of several callers in one runner call."""

    __slots__ = ("futures", "items", "key", "members", "runner")

    def __init__(self, key: Hashable, runner: GroupRunner) -> None:
        self.key = key
        self.runner = runner
        self.items: list[Any] = []
        self.futures: list[asyncio.Future[Any]] = []
        self.members: set[Hashable] = set()

    def add(self, member: Hashable, item: Any, fut: asyncio.Future[Any]) -> None:
        self.members.add(member)
        self.items.append(item)
        self.futures.append(fut)

    def fail(self, exc: Exception) -> None:
        for fut in self.futures:
            if not fut.done():
                fut.set_exception(exc)

    async def __call__(self) -> None:
        live = [(item, fut) for item, fut in zip(self.items, self.futures, strict=True)]
        live = [(item, fut) for item, fut in live if not fut.cancelled()]
        if not live:
            return
        try:
            outcomes = await self.runner([item for item, _ in live])
        except asyncio.CancelledError:
            for _, fut in live:
                fut.cancel()
            raise
        except Exception as exc:
            self.fail(exc)
            return
        for (_, fut), (ok, value) in zip(live, outcomes, strict=True):
            if fut.done():
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)


class Applier:
    """A sequential executor of async jobs with a bounded backlog.

    Args:
        max_backlog: Jobs queued before :meth:`wait_room` makes producers wait.
        logger: Where job failures are logged.
    """

    def __init__(
        self,
        *,
        max_backlog: int = 4,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> None:
        self._jobs: collections.deque[
            tuple[Callable[[], Awaitable[Any]], asyncio.Future[Any], bool]
        ] = collections.deque()
        self._max = max_backlog
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.logger = logger or globals()["logger"]

    def start(self) -> None:
        """Start the job task."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="aioserversync-applier"
            )

    def is_last(self, fut: asyncio.Future[Any] | None) -> bool:
        """Whether the job of ``fut`` is queued and nothing was queued after it."""
        return fut is not None and bool(self._jobs) and self._jobs[-1][1] is fut

    @property
    def full(self) -> bool:
        """Whether the backlog reached its bound (producers should wait)."""
        return not self._room.is_set()

    @property
    def closing(self) -> bool:
        """Whether :meth:`close` was called (no new job is taken)."""
        return self._closing

    @property
    def backlog(self) -> int:
        """Jobs waiting to run."""
        return len(self._jobs)

    def submit_nowait(
        self, job: Callable[[], Awaitable[T]], *, detached: bool = False
    ) -> asyncio.Future[T]:
        """Queue a job without waiting for room; return a future of its result.

        Args:
            job: The coroutine function to run.
            detached: Nobody awaits the result: a failure is logged instead of raised.

        Raises:
            InvalidState: The applier is closed.
        """
        if self._closing:
            raise InvalidState("the sync engine is closed")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.append((job, fut, detached))
        if len(self._jobs) >= self._max:
            self._room.clear()
        self._wake.set()
        return fut

    def submit_grouped(
        self,
        key: Hashable,
        member: Hashable,
        item: Any,
        runner: GroupRunner,
        *,
        max_items: int = 1000,
    ) -> asyncio.Future[Any]:
        """Queue ``item`` to run in one ``runner`` call with the items queued right before it.

        The item joins the last queued job if that job is a group of the same ``key`` with
        fewer than ``max_items`` items and no item of the same ``member`` (so that a group never
        holds two writes of one document); otherwise it starts a new group. Order with every
        other job is kept: only the last job in the queue takes new items. ``runner(items)``
        returns one ``(True, result)`` or ``(False, exception)`` per item.

        Returns:
            A future of this item's result.

        Raises:
            InvalidState: The applier is closed.
        """
        if self._closing:
            raise InvalidState("the sync engine is closed")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._jobs:
            last = self._jobs[-1][0]
            if (
                type(last) is _Group
                and last.key == key
                and len(last.items) < max_items
                and member not in last.members
            ):
                last.add(member, item, fut)
                return fut
        group = _Group(key, runner)
        group.add(member, item, fut)
        self.submit_nowait(group, detached=True)
        return fut

    async def submit(self, job: Callable[[], Awaitable[T]]) -> T:
        """Queue a job and wait for its result (its exception is raised here).

        Called from inside a running job (a sync hook that writes to a synced collection), the
        job runs at once instead: queued, it would wait for the job that waits for it.
        """
        if self.in_job():
            return await job()
        return await self.submit_nowait(job)

    def in_job(self) -> bool:
        """Whether the caller runs inside one of this applier's jobs."""
        task = self._task
        return task is not None and asyncio.current_task() is task

    async def wait_room(self) -> None:
        """Wait until the backlog is below its bound."""
        await self._room.wait()

    async def barrier(self) -> None:
        """Wait until every job queued before this call has run."""

        async def _noop() -> None:
            return None

        await self.submit(_noop)

    async def _run(self) -> None:
        while True:
            if not self._jobs:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            job, fut, detached = self._jobs.popleft()
            if len(self._jobs) < self._max:
                self._room.set()
            if fut.cancelled():
                continue
            try:
                result = await job()
            except asyncio.CancelledError:
                if not fut.done():
                    fut.cancel()
                raise
            except Exception as exc:  # the job's caller decides; the applier keeps going
                if detached:
                    self.logger.error("sync job failed: %r", exc, exc_info=exc)
                    if not fut.done():
                        fut.set_result(None)
                elif not fut.done():
                    fut.set_exception(exc)
                continue
            if not fut.done():
                fut.set_result(result)

    async def close(self) -> None:
        """Run the queued jobs, then stop."""
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await task
            except asyncio.CancelledError:
                raise
        for job, fut, _ in self._jobs:
            if type(job) is _Group:
                job.fail(InvalidState("the sync engine is closed"))
            if not fut.done():
                fut.set_exception(InvalidState("the sync engine is closed"))
        self._jobs.clear()
        self._room.set()

    async def abort(self) -> None:
        """Stop at once, failing the queued jobs."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for job, fut, _ in self._jobs:
            if type(job) is _Group:
                job.fail(InvalidState("the sync engine is closed"))
            if not fut.done():
                fut.set_exception(InvalidState("the sync engine is closed"))
        self._jobs.clear()
        self._room.set()

"""Bounded async iterators fed by a :class:`~aioserversync.asyncio.client.DDPClient`.

:class:`EventStream` backs ``client.data_events()`` and ``client.status_changes()``: each consumer
gets its own bounded buffer, filled without ever blocking the client. When a buffer is full the
oldest or the newest items are dropped (one warning per overflow episode), and iteration ends
quietly when the client closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

__all__ = ["EventStream"]

T = TypeVar("T")


class EventStream(Generic[T]):
    """An async iterator over items pushed by the client; one per consumer.

    Args:
        max_queue: Buffered items kept at most.
        drop_oldest: On overflow drop the oldest items (statuses: the latest matter) instead of
            the new ones (data events: keep what was already queued, in order).
        on_close: Called once when the stream is closed, to unregister it.
        logger: Where overflows are reported.
        name: What the stream carries, for the overflow warning.
    """

    def __init__(
        self,
        max_queue: int,
        *,
        drop_oldest: bool = False,
        on_close: Callable[[EventStream[T]], None] | None = None,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        name: str = "events",
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.max_queue = max_queue
        self.dropped = 0
        self._buf: deque[T] = deque()
        self._drop_oldest = drop_oldest
        self._on_close = on_close
        self._logger = logger or logging.getLogger("aioserversync.client")
        self._name = name
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._overflowing = False

    @property
    def closed(self) -> bool:
        """Whether the stream has ended (items still buffered are returned first)."""
        return self._closed

    def push(self, items: Iterable[T]) -> None:
        """Add items (never blocks; drops on overflow)."""
        if self._closed:
            return
        buf = self._buf
        for item in items:
            if len(buf) >= self.max_queue:
                self.dropped += 1
                if not self._overflowing:
                    self._overflowing = True
                    self._logger.warning(
                        "%s consumer too slow: buffer of %d full, dropping %s items",
                        self._name,
                        self.max_queue,
                        "old" if self._drop_oldest else "new",
                    )
                if not self._drop_oldest:
                    continue
                buf.popleft()
            buf.append(item)
        self._wake()

    def close(self) -> None:
        """End the iteration (after the buffered items); idempotent."""
        if self._closed:
            return
        self._closed = True
        self._wake()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close(self)

    async def aclose(self) -> None:
        """Stop consuming: unregister from the client and drop the buffer."""
        self.close()
        self._buf.clear()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> EventStream[T]:
        return self

    async def __anext__(self) -> T:
        while not self._buf:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if len(self._buf) <= self.max_queue // 2:
            self._overflowing = False
        return self._buf.popleft()

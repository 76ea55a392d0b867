"""Change streams: bounded async iterators of change events.

Each consumer gets its own :class:`ChangeStream` with a bounded queue. The store is the truth and
the stream only notifies: when a consumer falls behind and its queue is full, the backlog is
dropped and replaced by one ``resync`` event, so memory never grows without limit and the consumer
knows to re-read the collection. Iteration ends cleanly when the owner closes.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

from ..exceptions import InvalidState
from ..replication.changes import ChangeEvent

__all__ = ["ChangeHub", "ChangeStream"]

logger = logging.getLogger("aioserversync.changes")


class ChangeStream:
    """One consumer's bounded stream of change events. Use ``async for`` or :meth:`try_next`.

    Args:
        hub: The hub that feeds this stream.
        max_queue: The largest backlog before it is replaced by a ``resync`` event.
    """

    def __init__(self, hub: ChangeHub, max_queue: int) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self._hub = hub
        self._max = max_queue
        self._queue: collections.deque[ChangeEvent] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.dropped = 0
        """How many events were dropped because this consumer fell behind."""

    @property
    def alive(self) -> bool:
        """Whether more events may still come (false once closed and drained)."""
        return not (self._closed and not self._queue)

    def _push(self, event: ChangeEvent) -> None:
        if self._closed:
            return
        if len(self._queue) >= self._max:
            self.dropped += len(self._queue)
            logger.warning(
                "change stream for %r fell behind: %d events replaced by one resync",
                self._hub.collection,
                len(self._queue),
            )
            self._queue.clear()
            self._queue.append(ChangeEvent("resync", self._hub.collection, origin=event.origin))
            # Everything after the marker is implied by re-reading; skip until drained.
        elif self._queue and self._queue[-1].op == "resync" and len(self._queue) == 1:
            pass
        else:
            self._queue.append(event)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self) -> None:
        """Stop this stream: iteration ends after the queued events."""
        if not self._closed:
            self._closed = True
            self._hub._streams.discard(self)
            self._wake()

    def try_next(self) -> ChangeEvent | None:
        """Return the next queued event, or ``None`` if none is queued (never waits)."""
        return self._queue.popleft() if self._queue else None

    async def next(self, timeout: float | None = None) -> ChangeEvent:
        """Wait for the next event.

        Raises:
            StopAsyncIteration: The stream is closed and drained.
            TimeoutError: Nothing arrived within ``timeout`` seconds.
        """
        if self._queue:  # the common case under load: no timeout context to set up
            return self._queue.popleft()
        async with asyncio.timeout(timeout):
            while not self._queue:
                if self._closed:
                    raise StopAsyncIteration
                if self._waiter is not None and not self._waiter.done():
                    raise InvalidState("a change stream supports one waiting consumer")
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
            return self._queue.popleft()

    def __aiter__(self) -> AsyncIterator[ChangeEvent]:
        return self

    async def __anext__(self) -> ChangeEvent:
        if self._queue:
            return self._queue.popleft()
        return await self.next()

    async def __aenter__(self) -> ChangeStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


class ChangeHub:
    """Fans events of one collection out to its streams."""

    def __init__(self, collection: str) -> None:
        self.collection = collection
        self._streams: set[ChangeStream] = set()
        self._closed = False

    @property
    def listening(self) -> bool:
        """Whether any stream is open (events are only built when someone listens)."""
        return bool(self._streams)

    def subscribe(self, max_queue: int = 1024) -> ChangeStream:
        """Open a new stream.

        Raises:
            InvalidState: The hub is closed.
        """
        if self._closed:
            raise InvalidState(f"change events of {self.collection!r} are closed")
        stream = ChangeStream(self, max_queue)
        self._streams.add(stream)
        return stream

    def emit(self, events: Iterable[ChangeEvent]) -> None:
        """Deliver events to every open stream."""
        if not self._streams:
            return
        streams = list(self._streams)
        for event in events:
            for stream in streams:
                stream._push(event)

    def close(self) -> None:
        """End every stream (iteration ends cleanly after queued events)."""
        self._closed = True
        for stream in list(self._streams):
            stream.close()

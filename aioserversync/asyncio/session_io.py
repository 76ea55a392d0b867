"""The I/O half of a :class:`~aioserversync.asyncio.session.Session`: sending, heartbeat, closing.

:class:`SessionIO` holds what a session does on the socket's side, apart from reading: the
sender task that drains queued frames in batches (one socket write per batch instead of one per
message), the backpressure behind :meth:`~SessionIO.drain` and :meth:`~SessionIO.flush`, the
heartbeat and connect timers, and closing the WebSocket. :class:`Session` inherits from it and
sets every attribute declared here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ..protocol.connection import CONNECTED
from ..protocol.heartbeat import Heartbeat
from ..protocol.server import ServerProtocol
from .server_io import write_frames

if TYPE_CHECKING:
    from .server import DDPServer

__all__ = ["SessionIO"]

_BATCH = 512
"""Frames written per websockets send context (one socket write)."""
_HIGH_WATER = 2048
"""``drain()`` waits when more frames than this are queued…"""
_LOW_WATER = 512
"""…until no more than this many are left."""


class SessionIO:
    """Sending, backpressure, timers and closing of one DDP session (see the module docstring)."""

    server: DDPServer
    id: str | None
    closed: bool
    logger: logging.LoggerAdapter[logging.Logger]
    protocol: ServerProtocol
    _ws: ServerConnection
    _loop: asyncio.AbstractEventLoop
    _callback_tasks: set[asyncio.Task[Any]]
    _wakeup: asyncio.Event
    _inflight: int
    _drain_waiters: list[tuple[int, asyncio.Future[None]]]
    _closing: bool
    _hb: Heartbeat | None
    _timer: asyncio.TimerHandle | None
    _sender: asyncio.Task[None] | None

    # ------------------------------------------------------------------ public

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (queued frames are flushed first, within ``close_timeout``)."""
        self._request_close(code, reason)

    def send_frames(self, frames: Iterable[bytes]) -> None:
        """Queue pre-encoded DDP frames for this client, outside any subscription."""
        if self.closed:
            return
        self.protocol.send_frames(frames)
        self._wake()

    async def drain(self) -> None:
        """Wait until this session's send queue is short again (see ``Publication.drain``)."""
        if self._backlog() > _HIGH_WATER and self._sending():
            await self._wait_backlog(_LOW_WATER)

    async def flush(self) -> None:
        """Wait until every queued frame has been handed to the socket."""
        if self._backlog() > 0 and self._sending():
            await self._wait_backlog(0)

    # ------------------------------------------------------------------ sending

    def _send(self, frames: Iterable[bytes]) -> None:
        if self.closed:
            return
        self.protocol.send_frames(frames)
        self._wake()

    def _wake(self) -> None:
        if not self._wakeup.is_set():
            self._wakeup.set()

    def _sending(self) -> bool:
        sender = self._sender
        return not self.closed and sender is not None and not sender.done()

    def _backlog(self) -> int:
        return self.protocol.pending_frames + self._inflight

    async def _wait_backlog(self, threshold: int) -> None:
        fut: asyncio.Future[None] = self._loop.create_future()
        self._drain_waiters.append((threshold, fut))
        self._wake()
        await fut

    def _check_drained(self, *, force: bool = False) -> None:
        backlog = self._backlog()
        keep = []
        for threshold, fut in self._drain_waiters:
            if fut.done():
                continue
            if force or backlog <= threshold:
                fut.set_result(None)
            else:
                keep.append((threshold, fut))
        self._drain_waiters = keep

    async def _send_loop(self) -> None:
        ws = self._ws
        p = self.protocol
        wakeup = self._wakeup
        try:
            while True:
                await wakeup.wait()
                wakeup.clear()
                frames = p.data_to_send()
                while frames:
                    self._inflight = len(frames)
                    for i in range(0, len(frames), _BATCH):
                        batch = frames[i : i + _BATCH]
                        await write_frames(ws, batch)
                        self._inflight -= len(batch)
                        if self._drain_waiters:
                            self._check_drained()
                    frames = p.data_to_send()
                self._inflight = 0
                if self._drain_waiters:
                    self._check_drained()
        except ConnectionClosed:
            pass
        except Exception:
            self.logger.exception("internal error while sending")
            self._request_close(1011, "internal error")
        finally:
            self._inflight = 0
            self._check_drained(force=True)

    # ------------------------------------------------------------------ timers and closing

    def _schedule_heartbeat(self) -> None:
        hb = self._hb
        if hb is None or self.closed:
            return
        deadline = hb.next_deadline()
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._heartbeat_tick)

    def _heartbeat_tick(self) -> None:
        self._timer = None
        hb = self._hb
        if hb is None or self.closed or self._closing:
            return
        action = hb.poll(self._loop.time())
        if action == "ping":
            if self.protocol.state is CONNECTED:
                self.protocol.send_ping()
                self._wake()
        elif action == "timeout":
            self.logger.info("DDP heartbeat timed out; closing the session")
            self._request_close(1001, "DDP heartbeat timed out")
            return
        self._schedule_heartbeat()

    def _connect_timeout(self) -> None:
        self._timer = None
        if self.id is None and not self.closed:
            self.logger.info("no DDP connect within %.1fs; closing", self.server.connect_timeout)
            self._request_close(1000, "DDP connect timeout")

    def _request_close(self, code: int, reason: str) -> None:
        if self._closing or self.closed:
            return
        self._closing = True
        self._callback_tasks.add(task := self._loop.create_task(self._close_ws(code, reason)))
        task.add_done_callback(self._callback_tasks.discard)

    async def _close_ws(self, code: int, reason: str) -> None:
        ws = self._ws
        try:
            async with asyncio.timeout(self.server.close_timeout):
                await self.flush()
                await ws.close(code, reason)
        except TimeoutError:
            ws.transport.abort()

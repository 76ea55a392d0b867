"""The DDP client's heartbeat: ping an idle link, drop it when the pong never comes.

The timing decisions are the sans-I/O :class:`~aioserversync.protocol.heartbeat.Heartbeat`'s;
this mixin runs them as one task per session. Any received frame counts as a sign of life, and
so does a consumer still busy with earlier frames (the link is not to blame for that).
"""

from __future__ import annotations

import asyncio

import websockets
from websockets.asyncio.client import ClientConnection

from ..protocol.client import ClientProtocol
from ..protocol.heartbeat import Heartbeat
from .client_core import ClientCore

__all__ = ["HeartbeatMixin"]


class _HeartbeatTimeout(TimeoutError):
    """Nothing arrived within the heartbeat timeout after a ping."""


class HeartbeatMixin(ClientCore):
    """The heartbeat task of :class:`~aioserversync.asyncio.client.DDPClient`."""

    async def _heartbeat(self, ws: ClientConnection, proto: ClientProtocol) -> None:
        try:
            await self._heartbeat_loop(ws, proto)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("heartbeat failed; dropping the link")
            if ws.transport is not None:
                ws.transport.abort()

    async def _heartbeat_loop(self, ws: ClientConnection, proto: ClientProtocol) -> None:
        loop = asyncio.get_running_loop()
        stats = self._stats
        hb = Heartbeat(self.heartbeat_interval, self.heartbeat_timeout, now=loop.time())
        seen = stats.frames_in
        while True:
            deadline = hb.next_deadline()
            assert deadline is not None
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            now = loop.time()
            if stats.frames_in != seen or self._consumer_busy:
                seen = stats.frames_in
                hb.received(now)
                continue
            action = hb.poll(now)
            if action == "ping":
                proto.send_ping()
                try:
                    await self._send_frames(ws, proto)
                except websockets.exceptions.ConnectionClosed:
                    return
            elif action == "timeout":
                self.log.warning("DDP heartbeat timed out; dropping the link")
                self._drop_error = _HeartbeatTimeout("DDP heartbeat timed out")
                if ws.transport is not None:
                    ws.transport.abort()
                return

"""A loopback TCP relay whose link the demo can cut and restore, like a network outage.

Edges connect to the relay; it forwards bytes to the hub. :meth:`Link.cut` resets every open
connection and refuses new ones until :meth:`Link.restore`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

__all__ = ["Link"]

_CHUNK = 65536


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset, as a dropped connection looks to both ends."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Link:
    """Relay ``127.0.0.1:<port>`` to ``target_host:target_port``, with an on/off switch.

    Attributes:
        port: The relay's port (after :meth:`start`).
        up: Whether the link currently carries traffic.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self.up = True
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> Link:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def url(self, path: str = "/websocket") -> str:
        """The ``ws://`` URL of the relay."""
        return f"ws://127.0.0.1:{self.port}{path}"

    def cut(self) -> None:
        """Reset every open connection and refuse new ones until :meth:`restore`."""
        self.up = False
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()

    def restore(self) -> None:
        """Carry traffic again."""
        self.up = True

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            _reset(writer)
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            try:
                t_reader, t_writer = await asyncio.open_connection(
                    self.target_host, self.target_port
                )
            except OSError:
                _reset(writer)
                return
            self._writers.update((writer, t_writer))
            pumps = [
                asyncio.ensure_future(self._pump(reader, t_writer)),
                asyncio.ensure_future(self._pump(t_reader, writer)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for p in pumps:
                    p.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
                for w in (writer, t_writer):
                    self._writers.discard(w)
                    _reset(w)
        finally:
            self._tasks.discard(task)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()

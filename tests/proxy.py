"""A loopback TCP fault proxy for connectivity tests (in the spirit of asyncpg's test proxy).

It listens on 127.0.0.1 (port 0) and forwards every accepted connection to a target port. Tests
then break the network on purpose:

* :meth:`FaultProxy.cut` closes every open link at once (both sides see a reset), as a crashed
  router or a killed server would; new connections still work.
* :meth:`FaultProxy.blackhole` keeps every socket open but silently drops the bytes in both
  directions, on open links and on links accepted meanwhile: a network partition, which only
  heartbeats and timeouts can detect.
* :meth:`FaultProxy.refuse` resets new connections as soon as they are accepted (open links are
  left alone): a server that is down.
* :meth:`FaultProxy.restore` ends ``blackhole`` and ``refuse``.
* :meth:`FaultProxy.links` and :meth:`FaultProxy.dropped` tell when the links open at one
  moment have all closed.

::

    async with FaultProxy(server_port) as proxy:
        client = DDPClient(proxy.url("/websocket"), ...)
        ...
        proxy.cut()
        proxy.blackhole()
        proxy.restore()

Counters (``accepted``, ``refused``, ``active``) let tests wait on what happened without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

__all__ = ["FaultProxy"]

_CHUNK = 65536


class _Link:
    """One proxied connection: the accepted client socket and the socket to the target."""

    def __init__(
        self,
        proxy: FaultProxy,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
    ) -> None:
        self.proxy = proxy
        self.client_reader = client_reader
        self.client_writer = client_writer
        self.target_writer: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        try:
            target_reader, self.target_writer = await asyncio.open_connection(
                self.proxy.target_host, self.proxy.target_port
            )
        except OSError:
            self.abort()
            return
        loop = asyncio.get_running_loop()
        self.tasks = [
            loop.create_task(self._pump(self.client_reader, self.target_writer)),
            loop.create_task(self._pump(target_reader, self.client_writer)),
        ]
        await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
        self.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                if self.proxy.blackholed:
                    continue  # swallowed: the peer never learns
                writer.write(data)
                await writer.drain()

    def abort(self) -> None:
        """Reset both sides now."""
        for task in self.tasks:
            task.cancel()
        for writer in (self.client_writer, self.target_writer):
            if writer is not None:
                _reset(writer)
        self.proxy._links.discard(self)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0) instead of a FIN, as a dropped connection looks."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """A TCP proxy from 127.0.0.1:<port> to ``target_host:target_port`` that can fail on demand.

    Args:
        target_port: The port to forward to.
        target_host: The host to forward to.

    Attributes:
        port: The proxy's own port (after :meth:`start`).
        accepted: Connections accepted and forwarded so far.
        refused: Connections reset because of :meth:`refuse`.
        blackholed: Whether bytes are currently dropped.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self.accepted = 0
        self.refused = 0
        self.blackholed = False
        self.refusing = False
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def active(self) -> int:
        """Links currently open."""
        return len(self._links)

    def url(self, path: str = "/websocket", scheme: str = "ws") -> str:
        """Return ``scheme://127.0.0.1:<port><path>``."""
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def start(self) -> FaultProxy:
        """Start listening on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        """Stop listening and reset every link."""
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

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def links(self) -> frozenset[object]:
        """The links open now (opaque handles), for :meth:`dropped`."""
        return frozenset(self._links)

    def dropped(self, links: frozenset[object]) -> bool:
        """Whether every link of ``links`` (from :meth:`links`) is closed by now.

        After :meth:`blackhole`, this is how a test knows the links of that moment were
        declared dead (by heartbeats): the client no longer being connected is not enough, as
        it may have been between sessions, or setting one up, while its link swallowed frames.
        """
        return not links & self._links

    def cut(self) -> None:
        """Reset every open link now (new connections are still accepted)."""
        for link in list(self._links):
            link.abort()

    def blackhole(self) -> None:
        """Silently drop all bytes both ways, on open and new links, until :meth:`restore`."""
        self.blackholed = True

    def refuse(self) -> None:
        """Reset new connections as soon as they are accepted, until :meth:`restore`."""
        self.refusing = True

    def restore(self) -> None:
        """Forward bytes and accept connections normally again."""
        self.blackholed = False
        self.refusing = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            self.refused += 1
            _reset(writer)
            return
        self.accepted += 1
        link = _Link(self, reader, writer)
        self._links.add(link)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await link.run()
        finally:
            self._tasks.discard(task)

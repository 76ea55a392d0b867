"""The DDP client's WebSocket connection: websockets for the handshake and sending, a fast reader.

:class:`DDPClientConnection` is a :class:`websockets.asyncio.client.ClientConnection` (passed to
``connect(create_connection=...)``), so websockets still does the opening handshake (HTTP
upgrade, TLS, proxies, extension negotiation), builds every frame sent (``send(..., text=True)``,
masked and compressed as negotiated), runs keepalive pings and the closing handshake.

Only the receive side changes. While the handshake response is read, exactly the bytes of the
response head are handed to websockets; from the first byte after it, incoming data goes to a
:class:`~aioserversync.asyncio.frames.FrameParser`. Its complete messages wait in one list that
the reader takes whole with :meth:`DDPClientConnection.next_batch` (one wake-up per batch, not
per frame). Control frames are handed, unmodified, to websockets' own receive path: its
protocol object sees nothing but whole control frames, so it stays at a frame boundary and
answers pings, acknowledges pongs and runs the closing handshake exactly as it does alone. A
framing error fails the connection through websockets' protocol with the code websockets would
use (1002, or 1009 past ``max_size``).

Flow control: once about :data:`DEFAULT_MAX_BUFFER` bytes of complete messages wait untaken,
reading from the transport pauses; taking the batch resumes it.

When the fast reader cannot be used (an extension other than permessage-deflate was negotiated,
a ``(message, fragment)`` size tuple, or a websockets release whose internals differ), the
connection keeps websockets' own receive path and :meth:`~DDPClientConnection.next_batch` returns
one message per ``recv(decode=False)``.
"""

from __future__ import annotations

import asyncio
import logging

from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol as WSClientProtocol
from websockets.protocol import CLOSED, CONNECTING, OPEN

from .frames import DeflateParams, FrameParser

__all__ = ["DEFAULT_MAX_BUFFER", "DDPClientConnection"]

logger = logging.getLogger("aioserversync.client")

DEFAULT_MAX_BUFFER = 2**20
"""Bytes of received, untaken messages above which reading pauses."""

_HEAD_END = b"\r\n\r\n"
_MAX_HEAD = 2**16


class _Unsupported(Exception):
    """The negotiated connection needs websockets' own receive path."""


def _reader_settings(protocol: WSClientProtocol) -> tuple[int | None, DeflateParams | None]:
    """Read the size limit and deflate parameters the fast reader must honour.

    ``max_message_size``/``max_fragment_size`` and the attributes of websockets'
    ``PerMessageDeflate`` are not documented API (websockets is pinned below 18): any surprise
    raises :class:`_Unsupported` and the connection keeps websockets' receive path.
    """
    try:
        from websockets.extensions.permessage_deflate import PerMessageDeflate

        max_size = protocol.max_message_size
        if protocol.max_fragment_size is not None:
            raise _Unsupported("a separate fragment size limit")
        extensions = list(protocol.extensions)
        if not extensions:
            return max_size, None
        if len(extensions) != 1 or type(extensions[0]) is not PerMessageDeflate:
            raise _Unsupported(f"extensions {extensions!r}")
        ext = extensions[0]
        no_takeover = ext.remote_no_context_takeover
        bits = ext.remote_max_window_bits
        if type(no_takeover) is not bool or type(bits) is not int or not 8 <= bits <= 15:
            raise _Unsupported(f"deflate parameters {no_takeover!r}, {bits!r}")
        if max_size is not None and type(max_size) is not int:
            raise _Unsupported(f"max_size {max_size!r}")
        return max_size, DeflateParams(no_takeover, bits)
    except (AttributeError, ImportError, TypeError) as exc:
        raise _Unsupported(repr(exc)) from exc


class DDPClientConnection(ClientConnection):
    """A websockets client connection whose receive side is a batching frame reader.

    Created by ``websockets.asyncio.client.connect(create_connection=DDPClientConnection)``
    with the same arguments as :class:`~websockets.asyncio.client.ClientConnection`. Read with
    :meth:`next_batch` only (``recv()`` sees no data once the fast reader is active).

    Attributes:
        fast: Whether the fast reader is active (``False`` before the handshake and when the
            connection fell back to websockets' receive path).
        max_buffer: Bytes of untaken messages above which reading pauses.
    """

    max_buffer: int = DEFAULT_MAX_BUFFER

    def __init__(
        self,
        protocol: WSClientProtocol,
        *,
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        close_timeout: float | None = 10,
        max_queue: int | tuple[int | None, int | None] | None = 16,
        write_limit: int | tuple[int, int | None] = 2**15,
    ) -> None:
        super().__init__(
            protocol,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_queue=max_queue,
            write_limit=write_limit,
        )
        self.fast = False
        self._parser: FrameParser | None = None
        self._fallback = False
        self._head = bytearray()
        self._unread: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._queued = 0
        self._reading_paused = False

    # ------------------------------------------------------------------ reading

    async def next_batch(self) -> list[bytes]:
        """Wait for and return every complete message received so far, oldest first.

        Returns:
            A non-empty list of messages (``bytes``; text and binary frames alike).

        Raises:
            websockets.exceptions.ConnectionClosed: The connection is closed and every message
                received before the close was returned. As with ``recv()``, the exception
                comes once the TCP connection is closed (after ``close_timeout`` it is
                aborted).
        """
        if self._unread:
            batch, self._unread = self._unread, []
            return batch
        parser = self._parser
        if parser is None:
            return [await self.recv(decode=False)]
        while True:
            batch = parser.messages
            if batch:
                parser.messages = []
                self._queued = 0
                if self._reading_paused:
                    self._reading_paused = False
                    self.transport.resume_reading()
                return batch
            if parser.done or self.protocol.state is CLOSED:
                break
            self._waiter = waiter = self.loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        await self._wait_lost()
        raise self.close_exc

    def unread(self, messages: list[bytes]) -> None:
        """Put messages taken with :meth:`next_batch` back in front of the next batch.

        Args:
            messages: Messages of the last batch that were not handled, in order.
        """
        if messages:
            self._unread = messages + self._unread

    async def _wait_lost(self) -> None:
        """Wait until the TCP connection is closed, aborting it after ``close_timeout``."""
        if self.protocol.state is not CLOSED:
            try:
                async with asyncio.timeout(self.close_timeout):
                    await asyncio.shield(self.connection_lost_waiter)
            except TimeoutError:
                self.set_connection_exc(TimeoutError("timed out while closing connection"))
                self.transport.abort()
        await asyncio.shield(self.connection_lost_waiter)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ------------------------------------------------------------------ asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        """Feed received bytes to the frame reader (or to websockets during the handshake).

        Args:
            data: The bytes the transport read.
        """
        parser = self._parser
        if parser is None:
            self._data_before_reader(data)
            return
        parser.feed(data)
        if parser.controls or parser.error is not None:
            self._handle_controls(parser)
        if parser.messages:
            self._queued += len(data) + parser.inflated
            parser.inflated = 0
            if self._queued >= self.max_buffer and not self._reading_paused:
                self._reading_paused = True
                self.transport.pause_reading()
            self._wake()
        elif parser.done:
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        """End the connection (websockets' handling) and wake a waiting reader.

        Args:
            exc: The transport's error, or ``None`` on a clean close.
        """
        super().connection_lost(exc)
        self._wake()

    def _handle_controls(self, parser: FrameParser) -> None:
        controls, parser.controls = parser.controls, []
        for _, frame in controls:
            # websockets' parser is at a frame boundary: it answers pings, acknowledges
            # pongs, and on a close frame replies and waits for the end of the stream.
            super().data_received(frame)
        error = parser.error
        if error is not None and self.protocol.state is OPEN:
            if parser.error_code == 1009:  # every reconnect gets the same message again
                logger.error(
                    "the server sent a message larger than max_size (%s); the link is dropped "
                    "and will be again until the client's max_size= is raised",
                    error,
                )
            else:
                logger.warning("WebSocket protocol error from the server: %s", error)
            self.set_connection_exc(error)
            self.protocol.fail(parser.error_code, str(error))
            try:
                self.send_data()
            except Exception as exc:  # the transport is going away: the reader sees it
                self.set_connection_exc(exc)

    def _data_before_reader(self, data: bytes) -> None:
        """Hand websockets the response head only; what follows goes to the frame reader."""
        protocol = self.protocol
        if self._fallback or protocol.state is not CONNECTING or protocol.handshake_exc:
            super().data_received(data)
            return
        head = self._head
        before = len(head)
        head += data
        end = head.find(_HEAD_END, max(0, before - 3))
        if end < 0:
            if len(head) > _MAX_HEAD:
                self._fallback = True
                self._head = bytearray()
            super().data_received(data)
            return
        cut = end + len(_HEAD_END) - before
        self._head = bytearray()
        super().data_received(data[:cut])
        rest = data[cut:]
        if self.protocol.state is OPEN:
            try:
                max_size, deflate = _reader_settings(self.protocol)
            except _Unsupported as exc:
                logger.info("WebSocket fast reader off (%s); using websockets' reader", exc)
            else:
                self._parser = FrameParser(max_size=max_size, deflate=deflate)
                self.fast = True
                if rest:
                    self.data_received(rest)
                return
        self._fallback = True
        if rest:
            super().data_received(rest)

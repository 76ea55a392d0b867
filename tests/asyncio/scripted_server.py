"""A scripted DDP peer for client tests: a real websockets server whose every frame a test controls.

It speaks just enough DDP to be useful by default (``connect`` answered with ``connected``,
``ping`` with ``pong``) and lets each test write the rest: the exact frames and their order
(``updated`` before ``result``, a ``nosub`` with an error, a server that stops answering, one that
accepts and closes at once, ``failed``…). Every frame received is recorded per connection.

::

    async with ScriptedServer() as server:
        client = DDPClient(server.url, ...)
        await client.connect()
        conn = await server.next_connection()
        sub = await conn.expect("sub")
        await conn.send({"msg": "ready", "subs": [sub["id"]]})

Options:

* ``handshake``: ``"auto"`` (Meteor's version negotiation over ``versions``, then ``connected``),
  ``"manual"`` (the test answers ``connect`` itself) or ``"close"`` (accept the socket, answer
  ``connected``, then close at once).
* ``answer_pings``: answer ``ping`` with ``pong`` (echoing the id) instead of queueing it.
* ``methods``: ``{name: fn(params) -> result}`` answered automatically with ``result`` then
  ``updated`` (raise :class:`~aioserversync.exceptions.MeteorError` for an error result).
* ``publications``: ``{name: fn(conn, sub_msg)}`` run on each matching ``sub`` (a coroutine
  function or a plain one); other subs are queued for the test.
* ``auto_unsub``: answer ``unsub`` with ``nosub``.
* ``server_id``: send ``{"server_id": "0"}`` on open, as Meteor up to 2.2.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from aioserversync.exceptions import MeteorError
from tests.conftest import MS

DEFAULT_TIMEOUT = 5000 * MS
_sessions = itertools.count(1)


class ScriptedConnection:
    """One client connection as the server sees it."""

    def __init__(self, server: ScriptedServer, ws: ServerConnection) -> None:
        self.server = server
        self.ws = ws
        self.received: list[dict[str, Any]] = []
        self.session: str | None = None
        self.connect_msg: dict[str, Any] | None = None
        self.closed = asyncio.Event()
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def __repr__(self) -> str:
        return f"<ScriptedConnection session={self.session} received={len(self.received)}>"

    async def send(self, msg: dict[str, Any] | str | bytes) -> None:
        """Send one text frame: a dict as JSON, a str or bytes as is (malformed frames too)."""
        data = orjson.dumps(msg) if isinstance(msg, dict) else msg
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(data, text=True)

    async def recv(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Return the next received frame that was not answered automatically."""
        async with asyncio.timeout(timeout):
            return await self._queue.get()

    async def expect(self, kind: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Return the next received frame with ``msg == kind``, skipping others."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self._queue.get()
                if msg.get("msg") == kind:
                    return msg

    def pending(self) -> list[dict[str, Any]]:
        """Return (and consume) the frames queued so far without waiting."""
        out = []
        while not self._queue.empty():
            out.append(self._queue.get_nowait())
        return out

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the WebSocket with a close frame."""
        await self.ws.close(code, reason)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        if self.ws.transport is not None:
            self.ws.transport.abort()

    async def wait_closed(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until the client side has gone."""
        async with asyncio.timeout(timeout):
            await self.closed.wait()

    # ------------------------------------------------------------------ automatic answers

    async def _handle(self, msg: dict[str, Any]) -> bool:
        """Answer ``msg`` automatically if configured; return whether it was consumed."""
        server = self.server
        kind = msg.get("msg")
        if kind == "connect" and server.handshake != "manual":
            self.connect_msg = msg
            version, support = msg.get("version"), msg.get("support") or []
            negotiated = next((v for v in support if v in server.versions), server.versions[0])
            if negotiated != version:
                await self.send({"msg": "failed", "version": negotiated})
                await self.close()
                return True
            self.session = f"session{next(_sessions)}"
            await self.send({"msg": "connected", "session": self.session})
            if server.handshake == "close":
                await self.close()
            return True
        if kind == "ping" and server.answer_pings:
            await self.send({"msg": "pong", "id": msg["id"]} if "id" in msg else {"msg": "pong"})
            return True
        if kind == "method" and msg.get("method") in server.methods:
            fn = server.methods[msg["method"]]
            try:
                value = fn(msg.get("params", []))
                if inspect.isawaitable(value):
                    value = await value
                await self.send({"msg": "result", "id": msg["id"], "result": value})
            except MeteorError as exc:
                await self.send({"msg": "result", "id": msg["id"], "error": exc.to_wire()})
            await self.send({"msg": "updated", "methods": [msg["id"]]})
            return True
        if kind == "sub" and msg.get("name") in server.publications:
            value = server.publications[msg["name"]](self, msg)
            if inspect.isawaitable(value):
                await value
            return True
        if kind == "unsub" and server.auto_unsub:
            await self.send({"msg": "nosub", "id": msg["id"]})
            return True
        return False

    async def _run(self) -> None:
        try:
            if self.server.server_id:
                await self.send({"server_id": "0"})
            async for data in self.ws:
                msg = orjson.loads(data)
                self.received.append(msg)
                if not await self._handle(msg):
                    self._queue.put_nowait(msg)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()


class ScriptedServer:
    """A websockets DDP peer on 127.0.0.1, port 0, driven by the test.

    Args:
        handshake: ``"auto"``, ``"manual"`` or ``"close"`` (see the module docstring).
        versions: The DDP versions the server accepts, in its order of preference.
        answer_pings: Answer pings automatically.
        methods: Methods answered automatically.
        publications: Publications run automatically.
        auto_unsub: Answer ``unsub`` with ``nosub``.
        server_id: Send the pre-2.3 ``server_id`` welcome frame.
        ssl: An ``ssl.SSLContext`` to serve ``wss://``.
    """

    def __init__(
        self,
        *,
        handshake: str = "auto",
        versions: Sequence[str] = ("1", "pre2", "pre1"),
        answer_pings: bool = True,
        methods: dict[str, Callable[[list[Any]], Any]] | None = None,
        publications: dict[str, Callable[[ScriptedConnection, dict[str, Any]], Any]] | None = None,
        auto_unsub: bool = False,
        server_id: bool = False,
        ssl: Any = None,
    ) -> None:
        self.handshake = handshake
        self.versions = tuple(versions)
        self.answer_pings = answer_pings
        self.methods = dict(methods or {})
        self.publications = dict(publications or {})
        self.auto_unsub = auto_unsub
        self.server_id = server_id
        self.ssl = ssl
        self.connections: list[ScriptedConnection] = []
        self._handed_out = 0
        self._new_connection = asyncio.Event()
        self._server: Any = None
        self.port = 0

    @property
    def url(self) -> str:
        """The raw DDP WebSocket URL."""
        scheme = "wss" if self.ssl is not None else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/websocket"

    async def start(self) -> ScriptedServer:
        """Start listening on a free port."""
        self._server = await serve(self._handler, "127.0.0.1", 0, compression=None, ssl=self.ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> ScriptedServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def next_connection(self, timeout: float = DEFAULT_TIMEOUT) -> ScriptedConnection:
        """Return the next connection not returned yet (waiting for it if needed)."""
        async with asyncio.timeout(timeout):
            while self._handed_out >= len(self.connections):
                self._new_connection.clear()
                await self._new_connection.wait()
        conn = self.connections[self._handed_out]
        self._handed_out += 1
        return conn

    async def _handler(self, ws: ServerConnection) -> None:
        conn = ScriptedConnection(self, ws)
        self.connections.append(conn)
        self._new_connection.set()
        await conn._run()

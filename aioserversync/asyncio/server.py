"""A DDP server on asyncio and websockets: methods, publications, a merge box per session.

::

    server = DDPServer()

    @server.method("tasks.add")
    async def add(ctx, text):                  # ctx: MethodContext; plain functions work too
        return await store_task(text)          # return -> result; raise MeteorError -> error

    @server.publish("tasks", strategy="merge")
    async def tasks(pub, list_id):             # pub: Publication
        pub.added("tasks", doc_id, {"text": "hi"})
        pub.ready()

    async with serve(server, "127.0.0.1", 0) as running:
        print(running.url)                     # ws://127.0.0.1:PORT/websocket
        await running.serve_forever()          # or leave the block: graceful shutdown

Raw DDP is served at ``/websocket`` (also ``/websocket/`` and ``/sockjs/websocket``, as Meteor,
ddp-facts §1.1); ``GET /healthz`` answers 200 ``ok``; any other path gets 404.

Wire behaviour follows Meteor: every method gets exactly one ``result`` and one ``updated``; an
unknown method gets a 404 ``result`` then ``updated``; an unknown publication a ``nosub`` with 404;
a ``MeteorError`` reaches the client as raised, any other exception as 500 "Internal server
error" (logged here with its traceback, never sent). Messages of one session are handled one at a
time in arrival order (``ping`` is answered at once); ``unblock()`` lets later ones proceed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from types import TracebackType
from typing import Any, Literal, TypeVar

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.http11 import Request, Response

from ..exceptions import ConfigurationError, InvalidState
from ..protocol.connection import DEFAULT_MAX_SIZE
from ..protocol.mergebox import MERGE, STRATEGIES, Strategy
from .method_context import MethodContext, WireResult
from .publication import READY, Publication, PublishHandler
from .server_io import DDPConnection
from .session import Session

__all__ = [
    "DDP_PATHS",
    "READY",
    "DDPConnection",
    "DDPServer",
    "MethodContext",
    "MethodHandler",
    "Publication",
    "PublishHandler",
    "RunningServer",
    "Session",
    "WireResult",
    "serve",
]

DDP_PATHS = frozenset({"/websocket", "/websocket/", "/sockjs/websocket", "/sockjs/websocket/"})
"""Paths where raw DDP is served (query strings are ignored)."""

logger = logging.getLogger("aioserversync.server")

MethodHandler = Callable[..., Any]
"""``handler(ctx, *params)``, a coroutine function or a plain function."""
F = TypeVar("F", bound=Callable[..., Any])


class DDPServer:
    """A registry of methods and publications, and the sessions connected to it.

    Args:
        heartbeat_interval: Seconds of client silence before the server pings (0 disables).
        heartbeat_timeout: Seconds to wait for any message after a ping before closing.
        max_size: Largest accepted message in bytes (websockets closes with 1009 above it);
            ``None`` for no limit (trusted links only).
        compression: ``"deflate"`` (permessage-deflate, as Meteor) or ``None``.
        server_id: Send Meteor's pre-2.3 ``{"server_id":"0"}`` welcome frame.
        logger: Logger for the server (default ``aioserversync.server``).
        connect_timeout: Seconds a socket may stay open without a DDP ``connect`` (Meteor: 45).
        close_timeout: Seconds allowed for closing a connection and for stop callbacks.
    """

    def __init__(
        self,
        *,
        heartbeat_interval: float = 15.0,
        heartbeat_timeout: float = 15.0,
        max_size: int | None = DEFAULT_MAX_SIZE,
        compression: Literal["deflate"] | None = "deflate",
        server_id: bool = False,
        logger: logging.Logger | None = None,
        connect_timeout: float = 45.0,
        close_timeout: float = 10.0,
    ) -> None:
        if compression not in ("deflate", None):
            raise ConfigurationError(f"unsupported compression {compression!r}")
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.max_size = max_size
        self.compression = compression
        self.server_id = server_id
        self.logger = logger or globals()["logger"]
        self.connect_timeout = connect_timeout
        self.close_timeout = close_timeout
        self._methods: dict[str, MethodHandler] = {}
        self._raw_methods: set[str] = set()
        self._publications: dict[str, tuple[PublishHandler, Strategy]] = {}
        self._sessions: dict[str, Session] = {}
        self._on_connect: list[Callable[[Session], Any]] = []
        self._on_disconnect: list[Callable[[Session], Any]] = []

    # ------------------------------------------------------------------ registry

    def method(self, name: str, *, raw_params: bool = False) -> Callable[[F], F]:
        """Decorator registering a method handler ``handler(ctx, *params)``.

        Args:
            name: The method name.
            raw_params: See :meth:`add_method`.

        Raises:
            ConfigurationError: If the name is not a non-empty string or is already taken.
        """

        def register(fn: F) -> F:
            self.add_method(name, fn, raw_params=raw_params)
            return fn

        return register

    def add_method(self, name: str, handler: MethodHandler, *, raw_params: bool = False) -> None:
        """Register a method handler ``handler(ctx, *params)`` under ``name``.

        Args:
            name: The method name.
            handler: The handler.
            raw_params: Hand the params over in EJSON wire form (validated, not decoded), for a
                handler that stores them as they came.

        Raises:
            ConfigurationError: If the name is not a non-empty string or is already taken.
        """
        if not isinstance(name, str) or not name:
            raise ConfigurationError("a method name must be a non-empty string")
        if name in self._methods:
            raise ConfigurationError(f"method {name!r} is already defined")
        self._methods[name] = handler
        if raw_params:
            self._raw_methods.add(name)

    def publish(self, name: str, *, strategy: Strategy = MERGE) -> Callable[[F], F]:
        """Decorator registering a publish handler ``handler(pub, *params)``.

        Args:
            name: The publication name clients subscribe to.
            strategy: ``"merge"`` (default), ``"no_merge"`` or ``"no_merge_no_history"``; see
                :mod:`aioserversync.protocol.mergebox`.

        Raises:
            ConfigurationError: For a bad or duplicate name or an unknown strategy.
        """

        def register(fn: F) -> F:
            self.add_publication(name, fn, strategy=strategy)
            return fn

        return register

    def add_publication(
        self, name: str, handler: PublishHandler, *, strategy: Strategy = MERGE
    ) -> None:
        """Register a publish handler ``handler(pub, *params)``; arguments as :meth:`publish`.

        Raises:
            ConfigurationError: For a bad or duplicate name or an unknown strategy.
        """
        if not isinstance(name, str) or not name:
            raise ConfigurationError("a publication name must be a non-empty string")
        if name in self._publications:
            raise ConfigurationError(f"publication {name!r} is already defined")
        if strategy not in STRATEGIES:
            raise ConfigurationError(
                f"unknown publication strategy {strategy!r}; use one of {STRATEGIES}"
            )
        self._publications[name] = (handler, strategy)

    def on_connect(self, callback: Callable[[Session], Any]) -> Callable[[Session], Any]:
        """Register ``callback(session)`` (plain or async), run when a DDP session starts."""
        self._on_connect.append(callback)
        return callback

    def on_disconnect(self, callback: Callable[[Session], Any]) -> Callable[[Session], Any]:
        """Register ``callback(session)`` (plain or async), run when a DDP session has ended."""
        self._on_disconnect.append(callback)
        return callback

    # ------------------------------------------------------------------ sessions

    @property
    def sessions(self) -> Mapping[str, Session]:
        """The connected sessions, by DDP session id (a live read-only view)."""
        return self._sessions

    def publications(self, name: str | None = None) -> list[Publication]:
        """Return the active subscriptions of every session, or only those of ``name``."""
        return [
            pub
            for session in self._sessions.values()
            for pub in session.publications.values()
            if name is None or pub.name == name
        ]

    def broadcast(self, frames: Iterable[bytes], publications: Iterable[Publication]) -> int:
        """Send the same pre-encoded frames to the clients of these subscriptions.

        The frames are encoded once by the caller and shared by every session (see
        :meth:`Publication.send_wire`, which this calls). Returns how many subscriptions got them.
        """
        batch = frames if isinstance(frames, list | tuple) else list(frames)
        count = 0
        for pub in publications:
            if pub.active:
                pub.send_wire(batch)
                count += 1
        return count

    # ------------------------------------------------------------------ websockets glue

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Route the HTTP request: DDP paths upgrade, ``/healthz`` is 200, the rest 404."""
        path = request.path.split("?", 1)[0]
        if path in DDP_PATHS:
            return None
        if path == "/healthz":
            return connection.respond(HTTPStatus.OK, "ok\n")
        return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")

    async def handler(self, connection: ServerConnection) -> None:
        """Serve one WebSocket connection as a DDP session (the websockets handler)."""
        await Session(self, connection).run()


class RunningServer:
    """A started server: where it listens, and how to stop it."""

    def __init__(self, ddp: DDPServer, server: Server) -> None:
        self.ddp = ddp
        self.server = server
        sockname = server.sockets[0].getsockname() if server.sockets else ("127.0.0.1", 0)
        self.host: str = sockname[0]
        self.port: int = sockname[1]

    @property
    def url(self) -> str:
        """The DDP URL, e.g. ``ws://127.0.0.1:PORT/websocket``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}/websocket"

    async def serve_forever(self) -> None:
        """Serve until :meth:`close` is called or this task is cancelled (then shut down)."""
        await self.server.serve_forever()

    def close(self) -> None:
        """Start a graceful shutdown: stop accepting, close sessions with 1001, run callbacks."""
        self.server.close(close_connections=True)

    async def wait_closed(self) -> None:
        """Wait until every connection is closed and every session has cleaned up."""
        await self.server.wait_closed()

    async def aclose(self) -> None:
        """Close and wait until fully closed."""
        self.close()
        await self.wait_closed()


class serve:
    """Start ``ddp`` on ``host:port`` (port 0 picks a free port).

    Use as ``async with serve(ddp, host, port) as running`` (leaving the block shuts down
    gracefully) or ``running = await serve(ddp, host, port)``. Extra keyword arguments go to
    :func:`websockets.asyncio.server.serve` (``ssl``, ``write_limit``, …).
    """

    def __init__(
        self, ddp: DDPServer, host: str | None = "127.0.0.1", port: int = 0, **kwargs: Any
    ) -> None:
        self.ddp = ddp
        self.host = host
        self.port = port
        self.kwargs = kwargs
        self._running: RunningServer | None = None

    async def _start(self) -> RunningServer:
        if self._running is not None:
            raise InvalidState("this serve() object was already started")
        ddp = self.ddp
        options: dict[str, Any] = {
            "compression": ddp.compression,
            "max_size": ddp.max_size,
            "process_request": ddp.process_request,
            "create_connection": DDPConnection,
            "ping_interval": None,  # liveness is checked by DDP heartbeats
            "close_timeout": ddp.close_timeout,
            "logger": logging.getLogger("aioserversync.server.websockets"),
        }
        options.update(self.kwargs)
        server = await ws_serve(ddp.handler, self.host, self.port, **options)
        self._running = RunningServer(ddp, server)
        ddp.logger.info("DDP server listening on %s", self._running.url)
        return self._running

    def __await__(self) -> Any:
        return self._start().__await__()

    async def __aenter__(self) -> RunningServer:
        return await self._start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._running is not None:
            await self._running.aclose()

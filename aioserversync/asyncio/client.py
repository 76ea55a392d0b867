"""DDPClient: a DDP client over ``websockets.asyncio.client`` that reconnects by itself.

One supervisor task runs connection *episodes*. Each episode is a fresh tenacity
``AsyncRetrying`` (full-jitter exponential backoff, ``stop_never``): an attempt opens a WebSocket,
negotiates DDP, sets the session up and reads until the link is lost. A session that stayed up
``stable_after`` seconds ends the episode, so the next failure starts again from the shortest
delay; a link that dies sooner (a server that accepts and then closes at once) is one more failed
attempt, and the delays keep growing.

After every ``connected``, in this order (ddp-facts §3.6, §9.4): a stored login is resumed
(``login`` with ``{"resume": token}``, waited for), every active subscription is re-sent with the
same id, name and params, and calls made with ``retry=True`` that had no ``result`` are re-sent
verbatim. When a link is lost, calls that already had their ``result`` complete with it, and the
other ``retry=False`` calls fail with
:class:`~aioserversync.exceptions.WriteOutcomeUnknown`: the server may or may not have run them.

Data events reach ``on_data`` from the reader task in wire order, as lists: consecutive
``added``/``changed``/``removed`` received together come in one call (up to 64 a call), other
data events in a call per frame, with a :class:`~aioserversync.protocol.events.Connected` before
any data of a session and a :class:`~aioserversync.asyncio.client_state.Disconnected` after it.
When ``on_data`` returns an awaitable the reader awaits it before reading on, so a slow consumer
slows the socket instead of growing a buffer. A call returns only after ``updated`` was
received, so the data its writes caused has already been handed to ``on_data``.

Heartbeats (ddp-facts §2): server pings are answered at once; every received frame proves the
link alive; an idle link gets a ``ping`` every ``heartbeat_interval`` seconds, and a link silent
for ``heartbeat_timeout`` seconds after that ping is aborted and reconnected.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any

from tenacity.wait import wait_random_exponential

from .. import ejson
from ..exceptions import (
    ConfigurationError,
    ConnectionClosedOK,
    LocalProtocolError,
)
from ..ids import random_id
from ..protocol.connection import DEFAULT_MAX_SIZE, SUPPORTED_VERSIONS
from .calls import CallsMixin
from .client_core import OnData
from .client_state import ClientState, ClientStats, ClientStatus, Disconnected
from .client_streams import EventStream
from .connection import ConnectionMixin
from .subscription import Subscription
from .urls import websocket_url

__all__ = [
    "ClientState",
    "ClientStats",
    "ClientStatus",
    "DDPClient",
    "Disconnected",
    "Subscription",
    "websocket_url",
]

logger = logging.getLogger("aioserversync.client")

DISCONNECTED = ClientState.DISCONNECTED
CONNECTING = ClientState.CONNECTING
CONNECTED = ClientState.CONNECTED
CLOSED = ClientState.CLOSED
_CLOSE_GRACE = 5.0


class DDPClient(CallsMixin, ConnectionMixin):
    """A DDP client that keeps one session alive across link failures.

    Args:
        url: ``http(s)://host[:port][/path]`` (as Meteor's ``DDP.connect`` takes it),
            ``ddp+sockjs://``/``ddpi+sockjs://``, or a full ``ws(s)://`` URL (used as is).
        heartbeat_interval: Idle seconds before a DDP ``ping`` (0 disables heartbeats).
        heartbeat_timeout: Seconds without any frame after a ping before the link counts as dead.
        open_timeout: Seconds for the WebSocket opening handshake, again for DDP ``connected``,
            and again for the answer to the stored login's resume at each reconnect (past it the
            link is dropped and the client reconnects).
        max_size: Largest accepted frame in bytes (``None``: no limit; trusted links only).
        ssl: An :class:`ssl.SSLContext` for ``wss://``.
        proxy: A proxy URL, ``True`` for the system proxy, ``None`` (default) for none.
        compression: ``"deflate"`` (permessage-deflate, as Meteor negotiates) or ``None``.
        headers: Extra HTTP headers for the opening handshake.
        backoff_initial: Upper bound of the first random wait between attempts, in seconds; the
            bound doubles per failed attempt (full jitter).
        backoff_max: Largest wait between attempts, in seconds.
        stable_after: Seconds a session must last before the backoff starts over.
        backoff: Replaces the jittered backoff: ``backoff(attempt)`` returns the wait in seconds
            before attempt ``attempt + 1`` (``attempt`` counts from 1 within an episode).
        version: The DDP version to request.
        support: The versions offered (must contain ``version``).
        decode_data: Decode data ``fields`` from EJSON; ``False`` keeps the validated wire form
            (what a store that keeps wire data wants).
        on_data: ``on_data(events)``, called by the reader with the data events in wire order
            (a run of ``added``/``changed``/``removed`` frames received together in one call,
            up to 64);
            may return an awaitable, which the reader awaits (backpressure).
        resume_token: A login token to resume with at the start of every session, before any
            subscription is sent (as after :meth:`login_with_token`).
        logger: Logger for this client (a LoggerAdapter adds the URL).

    Raises:
        ConfigurationError: For a bad URL or option.
    """

    def __init__(
        self,
        url: str,
        *,
        heartbeat_interval: float = 17.5,
        heartbeat_timeout: float = 15.0,
        open_timeout: float = 10.0,
        max_size: int | None = DEFAULT_MAX_SIZE,
        ssl: ssl_module.SSLContext | None = None,
        proxy: str | bool | None = None,
        compression: str | None = "deflate",
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        backoff_initial: float = 0.1,
        backoff_max: float = 30.0,
        stable_after: float = 5.0,
        backoff: Callable[[int], float] | None = None,
        version: str = "1",
        support: Sequence[str] = SUPPORTED_VERSIONS,
        decode_data: bool = True,
        on_data: OnData | None = None,
        resume_token: str | None = None,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> None:
        self.url = websocket_url(url)
        if heartbeat_interval < 0 or heartbeat_timeout < 0:
            raise ConfigurationError("heartbeat_interval and heartbeat_timeout must be >= 0")
        if open_timeout <= 0 or backoff_initial <= 0 or backoff_max <= 0 or stable_after < 0:
            raise ConfigurationError("timeouts and backoff bounds must be positive")
        if compression not in ("deflate", None):
            raise ConfigurationError("compression must be 'deflate' or None")
        support = tuple(support)
        if version not in support:
            raise ConfigurationError(f"version {version!r} is not in support {support!r}")
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.open_timeout = open_timeout
        self.max_size = max_size
        self.ssl = ssl
        self.proxy = proxy
        self.compression = compression
        self.headers = headers
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.decode_data = decode_data
        self._backoff = backoff
        self._version = version
        self._support = support
        self._on_data = on_data
        base = logger if logger is not None else globals()["logger"]
        self.log = logging.LoggerAdapter(base, {"url": self.url})

        self._state = DISCONNECTED
        self._state_waiter = None
        self._stats = ClientStats()
        self._fatal = None
        self._closing = False
        self._supervisor = None
        self._ws = None
        self._proto = None
        self._session = None
        self._in_session = False
        self._consumer_busy = False
        self._next_method_id = 1
        self._calls = {}
        self._resend = {}
        self._relogin_id = None
        self._relogin_timer = None
        self._subs = {}
        self._token = resume_token
        self._password_login = None
        self._fallback_sent = False
        self._user_id = None
        self._stopping = set()
        self._drop_error = None
        self._jitter = wait_random_exponential(multiplier=backoff_initial, max=backoff_max)
        self._streams = []
        self._status_streams = []

    def __repr__(self) -> str:
        return f"<DDPClient {self.url} {self._state.value}>"

    @property
    def state(self) -> ClientState:
        """The lifecycle state."""
        return self._state

    @property
    def connected(self) -> bool:
        """Whether a session is up and set up (calls go out at once)."""
        return self._state is CONNECTED

    @property
    def server_version(self) -> str | None:
        """The DDP version negotiated on the current session."""
        return self._version if self._in_session else None

    @property
    def stats(self) -> ClientStats:
        """Counters: attempts, connects, reconnects, frames in/out, last error, backoff delays."""
        return self._stats

    @property
    def user_id(self) -> str | None:
        """The id of the logged-in user, if a login succeeded."""
        return self._user_id

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        """The active subscriptions by id (a copy)."""
        return dict(self._subs)

    async def start(self) -> DDPClient:
        """Start the supervisor task and return at once (the server may be unreachable).

        Raises:
            InvalidState: The client is closed.
        """
        self._check_not_closed()
        if self._supervisor is None:
            self._set_state(CONNECTING)
            self._supervisor = asyncio.get_running_loop().create_task(
                self._supervise(), name=f"aioserversync DDPClient {self.url}"
            )
        return self

    async def connect(self, timeout: float | None = None) -> DDPClient:
        """Start and wait until connected.

        Args:
            timeout: Seconds to wait at most (default: ``open_timeout``).

        Raises:
            SyncTimeout: Not connected in time (the client keeps trying in the background).
            VersionMismatch: No common DDP version.
        """
        await self.start()
        await self.wait_connected(self.open_timeout if timeout is None else timeout)
        return self

    def __await__(self) -> Generator[Any, None, DDPClient]:
        return self.connect().__await__()

    async def __aenter__(self) -> DDPClient:
        try:
            return await self.connect()
        except BaseException:
            await self.close()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the socket with code 1000 and end every wait. Idempotent.

        Subscriptions are not unsubscribed one by one: the server drops them with the session.
        Outstanding calls fail with :class:`~aioserversync.exceptions.ConnectionClosedOK`,
        subscriptions end, ``on_data`` gets a final ``Disconnected(None)`` if a session was up,
        and ``data_events()``/``status_changes()`` iterations end.
        """
        if self._state is CLOSED:
            return
        if self._closing:  # another task is closing: wait for it
            while self._state is not CLOSED:
                await asyncio.shield(self._state_future())
            return
        self._closing = True
        sup = self._supervisor
        if sup is not None and not sup.done():
            ws = self._ws
            if self._in_session and ws is not None:
                # Graceful: the reader sees the close, delivers Disconnected and returns.
                try:
                    await ws.close(1000)
                except Exception:
                    self.log.debug("error while closing the socket", exc_info=True)
                try:
                    async with asyncio.timeout(_CLOSE_GRACE):
                        await asyncio.shield(sup)
                except Exception:
                    pass
            if not sup.done():
                sup.cancel()
            try:
                await sup
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
            except Exception:
                pass
        await self._abort_socket()
        closed = ConnectionClosedOK("the client was closed", code=1000)
        self._end_everything(closed)
        self._set_state(CLOSED)
        for stream in list(self._status_streams):
            stream.close()
        self.log.debug("closed")

    async def subscribe(self, name: str, *params: Any, sub_id: str | None = None) -> Subscription:
        """Subscribe to a publication (sent now if connected, else on the next session).

        Args:
            name: The publication name.
            *params: Its parameters (Python values, EJSON-encoded).
            sub_id: The subscription id (default: a fresh ``Random.id()``).

        Returns:
            The :class:`Subscription` handle (``await sub.ready()`` for the initial data).

        Raises:
            EJSONError: A parameter cannot be encoded.
            LocalProtocolError: ``sub_id`` is already active.
            InvalidState: The client is closed or failed.
        """
        self._check_usable()
        ejson.encode(list(params))  # refuse bad params now, not on some later session
        id_ = sub_id if sub_id is not None else random_id()
        if id_ in self._subs:
            raise LocalProtocolError(f"subscription id {id_!r} is already active")
        sub = Subscription(self, id_, name, params)
        self._subs[id_] = sub
        if self._state is CONNECTED and self._proto is not None:
            self._proto.send_sub(name, params, id=id_)
            await self._flush()
        return sub

    async def unsubscribe(self, sub_id: str, timeout: float | None = None) -> None:
        """Stop the subscription with this id (see :meth:`Subscription.stop`).

        Raises:
            SyncTimeout: No ``nosub`` within ``timeout``.
        """
        sub = self._subs.get(sub_id)
        if sub is not None:
            await sub.stop(timeout)
        elif self._state is CONNECTED and self._proto is not None:
            self._proto.send_unsub(sub_id)
            await self._flush()

    async def _stop_subscription(self, sub: Subscription) -> None:
        if self._subs.get(sub.id) is not sub:
            sub._set_ended(None)
            return
        if self._state is CONNECTED and self._proto is not None:
            # It stays in _subs until nosub: its data keeps flowing until the server ends it.
            self._stopping.add(sub.id)
            self._proto.send_unsub(sub.id)
            await self._flush()
        else:
            del self._subs[sub.id]
            sub._set_ended(None)

    def data_events(self, max_queue: int = 1024) -> EventStream[Any]:
        """Return an async iterator over the data events (as passed to ``on_data``).

        Connected, the data events and Disconnected, one by one. The buffer holds ``max_queue``
        events; when it is full new events are dropped and a warning is logged. Iteration ends
        when the client closes (or on ``await stream.aclose()``).

        Raises:
            InvalidState: The client is closed.
        """
        self._check_not_closed()
        stream: EventStream[Any] = EventStream(
            max_queue, on_close=self._streams.remove, logger=self.log, name="data events"
        )
        self._streams.append(stream)
        return stream

    def status_changes(self, max_queue: int = 64) -> EventStream[ClientStatus]:
        """Return an async iterator of :class:`ClientStatus` entries; it ends on close.

        The first entry is the current status; then one per change. When the consumer falls
        ``max_queue`` entries behind, the oldest are dropped.

        Raises:
            InvalidState: The client is closed.
        """
        self._check_not_closed()
        stream: EventStream[ClientStatus] = EventStream(
            max_queue,
            drop_oldest=True,
            on_close=self._status_streams.remove,
            logger=self.log,
            name="status changes",
        )
        stream.push((ClientStatus(self._state, self.session, None),))
        self._status_streams.append(stream)
        return stream

"""Shared state and helpers of :class:`~aioserversync.asyncio.client.DDPClient`.

The client is assembled from :class:`ClientCore` (this module: state, waits, sending), the
connection mixin (:mod:`aioserversync.asyncio.connection`: reconnect loop, session, reader,
heartbeat) and the calls mixin (:mod:`aioserversync.asyncio.calls`: methods and login).
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import websockets
from websockets.asyncio.client import ClientConnection

from ..exceptions import (
    ConnectionClosedError,
    InvalidState,
    ServerSyncError,
    SyncTimeout,
    VersionMismatch,
)
from ..protocol.client import ClientProtocol, PendingMethod
from .client_state import ClientState, ClientStats, ClientStatus
from .client_streams import EventStream
from .subscription import Subscription

if TYPE_CHECKING:
    from tenacity.wait import wait_random_exponential

    from .calls import _Call

__all__ = ["ClientCore", "OnData"]

OnData = Callable[[list[Any]], Awaitable[Any] | None]
"""``on_data(events)``: data events of one frame (plus Connected/Disconnected)."""

CONNECTED = ClientState.CONNECTED
CLOSED = ClientState.CLOSED
FAILED_STATE = ClientState.FAILED


class ClientCore:
    """State shared by the parts of a DDP client, and the helpers they all use."""

    url: str
    log: logging.LoggerAdapter[Any]
    heartbeat_interval: float
    heartbeat_timeout: float
    open_timeout: float
    max_size: int | None
    ssl: ssl_module.SSLContext | None
    proxy: str | bool | None
    compression: str | None
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None
    backoff_initial: float
    backoff_max: float
    stable_after: float
    decode_data: bool
    _backoff: Callable[[int], float] | None
    _jitter: wait_random_exponential
    _version: str
    _support: tuple[str, ...]
    _on_data: OnData | None
    _state: ClientState
    _state_waiter: asyncio.Future[None] | None
    _stats: ClientStats
    _fatal: BaseException | None
    _closing: bool
    _supervisor: asyncio.Task[None] | None
    _ws: ClientConnection | None
    _proto: ClientProtocol | None
    _session: str | None
    _in_session: bool
    _consumer_busy: bool
    _drop_error: BaseException | None  # why this side dropped the link (heartbeat, drop_link)
    _next_method_id: int
    _calls: dict[str, _Call]
    _resend: dict[str, PendingMethod]
    _relogin_id: str | None
    _relogin_timer: asyncio.TimerHandle | None
    _subs: dict[str, Subscription]
    _stopping: set[str]
    _token: str | None
    _password_login: dict[str, Any] | None  # kept by login_with_password(keep=True)
    _fallback_sent: bool  # this session already tried _password_login after a refused resume
    _user_id: str | None
    _streams: list[EventStream[Any]]
    _status_streams: list[EventStream[ClientStatus]]

    @property
    def session(self) -> str | None:
        """The current DDP session id (``None`` when not connected)."""
        return self._session if self._in_session else None

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until a session is up and set up (login resumed, subscriptions re-sent).

        Args:
            timeout: Seconds to wait at most (``None``: no limit).

        Raises:
            SyncTimeout: ``timeout`` ran out.
            VersionMismatch: The client failed for good (no common DDP version).
            InvalidState: The client is closed, was closed while waiting, or was never started.
        """
        if self._supervisor is None:
            self._check_not_closed()
            raise InvalidState("call start() (or connect()) before wait_connected()")
        try:
            async with asyncio.timeout(timeout):
                while self._state is not CONNECTED:
                    self._check_usable()
                    await asyncio.shield(self._state_future())
        except TimeoutError as exc:
            if isinstance(exc, ServerSyncError):
                raise
            raise SyncTimeout(f"not connected to {self.url} after {timeout}s") from None

    def drop_link(self, reason: str, *, level: int = logging.WARNING) -> None:
        """Drop the current session's link; the client reconnects as after any lost link.

        For a caller that can no longer trust the session, such as a write whose answer never
        came: the reconnect settles every call of the session (``WriteOutcomeUnknown`` for
        those without a ``result``) and re-sends the subscriptions. Does nothing without a
        session, or when the link is already being dropped.

        Args:
            reason: Why, for the log and the session's end error.
            level: The log level of the message saying so.
        """
        ws = self._ws
        if ws is None or not self._in_session or self._drop_error is not None:
            return
        self.log.log(level, "dropping the link to %s: %s", self.url, reason)
        self._drop_error = ConnectionClosedError(f"link dropped: {reason}")
        ws.transport.abort()

    # ------------------------------------------------------------------ state

    def _check_not_closed(self) -> None:
        if self._state is CLOSED or self._closing:
            raise InvalidState("this DDPClient is closed")

    def _check_usable(self) -> None:
        self._check_not_closed()
        if self._state is FAILED_STATE:
            assert self._fatal is not None
            if isinstance(self._fatal, VersionMismatch):
                raise self._fatal
            raise InvalidState(f"this DDPClient failed: {self._fatal}") from self._fatal

    def _state_future(self) -> asyncio.Future[None]:
        if self._state_waiter is None or self._state_waiter.done():
            self._state_waiter = asyncio.get_running_loop().create_future()
        return self._state_waiter

    def _set_state(self, state: ClientState, error: BaseException | None = None) -> None:
        if state is self._state and error is None:
            return
        self._state = state
        waiter = self._state_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._status_streams:
            status = ClientStatus(state, self.session, error)
            for stream in self._status_streams:
                stream.push((status,))

    def _end_everything(self, error: BaseException) -> None:
        """Fail every call and subscription, end every data stream (close or fatal failure)."""
        for call in list(self._calls.values()):
            if not call.future.done():
                call.future.set_exception(error)
        self._calls.clear()
        self._resend.clear()
        subs = list(self._subs.values())
        self._subs.clear()
        for sub in subs:
            sub._set_ended(error)
        for stream in list(self._streams):
            stream.close()

    def _remember_login(self, result: Any) -> None:
        if isinstance(result, dict):
            token = result.get("token")
            if isinstance(token, str):
                self._token = token
            uid = result.get("id")
            if isinstance(uid, str):
                self._user_id = uid

    # ------------------------------------------------------------------ sending

    async def _send_frames(self, ws: ClientConnection, proto: ClientProtocol) -> None:
        frames = proto.data_to_send()
        for frame in frames:
            await ws.send(frame, text=True)
        self._stats.frames_out += len(frames)

    async def _flush(self) -> None:
        """Send what the current protocol object queued (link errors are handled by the reader)."""
        ws, proto = self._ws, self._proto
        if ws is None or proto is None:
            return
        try:
            await self._send_frames(ws, proto)
        except websockets.exceptions.ConnectionClosed:
            self.log.debug("send failed: the link is closing")

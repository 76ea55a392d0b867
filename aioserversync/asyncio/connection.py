"""The connection part of :class:`~aioserversync.asyncio.client.DDPClient`.

One supervisor task runs connection *episodes*. Each episode is a fresh tenacity
``AsyncRetrying`` (full-jitter exponential backoff, ``stop_never``, only positive
``retry_if_exception_type`` predicates so cancellation propagates): an attempt opens a
WebSocket, negotiates DDP, sets the session up and reads until the link is lost. A session that
stayed up ``stable_after`` seconds ends the episode, so the next failure starts again from the
shortest delay; a link that dies sooner (a server that accepts and then closes at once) counts as
one more failed attempt, and the delays keep growing.

After ``connected`` (ddp-facts §3.6, §9.4): a stored login is resumed first and waited for, then
every active subscription is re-sent (same id, name, params), then ``retry=True`` calls without a
``result``. A refused resume (403) first logs in again with a password kept by
``login_with_password(keep=True)``, still before any subscription; failing that, it forgets the
login and ends the subscriptions made under it (``NoSub`` with the error) rather than re-running
them as another user.

The socket is a :class:`~aioserversync.asyncio.client_ws.DDPClientConnection`: websockets
opens it and sends, and a batching frame reader receives. The reader takes every message
received so far in one batch and hands the data events to ``on_data`` in wire order (awaiting
it when it returns an awaitable); consecutive ``added``/``changed``/``removed`` take a short path
(one ``on_data`` call per run of them, no per-message allocation beyond the event itself).
"""

from __future__ import annotations

import asyncio
from typing import Any

import websockets
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_never
from websockets.asyncio.client import ClientConnection, connect

from ..exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    MeteorError,
    NotAuthorized,
    ServerSyncError,
    WriteOutcomeUnknown,
)
from ..protocol.client import ClientProtocol
from ..protocol.connection import CONNECTING as P_CONNECTING
from ..protocol.connection import FAILED
from ..protocol.events import (
    Added,
    AddedBefore,
    Changed,
    Connected,
    InvalidMessage,
    MethodDone,
    MovedBefore,
    NoSub,
    Ping,
    Ready,
    Removed,
    ServerError,
)
from .client_heartbeat import HeartbeatMixin
from .client_state import ClientState, Disconnected
from .client_ws import DDPClientConnection

__all__ = ["ConnectionMixin"]

CONNECTING = ClientState.CONNECTING
CONNECTED = ClientState.CONNECTED
RECONNECTING = ClientState.RECONNECTING
FAILED_STATE = ClientState.FAILED

# A run of data events is handed on after this many: the parsed documents it holds are released
# sooner (and with them the work of the cyclic garbage collector, which walks every live object).
# A run of 64 ``added`` holds about 300 containers, under the collector's first threshold (700
# allocations): B1 into SQLite counted 285 young collections and 2-3 full ones, against 691 and
# 5-6 with runs of 256 (and 128), and went from 90k to 101k docs/s (six interleaved rounds; 32
# was no better). Live ``changed`` did not move.
_RUN_MAX = 64
_FAST_TYPES = frozenset({Added, Changed, Removed})
_DATA_TYPES = frozenset({Added, Changed, Removed, AddedBefore, MovedBefore, Ready, NoSub})


class _SessionTooShort(ServerSyncError):
    """The link died before a session was established or before it proved stable."""


class _SessionFailed(ServerSyncError):
    """The session was ended on purpose (consumer error, refused re-login); back off."""


class _VersionRetry(ServerSyncError):
    """The server suggested another version we support: reconnect with it."""


_RETRYABLE = (
    OSError,
    TimeoutError,
    websockets.exceptions.InvalidHandshake,
    websockets.exceptions.InvalidURI,
    websockets.exceptions.ConnectionClosed,
    ConnectionClosed,
    _SessionTooShort,
    _SessionFailed,
    _VersionRetry,
)


def _translate_closed(exc: BaseException) -> BaseException:
    """Map a websockets ConnectionClosed to ours (code and reason kept, cause chained)."""
    if isinstance(exc, websockets.exceptions.ConnectionClosed):
        rcvd = exc.rcvd
        code = rcvd.code if rcvd is not None else None
        reason = rcvd.reason if rcvd is not None else ""
        cls = (
            ConnectionClosedOK
            if isinstance(exc, websockets.exceptions.ConnectionClosedOK)
            else ConnectionClosedError
        )
        out = cls(f"connection closed: {exc}", code=code, reason=reason)
        out.__cause__ = exc
        return out
    return exc


class ConnectionMixin(HeartbeatMixin):
    """The reconnect loop, one session's life, the reader and the heartbeat."""

    def _wait(self, retry_state: RetryCallState) -> float:
        if self._backoff is not None:
            return float(self._backoff(retry_state.attempt_number))
        return float(self._jitter(retry_state))

    def _before_sleep(self, retry_state: RetryCallState) -> None:
        delay = retry_state.next_action.sleep if retry_state.next_action else 0.0
        self._stats.backoff_delays.append(delay)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if exc is not None:
            self._stats.last_error = exc
        self._set_state(RECONNECTING, exc)
        self.log.info(
            "connection attempt %d failed (%s); retrying in %.2fs",
            retry_state.attempt_number,
            exc,
            delay,
        )

    async def _supervise(self) -> None:
        try:
            while not self._closing:
                retrying = AsyncRetrying(
                    retry=retry_if_exception_type(_RETRYABLE),
                    wait=self._wait,
                    stop=stop_never,
                    before_sleep=self._before_sleep,
                    reraise=True,
                )
                async for attempt in retrying:
                    with attempt:
                        await self._run_session()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._closing:
                return
            self._fatal = exc
            self._stats.last_error = exc
            self.log.error("DDP client failed for good: %s", exc)
            self._end_everything(exc)
            self._set_state(FAILED_STATE, exc)

    async def _abort_socket(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None and ws.transport is not None:
            ws.transport.abort()

    async def _open(self) -> DDPClientConnection:
        ws = await connect(
            self.url,
            open_timeout=self.open_timeout,
            max_size=self.max_size,
            ssl=self.ssl,
            proxy=True if self.proxy is True else (self.proxy or None),
            compression=self.compression,
            additional_headers=self.headers,
            # DDP heartbeats are the liveness check; pre1 has none, so use WebSocket pings.
            ping_interval=20 if self._version == "pre1" else None,
            close_timeout=self.open_timeout,
            max_queue=64,
            create_connection=DDPClientConnection,
        )
        assert isinstance(ws, DDPClientConnection)
        return ws

    async def _run_session(self) -> None:
        """One attempt: connect, negotiate, set up, read until the link is lost.

        Returns normally when a session that lasted ``stable_after`` ended (or on close);
        raises a retryable error otherwise.
        """
        loop = asyncio.get_running_loop()
        if self._state is not CONNECTING:
            self._set_state(CONNECTING)
        self._stats.attempts += 1
        ws = await self._open()
        self._ws = ws
        proto = ClientProtocol(
            version=self._version,
            support=self._support,
            decode_data=self.decode_data,
            max_size=self.max_size,
            logger=self.log,
        )
        started: float | None = None
        error: BaseException | None = None
        hb_task: asyncio.Task[None] | None = None
        self._drop_error = None
        try:
            proto.send_connect(self._session)
            await self._send_frames(ws, proto)
            async with asyncio.timeout(self.open_timeout):
                while proto.state is P_CONNECTING:
                    batch = await ws.next_batch()
                    for i, data in enumerate(batch):
                        self._stats.frames_in += 1
                        proto.receive_events(data)  # nothing but connected/failed matters here
                        await self._send_frames(ws, proto)
                        if proto.state is not P_CONNECTING:
                            ws.unread(batch[i + 1 :])  # the session's first data
                            break
            if proto.state is FAILED:
                assert proto.handshake_exc is not None
                suggested = proto.handshake_exc.suggested
                if suggested in self._support and suggested != self._version:
                    self.log.info("server asks for DDP version %r; reconnecting", suggested)
                    self._version = suggested
                    raise _VersionRetry(f"server suggested DDP version {suggested!r}")
                raise proto.handshake_exc
            # The session is open.
            started = loop.time()
            self._proto = proto
            self._session = proto.session
            self._in_session = True
            self._stopping = set()
            self._stats.connects += 1
            if self._stats.connects > 1:
                self._stats.reconnects += 1
            self.log.info("DDP session %s open (version %s)", proto.session, proto.version)
            assert proto.session is not None
            await self._deliver([Connected(proto.session)])
            if (
                self.heartbeat_interval > 0
                and self.heartbeat_timeout > 0
                and self._version != "pre1"
            ):
                hb_task = loop.create_task(self._heartbeat(ws, proto))
            await self._begin_setup(ws, proto)
            await self._read_loop(ws, proto)
        except websockets.exceptions.ConnectionClosed as exc:
            error = self._drop_error or _translate_closed(exc)
        except (ServerSyncError, OSError, TimeoutError) as exc:
            error = exc
        finally:
            if hb_task is not None:
                hb_task.cancel()
            await self._abort_socket()
            if started is not None:
                await self._link_lost(proto, error if not self._closing else None)
        if self._closing:
            return
        if error is None:
            error = ConnectionClosedError("connection closed")
        self._stats.last_error = error
        if started is None:
            raise error
        lasted = loop.time() - started
        if lasted >= self.stable_after and not isinstance(error, _SessionFailed):
            self.log.info("link lost after %.1fs (%s); reconnecting", lasted, error)
            return
        raise _SessionTooShort(f"session ended after {lasted:.2f}s: {error}") from error

    async def _link_lost(self, proto: ClientProtocol, error: BaseException | None) -> None:
        """Settle calls and subscriptions of a dead session and tell the consumer."""
        self._in_session = False
        self._proto = None
        self._relogin_id = None
        self._stop_relogin_timer()
        if not self._closing:
            self._set_state(CONNECTING, error)
        pending = {p.id: p for p in proto.outstanding_methods()}
        for id_, call in list(self._calls.items()):
            p = pending.get(id_)
            if self._closing and not (p is not None and p.has_result):
                continue  # close() fails it with ConnectionClosedOK
            if p is not None and p.has_result:
                del self._calls[id_]
                if not call.future.done():
                    if p.error is not None:
                        call.future.set_exception(p.error)
                    else:
                        call.future.set_result(p.result)
            elif call.retry and (p is not None or id_ in self._resend):
                if p is not None:
                    self._resend[id_] = p
            else:
                del self._calls[id_]
                if not call.future.done():
                    call.future.set_exception(
                        WriteOutcomeUnknown(
                            f"method {call.name!r} (id {id_}) was sent, then the link dropped "
                            "before its result"
                        )
                    )
        for sub_id in self._stopping:
            sub = self._subs.pop(sub_id, None)
            if sub is not None:
                sub._set_ended(None)
        self._stopping = set()
        for sub in self._subs.values():
            sub._set_unready()
        try:
            await self._deliver([Disconnected(error)])
        except Exception:
            self.log.exception("on_data failed on Disconnected")

    async def _begin_setup(self, ws: ClientConnection, proto: ClientProtocol) -> None:
        self._fallback_sent = False
        if self._token is not None:
            await self._send_relogin(ws, proto, {"resume": self._token})
        else:
            await self._finish_setup(ws, proto)

    async def _send_relogin(
        self, ws: ClientConnection, proto: ClientProtocol, params: dict[str, Any]
    ) -> None:
        id_ = str(self._next_method_id)
        self._next_method_id += 1
        proto.send_method("login", [params], id=id_)
        self._relogin_id = id_
        self._stop_relogin_timer()
        self._relogin_timer = asyncio.get_running_loop().call_later(
            self.open_timeout, self._relogin_overdue, id_
        )
        await self._send_frames(ws, proto)

    def _relogin_overdue(self, id_: str) -> None:
        """The login sent at the start of a session got no answer: the session cannot proceed."""
        self._relogin_timer = None
        if self._relogin_id == id_:
            self.drop_link(f"the stored login got no answer within {self.open_timeout:g}s")

    def _stop_relogin_timer(self) -> None:
        timer, self._relogin_timer = self._relogin_timer, None
        if timer is not None:
            timer.cancel()

    async def _finish_setup(self, ws: ClientConnection, proto: ClientProtocol) -> None:
        for sub in self._subs.values():
            proto.send_sub(sub.name, sub.params, id=sub.id)
        for p in sorted(self._resend.values(), key=lambda p: int(p.id) if p.id.isdigit() else 0):
            proto.resend_method(p)
        self._resend.clear()
        self._set_state(CONNECTED)
        await self._send_frames(ws, proto)

    async def _relogin_done(self, ws: ClientConnection, proto: ClientProtocol, ev: Any) -> None:
        self._relogin_id = None
        self._stop_relogin_timer()
        error: MeteorError | None = ev.error
        if error is None:
            self._remember_login(ev.result)
            await self._finish_setup(ws, proto)
            return
        if not (isinstance(error, NotAuthorized) or error.error == 403):
            raise _SessionFailed(f"resuming the login failed: {error!r}")
        if self._password_login is not None and not self._fallback_sent:
            # The token expired or was revoked: the kept password logs in again, still
            # before any subscription.
            self.log.info("stored login refused on reconnect (%s); logging in again", error)
            self._fallback_sent = True
            await self._send_relogin(ws, proto, self._password_login)
            return
        # The stored login is no longer valid: forget it, do not act as that user again.
        self.log.warning("stored login refused on reconnect (%s); subscriptions dropped", error)
        self._token = None
        self._password_login = None
        self._user_id = None
        self._stats.login_error = error
        self._set_state(self._state, error)
        dropped = list(self._subs.values())
        self._subs.clear()
        if dropped:
            await self._deliver([NoSub(sub.id, error) for sub in dropped])
        for sub in dropped:
            sub._set_ended(error)
        for id_ in list(self._resend):
            call = self._calls.pop(id_, None)
            if call is not None and not call.future.done():
                call.future.set_exception(error)
        self._resend.clear()
        await self._finish_setup(ws, proto)

    async def _read_loop(self, ws: DDPClientConnection, proto: ClientProtocol) -> None:
        next_batch = ws.next_batch
        receive_events = proto.receive_events
        stats = self._stats
        fast = _FAST_TYPES
        deliver = self._deliver
        while True:
            batch = await next_batch()
            stats.frames_in += len(batch)
            # added/changed/removed of consecutive frames reach on_data as one list (up to
            # _RUN_MAX): one call per run, not per message. Anything else first delivers what
            # came before it.
            run: list[Any] = []
            for data in batch:
                events = receive_events(data)
                if not events:
                    continue
                if len(events) == 1 and type(events[0]) in fast:
                    run.append(events[0])
                    if len(run) >= _RUN_MAX:
                        await deliver(run)
                        run = []
                    continue
                if run:
                    await deliver(run)
                    run = []
                await self._handle_events(ws, proto, events)
            if run:
                await deliver(run)

    def _consumer_failed(self, exc: Exception) -> None:
        self.log.exception("on_data raised; dropping the link to resynchronise")
        raise _SessionFailed(f"on_data raised {exc!r}") from exc

    async def _deliver(self, events: list[Any]) -> None:
        on_data = self._on_data
        if on_data is not None:
            try:
                result = on_data(events)
                if result is not None:
                    self._consumer_busy = True
                    try:
                        await result
                    finally:
                        self._consumer_busy = False
            except Exception as exc:
                self._consumer_failed(exc)
        if self._streams:
            for stream in self._streams:
                stream.push(events)

    async def _handle_events(
        self, ws: ClientConnection, proto: ClientProtocol, events: list[Any]
    ) -> None:
        data: list[Any] = []
        after: list[Any] = []
        for ev in events:
            t = type(ev)
            if t in _DATA_TYPES:
                data.append(ev)
                if t is Ready or t is NoSub:
                    after.append(ev)
            elif t is MethodDone:
                after.append(ev)
            elif t is Ping:
                await self._send_frames(ws, proto)
            elif t is InvalidMessage:
                self._stats.protocol_errors += 1
            elif t is ServerError:
                self._stats.server_errors += 1
        if data:
            await self._deliver(data)
        for ev in after:
            t = type(ev)
            if t is Ready:
                for sub_id in ev.subs:
                    sub = self._subs.get(sub_id)
                    if sub is not None and sub_id not in self._stopping:
                        sub._set_ready()
            elif t is NoSub:
                sub = self._subs.pop(ev.id, None)
                self._stopping.discard(ev.id)
                if sub is not None:
                    if ev.error is not None:
                        self.log.info("subscription %r stopped: %s", sub.name, ev.error)
                    sub._set_ended(ev.error)
            elif ev.id == self._relogin_id:
                await self._relogin_done(ws, proto, ev)
            else:
                call = self._calls.pop(ev.id, None)
                if call is not None and not call.future.done():
                    if ev.error is not None:
                        call.future.set_exception(ev.error)
                    else:
                        call.future.set_result(ev.result)

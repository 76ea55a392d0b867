"""One client connection of a :class:`~aioserversync.asyncio.server.DDPServer`.

A :class:`Session` couples one websockets connection with a sans-I/O
:class:`~aioserversync.protocol.server.ServerProtocol` and a per-session
:class:`~aioserversync.protocol.mergebox.Mergebox`. It runs:

* the reader (the websockets connection handler): every frame goes through the protocol core;
  ``ping`` is answered at once, while ``sub``, ``unsub`` and ``method`` join a per-session queue
  handled one message at a time, in arrival order (ddp-facts §3.5);
* a sender task that drains queued frames in batches (one socket write per batch instead of one
  per message);
* a heartbeat timer (Meteor's algorithm, :mod:`aioserversync.protocol.heartbeat`) that pings an
  idle client and closes the session when it stays silent.

The sender, the timers and closing the connection are in the base class
:class:`~aioserversync.asyncio.session_io.SessionIO`; this module handles the incoming messages.

A session is Meteor's ``this.connection``: handlers reach it as ``pub.connection`` or
``ctx.connection``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ..exceptions import MethodNotFound, SubscriptionNotFound
from ..protocol.events import Connect, Method, Sub, Unsub
from ..protocol.heartbeat import Heartbeat
from ..protocol.mergebox import MERGE, Mergebox, WireOp
from ..protocol.server import (
    ConnectFailed,
    ServerProtocol,
    nosub_frame,
    op_frame,
    ready_frame,
    result_frame,
    updated_frame,
)
from .method_context import MethodContext, run_method
from .publication import Publication
from .session_io import SessionIO

if TYPE_CHECKING:
    from .server import DDPServer

__all__ = ["Session"]

Callback = Callable[..., Any]


class _SessionLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra['session'] if self.extra else '?'}] {msg}", kwargs


class Session(SessionIO):
    """One DDP connection: Meteor's ``this.connection``.

    Attributes:
        id: The DDP session id once connected, else ``None``.
        version: The negotiated DDP version once connected.
        client_address: The peer's socket address.
        http_headers: The WebSocket handshake request headers.
        data: A dict for the application's per-connection state.
        user_id: The logged-in user (set by ``MethodContext.set_user_id``), or ``None``.
        publications: The active subscriptions, by subscription id.
        mergebox: The session's merge box.
        closed: Whether the session has ended.
    """

    def __init__(self, server: DDPServer, ws: ServerConnection) -> None:
        self.server = server
        self._ws = ws
        self.id: str | None = None
        self.version: str | None = None
        self.client_address: Any = ws.remote_address
        request = ws.request
        self.http_headers: dict[str, str] = dict(request.headers.raw_items()) if request else {}
        self.data: dict[str, Any] = {}
        self.user_id: Any = None
        self.publications: dict[str, Publication] = {}
        self.mergebox = Mergebox()
        self.closed = False
        self.logger: logging.LoggerAdapter[logging.Logger] = _SessionLogger(
            server.logger, {"session": f"{self.client_address}"}
        )
        self.protocol = ServerProtocol(
            max_size=server.max_size,
            logger=self.logger,
            server_id=server.server_id,
            raw_params=server._raw_methods,
        )
        self._loop = asyncio.get_running_loop()
        self._queue: deque[Sub | Unsub | Method] = deque()
        self._current: Publication | MethodContext | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._callback_tasks: set[asyncio.Task[Any]] = set()
        self._wakeup = asyncio.Event()
        self._inflight = 0
        self._drain_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._deferred: list[bytes] | None = None
        self._deferred_ready: list[str] = []
        self._close_callbacks: list[Callback] = []
        self._closing = False
        self._hb: Heartbeat | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._sender: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Session {self.id or '(connecting)'} {self.client_address}>"

    # ------------------------------------------------------------------ public

    def on_close(self, callback: Callback) -> None:
        """Run ``callback()`` (plain or async) when the session ends."""
        self._close_callbacks.append(callback)

    # ------------------------------------------------------------------ used by publications

    def publish_op(self, pub: Publication, op: WireOp, frame: bytes | None = None) -> None:
        """Send a data operation of ``pub`` (held back while subscriptions are re-run)."""
        if self.closed:
            return
        deferred = self._deferred
        if deferred is not None:
            # A re-run is filling a fresh merge box: merge-strategy data reaches the client as
            # one diff at the end; other strategies' data is sent after that diff.
            if pub.strategy != MERGE:
                f = frame if frame is not None else op_frame(op)
                if f is not None:
                    deferred.append(f)
            return
        if frame is None:
            frame = op_frame(op)
            if frame is None:
                return
        self.protocol.send_frame(frame)
        if not self._wakeup.is_set():
            self._wakeup.set()

    def publish_frames(self, frames: Iterable[bytes]) -> None:
        """Send frames on behalf of a publication (held back while subscriptions are re-run)."""
        if self.closed:
            return
        if self._deferred is not None:
            self._deferred.extend(frames)
            return
        self.protocol.send_frames(frames)
        self._wake()

    def publish_ready(self, sub_id: str) -> None:
        """Send ``ready`` for a subscription (gathered into one message during a re-run)."""
        if self.closed:
            return
        if self._deferred is not None:
            self._deferred_ready.append(sub_id)
            return
        self.protocol.send_frame(ready_frame((sub_id,)))
        self._wake()

    def release(self, owner: Publication | MethodContext) -> None:
        """Let the queue move past the message ``owner`` is handling (idempotent)."""
        if self._current is owner:
            self._current = None
            if self._queue and not self.closed:
                self._loop.call_soon(self._process_queue)

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str | None = None
    ) -> asyncio.Task[Any]:
        """Run ``coro`` as a task owned by the session (cancelled when it ends)."""
        task = self._loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def run_callback(self, callback: Callback, *args: Any) -> None:
        """Call a plain or async callback; failures are logged, async ones awaited at close."""
        try:
            result = callback(*args)
        except Exception:
            self.logger.exception("callback %r failed", callback)
            return
        if inspect.isawaitable(result):
            task = self._loop.create_task(self._await_callback(result, callback))
            self._callback_tasks.add(task)
            task.add_done_callback(self._callback_tasks.discard)

    async def _await_callback(self, awaitable: Awaitable[Any], callback: Callback) -> None:
        try:
            await awaitable
        except Exception:
            self.logger.exception("callback %r failed", callback)

    # ------------------------------------------------------------------ main loop

    async def run(self) -> None:
        """Serve the connection until it closes, then clean up everything the session owns."""
        ws = self._ws
        self._sender = self._loop.create_task(self._send_loop(), name="ddp-session-sender")
        if self.server.connect_timeout:
            self._timer = self._loop.call_later(self.server.connect_timeout, self._connect_timeout)
        if self.protocol.pending_frames:
            self._wake()
        try:
            while True:
                try:
                    data = await ws.recv(decode=False)
                except ConnectionClosed:
                    break
                try:
                    self._on_frame(data)
                except Exception:
                    self.logger.exception("internal error while handling a frame")
        finally:
            await self._shutdown()

    def _on_frame(self, data: bytes) -> None:
        hb = self._hb
        if hb is not None:
            hb.received(self._loop.time())
        p = self.protocol
        p.receive_text(data)
        queued = False
        for ev in p.events_received():
            t = type(ev)
            if t is Sub or t is Method or t is Unsub:
                self._queue.append(ev)
                queued = True
            elif t is Connect:
                self._on_connect(ev)
            elif t is ConnectFailed:
                self._request_close(1000, "DDP version negotiation failed")
        if queued and self._current is None:
            self._process_queue()
        if p.pending_frames:
            self._wake()

    def _on_connect(self, ev: Connect) -> None:
        self.id = ev.session
        self.version = ev.version
        self.logger.extra = {"session": ev.session}
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.server._sessions[ev.session] = self
        srv = self.server
        if ev.version != "pre1" and srv.heartbeat_interval > 0 and srv.heartbeat_timeout > 0:
            self._hb = Heartbeat(
                srv.heartbeat_interval, srv.heartbeat_timeout, now=self._loop.time()
            )
            self._schedule_heartbeat()
        for cb in srv._on_connect:
            self.run_callback(cb, self)

    # ------------------------------------------------------------------ queue

    def _process_queue(self) -> None:
        while self._current is None and self._queue and not self.closed:
            ev = self._queue.popleft()
            if type(ev) is Unsub:
                self._unsub(ev.id)
            elif type(ev) is Sub:
                self._start_sub(ev)
            else:
                assert type(ev) is Method
                self._start_method(ev)

    def _start_sub(self, ev: Sub) -> None:
        entry = self.server._publications.get(ev.name)
        if entry is None:
            err = SubscriptionNotFound(404, f"Subscription '{ev.name}' not found")
            self.protocol.send_frame(nosub_frame(ev.id, err))
            self._wake()
            return
        if ev.id in self.publications:
            return  # Meteor silently ignores a sub whose id is already active (§3.1).
        handler, strategy = entry
        pub = Publication(self, ev.id, ev.name, ev.params, handler, strategy)
        self.publications[ev.id] = pub
        self.mergebox.add_sub(ev.id, strategy)
        self._current = pub
        pub._start()

    def _unsub(self, sub_id: str) -> None:
        pub = self.publications.pop(sub_id, None)
        if pub is not None:
            pub._deactivate()
            ops = self.mergebox.remove_sub(sub_id)
            for op in ops:
                self.publish_op(pub, op)
        self.protocol.send_frame(nosub_frame(sub_id))
        self._wake()

    def _start_method(self, ev: Method) -> None:
        fn = self.server._methods.get(ev.method)
        if fn is None:
            err = MethodNotFound(404, f"Method '{ev.method}' not found")
            self.protocol.send_frames((result_frame(ev.id, error=err), updated_frame((ev.id,))))
            self._wake()
            return
        ctx = MethodContext(self, ev.id, ev.method, ev.random_seed)
        self._current = ctx
        self.spawn(run_method(self, ctx, fn, ev.params), name=f"ddp-method-{ev.method}")

    # ------------------------------------------------------------------ login re-run

    async def rerun_subscriptions(self, user_id: Any) -> None:
        """Set the user and re-run every subscription, sending the client only the difference.

        Old subscriptions stop silently; new runs fill a fresh merge box while merge-strategy
        output is held back; then the diff between the old and the new merge box goes out,
        followed by other strategies' output and one ``ready`` for the re-run subscriptions.
        """
        if self.closed:
            return
        old_box = self.mergebox
        old_pubs = list(self.publications.values())
        frames: list[bytes] = []
        for pub in old_pubs:
            pub._deactivate()
            if pub.strategy != MERGE:
                frames.extend(f for f in map(op_frame, old_box.remove_sub(pub.sub_id)) if f)
        self.user_id = user_id
        new_box = self.mergebox = Mergebox()
        self.publications = {}
        self._deferred = []
        self._deferred_ready = []
        try:
            for old in old_pubs:
                pub = Publication(
                    self, old.sub_id, old.name, old.params, old._handler, old.strategy
                )
                self.publications[old.sub_id] = pub
                new_box.add_sub(old.sub_id, old.strategy)
                pub._start()
                await pub._released
        finally:
            deferred, ready = self._deferred, self._deferred_ready
            self._deferred = None
            self._deferred_ready = []
            frames.extend(f for f in map(op_frame, old_box.diff(new_box)) if f)
            frames.extend(deferred)
            if ready:
                frames.append(ready_frame(ready))
            self._send(frames)

    # ------------------------------------------------------------------ shutdown

    async def _shutdown(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
        for pub in list(self.publications.values()):
            pub._deactivate()
        self.publications.clear()
        if self.id is not None and self.server._sessions.get(self.id) is self:
            del self.server._sessions[self.id]
        work: list[asyncio.Task[Any]] = list(self._tasks)
        if self._sender is not None:
            work.append(self._sender)
        for task in work:
            task.cancel()
        if work:
            await asyncio.gather(*work, return_exceptions=True)
        self._check_drained(force=True)
        for cb in self._close_callbacks:
            self.run_callback(cb)
        if self.id is not None:
            for cb in self.server._on_disconnect:
                self.run_callback(cb, self)
        pending = [t for t in self._callback_tasks if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.server.close_timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.gather(*late, return_exceptions=True)

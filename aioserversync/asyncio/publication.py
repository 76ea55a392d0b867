"""One running subscription of a :class:`~aioserversync.asyncio.server.DDPServer` session.

A publish handler receives a :class:`Publication` and its client's params::

    @server.publish("tasks")
    async def tasks(pub, list_id):
        for doc in await load(list_id):
            pub.added("tasks", doc["_id"], doc)
        pub.ready()

Data goes through the session's merge box (:mod:`aioserversync.protocol.mergebox`) with the
publication's strategy, so the client never sees a second ``added`` for a document it holds
(``merge`` strategy). Readiness is explicit: the handler calls :meth:`Publication.ready`, or returns
:data:`READY` (the counterpart of Meteor's returned cursors). Returning anything else leaves the
subscription un-ready, as in Meteor when a publication neither returns cursors nor calls
``this.ready()``.

The session handles its client's messages one at a time (ddp-facts §3.5). It moves past a ``sub``
once the handler returns, or calls :meth:`~Publication.ready`, :meth:`~Publication.unblock`,
:meth:`~Publication.error` or :meth:`~Publication.stop`, whichever comes first: a handler may keep
running (and publishing live changes) after it declared the subscription ready.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

from .. import ejson
from ..exceptions import MeteorError
from ..ids import id_stringify
from ..protocol.mergebox import Strategy
from ..protocol.server import nosub_frame

if TYPE_CHECKING:
    from .session import Session

__all__ = ["READY", "Publication", "PublishHandler"]

PublishHandler = Callable[..., Any]
"""``handler(pub, *params)``, a coroutine function or a plain function."""

StopCallback = Callable[[], Any]


class _Ready:
    __slots__ = ()

    def __repr__(self) -> str:
        return "READY"


READY: Final = _Ready()
"""Return this from a publish handler to mark the subscription ready when the handler returns."""

logger = logging.getLogger("aioserversync.server")


def _internal_error() -> MeteorError:
    return MeteorError(500, "Internal server error")


class Publication:
    """A subscription being served: the ``this`` of a Meteor publish function.

    Attributes:
        sub_id: The client's subscription id.
        name: The publication name.
        params: The client's params.
        strategy: The merge box strategy of the publication.
        connection: The :class:`~aioserversync.asyncio.session.Session` it belongs to.
        user_id: The session's user id when the subscription started (re-run on change).
    """

    __slots__ = (
        "_active",
        "_handler",
        "_on_stop",
        "_ready",
        "_released",
        "_session",
        "_task",
        "connection",
        "name",
        "params",
        "strategy",
        "sub_id",
        "user_id",
    )

    def __init__(
        self,
        session: Session,
        sub_id: str,
        name: str,
        params: list[Any],
        handler: PublishHandler,
        strategy: Strategy,
    ) -> None:
        self._session = session
        self.connection = session
        self.sub_id = sub_id
        self.name = name
        self.params = params
        self.strategy: Strategy = strategy
        self.user_id = session.user_id
        self._handler = handler
        self._active = True
        self._ready = False
        self._on_stop: list[StopCallback] = []
        self._task: asyncio.Task[None] | None = None
        self._released: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def __repr__(self) -> str:
        return f"<Publication {self.name!r} sub={self.sub_id!r} active={self._active}>"

    # ------------------------------------------------------------------ state

    @property
    def active(self) -> bool:
        """Whether the subscription is still running (not stopped, failed or unsubscribed)."""
        return self._active

    @property
    def is_ready(self) -> bool:
        """Whether ``ready`` was sent."""
        return self._ready

    # ------------------------------------------------------------------ data (Python values)

    def added(self, collection: str, id: Any, fields: dict[str, Any] | None = None) -> None:
        """Publish a document.

        Args:
            collection: The collection name.
            id: The document's real ``_id`` (a string, ObjectId, number…); sent as
                ``id_stringify(id)``.
            fields: The document's fields as Python values; an ``_id`` key is ignored.

        Raises:
            EJSONError: If a value cannot be encoded.
        """
        if not self._active:
            return
        wire = ejson.encode(fields) if fields else {}
        op = self._session.mergebox.added(self.sub_id, collection, id_stringify(id), wire)
        if op is not None:
            self._session.publish_op(self, op)

    def changed(
        self,
        collection: str,
        id: Any,
        fields: dict[str, Any] | None = None,
        cleared: Sequence[str] = (),
    ) -> None:
        """Change top-level fields of a published document (replaced whole, ddp-facts §3.2).

        Args:
            collection: The collection name.
            id: The document's real ``_id``.
            fields: New values of changed fields (Python values).
            cleared: Names of fields that were removed.

        Raises:
            EJSONError: If a value cannot be encoded.
            LocalProtocolError: For the ``merge`` strategy, if this subscription did not add it.
        """
        if not self._active:
            return
        wire = ejson.encode(fields) if fields else None
        op = self._session.mergebox.changed(
            self.sub_id, collection, id_stringify(id), wire, cleared
        )
        if op is not None:
            self._session.publish_op(self, op)

    def removed(self, collection: str, id: Any) -> None:
        """Stop publishing a document.

        Raises:
            LocalProtocolError: For the ``merge`` strategy, if this subscription did not add it.
        """
        if not self._active:
            return
        op = self._session.mergebox.removed(self.sub_id, collection, id_stringify(id))
        if op is not None:
            self._session.publish_op(self, op)

    # ------------------------------------------------------------------ data (wire form)

    def added_wire(
        self,
        collection: str,
        wire_id: str,
        wire_fields: dict[str, Any],
        *,
        frame: bytes | None = None,
    ) -> None:
        """Publish a document already in wire form, bypassing EJSON encoding.

        Args:
            collection: The collection name.
            wire_id: The id in ``id_stringify`` form.
            wire_fields: EJSON-encoded fields, without ``_id``. Not copied: do not mutate it
                afterwards (it may be shared by many sessions).
            frame: The pre-encoded ``added`` frame for exactly these arguments. It is sent as is
                when the merge box passes the document through unchanged, so a hub encodes a
                document once for all its sessions.
        """
        if not self._active:
            return
        op = self._session.mergebox.added(self.sub_id, collection, wire_id, wire_fields)
        if op is not None:
            reuse = frame is not None and op.kind == "added" and op.fields is wire_fields
            self._session.publish_op(self, op, frame if reuse else None)

    def changed_wire(
        self,
        collection: str,
        wire_id: str,
        wire_fields: dict[str, Any] | None = None,
        cleared: Sequence[str] = (),
        *,
        frame: bytes | None = None,
    ) -> None:
        """Change a document with wire-form values; ``frame`` as in :meth:`added_wire`.

        Raises:
            LocalProtocolError: For the ``merge`` strategy, if this subscription did not add it.
        """
        if not self._active:
            return
        op = self._session.mergebox.changed(self.sub_id, collection, wire_id, wire_fields, cleared)
        if op is not None:
            reuse = (
                frame is not None
                and (op.fields is wire_fields or (not op.fields and not wire_fields))
                and (op.cleared is cleared or (not op.cleared and not cleared))
            )
            self._session.publish_op(self, op, frame if reuse else None)

    def removed_wire(self, collection: str, wire_id: str, *, frame: bytes | None = None) -> None:
        """Stop publishing a document given by wire id; ``frame`` as in :meth:`added_wire`.

        Raises:
            LocalProtocolError: For the ``merge`` strategy, if this subscription did not add it.
        """
        if not self._active:
            return
        op = self._session.mergebox.removed(self.sub_id, collection, wire_id)
        if op is not None:
            self._session.publish_op(self, op, frame if op.kind == "removed" else None)

    def send_wire(self, frames: Iterable[bytes]) -> None:
        """Send pre-encoded DDP frames to this subscription's client, bypassing the merge box.

        Meant for ``no_merge_no_history`` publications of a hub, which encode a change once and
        send the same bytes to many sessions (see ``DDPServer.broadcast``). Nothing is recorded,
        so documents sent this way are not removed when the subscription stops.
        """
        if self._active:
            self._session.publish_frames(frames)

    async def drain(self) -> None:
        """Wait until the session's send queue is short again.

        Publishing is synchronous and queues frames in memory; a handler publishing many
        documents should await this now and then, so a slow client holds back the handler
        instead of filling memory.
        """
        await self._session.drain()

    # ------------------------------------------------------------------ lifecycle

    def ready(self) -> None:
        """Send ``ready`` for this subscription (once; ignored after it stopped)."""
        if not self._active or self._ready:
            return
        self._ready = True
        self._session.publish_ready(self.sub_id)
        self._release()

    def unblock(self) -> None:
        """Let the session handle the client's next messages while this handler keeps running."""
        self._release()

    def error(self, exc: BaseException) -> None:
        """Stop the subscription with an error: ``nosub`` carrying it.

        A :class:`~aioserversync.exceptions.MeteorError` is sent as is; anything else is logged
        with its traceback and sent as 500 "Internal server error" (nothing leaks).
        """
        if isinstance(exc, MeteorError):
            err = exc
        else:
            self._session.logger.error(
                "publication %r (sub %r) failed", self.name, self.sub_id, exc_info=exc
            )
            err = _internal_error()
        if not self._active:
            return
        self._end(err)

    def stop(self) -> None:
        """Stop the subscription: its documents are removed, then ``nosub`` without error."""
        if self._active:
            self._end(None)

    def on_stop(self, callback: StopCallback) -> None:
        """Run ``callback()`` when the subscription stops for any reason.

        The callback may be a plain function or return an awaitable. If the subscription has
        already stopped, it runs at once.
        """
        if self._active:
            self._on_stop.append(callback)
        else:
            self._session.run_callback(callback)

    # ------------------------------------------------------------------ internals

    def _start(self) -> None:
        self._task = self._session.spawn(self._run(), name=f"ddp-pub-{self.name}-{self.sub_id}")

    async def _run(self) -> None:
        try:
            result = self._handler(self, *self.params)
            if inspect.isawaitable(result):
                result = await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error(exc)
        else:
            if result is READY:
                self.ready()
        finally:
            self._release()

    def _release(self) -> None:
        if not self._released.done():
            self._released.set_result(None)
        self._session.release(self)

    def _end(self, err: MeteorError | None) -> None:
        session = self._session
        self._deactivate()
        ops = session.mergebox.remove_sub(self.sub_id)
        if session.publications.get(self.sub_id) is self:
            del session.publications[self.sub_id]
        for op in ops:
            session.publish_op(self, op)
        session.publish_frames((nosub_frame(self.sub_id, err),))

    def _deactivate(self) -> None:
        """Stop without sending anything: cancel the handler, run the stop callbacks."""
        if not self._active:
            return
        self._active = False
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        callbacks, self._on_stop = self._on_stop, []
        for cb in callbacks:
            self._session.run_callback(cb)
        self._release()

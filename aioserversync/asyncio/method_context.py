"""Method calls of a :class:`~aioserversync.asyncio.server.DDPServer` session.

A method handler receives a :class:`MethodContext` (Meteor's method invocation ``this``) and the
client's params. :func:`run_method` turns its outcome into exactly one ``result`` and one
``updated`` (ddp-facts §4.4): a :class:`~aioserversync.exceptions.MeteorError` reaches the client
as raised, anything else as 500 "Internal server error", logged with its traceback.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from ..exceptions import EJSONError, InvalidState, MeteorError
from ..ids import RandomStream, random_hex
from ..protocol.server import result_frame, updated_frame

if TYPE_CHECKING:
    from .session import Session

__all__ = ["MethodContext", "WireResult", "run_method"]


class WireResult:
    """A method result already in EJSON wire form, sent without encoding it again.

    Return one from a method handler to splice stored JSON into the ``result`` message, e.g. a
    hub answering a pull with documents kept as JSON text.

    Args:
        value: The result as UTF-8 JSON bytes (inserted as is, so it must be valid JSON in
            EJSON wire form), or a structure already in wire form (plain JSON values, possibly
            holding :class:`orjson.Fragment` pieces).
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def wire_value(self) -> Any:
        """Return the value as ``orjson`` serialises it into the frame."""
        value = self.value
        if isinstance(value, bytes | bytearray | memoryview):
            return orjson.Fragment(bytes(value))
        return value


class MethodContext:
    """What a method handler receives first: Meteor's method invocation ``this``.

    Attributes:
        method_id: The client's method id.
        name: The method name.
        random_seed: The client's ``randomSeed``, or ``None``.
        connection: The :class:`Session` that called the method.
        is_simulation: Always ``False`` on a server.
    """

    __slots__ = (
        "_fences",
        "_stream",
        "_unblocked",
        "connection",
        "method_id",
        "name",
        "random_seed",
    )

    is_simulation = False

    def __init__(self, session: Session, method_id: str, name: str, seed: str | None) -> None:
        self.connection = session
        self.method_id = method_id
        self.name = name
        self.random_seed = seed
        self._unblocked = False
        self._fences: list[Awaitable[Any]] = []
        self._stream: RandomStream | None = None

    @property
    def user_id(self) -> Any:
        """The session's current user id (``None`` when logged out)."""
        return self.connection.user_id

    async def set_user_id(self, user_id: Any) -> None:
        """Change the session's user and re-run its subscriptions under it (ddp-facts §3.4).

        The client receives only the difference between the old and the new data (for the
        ``merge`` strategy), then ``ready`` for the re-run subscriptions, all before this
        method's ``result``.

        Raises:
            InvalidState: After :meth:`unblock`, as in Meteor.
        """
        if self._unblocked:
            raise InvalidState("cannot call set_user_id after unblock()")
        await self.connection.rerun_subscriptions(user_id)

    def random_stream(self) -> RandomStream:
        """The method's random stream (``DDP.randomStream``).

        Seeded with the client's ``randomSeed``, ``random_stream().insert_id("tasks")`` gives the
        ``_id`` a Meteor client stub made for an insert into ``tasks`` (ddp-facts §5.2). Without
        a seed, a random one is used.
        """
        if self._stream is None:
            self._stream = RandomStream(self.random_seed or random_hex(20))
        return self._stream

    def unblock(self) -> None:
        """Let the session handle the client's next messages while this method runs."""
        self._unblocked = True
        self.connection.release(self)

    def add_write_fence(self, awaitable: Awaitable[Any]) -> None:
        """Hold this method's ``updated`` until ``awaitable`` completes.

        ``updated`` tells the client that the data messages caused by the method's writes have
        been sent (ddp-facts §4.4). A layer that publishes writes asynchronously (an observer
        of a store) registers the completion of that publishing here. Without fences,
        ``updated`` is sent just before ``result``, as Meteor does when no write is pending.
        """
        self._fences.append(awaitable)


async def run_method(
    session: Session, ctx: MethodContext, fn: Callable[..., Any], params: list[Any]
) -> None:
    """Run a method handler and send its one ``result`` and one ``updated``."""
    error: MeteorError | None = None
    frame = b""
    try:
        try:
            value = fn(ctx, *params)
            if inspect.isawaitable(value):
                value = await value
        except MeteorError as exc:
            error = exc
        except Exception:
            session.logger.exception("method %r failed", ctx.name)
            error = MeteorError(500, "Internal server error")
        else:
            try:
                if value is None:
                    frame = result_frame(ctx.method_id)
                elif type(value) is WireResult:
                    frame = result_frame(ctx.method_id, value.wire_value(), wire=True)
                else:
                    frame = result_frame(ctx.method_id, value)
            except EJSONError:
                session.logger.exception("method %r returned a value EJSON cannot carry", ctx.name)
                error = MeteorError(500, "Internal server error")
        if error is not None:
            frame = result_frame(ctx.method_id, error=error)
        updated = updated_frame((ctx.method_id,))
        if not ctx._fences:
            # Nothing pending: ``updated`` first, as Meteor's write fence fires at once.
            session.send_frames((updated, frame))
        else:
            session.send_frames((frame,))
            for outcome in await asyncio.gather(*ctx._fences, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    session.logger.error("write fence of %r failed", ctx.name, exc_info=outcome)
            session.send_frames((updated,))
    finally:
        session.release(ctx)

"""The handle returned by :meth:`~aioserversync.asyncio.client.DDPClient.subscribe`.

A :class:`Subscription` lives across reconnects: the client re-sends its ``sub`` with the same id,
name and params after every new session (ddp-facts §3.6), and :attr:`Subscription.is_ready` goes
back to ``False`` until the server's new ``ready``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..exceptions import MeteorError, ServerSyncError, SubscriptionError, SyncTimeout

if TYPE_CHECKING:
    from .client import DDPClient

__all__ = ["Subscription"]


class Subscription:
    """One subscription of a :class:`~aioserversync.asyncio.client.DDPClient`.

    Attributes:
        id: The subscription id (the same on every session).
        name: The publication name.
        params: The parameters, as given.
    """

    def __init__(self, client: DDPClient, id: str, name: str, params: tuple[Any, ...]) -> None:
        self.id = id
        self.name = name
        self.params = params
        self._client = client
        self._ready = False
        self._ended = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def __repr__(self) -> str:
        state = "ended" if self._ended else "ready" if self._ready else "pending"
        return f"<Subscription {self.name!r} id={self.id!r} {state}>"

    @property
    def is_ready(self) -> bool:
        """Whether the server sent ``ready`` for it on the current session."""
        return self._ready

    @property
    def ended(self) -> bool:
        """Whether it ended: stopped by us or by the server, or failed."""
        return self._ended

    @property
    def error(self) -> BaseException | None:
        """The error it ended with, if any (the server's ``nosub`` error, a refused login…)."""
        return self._error

    async def ready(self, timeout: float | None = None) -> None:
        """Wait until the server says the initial data has been sent (``ready``).

        After a reconnect this waits for the new session's ``ready``.

        Args:
            timeout: Seconds to wait at most (``None``: no limit).

        Raises:
            SubscriptionError: The server stopped it (``nosub``), with its error when it sent one
                (:class:`~aioserversync.exceptions.SubscriptionNotFound` for an unknown name).
            NotAuthorized: A stored login was refused on reconnect, so it was not re-sent.
            ConnectionClosedOK: The client was closed.
            SyncTimeout: ``timeout`` ran out.
        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self._ended:
                        raise self._end_error()
                    if self._ready:
                        return
                    await asyncio.shield(self._waiter)
        except TimeoutError as exc:
            if isinstance(exc, ServerSyncError):
                raise
            raise SyncTimeout(f"subscription {self.name!r} not ready after {timeout}s") from None

    async def stop(self, timeout: float | None = None) -> None:
        """Unsubscribe; when connected, wait for the server's ``nosub``. Idempotent.

        Args:
            timeout: Seconds to wait for ``nosub`` at most (``None``: no limit).

        Raises:
            SyncTimeout: ``timeout`` ran out (the subscription is forgotten locally anyway).
        """
        if self._ended:
            return
        await self._client._stop_subscription(self)
        try:
            async with asyncio.timeout(timeout):
                while not self._ended:
                    await asyncio.shield(self._waiter)
        except TimeoutError:
            self._set_ended(None)
            raise SyncTimeout(f"no nosub for subscription {self.name!r} after {timeout}s") from None

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ driven by the client

    def _end_error(self) -> BaseException:
        if self._error is not None:
            return self._error
        return SubscriptionError("stopped", f"subscription {self.name!r} was stopped")

    def _notify(self) -> None:
        waiter = self._waiter
        self._waiter = asyncio.get_running_loop().create_future()
        if not waiter.done():
            waiter.set_result(None)

    def _set_ready(self) -> None:
        if not self._ready and not self._ended:
            self._ready = True
            self._notify()

    def _set_unready(self) -> None:
        if self._ready:
            self._ready = False
            self._notify()

    def _set_ended(self, error: BaseException | MeteorError | None) -> None:
        if self._ended:
            return
        self._ended = True
        self._ready = False
        self._error = error
        self._notify()

"""The observable state of a :class:`~aioserversync.asyncio.client.DDPClient`.

* :class:`ClientState`: the lifecycle (``DISCONNECTED`` → ``CONNECTING`` → ``CONNECTED`` ⇄
  ``RECONNECTING``, ending in ``CLOSED`` or ``FAILED``).
* :class:`ClientStatus`: one entry of ``client.status_changes()``.
* :class:`ClientStats`: counters for monitoring and tests.
* :class:`Disconnected`: the I/O-level event passed to ``on_data`` (and ``data_events()``) when a
  DDP session's link is lost, the counterpart of
  :class:`~aioserversync.protocol.events.Connected`.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from ..exceptions import MeteorError

__all__ = ["ClientState", "ClientStats", "ClientStatus", "Disconnected"]


class ClientState(enum.Enum):
    """Where a :class:`~aioserversync.asyncio.client.DDPClient` is in its lifecycle."""

    DISCONNECTED = "disconnected"
    """Created, not started."""
    CONNECTING = "connecting"
    """Opening a WebSocket, negotiating DDP, or logging in again and resubscribing."""
    CONNECTED = "connected"
    """A DDP session is up and set up: calls and subscriptions go out at once."""
    RECONNECTING = "reconnecting"
    """The link is down; waiting (backoff) before the next attempt."""
    CLOSED = "closed"
    """Closed by the user. Final."""
    FAILED = "failed"
    """Failed for good (e.g. no common DDP version). Final until closed."""


@dataclass(frozen=True, slots=True)
class ClientStatus:
    """One entry of ``client.status_changes()``.

    Attributes:
        state: The new state.
        session: The DDP session id while connected.
        error: Why the link went down, why the client failed, or why a stored login was refused
            (then ``state`` is unchanged).
    """

    state: ClientState
    session: str | None = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The link of a DDP session was lost (or closed with the client).

    Delivered to ``on_data`` after every data event of that session. After it, the server has
    forgotten the session: the next :class:`~aioserversync.protocol.events.Connected` starts a new
    one, with every subscription re-run from scratch (ddp-facts §3.6).

    Attributes:
        error: The cause, or ``None`` when the client was closed.
    """

    error: BaseException | None = None


def _delays() -> deque[float]:
    return deque(maxlen=64)


@dataclass(slots=True)
class ClientStats:
    """Counters of one client (monotonic, never reset).

    Attributes:
        attempts: Connection attempts (WebSocket opens tried).
        connects: DDP sessions established (``connected`` received).
        reconnects: Sessions established after the first one.
        frames_in: Text frames received.
        frames_out: Text frames sent.
        protocol_errors: Received frames refused as malformed.
        server_errors: Top-level ``error`` messages received (the server refused a frame of ours).
        last_error: The last reason a connection attempt or session ended, if any.
        login_error: The error of the last refused re-login, if any.
        backoff_delays: The most recent waits between attempts, in seconds.
    """

    attempts: int = 0
    connects: int = 0
    reconnects: int = 0
    frames_in: int = 0
    frames_out: int = 0
    protocol_errors: int = 0
    server_errors: int = 0
    last_error: BaseException | None = None
    login_error: MeteorError | None = None
    backoff_delays: deque[float] = field(default_factory=_delays)

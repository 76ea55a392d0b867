"""Pure DDP heartbeat logic (Meteor's ``ddp-common/heartbeat.js``, ddp-facts §2).

Fed with timestamps, it never sleeps. Any received message proves the link alive. On an idle link
a ping is due every ``interval`` seconds; if nothing at all arrives within ``timeout`` seconds of
that ping, the link is dead.

Usage in an I/O layer::

    hb = Heartbeat(17.5, 15.0, now=loop.time())
    # on every received frame:
    hb.received(loop.time())
    # in a timer task:
    action = hb.poll(loop.time())        # "ping", "timeout" or None
    await asyncio.sleep(hb.next_deadline() - loop.time())
"""

from __future__ import annotations

from typing import Literal

__all__ = ["Heartbeat"]


class Heartbeat:
    """Liveness bookkeeping for one connection.

    Args:
        interval: Idle seconds before a ping is sent (``0`` disables heartbeats).
        timeout: Seconds to wait for any message after a ping before declaring the link dead.
        now: The current time.
    """

    __slots__ = ("_last", "_ping_at", "interval", "timeout")

    def __init__(self, interval: float, timeout: float, *, now: float) -> None:
        self.interval = interval
        self.timeout = timeout
        self._last = now
        self._ping_at: float | None = None

    @property
    def enabled(self) -> bool:
        """Whether heartbeats run at all."""
        return self.interval > 0 and self.timeout > 0

    @property
    def awaiting_pong(self) -> bool:
        """Whether a ping is outstanding."""
        return self._ping_at is not None

    def received(self, now: float) -> None:
        """Record that a message (any message) arrived."""
        self._last = now
        self._ping_at = None

    def poll(self, now: float) -> Literal["ping", "timeout"] | None:
        """Return what is due now: send a ``"ping"``, declare a ``"timeout"``, or nothing."""
        if not self.enabled:
            return None
        if self._ping_at is not None:
            return "timeout" if now - self._ping_at >= self.timeout else None
        if now - self._last >= self.interval:
            self._ping_at = now
            return "ping"
        return None

    def next_deadline(self) -> float | None:
        """Return the time at which :meth:`poll` may next have something to do."""
        if not self.enabled:
            return None
        if self._ping_at is not None:
            return self._ping_at + self.timeout
        return self._last + self.interval

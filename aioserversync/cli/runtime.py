"""Process plumbing shared by the long-running commands: stop signals and logging."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

__all__ = ["StopSignals", "configure_logging"]


class StopSignals:
    """Turn SIGINT and SIGTERM into an :class:`asyncio.Event` while the context is active.

    The first signal sets :attr:`stopped` (a clean shutdown starts); a second one cancels the
    task that entered the context, for when the clean shutdown takes too long.

    Attributes:
        stopped: Set by the first signal.
        signal_name: The name of that signal (``"SIGINT"``, ``"SIGTERM"``), once received.
    """

    def __init__(self) -> None:
        self.stopped = asyncio.Event()
        self.signal_name: str | None = None
        self._task: asyncio.Task[Any] | None = None
        self._installed: list[signal.Signals] = []

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stopped.is_set():
            if self._task is not None:
                self._task.cancel()
            return
        self.signal_name = sig.name
        self.stopped.set()

    async def __aenter__(self) -> StopSignals:
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not on Windows
                continue
            self._installed.append(sig)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)
        self._installed.clear()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for a stop signal; return whether one came."""
        try:
            async with asyncio.timeout(timeout):
                await self.stopped.wait()
        except TimeoutError:
            return False
        return True


def configure_logging(verbosity: int) -> None:
    """Send library logs to stderr: warnings by default, ``-v`` info, ``-vv`` debug."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("aioserversync")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False

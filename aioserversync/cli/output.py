"""How the command line reports what happens: JSON lines, plain lines, or a live terminal display.

* :class:`JSONOutput` (``--json``): one JSON object per line and per event, for scripts and logs.
* :class:`PlainOutput` (stdout is not a terminal): one readable line per event.
* :class:`RichOutput` (a terminal, with the ``[progress]`` extra): a progress display while the
  first snapshot arrives, then a live status line; notable events print above it.

Every event has a kind (``status``, ``ready``, ``change``, ``conflict``, …) and plain fields. The
live displays also receive a :class:`Snapshot` on every tick; the line outputs ignore it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from .. import ejson

__all__ = [
    "CollectionView",
    "JSONOutput",
    "Output",
    "PlainOutput",
    "RichOutput",
    "Snapshot",
    "format_ms",
    "make_output",
    "to_json",
]


def to_json(value: Any) -> Any:
    """Return ``value`` as plain JSON data (EJSON wire form for dates, binary, ids …)."""
    try:
        return ejson.encode(value)
    except (ValueError, TypeError):
        return repr(value)


def format_ms(ms: int | None) -> str:
    """Format milliseconds since the epoch as a UTC ISO 8601 time (``-`` when ``None``)."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clock(ms: int | None) -> str:
    if ms is None:
        return "never"
    return datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S")


@dataclass(slots=True)
class CollectionView:
    """What a live display shows about one synced collection.

    Attributes:
        name: The local collection name.
        mode: The sync mode.
        ready: Whether the first snapshot has been applied.
        received: Remote document messages received since start.
        documents: Documents in the local store (``None`` until counted).
        pending: Local writes not yet confirmed.
        failed: Local writes rejected for good.
        conflicts: Local changes that lost against the remote since start.
        last_sync: When the remote state was last fully applied (ms since the epoch).
    """

    name: str
    mode: str
    ready: bool = False
    received: int = 0
    documents: int | None = None
    pending: int = 0
    failed: int = 0
    conflicts: int = 0
    last_sync: int | None = None


@dataclass(slots=True)
class Snapshot:
    """The state of a running mirror, as the live display shows it.

    Attributes:
        state: The connection state name.
        reconnects: Reconnections since start.
        elapsed: Seconds since the mirror started.
        collections: One view per synced collection.
    """

    state: str
    reconnects: int = 0
    elapsed: float = 0.0
    collections: list[CollectionView] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        """Whether every collection has its first snapshot."""
        return all(c.ready for c in self.collections)


class Output:
    """Where events go. The base class drops them; subclasses write them somewhere."""

    def event(self, kind: str, **fields: Any) -> None:
        """Report one event."""

    def tick(self, snapshot: Snapshot) -> None:
        """Refresh a live display (line outputs ignore this)."""

    def close(self) -> None:
        """Stop any live display."""


class JSONOutput(Output):
    """One JSON object per line: ``{"event": kind, "time": ms, **fields}``.

    Args:
        stream: Where to write (default: ``sys.stdout``).
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout

    def event(self, kind: str, **fields: Any) -> None:
        """Write one JSON line and flush it."""
        record = {"event": kind, "time": int(time.time() * 1000)}
        record.update({k: to_json(v) for k, v in fields.items()})
        self.stream.write(orjson.dumps(record).decode() + "\n")
        self.stream.flush()


def _plain_value(value: Any) -> str:
    if isinstance(value, str):
        return value if value and " " not in value else orjson.dumps(value).decode()
    return orjson.dumps(to_json(value)).decode()


class PlainOutput(Output):
    """One readable line per event: ``<UTC time> <kind> key=value …``.

    Args:
        stream: Where to write (default: ``sys.stdout``).
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout

    def event(self, kind: str, **fields: Any) -> None:
        """Write one line and flush it."""
        parts = [format_ms(int(time.time() * 1000)), kind]
        parts += [f"{k}={_plain_value(v)}" for k, v in fields.items() if v is not None]
        self.stream.write(" ".join(parts) + "\n")
        self.stream.flush()


_SHOWN_ON_TTY = frozenset(
    {"start", "ready", "conflict", "rejected", "error", "stopping", "stopped", "metrics"}
)


class RichOutput(Output):
    """A progress display during the first snapshot, then a one-line live status.

    Args:
        console: A ``rich.console.Console`` (default: a new one on stdout).
    """

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console()
        self._live = Live(console=self.console, auto_refresh=False, transient=False)
        self._live.start()
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._rates: dict[str, tuple[float, int]] = {}
        self._started = time.monotonic()

    def event(self, kind: str, **fields: Any) -> None:
        """Print notable events above the live display."""
        if kind not in _SHOWN_ON_TTY:
            return
        text = " ".join(f"{k}={_plain_value(v)}" for k, v in fields.items() if v is not None)
        style = {"conflict": "yellow", "rejected": "red", "error": "bold red"}.get(kind, "cyan")
        self.console.print(f"[{style}]{kind}[/{style}] {text}", markup=True, highlight=False)

    def tick(self, snapshot: Snapshot) -> None:
        """Redraw: the progress bars until every collection is ready, then the status line."""
        if not snapshot.ready:
            self._live.update(self._progress_view(snapshot), refresh=True)
        else:
            self._live.update(self._status_line(snapshot), refresh=True)

    def _progress_view(self, snapshot: Snapshot) -> Any:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        if self._progress is None:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                TextColumn("{task.completed:>12,.0f} docs"),
                TextColumn("{task.fields[rate]:>10} docs/s"),
                TextColumn("{task.fields[state]}"),
                TimeElapsedColumn(),
            )
        now = time.monotonic()
        for c in snapshot.collections:
            if c.name not in self._tasks:
                self._tasks[c.name] = self._progress.add_task(
                    c.name, total=None, rate="-", state=snapshot.state
                )
            t0, n0 = self._rates.setdefault(c.name, (self._started, 0))
            rate = (c.received - n0) / (now - t0) if now > t0 else 0.0
            self._progress.update(
                self._tasks[c.name],
                completed=c.received,
                rate=f"{rate:,.0f}",
                state="ready" if c.ready else snapshot.state,
            )
        return self._progress

    def _status_line(self, snapshot: Snapshot) -> Any:
        from rich.text import Text

        colour = "green" if snapshot.state == "connected" else "yellow"
        line = Text()
        line.append(f"● {snapshot.state}", style=colour)
        if snapshot.reconnects:
            line.append(f" ({snapshot.reconnects} reconnects)")
        for c in snapshot.collections:
            docs = "-" if c.documents is None else f"{c.documents:,}"
            line.append(f" │ {c.name} {docs} docs · pending {c.pending}")
            if c.failed:
                line.append(f" · failed {c.failed}", style="red")
            line.append(f" · conflicts {c.conflicts}", style="yellow" if c.conflicts else "")
            line.append(f" · synced {_clock(c.last_sync)}")
        return line

    def close(self) -> None:
        """Stop the live display (its last frame stays on screen)."""
        self._live.stop()


def make_output(*, json: bool, live: bool = True, stream: IO[str] | None = None) -> Output:
    """Pick the output for a command.

    ``--json`` gives :class:`JSONOutput`; a terminal gives :class:`RichOutput` when ``live`` and
    ``rich`` is installed; anything else gives :class:`PlainOutput`.
    """
    out = stream or sys.stdout
    if json:
        return JSONOutput(out)
    if live and stream is None and out.isatty():
        try:
            return RichOutput()
        except ImportError:  # pragma: no cover - rich is an optional extra
            pass
    return PlainOutput(out)

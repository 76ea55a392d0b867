"""``aioserversync mirror``: run an edge that syncs collections until SIGINT or SIGTERM.

While it runs it reports, through an :class:`~aioserversync.cli.output.Output`:

* ``start``, then ``status`` on every connection state change;
* ``progress`` about once a second until the first snapshot of every collection is applied, then
  ``ready`` per collection (documents, elapsed seconds, rate);
* ``change`` per change event, ``conflict`` when a local change lost against the remote (also
  kept in the store's conflict log, see :mod:`~aioserversync.cli.conflict_log`), ``rejected``
  when the server refused a queued write for good, ``error`` when a subscription was refused;
* on a stop signal, ``stopping``; it then waits up to ``drain_timeout`` seconds for queued writes
  to be confirmed (when connected), closes cleanly, and reports ``stopped``. Writes still queued
  stay durable in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..asyncio.collection import SyncedCollection
from ..asyncio.streams import ChangeStream
from ..asyncio.sync import ServerSync
from ..exceptions import MeteorError, SyncTimeout
from ..replication.changes import ChangeEvent
from ..stores import open_store
from .conflict_log import conflict_entry, record_conflicts
from .output import CollectionView, Output, Snapshot
from .runtime import StopSignals

__all__ = ["MirrorOptions", "run_mirror"]

logger = logging.getLogger("aioserversync.cli")

_PROGRESS_EVERY = 1.0
_TICK_SYNCING = 0.2
_TICK_LIVE = 1.0
_COUNT_EVERY = 5.0
_CHANGE_QUEUE = 16_384  # above the engine's per-round event limit: no overflow on a first sync


@dataclass(slots=True)
class MirrorOptions:
    """What ``mirror`` runs.

    Attributes:
        url: The remote's URL.
        collections: The remote collections to sync.
        mode: ``read``, ``online-write`` or ``write``.
        store: A store URL.
        token: A resume token to log in with.
        name: The origin key stored with documents (default: the URL).
        metrics_host: Address for ``--metrics-port``.
        metrics_port: Serve Prometheus metrics on this port (``None``: off).
        drain_timeout: Seconds to wait for queued writes on shutdown.
        resync: Resync every collection in full at start (see ``ServerSync.resync``).
        client_options: Extra :class:`~aioserversync.asyncio.sync.ServerSync` options.
    """

    url: str
    collections: Sequence[str]
    mode: str = "online-write"
    store: str = "sqlite:///aioserversync.sqlite3"
    token: str | None = None
    name: str | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    drain_timeout: float = 5.0
    resync: bool = False
    client_options: dict[str, Any] = field(default_factory=dict)


class _Mirror:
    def __init__(self, opts: MirrorOptions, out: Output, signals: StopSignals) -> None:
        self.opts = opts
        self.out = out
        self.signals = signals
        self.remote = ServerSync(
            opts.url,
            store=open_store(opts.store),
            name=opts.name,
            token=opts.token,
            **opts.client_options,
        )
        self.colls: list[SyncedCollection] = []
        self.ready: set[str] = set()
        self.exit_code = 0
        self.started = time.monotonic()
        self.tasks: list[asyncio.Task[None]] = []
        self.ready_tasks: list[asyncio.Task[None]] = []
        self.counts: dict[str, int] = {}
        self.counted_at = -_COUNT_EVERY

    # ------------------------------------------------------------------ watchers

    async def watch_status(self) -> None:
        last: Any = None
        async for st in self.remote.status_changes():
            key = (st.state, st.session, repr(st.error))
            if key == last:
                continue
            last = key
            self.out.event(
                "status",
                state=st.state.value,
                session=st.session,
                error=None if st.error is None else str(st.error),
            )

    async def watch_ready(self, coll: SyncedCollection) -> None:
        try:
            await coll.wait_ready()
        except MeteorError as exc:
            self.out.event("error", collection=coll.name, message=str(exc))
            self.exit_code = 1
            self.signals.stopped.set()
            return
        elapsed = time.monotonic() - self.started
        received = coll.stats.received
        self.ready.add(coll.name)
        self.out.event(
            "ready",
            collection=coll.name,
            documents=await coll.count(),
            received=received,
            seconds=round(elapsed, 3),
            rate=round(received / elapsed) if elapsed > 0 else None,
        )

    async def watch_changes(self, coll: SyncedCollection, stream: ChangeStream) -> None:
        store = self.remote.store
        origin = self.remote.origin
        async for ev in stream:
            self.report_change(coll, ev)
            if ev.op == "conflict":
                try:
                    await record_conflicts(store, origin, coll.name, [conflict_entry(ev)])
                except Exception:  # the log is informative: never stop mirroring for it
                    logger.warning("could not record a conflict of %r", coll.name, exc_info=True)

    def report_change(self, coll: SyncedCollection, ev: ChangeEvent) -> None:
        if ev.op == "conflict":
            info = ev.conflict
            self.out.event(
                "conflict",
                collection=coll.name,
                id=ev.id,
                local=None if info is None else info.local,
                remote=None if info is None else info.remote,
            )
        elif ev.op == "rejected":
            self.out.event("rejected", collection=coll.name, id=ev.id, message=str(ev.error))
        else:
            self.out.event(
                "change",
                collection=coll.name,
                op=ev.op,
                id=ev.id,
                source=ev.source,
                fields=ev.fields,
                cleared=list(ev.cleared) or None,
            )

    # ------------------------------------------------------------------ display

    async def snapshot(self, count: bool) -> Snapshot:
        status = self.remote.status
        now = time.monotonic()
        if count and now - self.counted_at >= _COUNT_EVERY:
            # A count scans the collection: refreshed every few seconds, not on every tick.
            self.counted_at = now
            self.counts = {coll.name: await coll.count() for coll in self.colls}
        views = []
        for coll in self.colls:
            st = coll.stats
            views.append(
                CollectionView(
                    name=coll.name,
                    mode=coll.mode,
                    ready=coll.name in self.ready,
                    received=st.received,
                    documents=self.counts.get(coll.name) if count else None,
                    pending=st.pending,
                    failed=st.failed,
                    conflicts=st.conflicts,
                    last_sync=st.last_sync,
                )
            )
        return Snapshot(
            state=status.state,
            reconnects=status.reconnects,
            elapsed=time.monotonic() - self.started,
            collections=views,
        )

    async def display_loop(self) -> None:
        last_progress = time.monotonic()
        reported: dict[str, int] = {}
        while not self.signals.stopped.is_set():
            syncing = len(self.ready) < len(self.colls)
            snap = await self.snapshot(count=not syncing)
            self.out.tick(snap)
            now = time.monotonic()
            if syncing and now - last_progress >= _PROGRESS_EVERY:
                last_progress = now
                for c in snap.collections:
                    if not c.ready and reported.get(c.name) != c.received:
                        reported[c.name] = c.received
                        self.out.event(
                            "progress",
                            collection=c.name,
                            received=c.received,
                            rate=round(c.received / snap.elapsed) if snap.elapsed else None,
                        )
            await self.signals.wait(_TICK_SYNCING if syncing else _TICK_LIVE)

    # ------------------------------------------------------------------ run

    async def run(self) -> int:
        remote = self.remote
        metrics_server: Any = None
        try:
            await remote.start()
            streams: list[ChangeStream] = []
            for name in self.opts.collections:
                coll = await remote.sync(name, mode=self.opts.mode)
                self.colls.append(coll)
                # Opened at once: the first round's events (conflicts included) are not missed.
                streams.append(coll.changes(max_queue=_CHANGE_QUEUE))
            self.out.event(
                "start",
                url=self.opts.url,
                store=remote.store.name,
                mode=self.opts.mode,
                collections=[c.name for c in self.colls],
            )
            if self.opts.metrics_port is not None:
                metrics_server = await self.start_metrics()
            loop = asyncio.get_running_loop()
            if self.opts.resync:
                self.tasks.append(loop.create_task(self.resync()))
            self.tasks.append(loop.create_task(self.watch_status()))
            for coll, stream in zip(self.colls, streams, strict=True):
                self.ready_tasks.append(loop.create_task(self.watch_ready(coll)))
                self.tasks.append(loop.create_task(self.watch_changes(coll, stream)))
            await self.display_loop()
            await self.shutdown()
        finally:
            if metrics_server is not None:
                await metrics_server.close()
            await remote.close()
            await self.stop_tasks()
        self.out.event("stopped", pending=self.pending(), exit_code=self.exit_code)
        return self.exit_code

    async def resync(self) -> None:
        """``--resync``: ask for a full resync of every collection; report when it is done."""
        started = time.monotonic()
        try:
            await self.remote.resync()
        except MeteorError:
            return  # a refused subscription is reported by watch_ready
        self.out.event(
            "resynced",
            collections=[c.name for c in self.colls],
            seconds=round(time.monotonic() - started, 3),
        )

    async def start_metrics(self) -> Any:
        from ..metrics import SyncMetrics, serve_metrics

        metrics = SyncMetrics()
        metrics.track(self.remote, *self.colls)
        server = await serve_metrics(metrics, self.opts.metrics_host, self.opts.metrics_port or 0)
        self.out.event("metrics", url=server.url)
        return server

    def pending(self) -> int:
        return sum(c.stats.pending for c in self.colls)

    async def shutdown(self) -> None:
        pending = self.pending()
        self.out.event("stopping", signal=self.signals.signal_name, pending=pending)
        if not pending or not self.remote.status.connected or self.opts.drain_timeout <= 0:
            return
        deadline = time.monotonic() + self.opts.drain_timeout
        for coll in self.colls:
            try:
                await coll.wait_drained(timeout=max(0.0, deadline - time.monotonic()))
            except SyncTimeout:
                break

    async def stop_tasks(self) -> None:
        # A collection that never became ready has nothing more to report.
        for task in self.ready_tasks:
            task.cancel()
        await asyncio.gather(*self.ready_tasks, return_exceptions=True)
        # Streams end when the remote closes; a bounded wait, then cancel what is left.
        if not self.tasks:
            return
        _, still = await asyncio.wait(self.tasks, timeout=2.0)
        for task in still:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def run_mirror(opts: MirrorOptions, out: Output) -> int:
    """Run ``mirror`` until a stop signal; return the process exit code.

    Raises:
        ConfigurationError: A bad URL, store URL or mode (exit code 2).
    """
    async with StopSignals() as signals:
        mirror = _Mirror(opts, out, signals)
        return await mirror.run()

"""Prometheus metrics for running remotes (optional: ``pip install aioserversync[metrics]``).

Nothing in the sync engine imports this module. It reads the public state of the remotes and
collections you register (``remote.status``, ``collection.stats``, ``collection.count()``) when
metrics are scraped, so it costs nothing between scrapes::

    from aioserversync.metrics import SyncMetrics, serve_metrics

    metrics = SyncMetrics()                     # a private CollectorRegistry
    metrics.track(remote, items, notes)
    server = await serve_metrics(metrics, "127.0.0.1", 9108)
    ...
    await server.close()

Exported, labelled by ``remote`` (the origin key) and, where it applies, ``collection``:

==========================================  ======  =========================================
name                                        type    meaning
==========================================  ======  =========================================
``aioserversync_connected``                 gauge   1 while a DDP session is up
``aioserversync_connection_state``          gauge   1 for the current state (label ``state``)
``aioserversync_reconnects_total``          counter reconnections since start
``aioserversync_live``                      gauge   1 while the collection is live
``aioserversync_documents``                 gauge   documents in the local store
``aioserversync_outbox_pending``            gauge   local writes not yet confirmed
``aioserversync_outbox_failed``             gauge   local writes rejected for good
``aioserversync_conflicts_total``           counter local changes that lost against the remote
``aioserversync_resyncs_total``             counter resync rounds applied
``aioserversync_received_total``            counter remote document messages received
``aioserversync_pushed_total``              counter local writes confirmed by the remote
``aioserversync_rejected_total``            counter local writes rejected by the remote
``aioserversync_last_sync_age_seconds``     gauge   seconds since the last full sync (absent
                                                    before the first one)
==========================================  ======  =========================================

:func:`serve_metrics` answers ``GET /metrics`` on a small asyncio HTTP listener, refreshing the
figures (one ``count`` per collection) in the event loop before each answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from .asyncio.collection import SyncedCollection
    from .asyncio.sync import ServerSync

__all__ = ["MetricsServer", "SyncMetrics", "serve_metrics"]

logger = logging.getLogger("aioserversync.metrics")

_REQUEST_TIMEOUT = 10.0
_STATES = ("disconnected", "connecting", "connected", "reconnecting", "closed", "failed")


@dataclass(slots=True)
class _CollectionFigures:
    name: str
    live: bool
    documents: int | None
    pending: int
    failed: int
    conflicts: int
    resyncs: int
    received: int
    pushed: int
    rejected: int
    last_sync: int | None


@dataclass(slots=True)
class _RemoteFigures:
    origin: str
    state: str
    connected: bool
    reconnects: int
    collections: list[_CollectionFigures]


class SyncMetrics:
    """A Prometheus collector over registered remotes and their collections.

    Args:
        registry: Where to register (default: a new private ``CollectorRegistry``, so several
            instances, e.g. in tests, never collide on the global registry).
        namespace: The metric name prefix.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, namespace: str = "aioserversync"
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.namespace = namespace
        self._tracked: dict[int, tuple[ServerSync, list[SyncedCollection]]] = {}
        self._figures: list[_RemoteFigures] = []
        self._refreshed_at = 0.0
        self.registry.register(self)

    def track(self, remote: ServerSync, *collections: SyncedCollection) -> None:
        """Export a remote and the given collections of it (call again to add collections)."""
        _, colls = self._tracked.setdefault(id(remote), (remote, []))
        for coll in collections:
            if all(c is not coll for c in colls):
                colls.append(coll)

    def untrack(self, remote: ServerSync) -> None:
        """Stop exporting a remote."""
        self._tracked.pop(id(remote), None)

    async def refresh(self) -> None:
        """Read the current figures (one document count per collection)."""
        figures: list[_RemoteFigures] = []
        for remote, colls in list(self._tracked.values()):
            status = remote.status
            views: list[_CollectionFigures] = []
            for coll in colls:
                stats = coll.stats
                documents: int | None
                try:
                    documents = await coll.count()
                except Exception:  # a closed or failing store: report what is known
                    logger.debug("count of %r failed", coll.name, exc_info=True)
                    documents = None
                views.append(
                    _CollectionFigures(
                        name=coll.name,
                        live=stats.live,
                        documents=documents,
                        pending=stats.pending,
                        failed=stats.failed,
                        conflicts=stats.conflicts,
                        resyncs=stats.resyncs,
                        received=stats.received,
                        pushed=stats.pushed,
                        rejected=stats.rejected,
                        last_sync=stats.last_sync,
                    )
                )
            figures.append(
                _RemoteFigures(
                    origin=status.origin,
                    state=status.state,
                    connected=status.connected,
                    reconnects=status.reconnects,
                    collections=views,
                )
            )
        self._figures = figures
        self._refreshed_at = time.time()

    async def render(self) -> bytes:
        """Refresh and return the registry in the Prometheus text format."""
        await self.refresh()
        return generate_latest(self.registry)

    # ------------------------------------------------------------------ collector protocol

    def describe(self) -> Iterable[Metric]:
        """Describe the metric families (the same shapes as :meth:`collect`, without samples)."""
        return list(self._families([]))

    def collect(self) -> Iterable[Metric]:
        """Return the figures read by the last :meth:`refresh`."""
        return list(self._families(self._figures))

    def _families(self, figures: list[_RemoteFigures]) -> Iterator[Metric]:
        ns = self.namespace
        connected = GaugeMetricFamily(
            f"{ns}_connected", "1 while a DDP session is up", labels=["remote"]
        )
        state = GaugeMetricFamily(
            f"{ns}_connection_state",
            "1 for the current connection state",
            labels=["remote", "state"],
        )
        reconnects = CounterMetricFamily(
            f"{ns}_reconnects", "Reconnections since start", labels=["remote"]
        )
        per_coll: dict[str, Any] = {
            "live": GaugeMetricFamily(
                f"{ns}_live", "1 while the collection is live", labels=["remote", "collection"]
            ),
            "documents": GaugeMetricFamily(
                f"{ns}_documents", "Documents in the local store", labels=["remote", "collection"]
            ),
            "pending": GaugeMetricFamily(
                f"{ns}_outbox_pending",
                "Local writes not yet confirmed",
                labels=["remote", "collection"],
            ),
            "failed": GaugeMetricFamily(
                f"{ns}_outbox_failed",
                "Local writes rejected for good",
                labels=["remote", "collection"],
            ),
            "conflicts": CounterMetricFamily(
                f"{ns}_conflicts",
                "Local changes that lost against the remote",
                labels=["remote", "collection"],
            ),
            "resyncs": CounterMetricFamily(
                f"{ns}_resyncs", "Resync rounds applied", labels=["remote", "collection"]
            ),
            "received": CounterMetricFamily(
                f"{ns}_received",
                "Remote document messages received",
                labels=["remote", "collection"],
            ),
            "pushed": CounterMetricFamily(
                f"{ns}_pushed",
                "Local writes confirmed by the remote",
                labels=["remote", "collection"],
            ),
            "rejected": CounterMetricFamily(
                f"{ns}_rejected",
                "Local writes rejected by the remote",
                labels=["remote", "collection"],
            ),
        }
        age = GaugeMetricFamily(
            f"{ns}_last_sync_age_seconds",
            "Seconds since the remote state was last fully applied",
            labels=["remote", "collection"],
        )
        now = self._refreshed_at
        for r in figures:
            connected.add_metric([r.origin], 1.0 if r.connected else 0.0)
            for s in _STATES if r.state in _STATES else (*_STATES, r.state):
                state.add_metric([r.origin, s], 1.0 if s == r.state else 0.0)
            reconnects.add_metric([r.origin], float(r.reconnects))
            for c in r.collections:
                labels = [r.origin, c.name]
                for key, family in per_coll.items():
                    value = getattr(c, key)
                    if value is None:
                        continue
                    family.add_metric(labels, float(value))
                if c.last_sync is not None:
                    age.add_metric(labels, max(0.0, now - c.last_sync / 1000))
        yield connected
        yield state
        yield reconnects
        yield from per_coll.values()
        yield age


class MetricsServer:
    """A minimal asyncio HTTP listener answering ``GET /metrics`` (see :func:`serve_metrics`).

    Attributes:
        host: The bound address.
        port: The bound port (useful with port 0).
    """

    def __init__(self, metrics: SyncMetrics) -> None:
        self.metrics = metrics
        self.host = ""
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        return f"http://{self.host}:{self.port}/metrics"

    async def start(self, host: str, port: int) -> MetricsServer:
        """Listen on ``host:port`` (``port=0``: a free port)."""
        self._server = await asyncio.start_server(self._handle, host, port)
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = sockname[0], int(sockname[1])
        return self

    async def close(self) -> None:
        """Stop listening. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            for writer in list(self._writers):
                writer.close()  # a scrape still waiting for its request ends now
            await server.wait_closed()

    async def __aenter__(self) -> MetricsServer:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            async with asyncio.timeout(_REQUEST_TIMEOUT):
                request = await reader.readuntil(b"\r\n\r\n")
            line = request.split(b"\r\n", 1)[0].split()
            if len(line) < 2 or line[0] not in (b"GET", b"HEAD"):
                status, ctype, body = b"405 Method Not Allowed", b"text/plain", b"GET only\n"
            elif line[1].split(b"?", 1)[0] not in (b"/metrics", b"/"):
                status, ctype, body = b"404 Not Found", b"text/plain", b"try /metrics\n"
            else:
                status, ctype, body = b"200 OK", CONTENT_TYPE_LATEST.encode(), b""
                body = await self.metrics.render()
            head = (
                b"HTTP/1.1 "
                + status
                + b"\r\nContent-Type: "
                + ctype
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
            )
            writer.write(head if line[:1] == [b"HEAD"] else head + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a client that went away or sent garbage: nothing to answer
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def serve_metrics(
    metrics: SyncMetrics, host: str = "127.0.0.1", port: int = 0
) -> MetricsServer:
    """Serve ``metrics`` at ``http://host:port/metrics``; ``await server.close()`` to stop."""
    return await MetricsServer(metrics).start(host, port)

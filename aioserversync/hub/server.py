"""``ServerSyncServer``: the Python hub that edges sync with.

::

    hub = ServerSyncServer(SQLiteStore("hub.sqlite3"), tokens={"s3cret": "edge-1"})
    hub.collection("items")                               # read/write rules optional
    async with hub.serve("0.0.0.0", 3000, ssl=ctx) as running:
        await hub.insert("items", {"name": "pen"})        # stamped and published like any write
        await running.serve_forever()

It speaks plain DDP, so stock Meteor clients, simpleddp, ddp.js and edges in ``read`` or
``online-write`` mode use each collection's plain publication and the standard mutator methods;
edges in ``write`` mode use the hub protocol (docs/protocol.md): revisions, ``serversync/pull``,
the ``serversync/changes`` feed and compare-and-set ``serversync/push`` with exactly-once
mutation ids.

Storage: documents, tombstones, revision counters (``serversync/rev/<c>`` metadata) and mutation
records (local collection ``_serversync_mutations_<c>``) live in one store, and every write is one
``store.apply`` batch. All writes must go through the hub (its local API, its methods): documents
found without a revision when a collection is first served get one, once.

Retention (``tombstone_retention``, ``mutation_retention``): a ``timedelta`` keeps tombstones (and
mutation ids) for at least that long, an ``int`` keeps those of the last N revisions, ``None``
keeps them forever. Mutation ids are always kept at least as long as tombstones. Expired ones are
purged every ``purge_interval`` seconds, or on :meth:`ServerSyncServer.purge`. A client whose
checkpoint is older than the purged revisions gets 410 and resyncs in full.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl as ssl_module
from collections.abc import Coroutine, Iterable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar

from ..asyncio.server import DDPServer, RunningServer
from ..asyncio.server import serve as ddp_serve
from ..exceptions import ConfigurationError, InvalidState, MeteorError
from ..ids import check_new_id, random_id
from ..protocol.mergebox import NO_MERGE, NO_MERGE_NO_HISTORY, STRATEGIES, Strategy
from ..stores import store_from
from ..stores.base import Store
from ..typing import Document
from . import writes
from .auth import (
    Authenticate,
    Authenticator,
    Permissions,
    ReadRule,
    WriteRule,
    access_denied,
    check_bind,
)
from .collection import FEED_PUBLICATION, HubCollection
from .methods import register_collection, register_methods
from .publications import changes_publication, plain_publication
from .retention import Retention, RetentionSpec

__all__ = ["HubServing", "ServerSyncServer"]

logger = logging.getLogger("aioserversync.hub")
T = TypeVar("T")


class ServerSyncServer:
    """A DDP server that owns a store and serves collections with revisions; see the module.

    Args:
        store: A :class:`~aioserversync.stores.base.Store`, a path (SQLite), a store URL, or
            ``None`` for ``SQLiteStore("hub.sqlite3")``. A store the hub opens, it closes.
        tokens: ``token -> identity`` for DDP ``login`` with ``{"resume": token}``.
        authenticate: ``authenticate(token) -> identity | None`` (plain or async), asked for
            tokens not in ``tokens``.
        allow_anonymous: Let callers that did not log in read and write (subject to the rules).
        insecure_bind: Allow listening beyond loopback without ``tokens``/``authenticate``.
        tombstone_retention: How long tombstones are kept (module docstring).
        mutation_retention: How long mutation ids are kept (never shorter than tombstones);
            ``None``: as long as tombstones.
        max_pull: Largest ``limit`` of a pull.
        purge_interval: Seconds between retention purges (0 disables the background purge).
        max_backlog: Frames a session may have queued before the change feed closes it (it
            then reconnects and catches up by pulling); 0 disables.
        logger: Logger (default ``aioserversync.hub``).
        **ddp_server_options: Passed to :class:`~aioserversync.asyncio.server.DDPServer`
            (``heartbeat_interval``, ``compression``, ``max_size``, …).

    Raises:
        ConfigurationError: For invalid options.
    """

    def __init__(
        self,
        store: Store | str | os.PathLike[str] | None = None,
        *,
        tokens: Mapping[str, Any] | None = None,
        authenticate: Authenticate | None = None,
        allow_anonymous: bool = False,
        insecure_bind: bool = False,
        tombstone_retention: RetentionSpec = timedelta(days=30),
        mutation_retention: RetentionSpec = None,
        max_pull: int = 10000,
        purge_interval: float = 60.0,
        max_backlog: int = 100_000,
        logger: logging.Logger | None = None,
        **ddp_server_options: Any,
    ) -> None:
        if not isinstance(max_pull, int) or isinstance(max_pull, bool) or max_pull < 1:
            raise ConfigurationError("max_pull must be a positive integer")
        if purge_interval < 0 or max_backlog < 0:
            raise ConfigurationError("purge_interval and max_backlog must be >= 0")
        self.logger = logger or globals()["logger"]
        self.store = store_from(store, "hub.sqlite3")
        self.auth = Authenticator(tokens, authenticate)
        self.allow_anonymous = bool(allow_anonymous)
        self.insecure_bind = bool(insecure_bind)
        self.tombstone_retention = Retention(tombstone_retention, "tombstone_retention")
        self.mutation_retention = (
            None
            if mutation_retention is None
            else Retention(mutation_retention, "mutation_retention")
        )
        self.retentions = tuple(
            r for r in (self.tombstone_retention, self.mutation_retention) if r is not None
        )
        self.max_pull = max_pull
        self.purge_interval = purge_interval
        self.max_backlog = max_backlog
        ddp_server_options.setdefault("logger", self.logger)
        self.ddp = DDPServer(**ddp_server_options)
        self.collections: dict[str, HubCollection] = {}
        self._state = "new"
        self._opened_store = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._purger: asyncio.Task[None] | None = None
        self._servers: list[RunningServer] = []
        register_methods(self)
        self.ddp.add_publication(
            FEED_PUBLICATION, changes_publication(self), strategy=NO_MERGE_NO_HISTORY
        )

    def __repr__(self) -> str:
        return f"<ServerSyncServer {self.store.name} {sorted(self.collections)} {self._state}>"

    # ------------------------------------------------------------------ setup

    def collection(
        self,
        name: str,
        *,
        read: ReadRule | None = None,
        write: WriteRule | None = None,
        strategy: Strategy = NO_MERGE,
    ) -> HubCollection:
        """Expose a collection: its plain publication, mutators, pull, feed and push.

        Args:
            name: The collection name.
            read: ``read(identity, collection) -> bool`` (plain or async); ``None`` allows
                every admitted caller (logged in, or anyone with ``allow_anonymous``).
            write: ``write(identity, collection, op, doc_id, doc) -> bool`` (plain or async),
                asked for each change with the decoded document after it (the current one for
                a remove); ``None`` allows every admitted caller.
            strategy: Merge box strategy of the plain publication: ``"no_merge"`` (default:
                the ids of each subscription are kept so unsubscribing removes them),
                ``"merge"`` (Meteor's default: fields kept per session) or
                ``"no_merge_no_history"`` (nothing kept per session; documents stay on the
                client after it unsubscribes).

        Raises:
            ConfigurationError: Bad name, duplicate, or unknown strategy.
            InvalidState: The hub has already started.
        """
        if self._state != "new":
            raise InvalidState("add collections before the hub starts")
        if (
            not isinstance(name, str)
            or not name
            or "/" in name
            or name.lstrip("_").startswith("serversync")
        ):
            raise ConfigurationError(
                f"invalid hub collection name {name!r} (no '/', not starting with 'serversync')"
            )
        if name in self.collections:
            raise ConfigurationError(f"collection {name!r} is already exposed")
        if strategy not in STRATEGIES:
            raise ConfigurationError(f"unknown strategy {strategy!r}; use one of {STRATEGIES}")
        coll = HubCollection(self, name, Permissions(self.allow_anonymous, read, write), strategy)
        self.collections[name] = coll
        self.ddp.add_publication(name, plain_publication(coll), strategy=strategy)
        register_collection(self, coll)
        return coll

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> ServerSyncServer:
        """Open the store (if not open) and load every collection's counters. Idempotent.

        Raises:
            InvalidState: The hub was closed.
            StoreError: The store failed.
        """
        if self._state == "started":
            return self
        if self._state == "closed":
            raise InvalidState("this hub is closed")
        if not getattr(self.store, "is_open", False):
            await self.store.open()
            self._opened_store = True
        try:
            for coll in self.collections.values():
                await coll.load()
        except BaseException:
            if self._opened_store:
                await self.store.close()
                self._opened_store = False
            raise
        self._state = "started"
        if self.purge_interval > 0:
            self._purger = asyncio.get_running_loop().create_task(
                self._purge_loop(), name="aioserversync-hub-purge"
            )
        return self

    async def close(self) -> None:
        """Stop serving, finish the writes in progress, and close the store if the hub opened it.

        Idempotent.
        """
        if self._state == "closed":
            return
        self._state = "closed"
        for running in self._servers:
            running.close()
        for running in self._servers:
            await running.wait_closed()
        self._servers.clear()
        if self._purger is not None:
            self._purger.cancel()
            await asyncio.gather(self._purger, return_exceptions=True)
            self._purger = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._opened_store:
            await self.store.close()
            self._opened_store = False

    async def __aenter__(self) -> ServerSyncServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def serve(
        self,
        host: str | None = "127.0.0.1",
        port: int = 0,
        *,
        ssl: ssl_module.SSLContext | None = None,
        **ws_options: Any,
    ) -> HubServing:
        """Start the hub (if needed) and listen on ``host:port`` (0: a free port).

        Use as ``async with hub.serve(...) as running`` (leaving the block, or failing to
        listen, closes the hub) or ``running = await hub.serve(...)``; ``running.port`` and
        ``running.url`` tell where. Extra keyword arguments go to
        :func:`websockets.asyncio.server.serve`.

        Raises:
            ConfigurationError: ``host`` is not loopback and no authentication is configured
                (see :func:`~aioserversync.hub.auth.check_bind`).
        """
        check_bind(host, authenticated=self.auth.configured, insecure_bind=self.insecure_bind)
        return HubServing(self, host, port, ssl, ws_options)

    async def _listen(
        self, host: str | None, port: int, ssl: ssl_module.SSLContext | None, options: Any
    ) -> RunningServer:
        await self.start()
        if ssl is not None:
            options = {**options, "ssl": ssl}
        running: RunningServer = await ddp_serve(self.ddp, host, port, **options)
        self._servers.append(running)
        return running

    # ------------------------------------------------------------------ internals

    async def run_shielded(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` in a task the caller's cancellation cannot interrupt (``close`` waits)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return await asyncio.shield(task)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the caller, if still there, got it through shield

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(self.purge_interval)
            try:
                await self.purge()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.logger.exception("retention purge failed")

    def _coll(self, name: str) -> HubCollection:
        if self._state != "started":
            raise InvalidState("the hub is not started")
        coll = self.collections.get(name)
        if coll is None:
            raise ConfigurationError(f"collection {name!r} is not exposed by this hub")
        return coll

    def admitted_collection(self, identity: Any, name: Any) -> HubCollection:
        """The collection a caller names, for a hub method.

        Raises:
            MeteorError: 403 (not logged in), 400 (not a name) or 404 (unknown).
        """
        if identity is None and not self.allow_anonymous:
            raise access_denied()
        if not isinstance(name, str):
            raise MeteorError(400, "collection must be a string")
        coll = self.collections.get(name)
        if coll is None:
            raise MeteorError(404, f"Collection '{name}' not found")
        return coll

    async def readable_collection(self, identity: Any, name: Any) -> HubCollection:
        """Like :meth:`admitted_collection`, and the read rule must allow it (else 403)."""
        coll = self.admitted_collection(identity, name)
        if not await coll.permissions.may_read(identity, name):
            raise access_denied()
        return coll

    # ------------------------------------------------------------------ local API

    def revision(self, collection: str) -> int:
        """The last committed revision of a collection."""
        return self._coll(collection).rev

    async def insert(self, collection: str, doc: Document) -> Any:
        """Insert a document (``_id`` made with ``Random.id()`` when missing); return its ``_id``.

        Raises:
            DuplicateKeyError: The ``_id`` exists.
            EJSONError: A value cannot be stored.
            InvalidState: The hub is not started.
        """
        coll = self._coll(collection)
        if not isinstance(doc, dict):
            raise ConfigurationError("a document must be a dict")
        if "_id" not in doc:
            doc = {"_id": random_id(), **doc}
        check_new_id(doc["_id"])
        return await writes.insert_doc(coll, doc)

    async def insert_many(self, collection: str, docs: Iterable[Document]) -> list[Any]:
        """Insert documents in one transaction, all or nothing; return their ``_id`` values.

        Each document gets its own revision; edges receive them as usual.

        Raises:
            DuplicateKeyError: An ``_id`` exists or repeats; nothing was written.
            EJSONError: A value cannot be stored; nothing was written.
            InvalidState: The hub is not started.
        """
        coll = self._coll(collection)
        batch: list[Document] = []
        for doc in docs:
            if not isinstance(doc, dict):
                raise ConfigurationError("a document must be a dict")
            if "_id" in doc:
                check_new_id(doc["_id"])
            batch.append(doc if "_id" in doc else {"_id": random_id(), **doc})
        return await writes.insert_docs(coll, batch) if batch else []

    async def update(
        self, collection: str, selector: Any, modifier: dict[str, Any], *, multi: bool = False
    ) -> int:
        """Update the document(s) matching ``selector``; return how many matched.

        ``modifier`` is a MongoDB modifier or a replacement document. Selectors naming one
        ``_id`` take the fast path; others are matched through the store (see
        :mod:`aioserversync.hub.writes` for how multi updates are chunked).

        Raises:
            QueryError: Bad selector.
            ModifierError: Bad modifier, or one that does not fit a document.
        """
        return await writes.update_where(self._coll(collection), selector, modifier, multi=multi)

    async def remove(self, collection: str, selector: Any) -> int:
        """Remove every document matching ``selector`` (tombstones kept); return how many.

        Raises:
            QueryError: Bad selector.
        """
        return await writes.remove_where(self._coll(collection), selector)

    async def purge(self, collection: str | None = None) -> None:
        """Purge expired tombstones and mutation ids now (of one collection, or all)."""
        targets = [self._coll(collection)] if collection else list(self.collections.values())
        for coll in targets:
            await coll.purge()


class HubServing:
    """What :meth:`ServerSyncServer.serve` returns: ``await`` it or use ``async with``."""

    def __init__(
        self,
        hub: ServerSyncServer,
        host: str | None,
        port: int,
        ssl: ssl_module.SSLContext | None,
        options: dict[str, Any],
    ) -> None:
        self.hub = hub
        self._args = (host, port, ssl, options)
        self.running: RunningServer | None = None

    @property
    def port(self) -> int:
        """The listening port."""
        return self._running().port

    @property
    def host(self) -> str:
        """The listening address."""
        return self._running().host

    @property
    def url(self) -> str:
        """The DDP URL (``ws://`` or ``wss://…/websocket``)."""
        running = self._running()
        url = running.url
        return "wss://" + url[len("ws://") :] if self._args[2] is not None else url

    def _running(self) -> RunningServer:
        if self.running is None:
            raise InvalidState("the hub is not serving yet")
        return self.running

    async def serve_forever(self) -> None:
        """Serve until the hub is closed or this task is cancelled."""
        await self._running().serve_forever()

    async def _start(self) -> HubServing:
        if self.running is not None:
            raise InvalidState("already serving")
        self.running = await self.hub._listen(*self._args)
        return self

    def __await__(self) -> Any:
        return self._start().__await__()

    async def __aenter__(self) -> HubServing:
        try:
            return await self._start()
        except BaseException:
            await self.hub.close()  # the block never runs: release the store
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.hub.close()

"""``ServerSync``: one remote DDP server, its local store, and the collections synced from it.

Usage::

    async with ServerSync("http://hub:3000", store=SQLiteStore("cache.db")) as remote:
        items = await remote.sync("items", mode="write")
        await items.wait_ready()
        ...

Entering the context opens the store and starts connecting in the background: reads work at once
from the cache, even while the remote is unreachable. Leaving it stops the subscriptions and the
outbox drainer; queued writes stay durable in the store for the next run.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..exceptions import ConfigurationError, InvalidState, MeteorError, SyncTimeout
from ..ids import random_id
from ..policies import SyncPolicy, get_policy
from ..query import compile_selector
from ..stores import store_from
from ..stores.base import Store
from .applier import Applier
from .client import DDPClient
from .collection import SyncedCollection
from .engine import Engine, resync_key
from .hooks import refuse_in_hook
from .hubsync import HubSession
from .ingest import Ingest
from .outbox import Drainer
from .resync import resync
from .scope import check_filter, forget_scope, judge_stored, scope_mark, watch_scope
from .state import CollectionState, Hook, load_outbox
from .store_use import acquire_store, release_stores

__all__ = ["RemoteStatus", "ServerSync"]

logger = logging.getLogger("aioserversync.sync")


@dataclass(frozen=True, slots=True)
class RemoteStatus:
    """The state of one remote (``remote.status``).

    Attributes:
        state: The connection state name (``connected``, ``connecting``, ``reconnecting``, …).
        connected: Whether a DDP session is up.
        session: The current DDP session id, if any.
        origin: The origin key documents from this remote carry.
        reconnects: Reconnections since start.
        pending: Local writes not yet confirmed, over all collections.
        collections: The synced local collection names.
        user_id: The logged-in user's id, or ``None``.
        login_error: Why the login (``user``/``password``, or a stored token at a reconnect)
            was refused, or ``None``. The session then runs logged out.
    """

    state: str
    connected: bool
    session: str | None
    origin: str
    reconnects: int
    pending: int
    collections: tuple[str, ...]
    user_id: Any = None
    login_error: MeteorError | None = None


class ServerSync:
    """A connection to one DDP server that syncs collections into a local store.

    Args:
        url: ``http(s)://host[:port]`` as Meteor's ``DDP.connect`` takes it, or ``ws(s)://…``.
        store: A :class:`~aioserversync.stores.base.Store`, a path (SQLite), a store URL
            (``sqlite:///path``, ``memory://``, ``mongodb://host/db``), or ``None`` for
            ``./aioserversync.sqlite3``. A store this object opens is closed with it, or with
            the last open remote that shares it.
        name: The origin key stored with this remote's documents (default: the URL). Give each
            remote a stable name when several feed one collection.
        token: A resume token to log in with (re-sent after every reconnect).
        user: A username or email to log in with ``password`` (SHA-256 digest on the wire).
        password: The password for ``user``.
        push_window: Local writes sent per round trip.
        max_push_attempts: Transient push failures before a write is dead-lettered.
        push_backoff_max: Largest delay between push retries, in seconds.
        push_timeout: Seconds to wait for the answer to a push. Past it the write's outcome is
            unknown: the link is dropped and the reconnect decides the write (found applied:
            settled; not applied: sent again; a hub deduplicates it), never applying it twice.
            The hub's ``serversync/capabilities`` and ``serversync/pull`` calls are bounded
            by it too: past it the link is dropped and the next session starts over.
        **client_options: Passed to :class:`~aioserversync.asyncio.client.DDPClient`
            (``heartbeat_interval``, ``heartbeat_timeout``, ``open_timeout``, ``max_size``,
            ``ssl``, ``proxy``, ``compression``, ``headers``, ``backoff_max``, …).
    """

    def __init__(
        self,
        url: str,
        *,
        store: Store | str | os.PathLike[str] | None = None,
        name: str | None = None,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
        push_window: int = 64,
        max_push_attempts: int = 10,
        push_backoff_max: float = 30.0,
        push_timeout: float = 60.0,
        **client_options: Any,
    ) -> None:
        if (user is None) != (password is None):
            raise ConfigurationError("give both user and password, or neither")
        self.url = url
        self.origin = name or url
        self.store = store_from(store, "aioserversync.sqlite3")
        self._token = token
        self._user = user
        self._password = password
        self.log = logging.LoggerAdapter(logger, {"remote": self.origin})
        self._applier = Applier(logger=self.log)
        self._engine = Engine(self.origin, self._applier, self.log)
        self._ingest = Ingest(self._engine)
        client_options.setdefault("decode_data", False)
        if token is not None:
            # Logged in at the start of every session, before any subscription or probe.
            client_options["resume_token"] = token
        self._login_done = asyncio.Event()
        self._login_error: MeteorError | None = None
        if user is None:
            self._login_done.set()
        self.client = DDPClient(url, on_data=self._ingest.on_data, **client_options)
        self._engine.drop_link = self.client.drop_link
        self._hub = HubSession(
            self._engine,
            self.client,
            self._ingest,
            logged_in=self._login_done.wait,
            call_timeout=push_timeout,
        )
        self._ingest.hub = self._hub
        self._drainer = Drainer(
            self._engine,
            self.client,
            window=push_window,
            max_attempts=max_push_attempts,
            backoff_max=push_backoff_max,
            push_timeout=push_timeout,
        )
        self._opened: list[Store] = []
        self._closer: asyncio.Task[None] | None = None
        self._started = False
        self.closed = False
        self._login_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> ServerSync:
        """Open the store and start connecting in the background. Returns at once.

        Raises:
            InvalidState: Already closed.
        """
        if self.closed:
            raise InvalidState("this ServerSync is closed")
        if self._started:
            return self
        self._started = True
        await self._open_store(self.store)
        self._applier.start()
        self._drainer.start()
        await self.client.start()
        if self._user is not None:
            self._login_task = asyncio.get_running_loop().create_task(self._login())
        return self

    async def _login(self) -> None:
        try:
            await self.client.wait_connected()
            assert self._user is not None and self._password is not None
            # The token this returns is resumed by the client on every later session.
            await self.client.login_with_password(self._user, self._password, keep=True)
        except asyncio.CancelledError:
            raise
        except MeteorError as exc:  # refused: the session goes on logged out
            self._login_error = exc
            self.log.error("login to %s as %r was refused: %s", self.url, self._user, exc)
        except Exception:
            self.log.exception("login to %s failed", self.url)
        finally:
            self._login_done.set()

    async def _open_store(self, store: Store) -> None:
        await acquire_store(self, store, self._opened)

    async def close(self) -> None:
        """Stop syncing: stop pushing, close the link, apply what was received, close stores.

        Queued local writes stay in the store. Change streams end. Idempotent. Called from a
        sync hook, it returns at once and closes once the hook's batch is applied (waiting for
        it there would wait for the hook itself).
        """
        if self.closed:
            return
        if self._applier.in_job():
            if self._closer is None:
                self._closer = asyncio.get_running_loop().create_task(self.close())
            return
        self.closed = True
        if self._login_task is not None:
            self._login_task.cancel()
        await self._drainer.close()
        await self._hub.close()
        await self.client.close()
        self._ingest.flush()
        await self._applier.close()
        for cs in self._engine.collections.values():
            cs.closed = True
            cs.hub.close()
            cs.bump()
        for store in release_stores(self, self._opened):
            await store.close()

    async def __aenter__(self) -> ServerSync:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # ------------------------------------------------------------------ status

    @property
    def status(self) -> RemoteStatus:
        """The current :class:`RemoteStatus`."""
        client = self.client
        state = getattr(client.state, "value", str(client.state))
        stats = getattr(client, "stats", None)
        return RemoteStatus(
            state=str(state),
            connected=bool(client.connected),
            session=getattr(client, "session", None),
            origin=self.origin,
            reconnects=int(getattr(stats, "reconnects", 0) or 0),
            pending=sum(cs.pending_count() for cs in self._engine.collections.values()),
            collections=tuple(self._engine.collections),
            user_id=client.user_id,
            login_error=self._login_error or getattr(stats, "login_error", None),
        )

    def status_changes(self) -> AsyncIterator[Any]:
        """Connection state changes, as an async iterator (ends when closed)."""
        it: AsyncIterator[Any] = self.client.status_changes()
        return it

    async def call(self, name: str, *params: Any, timeout: float | None = None) -> Any:
        """Call a method on the remote (see :meth:`DDPClient.call`)."""
        return await self.client.call(name, *params, timeout=timeout)

    async def resync(self, *collections: str, timeout: float | None = None) -> None:
        """Resync collections in full from the remote, and wait until that is committed.

        For a cache suspected out of step with the remote: a ``read`` collection edited
        locally, a store restored from a backup, a hub checkpoint that is not trusted. The
        link is dropped and the next session replaces each collection's data with the remote's
        as a resync round (a hub collection is pulled in full instead of from its checkpoint):
        documents the remote no longer has are swept, documents with pending local writes are
        reconciled as in any round. The remote's other collections reconnect too (on the hub
        path they catch up from their checkpoints). The request is durable: a hub collection
        still resyncs in full if the process restarts first. Offline, this waits for the next
        session.

        Args:
            *collections: Local collection names (default: every synced collection).
            timeout: Seconds to wait; ``None`` waits as long as it takes.

        Raises:
            ConfigurationError: A name that is not synced from this remote.
            SyncTimeout: Not done within ``timeout`` (the resync still happens later).
            InvalidState: The remote or a collection was closed.
            MeteorError: The server refused a collection's subscription meanwhile.
            InvalidState: Called from a sync hook of this remote (the round would wait for it).
        """
        if self.closed:
            raise InvalidState("this ServerSync is closed")
        refuse_in_hook(self.origin, "resync()")
        if not self._started:
            await self.start()
        names = collections or tuple(self._engine.collections)
        unknown = [n for n in names if n not in self._engine.collections]
        if unknown:
            raise ConfigurationError(
                f"not synced from {self.origin}: {', '.join(map(repr, unknown))}"
            )
        css = [self._engine.collections[n] for n in dict.fromkeys(names)]
        await resync(self._applier, self.client, css, timeout)

    async def _sync_barrier(self) -> None:
        """Wait until every data message received so far is applied to the store."""
        self._ingest.flush()
        await self._applier.barrier()

    # ------------------------------------------------------------------ collections

    async def sync(
        self,
        collection: str,
        *,
        mode: str = "online-write",
        publication: str | None = None,
        args: Sequence[Any] = (),
        query: Mapping[str, Any] | None = None,
        local: str | None = None,
        store: Store | None = None,
        policy: SyncPolicy | None = None,
        before_sync_up: Hook | None = None,
        after_sync_up: Hook | None = None,
        before_sync_down: Hook | None = None,
        after_sync_down: Hook | None = None,
        via: str = "auto",
        **legacy: Any,
    ) -> SyncedCollection:
        """Start syncing a remote collection; return its local handle at once.

        Args:
            collection: The remote collection name (as in DDP messages).
            mode: ``"read"``, ``"online-write"`` (default) or ``"write"``.
            publication: The publication to subscribe to (default: ``collection``).
            args: The publication's arguments.
            query: A local MongoDB filter: only matching documents are mirrored.
            local: The local collection name (default: ``collection``). Several ``read`` remotes
                may share one; each document keeps its origin.
            store: A store for this collection (default: the remote's store). A ``MongoStore``
                wrapping one collection also names the local collection.
            policy: A policy instance (overrides ``mode``).
            before_sync_up: ``hook(op, _id, doc)`` before a local write is pushed.
            after_sync_up: ``hook(op, _id, doc)`` after the server confirmed it.
            before_sync_down: ``hook(op, _id, fields)`` before a remote change is applied
                (once with ``op="resync"`` before a resync round).
            after_sync_down: ``hook(op, _id, fields)`` after a remote change was applied.
            via: ``"auto"`` (default): the hub protocol when the server offers it for this
                collection, else the stock publication and mutator methods; ``"stock"``: always
                the stock path.
            **legacy: ``collection=`` (a local name or a store), the original package's spelling
                of ``local=``/``store=``.

        Raises:
            ConfigurationError: Unknown mode, a collection synced twice, or a bad option.
            InvalidState: The remote is closed.
        """
        if "collection" in legacy:
            target = legacy.pop("collection")
            if isinstance(target, str):
                local = target
            else:
                store = target
        if legacy:
            raise ConfigurationError(f"unknown sync() options: {', '.join(sorted(legacy))}")
        if isinstance(args, str | bytes | Mapping) or not isinstance(args, Sequence):
            raise ConfigurationError(f"args must be a list of arguments, got {args!r}")
        if self.closed:
            raise InvalidState("this ServerSync is closed")
        if not self._started:
            await self.start()
        if collection in self._engine.by_remote:
            raise ConfigurationError(f"{collection!r} is already synced from {self.origin}")
        pol = policy if policy is not None else get_policy(mode)
        target_store = store or self.store
        if local is None:
            local = getattr(target_store, "collection_name", None) or collection
        if local in self._engine.collections:
            raise ConfigurationError(f"local collection {local!r} already synced from this remote")
        await self._open_store(target_store)
        cs = CollectionState(
            remote=collection,
            local=local,
            publication=publication or collection,
            args=list(args),
            store=target_store,
            policy=pol,
            origin=self.origin,
            matcher=compile_selector(dict(query)) if query else None,
            before_sync_up=before_sync_up,
            after_sync_up=after_sync_up,
            before_sync_down=before_sync_down,
            after_sync_down=after_sync_down,
        )
        await self._applier.submit(lambda: load_outbox(cs))
        if cs.pending and not cs.policy.pushes:
            self.log.warning(
                "%d local writes of %r queued by an earlier run stay queued: mode %r never "
                "sends them (sync it in a writing mode to push them)",
                cs.pending_count(),
                local,
                cs.policy.name,
            )
        cs.sub_id = random_id()
        if cs.matcher is not None:
            watch_scope(self._engine, cs)
        flt = dict(query) if query else None
        mark = scope_mark(flt)
        engine = self._engine
        self._applier.submit_nowait(
            lambda: check_filter(engine, cs, mark, resync_key(cs)), detached=True
        )
        if flt is not None and cs.policy.pushes:
            cs.scope_mark = mark
            self._applier.submit_nowait(lambda: judge_stored(engine, cs, flt), detached=True)
        else:  # this run may keep documents outside any filter: a later filtered run checks
            self._applier.submit_nowait(lambda: forget_scope(cs), detached=True)
        self._engine.collections[local] = cs
        self._engine.by_remote[collection] = cs
        if via not in ("auto", "stock"):
            raise ConfigurationError(f"via must be 'auto' or 'stock', not {via!r}")
        if via == "stock" or (publication is not None and publication != collection) or args:
            # Named publications and arguments are stock Meteor concepts: the hub path syncs
            # whole collections.
            cs.source = "stock"
        elif self._hub.is_hub is not None:
            cs.source = "hub" if self._hub.is_hub and collection in self._hub.offered else "stock"
        if cs.source == "stock" and not self._login_done.is_set():
            # Subscribed as nobody, a publication that checks the user would send nothing, and
            # the round would sweep the cache: subscribe once the login is done.
            self._hub._spawn(self._subscribe_after_login(cs))
        elif cs.source == "stock":
            self._ingest.begin_collection(cs)
            await self.client.subscribe(cs.publication, *cs.args, sub_id=cs.sub_id)
        elif self.client.connected:
            self._hub.start(cs)
        return SyncedCollection(self, cs)

    async def _subscribe_after_login(self, cs: CollectionState) -> None:
        await self._login_done.wait()
        if cs.closed or self.closed:
            return
        self._ingest.begin_collection(cs)
        try:
            await self.client.subscribe(cs.publication, *cs.args, sub_id=cs.sub_id)
        except Exception:  # closed meanwhile
            self.log.debug("subscribing to %r failed", cs.publication, exc_info=True)

    async def _unsync(self, cs: CollectionState) -> None:
        """Stop syncing one collection (its cache and outbox stay)."""
        if cs.closed:
            return
        cs.closed = True
        self._engine.collections.pop(cs.local, None)
        self._engine.by_remote.pop(cs.remote, None)
        self._hub.forget(cs)
        # Offline too: the client must not resubscribe them on the next session. A forgotten
        # subscription keeps its documents in the server's merge box for this session, and the
        # server then sends a later subscription to them no ``added`` at all.
        # The ``unsub`` is sent without waiting for ``nosub`` (timeout 0): a server still running
        # the publication may answer late or never, and nothing here needs the answer.
        for sub_id in (cs.sub_id, cs.feed_sub_id):
            if sub_id is None:
                continue
            try:
                await self.client.unsubscribe(sub_id, timeout=0)
            except SyncTimeout:
                pass
            except Exception:  # the link may drop meanwhile; the sub dies with the session
                self.log.debug("unsubscribe of %r failed", cs.publication, exc_info=True)
        cs.feed_sub_id = None
        self._ingest.forget(cs)
        cs.hub.close()
        cs.bump()

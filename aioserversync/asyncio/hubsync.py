"""The client side of the hub protocol (docs/protocol.md): detection, catch-up, the live feed.

After every ``connected`` (and the re-login the client does first), :class:`HubSession` asks the
server for ``serversync/capabilities``. A server that answers 404 is a stock Meteor server and
every collection uses publications and mutator methods. Against a hub, each collection it offers:

1. catches up with ``serversync/pull`` from its stored checkpoint, one applier job per batch, each
   with its checkpoint in the same transaction. Without a checkpoint (first sync, or after a 410
   "checkpoint-expired"), it pulls everything into the staging area and commits it as a resync
   round with a sweep (a page in the page form staged as its text, as one ``StageDocs``; a
   tombstone, or a version the ``query=`` filter refuses, unstages its document); when the
   cache holds nothing of this remote yet, batches go straight in;
2. subscribes to ``serversync/changes(collection, checkpoint)``; once that is ready the
   collection is live and its pending writes are pushed (with ``serversync/push``).

Writes whose outcome was unknown when the link dropped are simply pushed again: the hub
recognises their mutation ids and applies each at most once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..exceptions import (
    MeteorError,
    MethodNotFound,
    NotConnected,
    SyncTimeout,
    WriteOutcomeUnknown,
)
from ..ids import random_id
from ..stores.base import MetaSet, OutboxUpdate
from .engine import Engine, HubEntry, checkpoint_key, resync_key
from .hubpull import HubPulls
from .resync import resync_after_failure
from .state import CollectionState, now_ms

__all__ = ["FEED_PREFIX", "HubSession"]

FEED_PREFIX = "serversync.changes/"
logger = logging.getLogger("aioserversync.hub.client")


class HubSession(HubPulls):
    """Drives hub detection and catch-up for one remote, once per DDP session.

    Args:
        engine: The remote's engine.
        client: The DDP client.
        ingest: The ingest sink (for rounds of stock collections and feed routing).
        pull_limit: Documents asked per ``serversync/pull``.
        logged_in: Awaited before the probe, so it runs as the logged-in user.
    """

    def __init__(
        self,
        engine: Engine,
        client: Any,
        ingest: Any,
        *,
        pull_limit: int = 10_000,
        logged_in: Callable[[], Awaitable[Any]] | None = None,
        call_timeout: float | None = 60.0,
    ) -> None:
        self.engine = engine
        self.call_timeout = call_timeout
        """Seconds to wait for the answer to a capabilities or pull call (see :meth:`_ask`)."""
        self.client = client
        self.ingest = ingest
        self.pull_limit = pull_limit
        self.is_hub: bool | None = None
        self.offered: set[str] = set()
        self.max_pull = pull_limit
        self.text_pull = False
        """Whether pulls ask for the text form (each document's fields as JSON text)."""
        self.page_pull = False
        """Whether pulls may ask for the page form (the documents as one JSON text)."""
        self.full_pull = False
        """Whether the later pages of a full pull carry its first page's purge mark (``full``)."""
        self.pulled = 0
        """Entries received through ``serversync/pull`` since start (for tests and benchmarks)."""
        self._task: asyncio.Task[None] | None = None
        self.by_feed: dict[str, CollectionState] = {}
        self._probe_lock = asyncio.Lock()
        self._catching: set[CollectionState] = set()
        self._logged_in = logged_in
        self._extra: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ session lifecycle

    def on_connected(self) -> None:
        """A new DDP session started (called from the reader, before any of its data)."""
        if self._task is not None:
            self._task.cancel()
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._session(), name="aioserversync-hub")

    def on_disconnected(self) -> None:
        """The link was lost: stop catching up; feed subscriptions die with the session."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for task in list(self._extra):
            task.cancel()
        for cs in self.engine.collections.values():
            if cs.source == "hub" and cs.feed_sub_id is not None:
                sub_id, cs.feed_sub_id = cs.feed_sub_id, None
                # Forget it locally so the client does not re-send it with an old checkpoint.
                asyncio.get_running_loop().create_task(self._forget(sub_id))

    def forget(self, cs: CollectionState) -> None:
        """A collection stops syncing: its change feed no longer routes to it."""
        for name, target in list(self.by_feed.items()):
            if target is cs:
                del self.by_feed[name]

    async def _forget(self, sub_id: str) -> None:
        with contextlib.suppress(Exception):
            await self.client.unsubscribe(sub_id)

    async def close(self) -> None:
        """Stop the session task."""
        task, self._task = self._task, None
        tasks = [t for t in (task, *self._extra) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    async def probe(self) -> bool:
        """Ask the server whether it is a hub (cached per session); return the answer."""
        async with self._probe_lock:
            try:
                caps = await self._ask("serversync/capabilities", wait_connected=True)
            except MethodNotFound:
                self.is_hub, self.offered = False, set()
                return False
            if not isinstance(caps, dict) or caps.get("protocol") != 1:
                self.is_hub, self.offered = False, set()
                return False
            self.is_hub = True
            self.offered = {c for c in caps.get("collections", ()) if isinstance(c, str)}
            features = caps.get("features")
            features = features if isinstance(features, list) else []
            self.text_pull = "pull-text" in features
            self.page_pull = "pull-page" in features
            self.full_pull = "pull-full" in features
            max_pull = caps.get("maxPull")
            if isinstance(max_pull, int) and max_pull > 0:
                self.max_pull = min(self.pull_limit, max_pull)
            return True

    async def _session(self) -> None:
        try:
            await self.client.wait_connected()
            if self._logged_in is not None:
                await self._logged_in()
            self.is_hub = None
            try:
                await self.probe()
            except MeteorError as exc:
                self._fail(
                    [c for c in self.engine.collections.values() if c.source != "stock"], exc
                )
                return
            for cs in list(self.engine.collections.values()):
                if cs.closed:
                    continue
                try:
                    if cs.source == "undecided":
                        await self.decide(cs)
                    elif cs.source == "hub":
                        await self.catch_up(cs)
                except MeteorError as exc:
                    self._fail([cs], exc)
        except asyncio.CancelledError:
            raise
        except (NotConnected, WriteOutcomeUnknown, ConnectionError) as exc:
            self.engine.log.info("hub catch-up interrupted: %s", exc)
        except Exception as exc:
            self._resync_after(exc)

    def _resync_after(self, exc: Exception) -> None:
        """Catch-up failed for another reason than the link (a store error, a bad answer)."""
        if self.engine.applier.closing:
            return
        self.engine.applier.submit_nowait(
            lambda: resync_after_failure(self.engine, exc), detached=True
        )

    def _fail(self, collections: list[CollectionState], exc: MeteorError) -> None:
        """The server refused to sync these collections: surface it through ``wait_ready``."""
        for cs in collections:
            self.engine.log.warning("syncing %r was refused: %s", cs.local, exc)
            cs.sub_error = exc
            cs.ready.set()
            cs.bump()

    def feed_ended(self, cs: CollectionState, error: MeteorError | None) -> None:
        """The hub ended a collection's change feed (``nosub``).

        A ``410`` means its checkpoint expired before or while the backlog was sent (a purge
        overtook it): the collection catches up again, which resyncs it in full. Another error
        (a ``403`` after a permission change, say) is a refusal, surfaced through
        ``wait_ready``. A feed ended without an error is simply followed again.
        """
        cs.feed_sub_id = None
        if cs.closed:
            return
        cs.live = False
        cs.stats.live = False
        if error is not None and error.error != 410:
            self._fail([cs], error)
            return
        self.engine.log.warning(
            "the change feed of %r ended (%s); catching up again", cs.local, error or "no error"
        )
        self.start(cs)

    async def decide(self, cs: CollectionState) -> None:
        """Give an undecided collection its source now that the server is known; start it."""
        if cs.source != "undecided":
            return
        if self.is_hub and cs.remote in self.offered:
            cs.source = "hub"
            await self.catch_up(cs)
        else:
            cs.source = "stock"
            self.ingest.begin_collection(cs)
            await self.client.subscribe(cs.publication, *cs.args, sub_id=cs.sub_id)

    def start(self, cs: CollectionState) -> None:
        """Start syncing a collection added while a session is up (in the background).

        Whatever stops it is handled as in a session: a refusal reaches ``wait_ready``, a lost
        link waits for the next session, anything else asks for a resync.
        """
        self._spawn(self._start(cs))

    async def _start(self, cs: CollectionState) -> None:
        try:
            if self._logged_in is not None:
                await self._logged_in()  # never subscribe as nobody while the login runs
            if self.is_hub is None:
                await self.probe()
            if cs.source == "hub":
                await self.catch_up(cs)
            else:
                await self.decide(cs)
        except asyncio.CancelledError:
            raise
        except MeteorError as exc:
            self._fail([cs], exc)
        except (NotConnected, WriteOutcomeUnknown, ConnectionError) as exc:
            self.engine.log.info("starting %r was interrupted: %s", cs.local, exc)
        except Exception as exc:
            self._resync_after(exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._extra.add(task)
        task.add_done_callback(self._extra.discard)

    # ------------------------------------------------------------------ catch-up

    async def catch_up(self, cs: CollectionState) -> None:
        """Bring one hub collection up to date, then follow its live feed.

        At most one catch-up of a collection runs at a time: the session task and a collection
        synced just as a session opened may both get here, and a second one would pull again
        and subscribe a second feed.
        """
        if cs in self._catching:
            return
        self._catching.add(cs)
        try:
            await self._catch_up(cs)
        finally:
            self._catching.discard(cs)

    async def _catch_up(self, cs: CollectionState) -> None:
        applier = self.engine.applier
        await applier.submit(lambda: self._unknown_after_disconnect(cs))
        asked = cs.resync_asked
        raw = await cs.store.get_meta(checkpoint_key(cs))
        checkpoint = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
        full = asked > cs.resync_done or bool(await cs.store.get_meta(resync_key(cs)))
        if full and checkpoint is not None:
            self.engine.log.info("resyncing %r in full, as asked", cs.local)
            checkpoint = None
        if checkpoint is not None:
            try:
                checkpoint = await self._pull_incremental(cs, checkpoint)
            except MeteorError as exc:
                if exc.error != 410:
                    raise
                self.engine.log.warning(
                    "checkpoint %d of %r is older than the hub's tombstone retention; "
                    "resyncing in full",
                    checkpoint,
                    cs.local,
                )
                checkpoint = None
        if checkpoint is None:
            checkpoint = await self._pull_full_again(cs)
            if full:
                await cs.store.apply([MetaSet(resync_key(cs), None)])
        if asked > cs.resync_done:
            cs.resync_done = asked
            cs.bump()
        await applier.submit(lambda: self._requeue_unknown(cs))
        feed_id = random_id()
        cs.feed_sub_id = feed_id
        self.by_feed[FEED_PREFIX + cs.remote] = cs
        await self.client.subscribe("serversync/changes", cs.remote, checkpoint, sub_id=feed_id)

    async def _ask(self, method: str, *params: Any, **options: Any) -> Any:
        """Call a method of the sync protocol, bounded by :attr:`call_timeout`.

        An answer that does not come in time (a server that hangs, or lost the call) would
        stall this collection's sync for as long as the link stays up: the link is dropped
        instead, and the next session starts over.

        Raises:
            NotConnected: No answer in time (the link is being dropped).
        """
        try:
            return await self.client.call(method, *params, timeout=self.call_timeout, **options)
        except SyncTimeout as exc:
            reason = f"{method} got no answer within {self.call_timeout:g}s"
            self.client.drop_link(reason)
            raise NotConnected(reason) from exc

    async def _unknown_after_disconnect(self, cs: CollectionState) -> None:
        """Writes still in flight belong to an ended session: their outcome is unknown."""
        ops = []
        for recs in cs.pending.values():
            for rec in recs:
                if rec.state == "in_flight":
                    rec.state = "unknown"
                    ops.append(OutboxUpdate(rec.seq, state="unknown", updated_at=now_ms()))
        if ops:
            await cs.store.apply(ops)

    async def _requeue_unknown(self, cs: CollectionState) -> None:
        """After catch-up, unknown writes are pushed again (the hub deduplicates them)."""
        ops = []
        for recs in cs.pending.values():
            for rec in recs:
                if rec.state == "unknown":
                    rec.state = "pending"
                    ops.append(OutboxUpdate(rec.seq, state="pending", updated_at=now_ms()))
        if ops:
            await cs.store.apply(ops)
        self.engine.after_index_change(cs)

    # ------------------------------------------------------------------ the live feed

    def feed_entry(self, cs: CollectionState, wire_id: str, fields: Any) -> HubEntry | None:
        """Turn one feed ``added`` (pseudo-collection) into a :class:`HubEntry`, or ``None``."""
        if not isinstance(fields, dict):
            return None
        doc_id, rev, doc, mid = fields.get("i"), fields.get("r"), fields.get("d"), fields.get("m")
        if (
            not isinstance(doc_id, str)
            or not isinstance(rev, int)
            or isinstance(rev, bool)
            or not (doc is None or isinstance(doc, dict))
        ):
            self.engine.log.warning("ignoring a malformed hub feed entry %r", wire_id)
            return None
        return HubEntry(cs.local, doc_id, rev, doc, mid if isinstance(mid, str) else None)

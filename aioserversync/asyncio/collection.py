"""``SyncedCollection``: the handle returned by :meth:`ServerSync.sync`.

Reads always come from the local store, never the network, so they work before the first
connection and while the remote is unreachable. Writes follow the collection's policy (mode).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..exceptions import (
    DuplicateKeyError,
    InvalidState,
    OfflineError,
    SubscriptionError,
    SyncTimeout,
)
from ..ids import id_stringify
from ..stores.base import OutboxRecord, SortSpec
from ..typing import Document
from .dead_letters import failed_records, forget_records, retry_records
from .direct_writes import write_direct
from .hooks import refuse_in_hook
from .state import CollectionState, SyncStats
from .streams import ChangeStream
from .writes import (
    LocalWrite,
    check_modifier,
    insert_write,
    single_id,
    write_local,
    write_local_group,
)

if TYPE_CHECKING:
    from .sync import ServerSync

__all__ = ["WRITE_CHUNK", "SyncedCollection"]

WRITE_CHUNK = 1000
"""Documents per transaction of an ``update(..., multi=True)`` or ``remove()`` by selector."""


def _selector(selector: Any) -> dict[str, Any]:
    """An ``_id`` value or a selector dict -> a selector dict."""
    if selector is None:
        return {}
    if isinstance(selector, Mapping):
        return dict(selector)
    return {"_id": selector}


class SyncedCollection:
    """One synced collection: local reads, mode-dependent writes, change events, status.

    Not created directly: use :meth:`ServerSync.sync` or :func:`aioserversync.sync`.
    """

    def __init__(self, remote: ServerSync, state: CollectionState) -> None:
        self._remote = remote
        self._cs = state
        self._owns_remote = False

    # ------------------------------------------------------------------ identity and status

    @property
    def name(self) -> str:
        """The local collection name."""
        return self._cs.local

    @property
    def remote_name(self) -> str:
        """The remote collection name."""
        return self._cs.remote

    @property
    def mode(self) -> str:
        """The policy's mode name (``read``, ``online-write``, ``write`` or a custom one)."""
        return self._cs.policy.name

    @property
    def policy(self) -> Any:
        """The policy instance."""
        return self._cs.policy

    @property
    def stats(self) -> SyncStats:
        """Counters and state: connection, pending and failed writes, last sync, conflicts."""
        self._cs.stats.connection = self._remote.status.state
        return self._cs.stats

    @property
    def is_stale(self) -> bool:
        """True until the remote's data has been confirmed (a resync round applied) since start."""
        return self._cs.stats.stale

    @property
    def is_live(self) -> bool:
        """Whether the link is up and this collection's current resync round is applied."""
        return self._cs.live

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until the server's full snapshot has been applied locally (once per process).

        Raises:
            SyncTimeout: Not ready within ``timeout`` seconds.
            SubscriptionError: The server refused the subscription.
            InvalidState: Called from a sync hook of this remote before the first round.
        """
        if not self._cs.ready.is_set():
            refuse_in_hook(self._cs.origin, "wait_ready()")
        try:
            async with asyncio.timeout(timeout):
                await self._cs.ready.wait()
        except TimeoutError:
            raise SyncTimeout(f"{self.name!r} not ready after {timeout}s") from None
        if self._cs.sub_error is not None and self._cs.stats.stale:
            raise self._cs.sub_error

    async def wait_drained(self, timeout: float | None = None) -> None:
        """Wait until no local write of this collection is pending, in flight or unknown.

        Failed (dead-lettered) writes do not count: see :meth:`failed`.

        Raises:
            SyncTimeout: Still pending after ``timeout`` seconds.
            InvalidState: Called from a sync hook of this remote with writes pending, or writes
                are pending in a mode that never sends them (queued by an earlier run).
        """
        if self._cs.pending:
            refuse_in_hook(self._cs.origin, "wait_drained()")
            if not self._cs.policy.pushes:
                raise InvalidState(
                    f"{self._cs.pending_count()} writes of {self.name!r} queued in an earlier "
                    f"run are never sent in mode {self.mode!r}: wait_drained() would not return"
                )
        try:
            async with asyncio.timeout(timeout):
                while self._cs.pending:
                    await self._cs.wait_change()
        except TimeoutError:
            n = self._cs.pending_count()
            raise SyncTimeout(
                f"{n} writes of {self.name!r} still pending after {timeout}s"
            ) from None

    # ------------------------------------------------------------------ reads

    async def find(
        self,
        selector: Any = None,
        *,
        sort: SortSpec | None = None,
        skip: int = 0,
        limit: int = 0,
        projection: Mapping[str, Any] | None = None,
    ) -> list[Document]:
        """Return the matching documents from the local store.

        Args:
            selector: A MongoDB selector, or an ``_id`` value.
            sort: ``[("field", 1), ...]`` or ``{"field": -1}``.
            skip: Documents to skip.
            limit: At most this many (0: no limit).
            projection: MongoDB projection.
        """
        return await self._cs.store.find(
            self._cs.local,
            _selector(selector),
            sort=sort,
            skip=skip,
            limit=limit,
            projection=projection,
        )

    async def find_one(self, selector: Any = None, **kwargs: Any) -> Document | None:
        """Return the first matching document, or ``None``."""
        docs = await self.find(selector, limit=1, **kwargs)
        return docs[0] if docs else None

    async def get(self, doc_id: Any) -> Document | None:
        """Return the document with this ``_id``, or ``None``."""
        return await self._cs.store.get(self._cs.local, id_stringify(doc_id))

    async def count(self, selector: Any = None) -> int:
        """Count matching documents in the local store."""
        return await self._cs.store.count(self._cs.local, _selector(selector))

    def iter_find(self, selector: Any = None, **kwargs: Any) -> AsyncIterator[Document]:
        """Stream matching documents in pages (for large results)."""
        return self._cs.store.iter_find(self._cs.local, _selector(selector), **kwargs)

    # ------------------------------------------------------------------ writes

    async def insert(self, doc: Mapping[str, Any]) -> Any:
        """Insert a document; return its ``_id`` (a new Meteor id if the document has none).

        ``read``: the cache only. ``online-write`` and ``write``: applied locally and queued in the
        durable outbox in one transaction, then pushed when the link is live.

        Raises:
            DuplicateKeyError: The ``_id`` exists.
            EJSONError: The document holds values EJSON cannot carry, or its ``_id`` is ``None``
                or ``""``.
            TypeError: The document is not a mapping.
        """
        self._check_open()
        cs = self._cs
        route = cs.policy.route("insert", live=cs.live)
        write = insert_write(doc, queue=route == "queue")  # refuses bad values before writing
        await self._local(write)
        self._remote._engine.after_index_change(cs)
        assert write.doc is not None
        return write.doc["_id"]

    async def insert_many(self, docs: Iterable[Mapping[str, Any]]) -> list[Any]:
        """Insert documents in one transaction; return their ``_id`` values, in order.

        All or nothing, unlike PyMongo's ``insert_many``, which keeps what it inserted before
        the first error: the documents, and their outbox records when the mode queues them,
        are committed together or not at all. Documents without ``_id`` get new Meteor ids.
        Pushes are batched as for :meth:`insert`. The documents, their outbox records and their
        change events are built in memory before the transaction: import a very large set in
        chunks (say 10,000 documents), each chunk all or nothing.

        Raises:
            DuplicateKeyError: An ``_id`` exists, or appears twice in ``docs``; nothing changed.
            EJSONError: A document holds values EJSON cannot carry; nothing changed.
            TypeError: A document is not a mapping; nothing changed.
        """
        self._check_open()
        cs = self._cs
        queue = cs.policy.route("insert", live=cs.live) == "queue"
        writes: list[LocalWrite] = []
        seen: set[str] = set()
        for given in docs:
            write = insert_write(given, queue=queue)
            if write.wid in seen:
                raise DuplicateKeyError(f"_id {write.wid!r} appears twice in the documents")
            seen.add(write.wid)
            writes.append(write)
        if not writes:
            return []
        outcomes = await self._remote._engine.applier.submit(
            lambda: write_local_group(cs, writes, atomic=True)
        )
        self._remote._engine.after_index_change(cs)
        for ok, error in outcomes:
            if not ok:  # the transaction failed: nothing was written
                raise error
        return [w.doc["_id"] for w in writes if w.doc is not None]

    async def update(
        self, selector: Any, modifier: Mapping[str, Any], *, multi: bool = False
    ) -> int:
        """Update matching documents (the first one unless ``multi``); return how many.

        Up to :data:`WRITE_CHUNK` documents change in one transaction, all or none (a modifier
        that fails on one changes none). More run in transactions of that many, as MongoDB's
        ``update_many`` is not atomic either: a failure stops at its chunk, and the chunks
        before it stay applied.

        ``online-write`` sends the update to the server first (by ``_id``, as Meteor requires of
        untrusted callers) and changes the cache only once the server accepted it.

        Raises:
            OfflineError: ``online-write`` while the link is not live; nothing changed.
            MeteorError: The server refused it; nothing changed locally.
            ModifierError: The modifier is invalid; nothing changed.
            WriteOutcomeUnknown: ``online-write``: no answer within ``push_timeout``, or the
                link dropped first; the cache follows whatever the server did.
        """
        return await self._write("update", _selector(selector), dict(modifier), multi)

    async def remove(self, selector: Any, *, multi: bool = True) -> int:
        """Remove matching documents (all of them unless ``multi=False``); return how many.

        In transactions of :data:`WRITE_CHUNK` documents, as :meth:`update`.

        Raises:
            OfflineError: ``online-write`` while the link is not live; nothing changed.
            MeteorError: The server refused it; nothing changed locally.
            WriteOutcomeUnknown: As for :meth:`update`.
        """
        return await self._write("remove", _selector(selector), None, multi)

    async def _write(
        self, op: str, selector: dict[str, Any], modifier: dict[str, Any] | None, multi: bool
    ) -> int:
        self._check_open()
        if modifier is not None:
            check_modifier(modifier)
        cs = self._cs
        applier = self._remote._engine.applier
        offline: OfflineError | None = None
        try:
            route = cs.policy.route(op, live=cs.live)  # type: ignore[arg-type]
        except OfflineError as exc:
            route, offline = "direct", exc
        if route == "direct":
            docs = await cs.store.find(
                cs.local, selector, limit=0 if multi else 1, projection={"_id": 1}
            )
            ids = [d["_id"] for d in docs]
            if not ids:
                if offline is not None:  # the cache may lack what the server has: cannot tell
                    raise offline
                return 0
            if all(self._unsent_insert(id_stringify(i)) for i in ids):
                route = "queue"  # edits of never-sent inserts fold into them, even offline
                selector = {"_id": {"$in": ids}}
            elif offline is not None:
                raise offline
            else:
                return await write_direct(self._remote, cs, op, ids, modifier)
        wid = single_id(selector)
        if wid is not None:  # by _id (the usual case): group-committed with concurrent writes
            affected = await self._local(
                LocalWrite(op, wid, modifier=modifier, queue=route == "queue")
            )
        else:
            affected = []
            async for chunk in self._chunks(selector, multi):
                affected += await applier.submit(
                    lambda chunk=chunk: write_local(  # type: ignore[misc]
                        cs,
                        op,
                        selector=chunk,
                        modifier=modifier,
                        multi=multi,
                        queue=route == "queue",
                    )
                )
        self._remote._engine.after_index_change(cs)
        return len(affected)

    async def _chunks(self, selector: dict[str, Any], multi: bool) -> AsyncIterator[Any]:
        # Past WRITE_CHUNK matches, their ids (only) are collected and each chunk matches its
        # documents again: the documents of a whole collection are never in memory at once.
        if not multi:
            yield selector
            return
        store, name = self._cs.store, self._cs.local
        ids = [d["_id"] async for d in store.iter_find(name, selector, projection={"_id": 1})]
        if len(ids) <= WRITE_CHUNK:
            yield selector
            return
        for start in range(0, len(ids), WRITE_CHUNK):
            part = {"_id": {"$in": ids[start : start + WRITE_CHUNK]}}
            yield {"$and": [selector, part]} if selector else part

    async def _local(self, write: LocalWrite) -> list[Any]:
        """Run one single-document local write, committed with those queued next to it."""
        cs = self._cs
        applier = self._remote._engine.applier
        if applier.in_job():  # a sync hook writing: run it now (see Applier.submit)
            ((ok, value),) = await write_local_group(cs, [write])
            if not ok:
                raise value
            return list(value)
        result: list[Any] = await applier.submit_grouped(
            ("local", id(cs)), write.wid, write, lambda writes: write_local_group(cs, writes)
        )
        return result

    def _unsent_insert(self, wid: str) -> bool:
        recs = self._cs.pending.get(wid)
        return bool(recs) and all(r.op == "insert" and r.state == "pending" for r in recs or ())

    # ------------------------------------------------------------------ events and outbox

    def changes(self, *, max_queue: int = 1024) -> ChangeStream:
        """Return a new stream of :class:`~aioserversync.ChangeEvent` for this collection.

        Each call opens an independent stream with its own bounded queue; on overflow the
        backlog is replaced by one ``resync`` event. Iteration ends when the remote closes.
        """
        return self._cs.hub.subscribe(max_queue)

    async def resync(self, timeout: float | None = None) -> None:
        """Resync this collection in full from the remote; see :meth:`ServerSync.resync`.

        Raises:
            SyncTimeout: Not done within ``timeout`` seconds (the resync still happens later).
            InvalidState: The collection is closed.
        """
        self._check_open()
        await self._remote.resync(self.name, timeout=timeout)

    async def pending(self, limit: int = 1000) -> list[OutboxRecord]:
        """Return queued local writes not yet confirmed (pending, in flight, unknown)."""
        cs = self._cs
        return await cs.store.outbox_peek(
            collection=cs.local,
            origin=cs.origin,
            states=("pending", "in_flight", "unknown"),
            limit=limit,
        )

    async def failed(self, limit: int = 1000) -> list[OutboxRecord]:
        """Return local writes the server rejected for good (kept for inspection)."""
        cs = self._cs
        return await cs.store.outbox_peek(
            collection=cs.local, origin=cs.origin, states=("failed",), limit=limit
        )

    async def discard_failed(self, seqs: Iterable[int] | None = None) -> int:
        """Delete failed (dead-lettered) writes after inspection; return how many.

        Args:
            seqs: The records' ``seq`` (see :meth:`failed`); default: every failed write of this
                collection.

        Raises:
            ConfigurationError: A ``seq`` that is not a failed write of this collection (nothing
                is deleted: a queued write is never dropped this way).
        """
        self._check_open()
        records = await failed_records(self._cs, seqs)
        await forget_records(self._cs, records)
        return len(records)

    async def retry_failed(self, seqs: Iterable[int] | None = None) -> int:
        """Issue failed writes again through this collection, then delete their dead letters.

        For a write the server refused for a reason since fixed (a permission, a validation
        rule). Each record's target is written again as a new local write, oldest first: an
        insert inserts the wanted document, an update sets the document's top-level fields to
        the wanted state (``$set`` and ``$unset``), a remove removes it; so the write is queued
        or sent as the mode does for any write. An update or remove of a document that no
        longer exists locally changes nothing. A record whose write raises stays failed, and
        the error is raised; the records before it are already retried.

        Args:
            seqs: The records' ``seq`` (see :meth:`failed`); default: every failed write of this
                collection.

        Returns:
            The number of writes issued again.

        Raises:
            ConfigurationError: A ``seq`` that is not a failed write of this collection.
            DuplicateKeyError: An insert whose ``_id`` exists locally by now.
            OfflineError: ``online-write`` update or remove while the link is not live.
            MeteorError: The server refused an ``online-write`` update or remove again.
        """
        self._check_open()
        return await retry_records(self, await failed_records(self._cs, seqs))

    # ------------------------------------------------------------------ lifecycle

    def _check_open(self) -> None:
        if self._cs.closed or self._remote.closed:
            raise InvalidState(f"synced collection {self.name!r} is closed")

    async def close(self) -> None:
        """Stop syncing this collection (the cache and the outbox stay).

        Its subscription (or hub change feed) is stopped at once, without waiting for the
        server, also while offline; the remote's other collections go on. A later
        ``remote.sync()`` of the same collection starts from the cache, resyncs, and pushes
        the writes still queued. A collection from :func:`aioserversync.sync` also closes its
        remote.
        """
        if self._owns_remote:
            await self._remote.close()
        else:
            await self._remote._unsync(self._cs)

    async def __aenter__(self) -> SyncedCollection:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<SyncedCollection {self.name!r} mode={self.mode!r} origin={self._cs.origin!r}>"


_ = SubscriptionError  # re-exported errors of wait_ready are documented above

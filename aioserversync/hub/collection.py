"""One collection served by a hub: its revision counter, its single writer, and its fan-out.

Every write to a collection (the local API, the stock mutator methods, ``serversync/push``) runs
through :meth:`HubCollection.write`: under the collection's lock it reads the current state,
decides, fills a :class:`Commit`, and the commit goes to the store as **one** ``apply`` batch
holding the documents with their new revisions, tombstones, mutation records and the counter
itself (``MetaSet``). Only after the batch committed does the in-memory counter move and the
changes get published, still under the lock, so subscribers see changes in revision order.

A write runs in its own task, shielded from its caller: a session that goes away mid-write
(cancelling its method) cannot leave a batch applied but unpublished, or the lock released while
the store is still writing.

Publishing encodes each change once:

* for ``serversync/changes`` subscribers, one ``added`` frame per change in the pseudo-collection
  ``serversync.changes/<name>`` (docs/protocol.md §4), the same bytes for every session;
* for the plain publication (stock clients), one ``added``/``changed``/``removed`` frame per
  change, passed through each session's merge box and reused when the merge box lets it through
  unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from ..asyncio.publication import Publication
from ..exceptions import LocalProtocolError
from ..protocol.mergebox import Strategy
from ..protocol.server import added_frame, changed_frame, removed_frame
from ..replication.diff import top_level_diff
from ..stores.base import DeleteDoc, MetaSet, Op, PatchDoc, PurgeTombstones, PutDoc, Tombstone
from ..typing import WireFields
from .auth import Permissions
from .pull_cache import PullCache
from .retention import Marks, kept_marks, wants_mark

if TYPE_CHECKING:
    from .server import ServerSyncServer

__all__ = [
    "FEED_COLLECTION_PREFIX",
    "FEED_PUBLICATION",
    "MUTATIONS_PREFIX",
    "Change",
    "Commit",
    "HubCollection",
    "now_ms",
]

FEED_PUBLICATION = "serversync/changes"
"""The name of the change feed publication (docs/protocol.md §4)."""
FEED_COLLECTION_PREFIX = "serversync.changes/"
"""Feed entries are ``added`` messages in ``serversync.changes/<collection>``."""
MUTATIONS_PREFIX = "_serversync_mutations_"
"""Mutation records of collection ``c`` are documents of the local collection
``_serversync_mutations_c`` in the hub's store, keyed by mutation id."""
META_PREFIX = "serversync/"

T = TypeVar("T")
_PAGE = 1000


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


class Change:
    """One committed change of a document.

    Attributes:
        op: ``"insert"``, ``"update"`` or ``"remove"``.
        id: Wire id.
        rev: The revision it got.
        fields: The fields after the change (wire form), ``None`` for a remove.
        prev: The fields before an update (wire form), for the plain publication's diff.
        mid: The mutation id of the push that made it, if any.
    """

    __slots__ = ("fields", "id", "mid", "op", "prev", "rev")

    def __init__(
        self,
        op: str,
        id: str,
        rev: int,
        fields: WireFields | None,
        prev: WireFields | None = None,
        mid: str | None = None,
    ) -> None:
        self.op = op
        self.id = id
        self.rev = rev
        self.fields = fields
        self.prev = prev
        self.mid = mid

    def __repr__(self) -> str:
        return f"Change({self.op!r}, {self.id!r}, rev={self.rev})"


class Commit:
    """The store operations and changes of one write transaction of a collection.

    Filled by a write function under the collection's lock; applied as one batch: the
    documents' operations in order, then the mutation records (kept apart so each kind forms one
    run of operations for the store), then the counter.
    """

    __slots__ = ("changes", "coll", "ops", "records", "rev")

    def __init__(self, coll: HubCollection) -> None:
        self.coll = coll
        self.rev = coll.rev
        self.ops: list[Op] = []
        self.records: list[Op] = []
        self.changes: list[Change] = []

    def put(
        self,
        wid: str,
        fields: WireFields,
        *,
        prev: WireFields | None = None,
        mid: str | None = None,
    ) -> int:
        """Write a whole document at the next revision (an insert when ``prev`` is ``None``)."""
        self.rev += 1
        rev = self.rev
        self.ops.append(PutDoc(self.coll.name, wid, fields, None, rev))
        self.changes.append(
            Change("insert" if prev is None else "update", wid, rev, fields, prev, mid)
        )
        return rev

    def remove(self, wid: str, *, mid: str | None = None) -> int:
        """Remove a document, leaving a tombstone at the next revision."""
        self.rev += 1
        rev = self.rev
        self.ops.append(Tombstone(self.coll.name, wid, rev))
        self.changes.append(Change("remove", wid, rev, None, None, mid))
        return rev

    def record(self, mid: str, record: WireFields) -> None:
        """Store a mutation record (its revision orders it for purging)."""
        self.records.append(PutDoc(self.coll.side, mid, record, None, max(self.rev, 1)))


class HubCollection:
    """A collection exposed by a :class:`~aioserversync.hub.server.ServerSyncServer`.

    Attributes:
        name: The collection (and plain publication) name.
        permissions: Its read and write rules.
        strategy: The merge box strategy of the plain publication.
        rev: The last committed revision.
        purged: The highest purged tombstone revision.
    """

    def __init__(
        self, hub: ServerSyncServer, name: str, permissions: Permissions, strategy: Strategy
    ) -> None:
        self.hub = hub
        self.name = name
        self.permissions = permissions
        self.strategy: Strategy = strategy
        self.side = MUTATIONS_PREFIX + name
        self.feed_collection = FEED_COLLECTION_PREFIX + name
        self.rev = 0
        self.purged = 0
        self.marks: Marks = []
        self._committing = 0
        self._purging = 0
        self.pull_cache = PullCache()
        self.lock = asyncio.Lock()
        self.plain_pubs: set[Publication] = set()
        self.feed_pubs: set[Publication] = set()
        self._rev_key = f"{META_PREFIX}rev/{name}"
        self._purged_key = f"{META_PREFIX}purged/{name}"
        self._marks_key = f"{META_PREFIX}marks/{name}"
        self._stamped_key = f"{META_PREFIX}stamped/{name}"
        self.log = hub.logger

    def __repr__(self) -> str:
        return f"<HubCollection {self.name!r} rev={self.rev} purged={self.purged}>"

    # ------------------------------------------------------------------ startup

    async def load(self) -> None:
        """Load the counter (``max(stored counter, store.max_rev)``), stamp unrevised documents."""
        store = self.hub.store
        stored = await store.get_meta(self._rev_key)
        self.rev = max(stored if isinstance(stored, int) else 0, await store.max_rev(self.name))
        purged = await store.get_meta(self._purged_key)
        self.purged = purged if isinstance(purged, int) else 0
        marks = await store.get_meta(self._marks_key)
        self.marks = [list(m) for m in marks] if isinstance(marks, list) else []
        self._committing = self.rev
        self._purging = self.purged
        if not await store.get_meta(self._stamped_key):
            await self._stamp()

    async def _stamp(self) -> None:
        # Documents written before the hub served the collection have no revision: give each
        # one, so pull and the change feed see them. Done once per collection.
        store = self.hub.store
        page: list[str] = []
        stamped = 0

        async def flush() -> int:
            metas = await store.get_meta_many(self.name, page)
            ops: list[Op] = []
            rev = self.rev
            for wid in page:
                meta = metas.get(wid)
                if meta is not None and meta.rev is None:
                    rev += 1
                    ops.append(PatchDoc(self.name, wid, None, None, None, rev))
            if ops:
                ops.append(MetaSet(self._rev_key, rev))
                await store.apply(ops)
                self.rev = self._committing = rev
            page.clear()
            return len(ops) - 1 if ops else 0

        async for wid in store.iter_ids(self.name, batch_size=_PAGE):
            page.append(wid)
            if len(page) >= _PAGE:
                stamped += await flush()
        if page:
            stamped += await flush()
        await store.apply([MetaSet(self._stamped_key, 1)])
        if stamped:
            self.log.info("gave revisions to %d existing documents of %r", stamped, self.name)

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_expired(self, since: int, full: int | None = None) -> bool:
        """Whether a client checkpoint can no longer be caught up from (410).

        True when ``0 < since < purged`` (removals may be lost) or when ``since`` is beyond the
        newest revision (the hub's data is older than the client's: restored from a backup).

        ``full`` is given by the later pages of a full pull (one that started from 0): the
        ``purged`` mark its first page reported. The client holds nothing older than that pull,
        so only tombstones newer than that mark matter to it (a removal during the pull is one):
        it is expired only if a purge went past both ``full`` and ``since`` since then.
        """
        if since <= 0:
            return False
        purged = max(self.purged, self._purging)
        if since > max(self.rev, self._committing):
            return True
        return purged > (since if full is None else max(full, since))

    # ------------------------------------------------------------------ writing

    async def write(self, fn: Callable[[Commit], Awaitable[T]]) -> T:
        """Run ``fn(commit)`` under the lock, then apply and publish what it recorded.

        ``fn`` reads the current state, decides and fills the commit; if it raises, nothing is
        applied. Runs in a task shielded from the caller's cancellation.

        Raises:
            Exception: Whatever ``fn`` or the store raised.
        """
        return await self.hub.run_shielded(self._write(fn))

    async def _write(self, fn: Callable[[Commit], Awaitable[T]]) -> T:
        async with self.lock:
            commit = Commit(self)
            result = await fn(commit)
            if commit.ops or commit.records:
                await self._apply(commit)
            return result

    async def _apply(self, commit: Commit) -> None:
        ops = commit.ops + commit.records
        marks = self.marks
        if commit.rev != self.rev:
            ops.append(MetaSet(self._rev_key, commit.rev))
            now = now_ms()
            if wants_mark(marks, now, self.hub.retentions):
                marks = [*marks, [now, commit.rev]]
                ops.append(MetaSet(self._marks_key, marks))
        self._committing = commit.rev
        try:
            await self.hub.store.apply(ops)
        except BaseException:
            self._committing = self.rev
            raise
        self.rev = commit.rev
        self.marks = marks
        if commit.changes:
            self.publish(commit.changes)

    # ------------------------------------------------------------------ publishing

    def feed_frame(self, change: Change) -> bytes:
        """The ``serversync/changes`` entry of a change (docs/protocol.md §4)."""
        fields: dict[str, Any] = {"i": change.id, "r": change.rev, "d": change.fields}
        if change.mid is not None:
            fields["m"] = change.mid
        return orjson.dumps(
            {
                "msg": "added",
                "collection": self.feed_collection,
                "id": str(change.rev),
                "fields": fields,
            }
        )

    def publish(self, changes: list[Change]) -> None:
        """Send committed changes to the feed and plain subscribers (each encoded once)."""
        if self.feed_pubs:
            frames = [self.feed_frame(ch) for ch in changes]
            limit = self.hub.max_backlog
            for pub in list(self.feed_pubs):
                if not pub.active:
                    continue
                pub.send_wire(frames)
                session = pub.connection
                backlog = session.protocol.pending_frames
                if limit and backlog > limit:
                    # Stop feeding it and close it once what is queued is flushed (or
                    # ``close_timeout`` runs out); it reconnects and catches up by pulling.
                    self.feed_pubs.discard(pub)
                    self.log.warning(
                        "session %s is %d frames behind on %r; closing it",
                        session.id,
                        backlog,
                        self.name,
                    )
                    session.close(1013, "too far behind; reconnect and catch up")
        if self.plain_pubs:
            pubs = [p for p in self.plain_pubs if p.active]
            for ch in changes:
                self._publish_plain(pubs, ch)

    def _publish_plain(self, pubs: list[Publication], ch: Change) -> None:
        name = self.name
        if ch.op == "remove":
            frame = removed_frame(name, ch.id)
            for pub in pubs:
                # (merge strategy: a subscription that never had it refuses the removal)
                with contextlib.suppress(LocalProtocolError):
                    pub.removed_wire(name, ch.id, frame=frame)
            return
        fields = ch.fields
        assert fields is not None
        if ch.prev is None:
            frame = added_frame(name, ch.id, fields, wire=True)
            for pub in pubs:
                pub.added_wire(name, ch.id, fields, frame=frame)
            return
        changed, cleared = top_level_diff(ch.prev, fields)
        cframe = changed_frame(name, ch.id, changed, cleared, wire=True)
        if cframe is None:
            return
        for pub in pubs:
            try:
                pub.changed_wire(name, ch.id, changed, cleared, frame=cframe)
            except LocalProtocolError:
                pub.added_wire(name, ch.id, fields)

    # ------------------------------------------------------------------ subscribers

    def add_plain(self, pub: Publication) -> None:
        """Deliver live changes to a plain-publication subscription until it stops."""
        self.plain_pubs.add(pub)
        pub.on_stop(lambda: self.plain_pubs.discard(pub))

    def add_feed(self, pub: Publication) -> None:
        """Deliver live feed entries to a ``serversync/changes`` subscription until it stops."""
        self.feed_pubs.add(pub)
        pub.on_stop(lambda: self.feed_pubs.discard(pub))

    # ------------------------------------------------------------------ retention

    async def purge(self, now: int | None = None) -> tuple[int, int]:
        """Drop tombstones and mutation records older than the retentions.

        Returns:
            ``(purged, records)``: the collection's ``purged`` revision afterwards and how many
            mutation records were deleted.
        """
        return await self.hub.run_shielded(self._purge(now_ms() if now is None else now))

    async def _purge(self, now: int) -> tuple[int, int]:
        hub = self.hub
        store = hub.store
        rules = hub.retentions
        async with self.lock:
            upto = hub.tombstone_retention.upto(self.rev, self.marks, now)
            kept = kept_marks(self.marks, now, rules)
            purge = False
            if upto > self.purged:
                low = await store.min_tombstone_rev(self.name)
                purge = low is not None and low <= upto
            ops: list[Op] = []
            if purge:
                ops += [PurgeTombstones(self.name, upto), MetaSet(self._purged_key, upto)]
            if kept != self.marks:
                ops.append(MetaSet(self._marks_key, kept))
            if ops:
                if purge:
                    self._purging = upto
                try:
                    await store.apply(ops)
                except BaseException:
                    self._purging = self.purged
                    raise
                if purge:
                    self.purged = upto
                    self.log.info("%r: tombstones purged up to revision %d", self.name, upto)
            mupto = upto
            if hub.mutation_retention is not None:
                mupto = min(upto, hub.mutation_retention.upto(self.rev, self.marks, now))
            self.marks = kept
        deleted = 0
        while mupto > 0:
            async with self.lock:
                entries = await store.changes_since(self.side, 0, _PAGE)
                dead = [e.id for e in entries if e.rev <= mupto]
                if dead:
                    await store.apply([DeleteDoc(self.side, i) for i in dead])
            deleted += len(dead)
            if len(dead) < _PAGE:
                break
        return self.purged, deleted

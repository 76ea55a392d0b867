"""Per-collection sync state shared by the ingest sink, the applier and the outbox drainer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..ejson import decode
from ..exceptions import MeteorError
from ..ids import id_parse
from ..policies.base import SyncPolicy
from ..query import Matcher
from ..stores.base import OutboxRecord, OutboxUpdate, Store
from .streams import ChangeHub

__all__ = ["CollectionState", "Hook", "SyncStats", "load_outbox", "now_ms"]

Hook = Callable[[str, Any, Any], Awaitable[None] | None]
"""``hook(op, _id, document_or_fields)``, as in the original package's ``beforeSyncUp`` etc."""

ACTIVE_STATES: tuple[str, ...] = ("pending", "in_flight", "unknown")


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return int(time.time() * 1000)


@dataclass(slots=True)
class SyncStats:
    """Counters and state of one synced collection (``items.stats``).

    Attributes:
        mode: The policy's mode name.
        connection: The remote's connection state.
        live: Whether the link is up and this collection's resync round is applied.
        stale: Whether the data has not been confirmed by the remote since start.
        pending: Local writes not yet confirmed (pending, in flight or unknown).
        failed: Local writes permanently rejected (dead letters, kept in the outbox).
        last_sync: When the remote state was last fully applied (ms since the epoch), or None.
        resyncs: Resync rounds applied since start.
        conflicts: Local changes that lost against the remote since start.
        rejected: Local writes rejected by the server since start.
        pushed: Local writes confirmed by the server since start.
        received: Remote document messages received since start.
    """

    mode: str
    connection: str = "disconnected"
    live: bool = False
    stale: bool = True
    pending: int = 0
    failed: int = 0
    last_sync: int | None = None
    resyncs: int = 0
    conflicts: int = 0
    rejected: int = 0
    pushed: int = 0
    received: int = 0


@dataclass(eq=False)
class CollectionState:
    """Everything the engine knows about one synced collection.

    Attributes:
        remote: The remote collection name (as in DDP messages).
        local: The local collection name in the store.
        publication: The publication to subscribe to.
        args: Its arguments.
        store: Where the collection lives.
        policy: The sync policy.
        origin: The remote's origin key, stored with each document.
        matcher: The local ``query=`` filter, if any.
        pending: Active outbox records by wire id, in ``seq`` order (kept in memory; bounded by the
            outbox, never by the collection).
    """

    remote: str
    local: str
    publication: str
    args: list[Any]
    store: Store
    policy: SyncPolicy
    origin: str
    matcher: Matcher | None = None
    before_sync_up: Hook | None = None
    after_sync_up: Hook | None = None
    before_sync_down: Hook | None = None
    after_sync_down: Hook | None = None
    pending: dict[str, list[OutboxRecord]] = field(default_factory=dict)
    by_seq: dict[int, OutboxRecord] = field(default_factory=dict)
    echoed: dict[str, int] = field(default_factory=dict)
    """Hub path: mutation ids of pushes in flight whose echo arrived on the feed (applied), with
    the revision they got; forgotten with their record."""
    sub_id: str | None = None
    sub_error: MeteorError | None = None
    hub: ChangeHub = field(init=False)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    _bumped: asyncio.Event = field(default_factory=asyncio.Event)
    stats: SyncStats = field(init=False)
    live: bool = False
    closed: bool = False
    source: str = "undecided"
    """``"stock"`` (publication + mutator methods), ``"hub"`` (serversync/* protocol) or
    ``"undecided"`` (the remote was not reachable yet to tell)."""
    checkpoint: int | None = None
    """Hub path: the highest revision applied (the store holds the durable copy)."""
    feed_sub_id: str | None = None
    resync_asked: int = 0
    """Full resyncs asked for with ``resync()`` since start (a counter)."""
    resync_done: int = 0
    """The last of those a completed round covered (caught up when equal to ``resync_asked``)."""
    unjudged: set[str] = field(default_factory=set)
    """``query=`` filter: documents whose last pending write was settled or discarded, to be
    judged against the filter again (:func:`~.scope.judge_scope`)."""
    on_unjudged: Callable[[CollectionState], None] | None = None
    """Called when :attr:`unjudged` gains a document (schedules the judging)."""
    scope_mark: str | None = None
    """A ``query=`` mirror in a mode that pushes: the filter's mark, stored once every settled
    document was judged against it (:mod:`.scope`)."""
    scope_clean: bool = False
    """Whether the store holds :attr:`scope_mark` (as far as this process knows)."""

    def __post_init__(self) -> None:
        self.hub = ChangeHub(self.local)
        self.stats = SyncStats(mode=self.policy.name)

    @property
    def has_hooks_down(self) -> bool:
        """Whether sync-down hooks are set (they need every change individually)."""
        return self.before_sync_down is not None or self.after_sync_down is not None

    def wants(self, wire_id: str, fields: dict[str, Any]) -> bool:
        """Whether a whole remote document (wire-form fields) passes the ``query=`` filter.

        Always true without a filter.
        """
        if self.matcher is None:
            return True
        return self.matcher.matches({"_id": id_parse(wire_id), **decode(fields)})

    def stored_checkpoint(self, rev: int) -> int:
        """Hub path: the checkpoint to store for ``rev``, below any unsettled push's echo.

        The echo of a push still waiting for its result is skipped: its record settles when the
        result comes, or by the echo if the result is lost with the link. A process killed
        before either pulls the echo again on restart, and the record, now of unknown outcome,
        is settled by it instead of being sent again (a hub that has purged the push's mutation
        id would judge it afresh).
        """
        if self.echoed:
            return min(rev, min(self.echoed.values()) - 1)
        return rev

    def bump(self) -> None:
        """Wake everyone waiting in :meth:`wait_change` (the pending index changed)."""
        event, self._bumped = self._bumped, asyncio.Event()
        event.set()

    async def wait_change(self) -> None:
        """Wait for the next :meth:`bump`."""
        await self._bumped.wait()

    def pending_count(self) -> int:
        """Number of active outbox records."""
        return len(self.by_seq)

    def add_record(self, record: OutboxRecord) -> None:
        """Index an active record."""
        self.pending.setdefault(record.doc_id, []).append(record)
        self.by_seq[record.seq] = record

    def drop_record(self, doc_id: str, seq: int) -> OutboxRecord | None:
        """Forget an active record; return it if it was indexed."""
        rec = self.by_seq.pop(seq, None)
        recs = self.pending.get(doc_id)
        if rec is None or not recs:
            return None
        if self.echoed:
            self.echoed.pop(rec.mutation_id, None)
        recs.remove(rec)
        if not recs:
            del self.pending[doc_id]
            if self.matcher is not None:
                # A pending document stays whatever the filter says (its writes need it); now
                # that none is left, it is judged again.
                self.unjudged.add(doc_id)
                if self.on_unjudged is not None:
                    self.on_unjudged(self)
        return rec

    def find_record(self, seq: int) -> OutboxRecord | None:
        """Return an indexed record by ``seq``."""
        return self.by_seq.get(seq)


async def load_outbox(cs: CollectionState) -> None:
    """Index the collection's active outbox records (at sync start); in-flight ones become unknown.

    Sent by an earlier run whose outcome was never seen, they are decided by the next round.
    """
    store = cs.store
    after = 0
    fix: list[OutboxUpdate] = []
    while True:
        page = await store.outbox_peek(
            collection=cs.local,
            origin=cs.origin,
            states=("pending", "in_flight", "unknown"),
            after_seq=after,
            limit=1000,
        )
        for rec in page:
            if rec.state == "in_flight":
                # Sent by an earlier run whose outcome was never seen.
                rec.state = "unknown"
                fix.append(OutboxUpdate(rec.seq, state="unknown", updated_at=now_ms()))
            cs.add_record(rec)
        if len(page) < 1000:
            break
        after = page[-1].seq
    if fix:
        await store.apply(fix)
    cs.stats.pending = cs.pending_count()
    cs.stats.failed = await store.outbox_count(
        collection=cs.local, origin=cs.origin, states=("failed",)
    )
    last = await store.get_meta(f"last_sync:{cs.origin}:{cs.local}")
    cs.stats.last_sync = last if isinstance(last, int) else None

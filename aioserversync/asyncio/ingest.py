"""The ingest sink: turns DDP data events into store operations, batched, in wire order.

:meth:`Ingest.on_data` is the :class:`~.client.DDPClient` ``on_data`` callback. It runs in the
client's reader task for every received frame, so it does only cheap work: look up the
collection, build one operation (wire-form fields are stored as received, without a decode and
re-encode), and append it to the current batch. Each delivery hands its batch to the applier;
until the applier starts that job (once the reader waits for the network), later deliveries
join it, so a burst of frames becomes one store transaction. Returning an awaitable makes the
reader wait for room in the applier: a slow store slows reading instead of growing memory.

It also tracks resync rounds: on ``connected`` every synced collection enters a round; data of
collections in a round is staged; when every sub of the round is ready (or failed) the round is
committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import orjson

from ..protocol.events import Added, AddedBefore, Changed, Connected, NoSub, Ready, Removed
from ..stores.base import DeleteDoc, Op, StageDelete, StageDocs, StagePatch
from ..stores.fast_ops import patch_doc, put_doc, stage_put
from .client_state import Disconnected
from .engine import Engine, HubEntry, Round
from .resync import resync_after_failure
from .state import CollectionState

__all__ = ["Ingest"]


logger = logging.getLogger("aioserversync.engine")


def _stage_docs(scope: str, cs: CollectionState, run: dict[str, Any]) -> list[Op]:
    """The staging operations of a run of ``added`` (wire id -> fields) of one collection.

    A run becomes one :class:`StageDocs`, its documents written out by one ``orjson.dumps``: the
    parsed dicts are freed at once, and no object per document lives on until the store runs
    the batch. Such objects, a few thousand alive at a time while the store is busy, were most
    of what the cyclic garbage collector promoted to its older generations (and then walked)
    during an initial sync. Fields that are not plain JSON make it one ``StagePut`` each, which
    the store refuses with its usual error.
    """
    try:
        return [StageDocs(scope, cs.local, orjson.dumps(run, option=_DUMP_OPTS).decode())]
    except TypeError:  # orjson.JSONEncodeError
        return [stage_put(scope, cs.local, i, f) for i, f in run.items()]


def _join_stage_docs(ops: list[Any]) -> list[Any]:
    """``ops`` with each row of consecutive StageDocs of one collection joined into one.

    SQLiteStore runs one statement per StageDocs, and its thread takes the GIL back after each:
    while the reader parses frames, that wait is up to a switch interval (5 ms), so a job of
    hundreds of runs spent most of its time waiting (0.25 s for 6,000 documents). The texts are
    ``orjson.dumps`` of non-empty dicts (:func:`_stage_docs`), so the bodies join into one object.
    At most :data:`_JOIN_MAX` runs are joined: a store that parses the text (MemoryStore) holds
    every parsed document of it at once.
    """
    out: list[Any] = []
    texts: list[str] = []
    for op in ops:
        if type(op) is StageDocs:
            last = out[-1] if out else None
            if (
                type(last) is StageDocs
                and len(texts) < _JOIN_MAX
                and (last.scope, last.collection, last.revs) == (op.scope, op.collection, op.revs)
            ):
                if not texts:
                    texts.append(last.docs[1:-1])
                texts.append(op.docs[1:-1])
                continue
        if texts:
            last = out[-1]
            out[-1] = StageDocs(last.scope, last.collection, "{" + ",".join(texts) + "}", last.revs)
            texts = []
        out.append(op)
    if texts:
        last = out[-1]
        out[-1] = StageDocs(last.scope, last.collection, "{" + ",".join(texts) + "}", last.revs)
    return out


_JOIN_MAX = 64
"""Runs of staged documents joined into one StageDocs at most (up to 4,096 documents)."""
_RUN_WEIGHT = 64
"""What a StageDocs (a run of up to 64 documents) counts for in a job's size."""
_DUMP_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS

_MIXED: Any = object()
"""The ``one`` of a batch whose operations are not all plain writes of one collection."""


class _RemoteJob:
    """A batch of remote operations queued in the applier; it grows until it starts.

    ``one`` is the collection when every operation is a plain ``PutDoc``/``PatchDoc``/
    ``DeleteDoc`` of that one collection (live data outside a round), else ``_MIXED``.
    """

    __slots__ = ("engine", "future", "one", "ops", "size", "started")

    def __init__(self, engine: Engine, ops: list[Op | HubEntry], one: Any, size: int) -> None:
        self.engine = engine
        self.ops = ops
        self.one = one
        self.size = size
        """Operations, a StageDocs counting as the documents it may hold (see Ingest.flush)."""
        self.started = False
        self.future: asyncio.Future[None] | None = None

    async def run(self) -> None:
        self.started = True
        if self.one is not _MIXED:
            cs: CollectionState = self.one
            if (
                not cs.pending
                and cs.matcher is None
                and not (cs.hub.listening or cs.has_hooks_down)
                and self.engine.collections.get(cs.local) is cs
            ):
                # What apply_remote would do with these operations, without looking at each: no
                # pending write to decide, no filter, nobody to tell; one store batch.
                await cs.store.apply(cast(list[Op], self.ops))
                return
        await self.engine.apply_remote(_join_stage_docs(self.ops))


class Ingest:
    """Batches one remote's data events into applier jobs and drives its resync rounds.

    Args:
        engine: The remote's engine.
        max_merge: Operations a queued job takes at most (a StageDocs counting as the 64
            documents it may hold); past it a new job starts.
    """

    def __init__(self, engine: Engine, *, max_merge: int = 20_000) -> None:
        self.engine = engine
        self.round: Round | None = None
        self._ops: list[Op | HubEntry] = []
        self._one: Any = None  # the one collection of every op in _ops, or _MIXED (see _RemoteJob)
        self._round_no = 0
        self._unknown: set[str] = set()
        self._queued: _RemoteJob | None = None
        self.max_merge = max_merge
        self.connected = False
        self.hub: Any = None
        """The remote's HubSession, which routes the hub's change feed and catch-up."""

    # ------------------------------------------------------------------ the sink

    def on_data(self, events: list[Any]) -> Awaitable[None] | None:
        """Handle one frame's data events (the DDPClient ``on_data`` callback)."""
        engine = self.engine
        by_remote = engine.by_remote
        ops = self._ops
        rnd = self.round
        one = self._one
        run: dict[str, Any] | None = None  # staged puts of run_cs, in a row (see _stage_docs)
        run_cs: Any = None
        for ev in events:
            t = type(ev)
            if t is Added or t is Changed or t is Removed or t is AddedBefore:
                cs = by_remote.get(ev.collection)
                if (
                    cs is not None
                    and rnd is not None
                    and (t is Added or t is AddedBefore)
                    and cs in rnd.collections
                    and (cs.matcher is None or ev.id in cs.pending or cs.wants(ev.id, ev.fields))
                ):
                    cs.stats.received += 1
                    one = _MIXED
                    if rnd.patches and cs.matcher is not None:
                        rnd.patches.get(cs, {}).pop(ev.id, None)  # whole again
                    if run_cs is not cs:
                        if run:
                            ops.extend(_stage_docs(engine.scope, run_cs, run))
                        run, run_cs = {}, cs
                    run[ev.id] = ev.fields  # type: ignore[index]
                    continue
                if run:
                    ops.extend(_stage_docs(engine.scope, run_cs, run))
                    run = run_cs = None
                if cs is None:
                    feed = self.hub.by_feed.get(ev.collection) if self.hub is not None else None
                    if feed is not None and t is Added and self.hub is not None:
                        entry = self.hub.feed_entry(feed, ev.id, ev.fields)
                        if entry is not None:
                            feed.stats.received += 1
                            ops.append(entry)
                            one = _MIXED
                    else:
                        self._unknown_collection(ev.collection)
                    continue
                cs.stats.received += 1
                if rnd is not None and cs in rnd.collections:  # staged
                    one = _MIXED
                    if t is Changed and cs.matcher is not None:
                        # Judged whole before the commit (Engine.judge_patched).
                        changes = rnd.patches.setdefault(cs, {}).setdefault(ev.id, [])
                        changes.append((ev.fields, ev.cleared))
                    elif t is Changed:
                        ops.append(StagePatch(engine.scope, cs.local, ev.id, ev.fields, ev.cleared))
                    else:
                        # Removed, or filtered out: not staged, so the commit sweeps any old copy.
                        if rnd.patches and cs.matcher is not None:
                            rnd.patches.get(cs, {}).pop(ev.id, None)
                        ops.append(StageDelete(engine.scope, cs.local, ev.id))
                    continue
                if one is not cs:
                    one = cs if one is None else _MIXED
                if t is Changed:
                    ops.append(patch_doc(cs.local, ev.id, ev.fields, ev.cleared, cs.origin))
                elif t is Removed:
                    ops.append(DeleteDoc(cs.local, ev.id))
                else:
                    ops.append(put_doc(cs.local, ev.id, ev.fields, cs.origin, None))
            elif t is Ready or t is NoSub or t is Connected or t is Disconnected:
                if run:
                    ops.extend(_stage_docs(engine.scope, run_cs, run))
                    run = run_cs = None
                # These may flush the batch and queue a round commit: what follows goes into a
                # new batch, behind it.
                self._one = one
                if t is Ready:
                    self._ready(ev.subs)
                elif t is NoSub:
                    self._nosub(ev)
                elif t is Connected:
                    self._connected()
                else:
                    self._disconnected()
                ops = self._ops
                one = self._one
                rnd = self.round
        if run:
            ops.extend(_stage_docs(engine.scope, run_cs, run))
        self._one = one
        if ops:
            # Queued now, the job still only starts once the reader waits for the network, and
            # what the reader delivers until then joins it (see flush). Flushing from a
            # ``call_soon`` callback instead cost every small batch one more turn of the event
            # loop: with 100 connections in one loop, it about halved a live change's delay.
            self.flush()
        if self.engine.applier.full:
            return self.engine.applier.wait_room()
        return None

    def flush(self) -> None:
        """Hand the current batch to the applier (never waits).

        While the previous batch still waits in the applier's queue, the new operations join it:
        fewer, larger store transactions when the store is the slower side.
        """
        if not self._ops:
            return
        ops, self._ops = self._ops, []
        one, self._one = self._one, None
        # A job's size bounds the documents it holds, not its operations: a StageDocs is a run.
        size = len(ops)
        if one is _MIXED:
            size += (_RUN_WEIGHT - 1) * sum(type(op) is StageDocs for op in ops)
        queued = self._queued
        if (
            queued is not None
            and not queued.started
            and queued.size < self.max_merge
            # Only while it is the last job: joining a batch queued ahead of a round commit (or a
            # local write) would apply these operations before it, out of order.
            and self.engine.applier.is_last(queued.future)
        ):
            queued.ops.extend(ops)
            queued.size += size
            if queued.one is not one:
                queued.one = _MIXED
            return
        job = _RemoteJob(self.engine, ops, _MIXED if one is None else one, size)
        self._queued = job
        job.future = self._detached(job.run)

    def _detached(self, job: Callable[[], Awaitable[Any]]) -> asyncio.Future[Any]:
        """Queue a job of remote data nobody awaits; if it fails, the remote resyncs in full."""
        engine = self.engine

        async def guarded() -> None:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await resync_after_failure(engine, exc)

        return engine.applier.submit_nowait(guarded, detached=True)

    def _unknown_collection(self, name: str) -> None:
        if name not in self._unknown:
            self._unknown.add(name)
            self.engine.log.info("ignoring data for collection %r: it is not synced", name)

    # ------------------------------------------------------------------ rounds

    def _connected(self) -> None:
        self.connected = True
        self.engine.repairing = False  # this session's rounds are the resync it waited for
        self.flush()
        collections = {
            cs for cs in self.engine.collections.values() if not cs.closed and cs.source == "stock"
        }
        for cs in self.engine.collections.values():
            cs.live = False
            cs.stats.live = False
        waiting = {cs.sub_id for cs in collections if cs.sub_id is not None}
        self._begin(collections, waiting)
        if self.hub is not None:
            self.hub.on_connected()

    def _disconnected(self) -> None:
        self.connected = False
        self.flush()
        if self.round is not None:
            self.engine.log.info(
                "link lost during resync round %d; it will restart", self.round.number
            )
        self.round = None
        for cs in self.engine.collections.values():
            cs.live = False
            cs.stats.live = False
        if self.hub is not None:
            self.hub.on_disconnected()

    def begin_collection(self, cs: CollectionState) -> None:
        """Put a newly synced collection in a round (joining the current one if any).

        Call before its subscription is sent, so none of its data is applied outside the round.
        """
        if not self.connected:
            return  # the next ``connected`` starts a round that includes it
        if self.round is not None:
            self.round.collections.add(cs)
            self.round.asked[cs.local] = cs.resync_asked
            if cs.sub_id is not None:
                self.round.waiting.add(cs.sub_id)
            return
        self._begin({cs}, {cs.sub_id} if cs.sub_id is not None else set())

    def forget(self, cs: CollectionState) -> None:
        """A collection stops syncing: the round in progress no longer waits for it."""
        rnd = self.round
        if rnd is None or cs not in rnd.collections:
            return
        rnd.collections.discard(cs)
        rnd.waiting.discard(cs.sub_id or "")
        if not rnd.waiting:
            self._finish()

    def _begin(self, collections: set[CollectionState], waiting: set[str]) -> None:
        self.flush()
        self._round_no += 1
        rnd = Round(
            collections,
            waiting,
            number=self._round_no,
            asked={cs.local: cs.resync_asked for cs in collections},
        )
        self.round = rnd
        for cs in collections:
            cs.live = False
            cs.stats.live = False
        engine = self.engine
        self._detached(lambda: engine.begin_round(collections))
        if not waiting and collections:
            self._finish()
        elif not waiting:
            self.round = None

    def _ready(self, subs: tuple[str, ...]) -> None:
        for cs in self.engine.collections.values():
            if cs.feed_sub_id is not None and cs.feed_sub_id in subs:
                self.flush()
                self._detached(lambda c=cs: self.engine.mark_live(c))  # type: ignore[misc]
        rnd = self.round
        if rnd is None:
            return
        rnd.waiting.difference_update(subs)
        if not rnd.waiting:
            self._finish()

    def _nosub(self, ev: NoSub) -> None:
        for cs in self.engine.collections.values():
            if cs.feed_sub_id is not None and cs.feed_sub_id == ev.id and self.hub is not None:
                self.flush()  # the feed's entries before it ended go first
                self.hub.feed_ended(cs, ev.error)
            if cs.sub_id == ev.id:
                if ev.error is not None:
                    cs.sub_error = ev.error
                    self.engine.log.warning("subscription %r failed: %s", cs.publication, ev.error)
                    cs.ready.set()  # wakes wait_ready(), which raises the error
                    cs.bump()  # and resync()
                rnd = self.round
                if rnd is not None and ev.id in rnd.waiting:
                    rnd.waiting.discard(ev.id)
                    rnd.failed.add(cs)
                    if not rnd.waiting:
                        self._finish()

    def _finish(self) -> None:
        rnd = self.round
        if rnd is None:
            return
        self.round = None
        self.flush()
        engine = self.engine
        self._detached(lambda: engine.commit_round(rnd))

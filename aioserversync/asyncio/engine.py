"""The sync engine of one remote: applies remote data and resync rounds to the stores.

Every method here runs inside the :class:`~.applier.Applier` task, one job after another.

* **Live data** (outside a round) is written in batches. A document with pending local writes,
  or a collection with a local ``query=`` filter, takes the slow path: its current state is read
  and the policy decides (:meth:`SyncPolicy.on_live_change`).
* **Resync rounds**: after every (re)connect, and when a collection is first synced, the data of
  the round is staged in the store; once every subscription of the round is ready the whole
  round is committed in one transaction per store: staged documents become the remote state, this
  remote's documents that were not re-sent are swept (documents with pending writes are spared
  and reconciled instead), and the last-sync time is recorded. Readers never see half a round.
* **Hub changes** (:class:`HubEntry`, from ``serversync/pull`` or the ``serversync/changes``
  feed) carry revisions; the collection's checkpoint is stored in the same transaction as the
  changes it covers (or, when a change takes the slow path, right after it: never before).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..ejson import decode
from ..ids import id_parse
from ..replication.changes import ChangeEvent, remote_event
from ..replication.reconcile import PendingDoc
from ..stores.base import (
    DeleteDoc,
    MetaSet,
    Op,
    PatchDoc,
    PutDoc,
    SetRev,
    StageClear,
    StageCommit,
    Store,
)
from ..stores.fast_ops import put_doc
from .applier import Applier
from .describe import Description, describe, describe_feed_puts
from .hooks import call_hook
from .live_pending import apply_special, remote_op
from .resolve import (
    change_events,
    commit_resolution,
    decode_fields,
    index_after,
    index_new_records,
    resolution_events,
    resolution_ops,
)
from .scope import judge_patched
from .state import CollectionState, now_ms

__all__ = ["Engine", "HubEntry", "Round", "checkpoint_key"]

logger = logging.getLogger("aioserversync.engine")
_EVENT_DIFF_LIMIT = 10_000
_UNSEEN: Any = object()


@dataclass(eq=False)
class Round:
    """One resync round: the collections whose data is staged and the subs still to be ready.

    Attributes:
        scope: The staging scope (default: the remote's).
        checkpoints: Hub checkpoints to store in the round's own transaction, per collection.
    """

    collections: set[CollectionState]
    waiting: set[str]
    failed: set[CollectionState] = field(default_factory=set)
    number: int = 0
    scope: str | None = None
    checkpoints: dict[str, int] = field(default_factory=dict)
    asked: dict[str, int] = field(default_factory=dict)
    """Per collection, ``resync_asked`` when the round started: the asked resyncs it covers."""
    patches: dict[CollectionState, dict[str, list[tuple[Any, Any]]]] = field(default_factory=dict)
    """Per collection with a ``query=`` filter: ``changed`` (fields, cleared) received during the
    round, per id, since its last ``added`` (see :func:`.scope.judge_patched`)."""


@dataclass(frozen=True, slots=True)
class HubEntry:
    """One change from the hub (a pull entry or a ``serversync/changes`` feed entry).

    Attributes:
        collection: The local collection name.
        id: Wire id.
        rev: The change's revision.
        fields: The document after the change (wire form), ``None`` if it was removed.
        mid: The mutation id of the push that made it, if any.
    """

    collection: str
    id: str
    rev: int
    fields: dict[str, Any] | None
    mid: str | None = None


def checkpoint_key(cs: CollectionState) -> str:
    """The metadata key of a collection's hub checkpoint."""
    return f"checkpoint:{cs.origin}:{cs.local}"


def resync_key(cs: CollectionState) -> str:
    """The metadata key set while a full resync asked for with ``resync()`` is outstanding."""
    return f"resync:{cs.origin}:{cs.local}"


class Engine:
    """State and store-side logic shared by one remote's collections.

    Args:
        origin: The remote's origin key.
        applier: The job runner.
        log: The logger (adapter) of the remote.
    """

    def __init__(
        self, origin: str, applier: Applier, log: logging.Logger | logging.LoggerAdapter[Any]
    ) -> None:
        self.origin = origin
        self.applier = applier
        self.log = log
        self.scope = f"round:{origin}"
        self.collections: dict[str, CollectionState] = {}
        self.by_remote: dict[str, CollectionState] = {}
        self.push_wakeup = asyncio.Event()
        self.rounds_committed = 0
        self.drop_link: Callable[[str], None] = lambda reason: None
        """Drops the remote's link (set by the owner of the client), for a resync now."""
        self.repairing = False
        """A resync after a failed apply is coming (cleared when the next session starts)."""
        self.repair_streak = 0
        self.repair_mark = -1

    def stores(self, collections: Iterable[CollectionState] | None = None) -> list[Store]:
        """The distinct stores of the given (default: all) collections."""
        seen: dict[int, Store] = {}
        for cs in collections if collections is not None else self.collections.values():
            seen.setdefault(id(cs.store), cs.store)
        return list(seen.values())

    # ------------------------------------------------------------------ live data

    async def apply_remote(self, ops: Sequence[Op | HubEntry]) -> None:
        """Apply a batch of remote operations (live data, staging, hub changes), in order."""
        groups: dict[int, tuple[Store, list[Op]]] = {}
        special: list[tuple[CollectionState, Op | HubEntry]] = []
        notify: list[tuple[CollectionState, Op]] = []
        checkpoints: dict[CollectionState, int] = {}
        feed_puts: set[int] = set()
        # Per collection, looked up once per batch: its state, its store's batch, whether
        # operations need the slow path (a ``query=`` filter) and whether they are reported.
        seen: dict[str, tuple[CollectionState, list[Op], bool, bool] | None] = {}
        for item in ops:
            name = item.collection  # type: ignore[union-attr]
            info = seen.get(name, _UNSEEN)
            if info is _UNSEEN:
                info = seen[name] = self._batch_slot(name, groups)
            if info is None:
                continue
            cs, batch, filtered, reported = info
            op: Any = item
            if type(item) is HubEntry:
                if cs.checkpoint is not None and item.rev <= cs.checkpoint:
                    continue  # already applied (a pull and the feed may overlap)
                cs.checkpoint = item.rev
                checkpoints[cs] = item.rev
                if cs.pending and item.id in cs.pending:
                    if item.mid is not None and _is_echo(cs, item):
                        # Our own push, accepted: the local copy already shows it (or later
                        # local changes); its result settles the record and sets the revision.
                        cs.echoed[item.mid] = item.rev
                        continue
                    special.append((cs, item))
                    continue
                if item.fields is None:
                    op = DeleteDoc(cs.local, item.id)
                else:
                    op = put_doc(cs.local, item.id, item.fields, cs.origin, item.rev)
                    feed_puts.add(id(op))
            t = type(op)
            if t is PutDoc or t is PatchDoc or t is DeleteDoc:
                if filtered or (cs.pending and op.id in cs.pending):
                    special.append((cs, op))
                    continue
                if reported:
                    notify.append((cs, op))
            batch.append(op)
        late: list[tuple[Store, MetaSet]] = []
        slow = {s for s, _ in special}
        for cs, rev in checkpoints.items():
            meta = MetaSet(checkpoint_key(cs), cs.stored_checkpoint(rev))
            if cs in slow:
                late.append((cs.store, meta))  # after the slow path: never before its data
                continue
            key = id(cs.store)
            if key not in groups:
                groups[key] = (cs.store, [])
            groups[key][1].append(meta)
        described: dict[int, Description] = {}
        if notify and feed_puts:
            described = await describe_feed_puts(notify, feed_puts)
        await self.before_hooks(notify, described)
        for store, batch in groups.values():
            if batch:
                await store.apply(batch)
        if notify:
            await self.notify(notify, described)
        if special:
            await apply_special(self, special)
        for store, meta in late:
            await store.apply([meta])

    def _batch_slot(
        self, name: str, groups: dict[int, tuple[Store, list[Op]]]
    ) -> tuple[CollectionState, list[Op], bool, bool] | None:
        cs = self.collections.get(name)
        if cs is None:
            return None
        key = id(cs.store)
        group = groups.get(key)
        if group is None:
            groups[key] = group = (cs.store, [])
        return cs, group[1], cs.matcher is not None, cs.hub.listening or cs.has_hooks_down

    @staticmethod
    async def before_hooks(
        items: list[tuple[CollectionState, Op]], described: dict[int, Description]
    ) -> None:
        """Call the ``before_sync_down`` hooks of remote operations about to be applied."""
        for cs, op in items:
            if cs.before_sync_down is not None:
                kind, fields, _ = described.get(id(op)) or describe(op)
                await call_hook(
                    cs.before_sync_down,
                    kind,
                    id_parse(op.id),  # type: ignore[union-attr]
                    fields,
                    cs.origin,
                )

    async def notify(
        self,
        items: list[tuple[CollectionState, Op]],
        described: dict[int, Description] | None = None,
    ) -> None:
        """Report applied remote operations to ``changes()`` listeners and sync-down hooks."""
        events: dict[CollectionState, list[ChangeEvent]] = {}
        described = described or {}
        for cs, op in items:
            kind, fields, cleared = described.get(id(op)) or describe(op)
            _id = id_parse(op.id)  # type: ignore[union-attr]
            if cs.hub.listening:
                if kind == "removed":
                    ev = remote_event("removed", cs.local, _id, None, (), cs.origin)
                else:
                    ev = remote_event(
                        "added" if kind == "added" else "changed",
                        cs.local,
                        _id,
                        decode_fields(fields),
                        tuple(cleared) if cleared else (),
                        cs.origin,
                    )
                evs = events.get(cs)
                if evs is None:
                    events[cs] = evs = []
                evs.append(ev)
            if cs.after_sync_down is not None:
                await call_hook(cs.after_sync_down, kind, _id, fields, cs.origin)
        for cs, evs in events.items():
            cs.hub.emit(evs)

    async def _apply_special(self, cs: CollectionState, op: Op) -> None:
        assert isinstance(op, PutDoc | PatchDoc | DeleteDoc)
        store, wid = cs.store, op.id
        if cs.matcher is not None and wid not in cs.pending:
            # A pending document's change is decided unfiltered, and the document judged once
            # its writes settle (scope.py).
            filtered = await self._filter(cs, op)
            if filtered is None:
                return
            op = filtered
        if wid not in cs.pending:
            await store.apply([op])
            if cs.hub.listening or cs.has_hooks_down:
                await self.notify([(cs, op)])
            return
        assert isinstance(op, PutDoc | PatchDoc | DeleteDoc)
        pending = await self.load_pending(cs, [wid])
        res = cs.policy.on_live_change(pending[wid], remote_op(op))
        ops, record = resolution_ops(cs, wid, res, rev=getattr(op, "rev", None))
        await commit_resolution(cs, wid, res, ops, record)
        self.after_index_change(cs)

    async def mark_live(self, cs: CollectionState) -> None:
        """Hub path: everything before the feed's ``ready`` is applied; the collection is live."""
        cs.live = True
        cs.stats.live = True
        cs.stats.stale = False
        t = now_ms()
        cs.stats.last_sync = t
        await cs.store.apply([MetaSet(f"last_sync:{cs.origin}:{cs.local}", t)])
        cs.stats.resyncs += 1
        cs.ready.set()
        self.after_index_change(cs)

    async def _filter(self, cs: CollectionState, op: Op) -> Op | None:
        """Apply the local ``query=`` filter: keep, drop, or delete the local copy."""
        assert cs.matcher is not None
        if isinstance(op, DeleteDoc):
            return op
        assert isinstance(op, PutDoc | PatchDoc)
        if isinstance(op, PatchDoc):
            current = (await cs.store.get_fields(cs.local, [op.id])).get(op.id)
            if current is None:
                # Not mirrored (filtered out earlier, or unknown): a partial document cannot be
                # judged; the next resync round sends it whole.
                return None
            fields = {**current, **(op.fields or {})}
            for k in op.cleared or ():
                fields.pop(k, None)
            doc = {"_id": id_parse(op.id), **decode(fields)}
            if cs.matcher.matches(doc):
                return op
        else:
            doc = {"_id": id_parse(op.id), **decode(op.fields)}
            if cs.matcher.matches(doc):
                return op
        exists = await cs.store.get_fields(cs.local, [op.id])
        return DeleteDoc(cs.local, op.id) if exists else None

    async def load_pending(self, cs: CollectionState, ids: list[str]) -> dict[str, PendingDoc]:
        """Read base and local state of pending documents."""
        metas = await cs.store.get_meta_many(cs.local, ids)
        local = await cs.store.get_fields(cs.local, ids)
        out: dict[str, PendingDoc] = {}
        for wid in ids:
            meta = metas.get(wid)
            out[wid] = PendingDoc(
                wid,
                list(cs.pending.get(wid, ())),
                meta.has_base if meta is not None else False,
                meta.base if meta is not None else None,
                local.get(wid),
            )
        return out

    def after_index_change(self, cs: CollectionState) -> None:
        """Refresh counters after the pending index changed and wake whoever waits on it."""
        cs.stats.pending = cs.pending_count()
        self.push_wakeup.set()
        cs.bump()

    # ------------------------------------------------------------------ rounds

    async def begin_round(
        self, collections: Iterable[CollectionState], scope: str | None = None
    ) -> None:
        """Clear a staging area (default: this remote's) before a new round's data arrives."""
        for store in self.stores(collections):
            await store.apply([StageClear(scope or self.scope)])

    async def commit_round(self, rnd: Round) -> None:
        """Apply a completed round atomically per store (see the module docstring)."""
        by_store: dict[int, list[CollectionState]] = {}
        for cs in rnd.collections:
            by_store.setdefault(id(cs.store), []).append(cs)
        for css in by_store.values():
            await self._commit_store(rnd, css)
        self.rounds_committed += 1
        self.push_wakeup.set()

    async def _commit_store(self, rnd: Round, css: list[CollectionState]) -> None:
        store = css[0].store
        scope = rnd.scope or self.scope
        ops: list[Op] = []
        plans: list[tuple[CollectionState, list[tuple[str, Any]], list[Any]]] = []
        t = now_ms()
        for cs in css:
            if cs in rnd.failed or cs.closed:
                continue
            if cs.before_sync_down is not None:
                await call_hook(cs.before_sync_down, "resync", None, None, cs.origin)
            patched = rnd.patches.get(cs)
            if patched:
                await judge_patched(scope, cs, patched)
            ids = list(cs.pending)
            decisions: list[tuple[str, Any]] = []
            records: list[Any] = []
            if ids:
                pending = await self.load_pending(cs, ids)
                staged = await store.stage_get(scope, cs.local, ids)
                # Hub rounds: bases set from the round carry its revisions, so that pushes made
                # on top of them pass the hub's compare-and-set.
                revs = await store.stage_revs(scope, cs.local, ids) if cs.source == "hub" else {}
                for wid in ids:
                    p, remote = pending[wid], staged.get(wid)
                    res = cs.policy.reconcile(p, remote)
                    rev = revs.get(wid)
                    if rev is not None and res.base_action == "keep" and p.base == remote:
                        res.base, res.base_action = remote, "set"  # the same, now at ``rev``
                    res_ops, record = resolution_ops(cs, wid, res, rev=rev)
                    if rev is not None and not res.write_doc and p.local is not None:
                        res_ops.append(SetRev(cs.local, wid, rev))  # a no-op if removed
                    ops.extend(res_ops)
                    decisions.append((wid, res))
                    if record is not None:
                        records.append(record)
            if cs.has_hooks_down:
                limit = sys.maxsize
            elif cs.hub.listening:
                limit = _EVENT_DIFF_LIMIT
            else:
                limit = 0
            ops.append(
                StageCommit(scope, cs.local, cs.origin, keep=frozenset(ids), diff_limit=limit)
            )
            ops.append(MetaSet(f"last_sync:{cs.origin}:{cs.local}", t))
            ops.append(MetaSet(resync_key(cs), None))  # every committed round is a full one
            if cs.local in rnd.checkpoints:
                ops.append(
                    MetaSet(checkpoint_key(cs), cs.stored_checkpoint(rnd.checkpoints[cs.local]))
                )
            plans.append((cs, decisions, records))
        ops.append(StageClear(scope))
        result = await store.apply(ops)
        commits = {c.collection: c for c in result.commits}
        first = 0
        for cs, decisions, records in plans:
            if cs.local in rnd.checkpoints:
                cs.checkpoint = rnd.checkpoints[cs.local]
            cs.resync_done = max(cs.resync_done, rnd.asked.get(cs.local, 0))
            for wid, res in decisions:
                index_after(cs, wid, res)
            index_new_records(cs, records, result, first)
            first += len(records)
            commit = commits.get(cs.local)
            events: list[ChangeEvent] = []
            for wid, res in decisions:
                events.extend(resolution_events(cs, wid, res))
            if commit is not None:
                if commit.changes is not None:
                    events.extend(change_events(cs, commit.changes))
                    if cs.after_sync_down is not None:
                        for ch in commit.changes:
                            await call_hook(
                                cs.after_sync_down, ch.op, id_parse(ch.id), ch.new, cs.origin
                            )
                elif commit.added or commit.changed or commit.removed:
                    events.append(ChangeEvent("resync", cs.local, origin=cs.origin))
            cs.hub.emit(events)
            if cs.source != "hub":
                cs.live = True
                cs.stats.live = True
                cs.stats.stale = False
                cs.stats.last_sync = t
                cs.stats.resyncs += 1
                cs.ready.set()
            self.after_index_change(cs)
        for cs in rnd.failed:
            self.after_index_change(cs)


def _is_echo(cs: CollectionState, entry: HubEntry) -> bool:
    """Whether a feed entry is the echo of one of our pushes still waiting for its result."""
    return any(r.mutation_id == entry.mid and r.state == "in_flight" for r in cs.pending[entry.id])

"""The ``query=`` filter and local writes: a document leaves the mirror once its writes settle.

A filtered collection keeps only the remote documents that match its filter, and the engine
judges every remote change against it (:meth:`~.engine.Engine._filter`). A document with pending
local writes is the exception: its writes need it (a push sends the local version, and a
conflict is decided against the remote's real version, which may no longer match). So the
engine hands such a document's remote changes to the policy unfiltered, and judges it once its
last write is settled or discarded: :class:`~.state.CollectionState` notes it in ``unjudged``
and :func:`judge_scope` runs as the applier's next job. The remote's version that won a
conflict, or a local write that took the document out of the filter, then leaves the cache
with a ``removed`` change event, as a remote change out of the filter does.

:func:`judge_patched` applies the filter to the ``changed`` messages of a stock round.

The judging is a job of its own, after the one that settled the write: a reader may see the
document in between. A process killed in that instant leaves the document in the store. So in
the modes that push (where no settled document is kept outside the filter) the store keeps a
mark under :func:`scope_key`: the filter's own mark once every settled document was judged
against it, :data:`UNJUDGED` from the moment a document gets pending writes (in the same
transaction) until they are settled and judged with nothing pending left. At sync start,
:func:`judge_stored` compares it with the filter: when they differ (a kill in that window, a
run in another mode or without the filter, a narrower ``query=`` than the last run's) it judges
the stored documents that the store's own query finds outside the filter; when they match, no
scan (one costs 0.1-0.5 s per 100k documents in SQLite).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..ids import id_stringify
from ..stores.base import DeleteDoc, MetaSet, Op, StageDelete
from ..stores.fast_ops import stage_put
from ..stores.wireform import patch_fields
from .state import CollectionState

if TYPE_CHECKING:
    from .engine import Engine

__all__ = [
    "UNJUDGED",
    "check_filter",
    "filter_key",
    "forget_scope",
    "judge_patched",
    "judge_scope",
    "judge_stored",
    "scope_key",
    "scope_mark",
    "watch_scope",
]

_CHUNK = 500
_PATCHED_CHUNK = 1_000  # ids per staged read when judging a filtered round's changes
UNJUDGED = "unjudged"
"""The scope mark while documents may wait for their judging (module docstring)."""


def scope_key(cs: CollectionState) -> str:
    """The metadata key of ``cs``'s scope mark (module docstring)."""
    return f"scope:{cs.origin}:{cs.local}"


def scope_mark(query: Mapping[str, Any] | None) -> str:
    """The mark of a ``query=`` filter: equal marks, same filter (a false difference: a scan)."""
    return f"query:{query!r}"


def watch_scope(engine: Engine, cs: CollectionState) -> None:
    """Judge ``cs``'s documents against its filter whenever their last write settles."""
    queued = False

    async def job() -> None:
        nonlocal queued
        queued = False
        await judge_scope(engine, cs)

    def schedule(_: CollectionState) -> None:
        nonlocal queued
        if queued or engine.applier.closing:
            return
        queued = True
        engine.applier.submit_nowait(job, detached=True)

    cs.on_unjudged = schedule


async def judge_scope(engine: Engine, cs: CollectionState) -> None:
    """Drop the documents of ``cs.unjudged`` that are not pending and fail the filter."""
    ids = list(cs.unjudged)
    cs.unjudged.clear()
    await _judge(engine, cs, ids)
    await _mark_judged(cs)


async def judge_stored(engine: Engine, cs: CollectionState, query: Mapping[str, Any]) -> None:
    """Judge the stored documents of ``cs`` outside ``query``, at sync start (see above).

    Nothing to do when the scope mark says the store was judged against this filter. Else the
    store finds the candidates (``$nor`` of the filter), a chunk at a time, and the collection's
    own matcher decides, as for any other document: pending ones stay, and so do those of other
    remotes merged into the same collection. Those kept are skipped by the next chunk's query, so
    a large collection is never held in memory.
    """
    if await cs.store.get_meta(scope_key(cs)) == cs.scope_mark:
        cs.scope_clean = True
        return
    selector = {"$nor": [dict(query)]}
    kept = 0
    while not cs.closed:
        found = await cs.store.find(
            cs.local, selector, sort=[("_id", 1)], skip=kept, limit=_CHUNK, projection={"_id": 1}
        )
        ids = [id_stringify(doc["_id"]) for doc in found]
        metas = await cs.store.get_meta_many(cs.local, ids)
        # Only this remote's documents: others merged into the collection are theirs to judge.
        ids = [wid for wid in ids if wid in metas and metas[wid].origin == cs.origin]
        removed = await _judge(engine, cs, ids)
        if removed:
            engine.log.info(
                "%r: %d stored documents outside the query= filter removed", cs.local, removed
            )
        kept += len(found) - removed
        if len(found) < _CHUNK:
            await _mark_judged(cs)
            return


def filter_key(cs: CollectionState) -> str:
    """The metadata key of the mark of the filter ``cs`` was last synced with (any mode)."""
    return f"filter:{cs.origin}:{cs.local}"


async def check_filter(engine: Engine, cs: CollectionState, mark: str, resync_flag: str) -> None:
    """Ask for a full resync when ``query=`` differs from the last run's (at sync start).

    On the hub path a checkpoint covers only what the old filter let in: documents a wider
    filter (or none) takes were skipped for good, so the collection resyncs in full (and the
    round sweeps what a narrower one leaves out). The stock path resyncs at every connect
    anyway. A store that holds no mark (a first run) is taken as synced with this filter.

    Args:
        engine: The remote's engine (for its log).
        cs: The collection.
        mark: This run's filter mark (:func:`scope_mark`).
        resync_flag: The metadata key that asks for a full resync (``engine.resync_key``).
    """
    last = await cs.store.get_meta(filter_key(cs))
    if last == mark:
        return
    ops: list[Op] = [MetaSet(filter_key(cs), mark)]
    if last is not None:
        engine.log.info("%r: query= differs from the last run's; resyncing in full", cs.local)
        ops.append(MetaSet(resync_flag, True))
    await cs.store.apply(ops)


async def forget_scope(cs: CollectionState) -> None:
    """Drop ``cs``'s scope mark, if any: this run may keep documents outside a filter."""
    if await cs.store.get_meta(scope_key(cs)) is not None:
        await cs.store.apply([MetaSet(scope_key(cs), None)])


async def _mark_judged(cs: CollectionState) -> None:
    """Store the filter's mark once nothing is pending or waiting to be judged."""
    if cs.scope_clean or cs.scope_mark is None or cs.pending or cs.unjudged or cs.closed:
        return
    await cs.store.apply([MetaSet(scope_key(cs), cs.scope_mark)])
    cs.scope_clean = True


async def _judge(engine: Engine, cs: CollectionState, ids: list[str]) -> int:
    """Drop the documents of ``ids`` that are not pending and fail the filter; return how many."""
    ids = [wid for wid in ids if wid not in cs.pending]
    if cs.closed or cs.matcher is None:
        return 0
    reported = cs.hub.listening or cs.has_hooks_down
    removed = 0
    for start in range(0, len(ids), _CHUNK):
        local = await cs.store.get_fields(cs.local, ids[start : start + _CHUNK])
        gone: list[Op] = [
            DeleteDoc(cs.local, wid) for wid, f in local.items() if not cs.wants(wid, f)
        ]
        if not gone:
            continue
        notify = [(cs, op) for op in gone]
        if reported:
            await engine.before_hooks(notify, {})
        await cs.store.apply(gone)
        if reported:
            await engine.notify(notify)
        removed += len(gone)
    return removed


async def judge_patched(
    scope: str, cs: CollectionState, patched: dict[str, list[tuple[Any, Any]]]
) -> None:
    """Stage the documents of a filtered collection changed during its round, judged whole.

    A ``changed`` carries only the changed fields, so the ``query=`` filter cannot judge it
    when it arrives. The round staged each matching document whole at its ``added``, and
    kept the ``changed`` that followed in memory (only those: a round's changes are few).
    Here each is applied to its staged copy and the result judged: kept, or unstaged when it
    no longer matches. A document whose ``added`` did not match was not staged and stays
    out: only its changed fields are known, and a partial document is never stored (a later
    round brings it whole, as on the live path; docs/modes.md). A pending document stays
    staged whatever the filter says: its writes are decided against it (module docstring).
    """
    ids = list(patched)
    for start in range(0, len(ids), _PATCHED_CHUNK):
        chunk = ids[start : start + _PATCHED_CHUNK]
        staged = await cs.store.stage_get(scope, cs.local, chunk)
        ops: list[Op] = []
        for wid in chunk:
            fields = staged.get(wid)
            if fields is not None:
                for changed, cleared in patched[wid]:
                    fields = patch_fields(fields, changed, cleared)
            if fields is not None and (wid in cs.pending or cs.wants(wid, fields)):
                ops.append(stage_put(scope, cs.local, wid, fields))
            else:
                ops.append(StageDelete(scope, cs.local, wid))
        await cs.store.apply(ops)

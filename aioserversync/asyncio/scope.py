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

The judging is a job of its own, after the one that settled the write: a reader may see the
document in between, and a process killed in that instant keeps it until the next full resync.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..stores.base import DeleteDoc, Op
from .state import CollectionState

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["judge_scope", "watch_scope"]

_CHUNK = 500


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
    ids = [wid for wid in cs.unjudged if wid not in cs.pending]
    cs.unjudged.clear()
    if cs.closed or cs.matcher is None:
        return
    reported = cs.hub.listening or cs.has_hooks_down
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

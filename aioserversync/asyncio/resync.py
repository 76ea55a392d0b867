"""Full resyncs on request (``remote.resync()``, ``items.resync()``).

A resync is asked for per collection and runs through the reconnect path, which is already the
one place where a collection's data is replaced safely: the link is dropped, and the next
session's round stages the whole collection and commits it with a sweep (stock path), or pulls
it in full instead of from the checkpoint and commits it as a round (hub path). Resyncing a
collection beside a live subscription or change feed would race with it: on the stock path a
second subscription to the same publication gets nothing the server's merge box already sent,
and the sweep would then remove everything; on the hub path the feed's newer changes could be
overwritten by an older pull. Dropping the link costs the remote's other collections a
reconnect: on the stock path a full round each (as after any reconnect), on the hub path a
catch-up from their checkpoints.

The request is counted in memory (``CollectionState.resync_asked``; each round records the count
it started with, and the waiter waits for a round that started after the request) and kept in
the store under :func:`~.engine.resync_key` until a full round is committed, so a hub collection
still resyncs in full when the process restarts before the next session.

The same path repairs the cache when remote data could not be applied (:func:`resync_after_failure`:
a store that failed, say a full disk): the changes of that batch are missing from the cache, and
on the hub path the checkpoint in memory already covers them, so every collection of the remote
resyncs in full at once instead of waiting, silently out of step, for the next reconnect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from ..exceptions import InvalidState, SyncTimeout
from ..stores.base import MetaSet
from .applier import Applier
from .client import DDPClient
from .engine import Engine, resync_key
from .state import CollectionState

__all__ = ["REPAIR_DELAY_MAX", "resync", "resync_after_failure"]


async def resync_after_failure(engine: Engine, exc: BaseException) -> None:
    """Remote data could not be applied: resync every collection of the remote in full.

    Runs on the applier (as the failed job did). The request is also recorded in the store when
    the store takes it, so a restart before the next session still resyncs in full. The link is
    dropped at once; when failures repeat with no round committed in between (a store that
    keeps failing), the drop waits 1, 3, 7, … up to :data:`REPAIR_DELAY_MAX` seconds, since a
    reconnect after a long session starts without backoff. Failures of the same session after
    the first only add to the log: its resync is already coming.
    """
    if engine.repairing:
        engine.log.error("remote data could not be applied (%r); a resync is coming", exc)
        return
    engine.repairing = True
    same_episode = engine.rounds_committed == engine.repair_mark
    engine.repair_streak = engine.repair_streak + 1 if same_episode else 1
    engine.repair_mark = engine.rounds_committed
    delay = min(REPAIR_DELAY_MAX, 2.0 ** (engine.repair_streak - 1) - 1)
    engine.log.error(
        "remote data could not be applied (%r); every collection of this remote resyncs in full%s",
        exc,
        f" in {delay:g} s" if delay else "",
        exc_info=exc,
    )
    for cs in list(engine.collections.values()):
        cs.resync_asked += 1
        try:
            await cs.store.apply([MetaSet(resync_key(cs), True)])
        except Exception:
            engine.log.debug("could not record the resync of %r", cs.local, exc_info=True)

    def drop() -> None:
        if engine.repairing:  # else a new session started meanwhile: it resyncs anyway
            engine.drop_link("remote data could not be applied; resyncing")

    if delay:
        asyncio.get_running_loop().call_later(delay, drop)
    else:
        drop()


REPAIR_DELAY_MAX = 30.0
"""The longest wait before the link is dropped again after repeated failed applies."""


async def resync(
    applier: Applier,
    client: DDPClient,
    collections: Sequence[CollectionState],
    timeout: float | None,
) -> None:
    """Ask for a full resync of ``collections`` and wait until each has one committed.

    Raises:
        SyncTimeout: Not done within ``timeout`` seconds (the resync still happens later).
        InvalidState: A collection stopped syncing meanwhile.
        MeteorError: The server refused a collection's subscription or pull meanwhile.
    """
    targets: dict[int, tuple[CollectionState, int]] = {}
    errors = {id(cs): cs.sub_error for cs in collections}

    async def ask() -> None:
        # On the applier, so no remote batch is applied between the request and the drop.
        for cs in collections:
            await cs.store.apply([MetaSet(resync_key(cs), True)])
            cs.resync_asked += 1
            targets[id(cs)] = (cs, cs.resync_asked)
        client.drop_link("a full resync was asked for", level=logging.INFO)

    await applier.submit(ask)
    try:
        async with asyncio.timeout(timeout):
            for cs, wanted in targets.values():
                while cs.resync_done < wanted:
                    if cs.closed:
                        raise InvalidState(f"{cs.local!r} stopped syncing before its resync")
                    if cs.sub_error is not None and cs.sub_error is not errors[id(cs)]:
                        raise cs.sub_error
                    await cs.wait_change()
    except TimeoutError:
        pending = [cs.local for cs, wanted in targets.values() if cs.resync_done < wanted]
        raise SyncTimeout(
            f"resync of {', '.join(map(repr, pending))} not done after {timeout}s "
            "(it still happens at the next session)"
        ) from None

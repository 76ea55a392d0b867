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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from ..exceptions import InvalidState, SyncTimeout
from ..stores.base import MetaSet
from .applier import Applier
from .client import DDPClient
from .engine import resync_key
from .state import CollectionState

__all__ = ["resync"]


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

"""``sync()``: one collection of one remote in one call, for services that need nothing more."""

from __future__ import annotations

import os
from typing import Any

from ..stores.base import Store
from .collection import SyncedCollection
from .sync import ServerSync

__all__ = ["sync"]


async def sync(
    url: str,
    collection: str,
    *,
    mode: str = "online-write",
    store: Store | str | os.PathLike[str] | None = None,
    **options: Any,
) -> SyncedCollection:
    """Sync one collection in one call; closing the returned collection closes the remote.

    ``options`` go to :class:`ServerSync` (``name``, ``token``, client options) or to
    :meth:`ServerSync.sync` (``publication``, ``args``, ``query``, ``policy``, hooks, …).

    Example::

        items = await sync("http://hub:3000", "items", mode="read", store="cache.db")
        try:
            await items.wait_ready(timeout=30)
        finally:
            await items.close()
    """
    sync_keys = {
        "publication",
        "args",
        "query",
        "via",
        "local",
        "policy",
        "before_sync_up",
        "after_sync_up",
        "before_sync_down",
        "after_sync_down",
    }
    sync_opts = {k: options.pop(k) for k in list(options) if k in sync_keys}
    remote = ServerSync(url, store=store, **options)
    await remote.start()
    try:
        coll = await remote.sync(collection, mode=mode, **sync_opts)
    except BaseException:
        await remote.close()
        raise
    coll._owns_remote = True
    return coll

"""A short durable log of recent conflicts, kept in the store's metadata by ``mirror``.

The key is ``conflicts:<origin>:<collection>``; the value is a list of the most recent entries
(newest last, at most :data:`KEEP`), each ``{"at": ms, "id": wire id, "local": …, "base": …,
"remote": …, "message": …}`` with documents in EJSON wire form. ``aioserversync status`` shows
it.
"""

from __future__ import annotations

import time
from typing import Any

from ..exceptions import WriteConflict
from ..ids import id_stringify
from ..replication.changes import ChangeEvent
from ..stores.base import MetaSet, Store
from ..typing import JSONValue
from .output import to_json

__all__ = ["KEEP", "PREFIX", "conflict_entry", "read_conflicts", "record_conflicts"]

PREFIX = "conflicts:"
KEEP = 50


def conflict_entry(event: ChangeEvent) -> dict[str, Any]:
    """Return the log entry for a ``conflict`` change event."""
    info = event.error if isinstance(event.error, WriteConflict) else None
    try:
        wid = id_stringify(event.id)
    except Exception:  # an id Meteor could not carry either: keep its text
        wid = str(event.id)
    return {
        "at": int(time.time() * 1000),
        "id": wid,
        "local": to_json(info.local) if info else None,
        "base": to_json(info.base) if info else None,
        "remote": to_json(info.remote) if info else None,
        "message": str(info) if info else None,
    }


async def record_conflicts(
    store: Store, origin: str, collection: str, entries: list[dict[str, Any]]
) -> None:
    """Append entries to the collection's conflict log (keeping the last :data:`KEEP`)."""
    if not entries:
        return
    key = f"{PREFIX}{origin}:{collection}"
    old = await store.get_meta(key)
    log: list[JSONValue] = list(old) if isinstance(old, list) else []
    log.extend(entries)
    await store.apply([MetaSet(key, log[-KEEP:])])


async def read_conflicts(store: Store) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Return every conflict log, keyed by ``(origin, collection)``."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for key, value in (await store.get_meta_prefix(PREFIX)).items():
        origin, _, collection = key[len(PREFIX) :].rpartition(":")
        if isinstance(value, list):
            out[(origin, collection)] = [e for e in value if isinstance(e, dict)]
    return out

"""``aioserversync status``: inspect a local cache without connecting to anything.

For each local collection it reports the document count, the queued (pending, in flight,
unknown) and failed outbox records with their ``seq``, op, document id, state and error, the hub
checkpoints, full resyncs asked for and not done yet, the last successful sync per remote, and
the recent conflicts logged by ``mirror``.
The store is opened read-mostly: SQLite in WAL mode lets this run beside a live edge.
"""

from __future__ import annotations

import os
from typing import IO, Any

import orjson

from ..exceptions import ConfigurationError
from ..stores import open_store
from ..stores.base import OutboxRecord, OutboxState, Store
from .conflict_log import read_conflicts
from .output import format_ms, to_json

__all__ = ["gather_status", "render_status", "run_status"]

_ACTIVE: tuple[OutboxState, ...] = ("pending", "in_flight", "unknown")
_FAILED: tuple[OutboxState, ...] = ("failed",)
LIST_LIMIT = 100
"""At most this many records of each kind are listed per collection (all are counted)."""


def _record(rec: OutboxRecord) -> dict[str, Any]:
    return {
        "seq": rec.seq,
        "op": rec.op,
        "id": rec.doc_id,
        "state": rec.state,
        "origin": rec.origin,
        "attempts": rec.attempts,
        "error": rec.error,
        "created_at": rec.created_at,
        "updated_at": rec.updated_at,
    }


def _split_key(key: str, prefix: str) -> tuple[str, str]:
    """``prefix<origin>:<collection>`` -> (origin, collection); origins may hold colons."""
    origin, _, collection = key[len(prefix) :].rpartition(":")
    return origin, collection


def _check_exists(store: Store, url: str) -> None:
    path = getattr(store, "path", None)
    if isinstance(path, str) and path != ":memory:" and not os.path.exists(path):
        raise ConfigurationError(f"no cache at {path!r} (from {url!r})")


async def gather_status(url: str) -> dict[str, Any]:
    """Open the store at ``url``, read its sync state, close it; return it as plain JSON data.

    Raises:
        ConfigurationError: A bad store URL, or no SQLite file at that path.
    """
    store = open_store(url)
    _check_exists(store, url)
    await store.open()
    try:
        return await _read(store)
    finally:
        await store.close()


async def _read(store: Store) -> dict[str, Any]:
    last_sync = await store.get_meta_prefix("last_sync:")
    checkpoints = await store.get_meta_prefix("checkpoint:")
    resyncs = await store.get_meta_prefix("resync:")
    conflicts = await read_conflicts(store)
    names = set(await store.collections())
    per: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        return per.setdefault(
            name,
            {"name": name, "last_sync": {}, "checkpoints": {}, "resync_asked": [], "conflicts": []},
        )

    for key, value in last_sync.items():
        origin, name = _split_key(key, "last_sync:")
        entry(name)["last_sync"][origin] = value
    for key, value in checkpoints.items():
        origin, name = _split_key(key, "checkpoint:")
        entry(name)["checkpoints"][origin] = value
    for key in resyncs:
        origin, name = _split_key(key, "resync:")
        entry(name)["resync_asked"].append(origin)
    for (_origin, name), log in conflicts.items():
        entry(name)["conflicts"].extend({"origin": _origin, **e} for e in log)
    for name in names:
        entry(name)
    for name, info in per.items():
        info["documents"] = await store.count(name)
        info["pending_count"] = await store.outbox_count(collection=name, states=_ACTIVE)
        info["failed_count"] = await store.outbox_count(collection=name, states=_FAILED)
        info["pending"] = [
            _record(r)
            for r in await store.outbox_peek(collection=name, states=_ACTIVE, limit=LIST_LIMIT)
        ]
        info["failed"] = [
            _record(r)
            for r in await store.outbox_peek(collection=name, states=_FAILED, limit=LIST_LIMIT)
        ]
        info["conflicts"].sort(key=lambda e: e.get("at") or 0)
    return {"store": store.name, "collections": [per[n] for n in sorted(per)]}


def _short(value: Any, limit: int = 80) -> str:
    text = orjson.dumps(to_json(value)).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_status(report: dict[str, Any]) -> str:
    """Format a :func:`gather_status` report as readable text."""
    lines = [f"store {report['store']}"]
    if not report["collections"]:
        lines.append("  (no synced collections)")
    for c in report["collections"]:
        lines.append("")
        lines.append(f"{c['name']}")
        lines.append(f"  documents   {c['documents']:,}")
        for origin, ms in sorted(c["last_sync"].items()):
            lines.append(f"  last sync   {format_ms(ms)}  from {origin}")
        if not c["last_sync"]:
            lines.append("  last sync   never")
        for origin, rev in sorted(c["checkpoints"].items()):
            lines.append(f"  checkpoint  {rev}  from {origin}")
        for origin in sorted(c["resync_asked"]):
            lines.append(f"  resync      asked, at the next session  from {origin}")
        lines.append(f"  pending     {c['pending_count']}")
        for r in c["pending"]:
            lines.append(f"    seq {r['seq']:<6} {r['op']:<7} {r['id']:<20} {r['state']}")
        lines.append(f"  failed      {c['failed_count']}")
        for r in c["failed"]:
            lines.append(
                f"    seq {r['seq']:<6} {r['op']:<7} {r['id']:<20} {r['state']}"
                f"  error {_short(r['error'])}"
            )
        lines.append(f"  conflicts   {len(c['conflicts'])} recent")
        for e in c["conflicts"][-10:]:
            lines.append(
                f"    {format_ms(e.get('at'))} id {e.get('id')}: local {_short(e.get('local'), 40)}"
                f" lost to remote {_short(e.get('remote'), 40)}"
            )
    return "\n".join(lines) + "\n"


async def run_status(url: str, *, json: bool, stream: IO[str]) -> int:
    """Print the status of the store at ``url``; return the exit code.

    Raises:
        ConfigurationError: A bad store URL, or no SQLite file at that path (exit code 2).
    """
    report = await gather_status(url)
    if json:
        stream.write(orjson.dumps(report).decode() + "\n")
    else:
        stream.write(render_status(report))
    stream.flush()
    return 0

"""``aioserversync demo``: a hub, two edges, a network cut and a conflict, in one process.

1. A hub (:class:`~aioserversync.hub.ServerSyncServer`) serves ``items`` from SQLite, seeded
   with a small inventory, on a free loopback port.
2. Two edges connect through a relay (:class:`~.demo_link.Link`): one in ``write`` mode, one in
   ``read`` mode, each with its own SQLite cache.
3. Both sides make changes while connected; everything converges.
4. The link is cut. The hub and the write edge both change things, including the same document.
5. The link comes back. The edges catch up; the write edge pushes its queued writes; the
   conflicting document ends as the hub had it and the write edge reports the conflict.
6. The summary shows the three copies are identical. Everything lives in a temporary directory
   that is removed at the end.

Exit code 0 when everything converged and the conflict was reported, 1 otherwise (with the
reason on stderr).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import orjson

from ..asyncio.collection import SyncedCollection
from ..asyncio.sync import ServerSync
from ..replication.changes import ChangeEvent
from ..stores import SQLiteStore
from .demo_link import Link
from .output import to_json

__all__ = ["DemoFailed", "run_demo"]

SAMPLE = [
    {"_id": "pen", "name": "Fountain pen", "price": 12.5, "stock": 40},
    {"_id": "ink", "name": "Blue ink", "price": 4.0, "stock": 120},
    {"_id": "notebook", "name": "A5 notebook", "price": 6.9, "stock": 75},
    {"_id": "eraser", "name": "Eraser", "price": 0.8, "stock": 300},
    {"_id": "stapler", "name": "Stapler", "price": 9.5, "stock": 12},
]

# Quick reconnects: the demo's outage is on loopback and seconds matter.
_EDGE_OPTIONS: dict[str, Any] = {
    "heartbeat_interval": 5.0,
    "backoff_initial": 0.02,
    "backoff_max": 0.2,
    "stable_after": 0.5,
    "open_timeout": 3.0,
    "push_backoff_max": 0.2,
}
_POLL = 0.02

# What the scenario must end with: both sides' offline changes merged, the hub's pen price kept.
EXPECTED = [
    {"_id": "glue", "name": "Glue stick", "price": 1.5, "stock": 90},
    {"_id": "ink", "name": "Blue ink", "price": 4.0, "stock": 100},
    {"_id": "marker", "name": "Highlighter", "price": 2.2, "stock": 60},
    {"_id": "notebook", "name": "A5 notebook", "price": 6.9, "stock": 70},
    {"_id": "pen", "name": "Fountain pen", "price": 13.9, "stock": 40},
    {"_id": "ruler", "name": "Steel ruler", "price": 3.5, "stock": 30},
]


class DemoFailed(Exception):
    """The demo did not reach the state it expected."""


class _Narrator:
    def __init__(self, stream: IO[str], json: bool) -> None:
        self.stream = stream
        self.json = json
        self.t0 = time.monotonic()

    def say(self, step: str, text: str, **data: Any) -> None:
        elapsed = time.monotonic() - self.t0
        if self.json:
            record = {"step": step, "t": round(elapsed, 3), "text": text}
            record.update({k: to_json(v) for k, v in data.items()})
            self.stream.write(orjson.dumps(record).decode() + "\n")
        else:
            self.stream.write(f"[{elapsed:5.2f}s] {text}\n")
        self.stream.flush()

    def table(self, docs: list[dict[str, Any]]) -> None:
        if self.json:
            return
        for d in docs:
            rest = ", ".join(f"{k}={v}" for k, v in d.items() if k != "_id")
            self.stream.write(f"          {d['_id']:<10} {rest}\n")
        self.stream.flush()


async def _until(
    what: str, predicate: Callable[[], Awaitable[bool] | bool], timeout: float
) -> None:
    """Poll ``predicate`` until true, at most ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        if loop.time() >= deadline:
            raise DemoFailed(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(_POLL)


class _Demo:
    def __init__(self, workdir: Path, say: _Narrator, timeout: float) -> None:
        self.dir = workdir
        self.n = say
        self.timeout = timeout
        self.hub: Any = None
        self.link: Link | None = None
        self.remotes: list[ServerSync] = []
        self.conflicts: list[ChangeEvent] = []

    async def hub_docs(self) -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = await self.hub.store.find("items", sort=[("_id", 1)])
        return docs

    @staticmethod
    async def edge_docs(coll: SyncedCollection) -> list[dict[str, Any]]:
        return await coll.find({}, sort=[("_id", 1)])

    async def converged(self, *colls: SyncedCollection) -> bool:
        hub = await self.hub_docs()
        for c in colls:
            if not c.is_live or c.stats.pending or await self.edge_docs(c) != hub:
                return False
        return True

    async def collect_conflicts(self, stream: Any) -> None:
        async for ev in stream:
            if ev.op == "conflict":
                self.conflicts.append(ev)

    async def run(self) -> None:
        from ..hub import ServerSyncServer

        n = self.n
        self.hub = ServerSyncServer(
            SQLiteStore(str(self.dir / "hub.db")),
            allow_anonymous=True,
            heartbeat_interval=5.0,
            compression=None,
        )
        self.hub.collection("items")
        running = await self.hub.serve("127.0.0.1", 0)
        for doc in SAMPLE:
            await self.hub.insert("items", doc)
        n.say("hub", f"hub serving 'items' ({len(SAMPLE)} documents, SQLite) at {running.url}")

        self.link = await Link(running.port).start()
        w_remote = ServerSync(
            self.link.url(), store=SQLiteStore(str(self.dir / "edge-write.db")), name="hub",
            **_EDGE_OPTIONS,
        )  # fmt: skip
        r_remote = ServerSync(
            self.link.url(), store=SQLiteStore(str(self.dir / "edge-read.db")), name="hub",
            **_EDGE_OPTIONS,
        )  # fmt: skip
        self.remotes = [w_remote, r_remote]
        await w_remote.start()
        await r_remote.start()
        w_items = await w_remote.sync("items", mode="write")
        r_items = await r_remote.sync("items", mode="read")
        watcher = asyncio.ensure_future(self.collect_conflicts(w_items.changes()))
        try:
            await self.scenario(w_items, r_items)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def scenario(self, w_items: SyncedCollection, r_items: SyncedCollection) -> None:
        n, hub, link = self.n, self.hub, self.link
        assert link is not None
        t = self.timeout
        await w_items.wait_ready(timeout=t)
        await r_items.wait_ready(timeout=t)
        n.say(
            "edges",
            f"write edge and read edge synced {await w_items.count()} documents each "
            "through a relay the demo can cut",
        )

        await w_items.insert({"_id": "marker", "name": "Highlighter", "price": 2.2, "stock": 60})
        await hub.update("items", {"_id": "ink"}, {"$inc": {"stock": -20}})
        await _until("online changes to converge", lambda: self.converged(w_items, r_items), t)
        n.say(
            "online",
            "online: the write edge added 'marker', the hub sold 20 ink; all three copies agree",
        )

        link.cut()
        await _until(
            "both edges to notice the cut",
            lambda: not w_items.is_live and not r_items.is_live,
            t,
        )
        n.say("cut", "link cut: both edges are offline and keep serving reads from their caches")

        await hub.update("items", {"_id": "pen"}, {"$set": {"price": 13.9}})
        await hub.insert(
            "items", {"_id": "ruler", "name": "Steel ruler", "price": 3.5, "stock": 30}
        )
        await hub.remove("items", {"_id": "eraser"})
        n.say(
            "hub-offline",
            "hub (meanwhile): pen price 12.5 -> 13.9, added 'ruler', removed 'eraser'",
        )

        await w_items.update("pen", {"$set": {"price": 11.0}})
        await w_items.update("notebook", {"$inc": {"stock": -5}})
        await w_items.insert({"_id": "glue", "name": "Glue stick", "price": 1.5, "stock": 90})
        await w_items.remove("stapler")
        queued = w_items.stats.pending
        n.say(
            "edge-offline",
            f"write edge (offline): pen price -> 11.0 (conflicts with the hub), notebook stock -5, "
            f"added 'glue', removed 'stapler'; {queued} writes queued durably",
            queued=queued,
        )

        link.restore()
        n.say("restore", "link restored")
        await _until(
            "both edges to converge with the hub",
            lambda: self.converged(w_items, r_items),
            t,
        )
        await _until("the conflict report", lambda: bool(self.conflicts), t)
        await self.summary(w_items, r_items)

    async def summary(self, w_items: SyncedCollection, r_items: SyncedCollection) -> None:
        n = self.n
        hub_docs = await self.hub_docs()
        w_docs, r_docs = await self.edge_docs(w_items), await self.edge_docs(r_items)
        if not (w_docs == r_docs == hub_docs):
            raise DemoFailed("the edges and the hub hold different documents")
        if hub_docs != EXPECTED:
            got = {d["_id"]: {k: v for k, v in d.items() if k != "_id"} for d in hub_docs}
            raise DemoFailed(f"the copies agree, but not on the expected outcome: they hold {got}")
        if sorted({str(ev.id) for ev in self.conflicts}) != ["pen"]:
            ids = ", ".join(sorted({str(ev.id) for ev in self.conflicts}))
            raise DemoFailed(f"expected one conflict, on 'pen'; the write edge reported: {ids}")
        n.say(
            "converged",
            f"converged: hub, write edge and read edge hold the same {len(hub_docs)} documents",
            documents=hub_docs,
        )
        n.table(hub_docs)
        for ev in self.conflicts:
            info = ev.conflict
            local = None if info is None or info.local is None else info.local.get("price")
            remote = None if info is None or info.remote is None else info.remote.get("price")
            n.say(
                "conflict",
                f"conflict reported by the write edge on {ev.id!r}: its offline price {local} "
                f"lost to the hub's {remote} (the remote wins)",
                id=ev.id,
                local=None if info is None else info.local,
                remote=None if info is None else info.remote,
            )
        stats = w_items.stats
        n.say(
            "stats",
            f"write edge: {stats.pushed} writes pushed, {stats.conflicts} conflict, "
            f"{stats.pending} pending, {stats.failed} failed",
            pushed=stats.pushed,
            conflicts=stats.conflicts,
        )

    async def close(self) -> None:
        for remote in self.remotes:
            with contextlib.suppress(Exception):
                await remote.close()
        if self.link is not None:
            await self.link.close()
        if self.hub is not None:
            await self.hub.close()


async def run_demo(
    *, json: bool = False, timeout: float = 45.0, stream: IO[str] | None = None
) -> int:
    """Run the demo; return the exit code (0: converged and the conflict was reported)."""
    out = stream or sys.stdout
    lib_logger = logging.getLogger("aioserversync")
    quiet = lib_logger.getEffectiveLevel() >= logging.WARNING
    old_level = lib_logger.level
    if quiet:
        # The demo cuts the link on purpose: the warnings that would explain a real outage are
        # noise here (-v shows them).
        lib_logger.setLevel(logging.ERROR)
    narrator = _Narrator(out, json)
    try:
        with tempfile.TemporaryDirectory(prefix="aioserversync-demo-") as tmp:
            demo = _Demo(Path(tmp), narrator, timeout)
            try:
                async with asyncio.timeout(timeout + 10):
                    await demo.run()
            except (DemoFailed, TimeoutError) as exc:
                reason = str(exc) or "the demo took too long"
                sys.stderr.write(f"aioserversync demo: FAILED: {reason}\n")
                return 1
            finally:
                await demo.close()
        narrator.say("done", "done: every process and temporary file is gone")
        return 0
    finally:
        lib_logger.setLevel(old_level)

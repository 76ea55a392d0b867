"""What the scenarios time: raw websockets baselines and aioserversync edges, one run each.

Every function connects first, then times from sending the subscription (or calling ``sync``)
to ``ready`` (or ``wait_ready``), and returns ``(wall seconds, CPU seconds of this process)``.
Each run checks its result (document count, last counter) outside the timed span.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import connect

from aioserversync import ServerSync
from aioserversync.stores import MemoryStore, SQLiteStore, Store
from benchmarks.common import cpu, now

Timing = tuple[float, float]
READY = b'{"msg":"ready"'
END = b'{"msg":"added","collection":"items","id":"END"'
CLIENT_OPTIONS: dict[str, Any] = {
    "compression": None,  # ddp-blaster and the hub benches run without permessage-deflate
    "heartbeat_interval": 0,
    "max_size": 64 * 2**20,
}


class StoreFactory:
    """Fresh stores of one kind for successive runs: ``sqlite``, ``memory`` or ``mongo``.

    Args:
        kind: The store kind.
        folder: Where SQLite files go (each run gets a new file, removed after the run).
        mongo_uri: The MongoDB (or nx-27017) URI for ``mongo``.
    """

    def __init__(self, kind: str, folder: Path, mongo_uri: str | None = None) -> None:
        self.kind = kind
        self.folder = folder
        self.mongo_uri = mongo_uri

    @contextlib.asynccontextmanager
    async def make(self) -> AsyncIterator[Store]:
        """Yield a new, unopened store; clean it up afterwards."""
        if self.kind == "memory":
            yield MemoryStore()
        elif self.kind == "sqlite":
            run = self.folder / f"run-{uuid.uuid4().hex[:8]}"
            run.mkdir(parents=True)
            try:
                yield SQLiteStore(run / "edge.sqlite3")
            finally:
                shutil.rmtree(run, ignore_errors=True)
        elif self.kind == "mongo":
            from pymongo import AsyncMongoClient

            from aioserversync.stores import MongoStore

            assert self.mongo_uri is not None
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self.mongo_uri)
            name = f"bench_{uuid.uuid4().hex[:8]}"
            try:
                yield MongoStore(client[name])
                await client.drop_database(name)
            finally:
                await client.close()
        else:
            raise ValueError(f"unknown store kind {self.kind!r}")


async def raw_ws(url: str, params: list[int], mode: str) -> Timing:
    """The websockets baseline: ``recv`` (frames only), ``parse`` (+ orjson) or ``store`` (+ dict).

    Raises:
        AssertionError: The run did not receive the expected documents.
    """
    loads = orjson.loads
    async with connect(
        url, max_size=64 * 2**20, compression=None, proxy=None, ping_interval=None
    ) as ws:
        await ws.send(orjson.dumps({"msg": "connect", "version": "1", "support": ["1"]}), text=True)
        while loads(await ws.recv(decode=False)).get("msg") != "connected":
            pass
        recv = ws.recv
        sub = orjson.dumps({"msg": "sub", "id": "s1", "name": "items", "params": params})
        t0, c0 = now(), cpu()
        await ws.send(sub, text=True)
        n = 0
        docs: dict[str, Any] = {}
        if mode == "recv":
            while True:
                data = await recv(decode=False)
                if data[8:10] == b"re" and data.startswith(READY):
                    break
                n += 1
        elif mode == "parse":
            while True:
                m = loads(await recv(decode=False))
                t = m["msg"]
                if t == "added":
                    n += 1
                elif t == "ready":
                    break
        else:
            while True:
                m = loads(await recv(decode=False))
                t = m["msg"]
                if t == "added":
                    docs[m["id"]] = m["fields"]
                elif t == "ready":
                    break
            n = len(docs)
        timing = now() - t0, cpu() - c0
    assert n == params[0], (mode, n, params)
    return timing


async def initial_sync(
    url: str, n: int, store: Store, *, via: str = "auto", hub: bool = False, **sync: Any
) -> Timing:
    """``ServerSync(mode="read")`` of ``items`` into ``store``: ``sync()`` to ``wait_ready``.

    ddp-blaster's publication takes ``[n]`` as its argument; a hub's takes none (a publication
    with arguments is always synced through the stock path).

    Raises:
        AssertionError: The store does not hold the ``n`` documents afterwards.
    """
    async with ServerSync(url, store=store, **CLIENT_OPTIONS) as remote:
        return await timed_sync(remote, n, via=via, hub=hub, **sync)


async def timed_sync(
    remote: ServerSync, n: int, *, via: str = "auto", hub: bool = False, **sync: Any
) -> Timing:
    """The timed part of :func:`initial_sync`, on an open ``remote`` (left open).

    Raises:
        AssertionError: The store does not hold the ``n`` documents afterwards.
    """
    args = [] if hub else [n]
    await remote.client.wait_connected(timeout=60)
    t0, c0 = now(), cpu()
    items = await remote.sync("items", mode="read", args=args, via=via, **sync)
    await items.wait_ready(timeout=900)
    timing = now() - t0, cpu() - c0
    count = await items.count()
    assert count == n, (count, n)
    return timing


async def live_changes(url: str, docs: int, changes: int, store: Store, *, listen: bool) -> Timing:
    """Subscribe ``items [docs, changes]``; time from ``ready`` to the ``END`` document applied.

    With ``listen`` the END marker is seen through ``changes()`` (a change event per document,
    as an application watching the collection gets them); without, by reading the store.

    Raises:
        AssertionError: The last counter in the store is not ``changes``.
    """
    async with ServerSync(url, store=store, **CLIENT_OPTIONS) as remote:
        await remote.client.wait_connected(timeout=60)
        items = await remote.sync("items", mode="read", args=[docs, changes])
        stream = items.changes(max_queue=changes + docs + 10) if listen else None
        await items.wait_ready(timeout=300)
        t0, c0 = now(), cpu()
        if stream is not None:
            async for ev in stream:
                if ev.id == "END":
                    break
        else:
            # No listener: watch the receive counter (no store reads while the changes stream in),
            # then the store for the END document.
            expected = docs + changes + 1
            async with asyncio.timeout(300):
                while items.stats.received < expected:  # noqa: ASYNC110 - a bounded poll
                    await asyncio.sleep(0.001)
                while await items.get("END") is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.001)
        timing = now() - t0, cpu() - c0
        top = await items.find({"counter": {"$exists": True}}, sort=[("counter", -1)], limit=1)
    assert top and top[0]["counter"] == changes, top
    return timing


def temp_folder(prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary folder for one scenario's files."""
    return tempfile.TemporaryDirectory(prefix=f"aioserversync-{prefix}-")

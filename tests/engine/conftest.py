"""Fixtures for the sync engine: a Meteor-like app behind a fault proxy, stores, edge factory."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from aioserversync.asyncio.collection import SyncedCollection
from aioserversync.asyncio.sync import ServerSync
from aioserversync.exceptions import StoreError
from aioserversync.stores import MemoryStore, MongoStore, SQLiteStore
from aioserversync.stores.base import Store
from tests.conftest import MS
from tests.meteor_app import MeteorApp
from tests.proxy import FaultProxy
from tests.utils import wait_for_condition


def seeds(runs_var: str, default: int = 50) -> range:
    """Seeds of a randomized test: ``$<runs_var>`` of them from ``$AIOSERVERSYNC_SEED_BASE``.

    CI runs seeds 0..49; a soak run explores others, e.g. ``AIOSERVERSYNC_SEED_BASE=1000
    AIOSERVERSYNC_FAULT_RUNS=500 pytest tests/engine/test_faults.py``.
    """
    base = int(os.environ.get("AIOSERVERSYNC_SEED_BASE", "0"))
    return range(base, base + int(os.environ.get(runs_var, str(default))))


SEED = [{"_id": f"d{i}", "name": f"doc {i}", "n": i} for i in range(5)]
_db_counter = itertools.count()

# Fast reconnects for tests (the defaults are sized for real networks).
EDGE_OPTIONS: dict[str, Any] = {
    "heartbeat_interval": 0,
    "backoff_initial": 0.005,
    "backoff_max": 0.05,
    "stable_after": 0,
    "open_timeout": 2.0,
    "push_backoff_max": 0.05,
}


@pytest.fixture
async def app() -> AsyncIterator[MeteorApp]:
    meteor = MeteorApp()
    meteor.add_collection("items", SEED)
    await meteor.start()
    yield meteor
    await meteor.stop()


@pytest.fixture
async def proxy(app: MeteorApp) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(app.port) as p:
        yield p


StoreFactory = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["memory", "sqlite", "mongo"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_store(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Callable[..., Store]]:
    """Build stores of the parametrised kind; the same ``key`` gives the same storage again."""
    clients: list[Any] = []

    def build(key: str = "edge") -> Store:
        if store_kind == "memory":
            return MemoryStore()
        if store_kind == "sqlite":
            return SQLiteStore(str(tmp_path / f"{key}.db"))
        from pymongo import AsyncMongoClient

        uri = request.getfixturevalue("mongo_uri")
        client: AsyncMongoClient[Any] = AsyncMongoClient(uri)
        clients.append(client)
        return MongoStore(client[f"edge_{key}_{next(_db_counter)}"])

    yield build
    for client in clients:
        await client.close()


class InstrumentedStore(SQLiteStore):
    """A real SQLiteStore that counts its transactions and fails the next ``times`` batches
    that match ``fail_when`` (instrumentation and fault injection, not a mock).

    A full disk or an I/O error cannot be made on demand here; the injected error is raised
    before the real ``apply`` runs, as SQLite fails a transaction before it commits.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.applies = 0
        self.fail_when: Callable[[list[Any]], bool] | None = None
        self.times = 1
        self.failures = 0

    async def apply(self, batch: Any) -> Any:
        self.applies += 1
        ops = list(batch)
        if self.fail_when is not None and self.fail_when(ops):
            self.failures += 1
            if self.failures >= self.times:
                self.fail_when = None
            raise StoreError("database or disk is full (injected)")
        return await super().apply(ops)


async def edge(url: str, store: Store, **options: Any) -> ServerSync:
    opts = {**EDGE_OPTIONS, "name": "app", **options}
    remote = ServerSync(url, store=store, **opts)
    await remote.start()
    return remote


@asynccontextmanager
async def synced(
    proxy: FaultProxy, store: Store, *, offline: bool = False, **sync: Any
) -> AsyncIterator[tuple[ServerSync, SyncedCollection]]:
    """An edge syncing ``items`` through ``proxy`` into ``store``, ready (then offline if
    asked); closed on exit."""
    remote = await edge(proxy.url(), store)
    try:
        items = await remote.sync("items", **sync)
        await items.wait_ready(timeout=5000 * MS)
        if offline:
            await go_offline(proxy, remote)
        yield remote, items
    finally:
        await remote.close()


async def go_offline(proxy: FaultProxy, remote: ServerSync) -> None:
    """Cut the link and keep it down until :func:`go_online`."""
    proxy.refuse()
    proxy.cut()
    await wait_for_condition(lambda: not remote.client.connected, message="disconnect")


async def go_online(proxy: FaultProxy, *colls: SyncedCollection, drained: bool = True) -> None:
    """Restore the link; wait until each collection's round is applied (and its outbox empty)."""
    proxy.restore()
    for coll in colls:
        await wait_for_condition(lambda c=coll: c.is_live, message=f"{coll.name} live")
        if drained:
            await coll.wait_drained(timeout=5000 * MS)


async def server_docs(app: MeteorApp, name: str = "items") -> list[dict[str, Any]]:
    return sorted(app.docs[name].values(), key=lambda d: str(d["_id"]))


async def edge_docs(coll: SyncedCollection) -> list[dict[str, Any]]:
    return sorted(await coll.find({}), key=lambda d: str(d["_id"]))


async def converged(app: MeteorApp, coll: SyncedCollection, name: str = "items") -> bool:
    return await server_docs(app, name) == await edge_docs(coll)


def drain_events(stream: Any) -> list[Any]:
    out = []
    while (ev := stream.try_next()) is not None:
        out.append(ev)
    return out

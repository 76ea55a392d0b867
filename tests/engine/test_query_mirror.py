"""Mirroring part of a collection (``query=``) under random changes and cuts (seeded).

The remote changes documents so that they enter and leave the filter, while the link goes up
and down. The edge's copy must end equal to the remote's documents that match the filter.
Against a hub every change carries the whole document, so this holds as soon as the edge is
caught up; against a stock server a live ``changed`` carries only the changed fields, so a
document entering the filter appears at the next resync (docs/modes.md), and the run ends with
one (a reconnect). The stock server also changes documents within each round, between its
``added`` and its ``ready``: the edge must judge them on whole documents (one that entered the
filter by a change within the last round may be missing, never partial). In ``write`` mode the
edge also writes, online and offline: local inserts and updates that leave the filter, removes,
conflicts with the remote's changes; the mirror must still end equal to the filtered remote,
with nothing dead-lettered.

A second test restarts the edge twice on the same store, with a filter drawn anew each time
(or none), and checks the last run's mirror against its own filter.

CI runs seeds 0..14 of each (0..7 of the restarts); ``AIOSERVERSYNC_QUERY_RUNS`` and
``AIOSERVERSYNC_SEED_BASE`` explore more.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from aioserversync.asyncio.server import DDPServer, Publication, serve
from aioserversync.query import compile_selector
from aioserversync.stores import SQLiteStore
from tests.conftest import MS
from tests.engine.conftest import edge, go_offline, seeds
from tests.engine.remotes import ItemsRemote
from tests.proxy import FaultProxy
from tests.utils import wait_for_condition

QUERIES: list[dict[str, Any]] = [
    {"n": {"$gte": 50}},
    {"$or": [{"tag": "x"}, {"n": {"$lt": 10}}]},
    {"tag": {"$in": ["x", "y"]}, "n": {"$ne": 7}},
]


class _Side:
    """The remote (``ItemsRemote``) or the edge's collection, as the random writes see them."""

    def __init__(self, target: Any, local: bool) -> None:
        self.target, self.local = target, local

    async def ids(self) -> list[str]:
        docs = await (self.target.find({}) if self.local else self.target.docs())
        return sorted(d["_id"] for d in docs) if self.local else [d["_id"] for d in docs]

    async def update(self, doc_id: str, fields: dict[str, Any]) -> None:
        await self.target.update(doc_id, {"$set": fields} if self.local else fields)


async def _random_writes(
    rng: random.Random, side: _Side, prefix: str, made: int, count: int, inserts: float, seven: bool
) -> int:
    """``count`` random writes: inserts (a share ``inserts``; new ids from ``<prefix><made>``),
    updates of ``n`` or ``tag`` (or ``n`` set to 7), removes. Returns ``made``."""
    for _ in range(count):
        ids = await side.ids()
        op = rng.random()
        if op < inserts or not ids:
            fields = {"n": rng.randrange(100), "tag": rng.choice("xyz")}
            await side.target.insert({"_id": f"{prefix}{made}", **fields})
            made += 1
        elif op < 0.85:
            fields = _change(rng, seven)
            await side.update(rng.choice(ids), fields)
        else:
            await side.target.remove(rng.choice(ids))
    return made


async def change_remote(
    rng: random.Random,
    server: ItemsRemote,
    made: int,
    count: int,
    inserts: float,
    *,
    seven: bool = False,
) -> int:
    """``count`` random changes on the remote (new ids ``d<made>``); returns ``made``."""
    return await _random_writes(rng, _Side(server, False), "d", made, count, inserts, seven)


async def write_locally(
    rng: random.Random, items: Any, made: int, count: int, inserts: float, *, seven: bool = False
) -> int:
    """``count`` random local writes (new ids ``e<made>``); returns ``made``."""
    return await _random_writes(rng, _Side(items, True), "e", made, count, inserts, seven)


def _change(rng: random.Random, seven: bool) -> dict[str, Any]:
    options: list[dict[str, Any]] = [{"n": rng.randrange(100)}, {"tag": rng.choice("xyz")}]
    return rng.choice([*options, {"n": 7}] if seven else options)


@pytest.mark.parametrize("mode", ["read", "write"])
@pytest.mark.parametrize("kind", ["meteor", "hub"])
@pytest.mark.parametrize("seed", seeds("AIOSERVERSYNC_QUERY_RUNS", 15))
async def test_a_filtered_mirror_ends_equal_to_the_matching_remote_documents(
    seed: int, kind: str, mode: str, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    query = rng.choice(QUERIES)
    first = [{"_id": f"d{i}", "n": rng.randrange(100), "tag": rng.choice("xyz")} for i in range(8)]
    server = ItemsRemote(kind, first)
    match = compile_selector(query)
    sent: dict[str, dict[str, Any]] = {}  # the documents as the latest round's added sent them
    if server.app is not None:
        app = server.app

        async def change_in_round(name: str) -> None:
            # Between the round's added and its ready: these reach the edge as changed/removed
            # within the round, which judges the whole documents.
            sent.clear()
            sent.update((k, dict(v)) for k, v in app.docs[name].items())
            for _ in range(rng.randrange(4)):
                ids = sorted(app.docs[name])
                if not ids:
                    return
                op, doc_id = rng.random(), rng.choice(ids)
                if op < 0.8:
                    fields = rng.choice([{"n": rng.randrange(100)}, {"tag": rng.choice("xyz")}])
                    app.update(name, doc_id, {"$set": fields})
                else:
                    app.remove(name, doc_id)

        app.before_ready = change_in_round
    await server.start()
    proxy = await FaultProxy(server.port).start()
    remote = await edge(proxy.url(), SQLiteStore(tmp_path / "edge.db"))
    try:
        items = await remote.sync("items", mode=mode, query=query)
        await items.wait_ready(timeout=5000 * MS)
        made, mine_made = 8, 0
        for _ in range(3):
            down = rng.random() < 0.4
            if down:
                await go_offline(proxy, remote)
            made = await change_remote(rng, server, made, rng.randrange(2, 10), 0.2, seven=True)
            if mode == "write":
                # Local writes, online or offline: some take documents out of the filter or
                # bring new ones that do not match; conflicts with the remote's changes above.
                mine_made = await write_locally(
                    rng, items, mine_made, rng.randrange(4), 0.3, seven=True
                )
            if down:
                proxy.restore()
        if kind == "meteor":  # a resync judges every document whole
            await go_offline(proxy, remote)
            proxy.restore()

        async def converged() -> bool:
            if not remote.status.connected:
                return False
            await remote._sync_barrier()
            want = {d["_id"]: d for d in await server.docs() if match(d)}
            mine = {d["_id"]: d for d in await items.find({})}
            # A document whose added in the last round did not match, and a change within that
            # round made it match, waits for the next round: it may be missing, never partial.
            waiting = {i for i in want if i in sent and not match(sent[i])}
            return all(want.get(i) == d for i, d in mine.items()) and set(want) - set(mine) <= (
                waiting
            )

        await items.wait_drained(timeout=8000 * MS)
        await wait_for_condition(converged, timeout=8000 * MS, message="mirror == filtered remote")
        assert await items.failed() == []
    finally:
        await remote.close()
        await proxy.close()
        await server.stop()


@pytest.mark.parametrize("mode", ["read", "write"])
@pytest.mark.parametrize("kind", ["meteor", "hub"])
@pytest.mark.parametrize("seed", seeds("AIOSERVERSYNC_QUERY_RUNS", 8))
async def test_restarts_with_another_filter_end_equal_to_the_last_filter(
    seed: int, kind: str, mode: str, tmp_path: Path
) -> None:
    """Three runs of an edge on one store, each with a filter drawn anew (or none), the remote
    changing documents meanwhile and, in ``write`` mode, the edge writing online and offline
    and stopping with writes pending. The last run's mirror ends equal to the remote's documents
    that match its filter: a hub checkpoint does not cover what an earlier filter left out, and
    what a narrower filter leaves behind goes (docs/modes.md)."""
    rng = random.Random(seed)
    first = [{"_id": f"d{i}", "n": rng.randrange(100), "tag": rng.choice("xyz")} for i in range(8)]
    server = ItemsRemote(kind, first)
    await server.start()
    proxy = await FaultProxy(server.port).start()
    path = tmp_path / "edge.db"
    made, mine_made = 8, 0
    try:
        for run in range(3):
            query = rng.choice([*QUERIES, None])
            remote = await edge(proxy.url(), SQLiteStore(path))
            try:
                items = await remote.sync("items", mode=mode, query=query)
                await items.wait_ready(timeout=5000 * MS)
                down = rng.random() < 0.5
                if down:
                    await go_offline(proxy, remote)
                made = await change_remote(rng, server, made, rng.randrange(2, 8), 0.25)
                if mode == "write":
                    mine_made = await write_locally(rng, items, mine_made, rng.randrange(4), 0.4)
                if down:
                    proxy.restore()
                if run < 2:
                    continue  # stop now, writes pending or not
                await items.wait_drained(timeout=8000 * MS)
                if kind == "meteor":  # a round brings documents a live change let in
                    await go_offline(proxy, remote)
                    proxy.restore()
                match = compile_selector(query) if query else (lambda _d: True)

                async def converged(r: Any = remote, coll: Any = items, m: Any = match) -> bool:
                    if not r.status.connected:
                        return False
                    await r._sync_barrier()
                    want = {d["_id"]: d for d in await server.docs() if m(d)}
                    return want == {d["_id"]: d for d in await coll.find({})}

                await wait_for_condition(converged, timeout=8000 * MS, message="mirror")
                assert await items.failed() == []
            finally:
                await remote.close()
    finally:
        await proxy.close()
        await server.stop()


@pytest.mark.parametrize("strategy", ["merge", "no_merge_no_history"])
async def test_changes_during_a_round_are_judged_on_whole_documents(
    tmp_path: Path, strategy: str
) -> None:
    """A ``changed`` that comes before ``ready`` carries only the changed fields. The round
    judges the whole document it makes: one that stops matching is not kept, one still matching
    is kept with the change, and one whose ``added`` did not match is not stored as a partial
    document (a later round brings it whole)."""
    server = DDPServer(compression=None)

    @server.publish("items", strategy=strategy)
    async def items_pub(pub: Publication) -> None:
        pub.added("items", "in-out", {"name": "a", "n": 60})
        pub.added("items", "out-in", {"name": "b", "n": 10})
        pub.added("items", "in-in", {"name": "c", "n": 70, "x": 1})
        pub.added("items", "gone", {"name": "d", "n": 90})
        pub.changed("items", "in-out", {"n": 5})
        pub.changed("items", "out-in", {"n": 80})
        pub.changed("items", "in-in", {"name": "cc"}, ["x"])
        pub.changed("items", "gone", {"n": 91})
        pub.removed("items", "gone")
        pub.ready()

    async with serve(server, "127.0.0.1", 0) as running:
        remote = await edge(f"http://127.0.0.1:{running.port}", SQLiteStore(tmp_path / "e.db"))
        try:
            items = await remote.sync("items", mode="read", query={"n": {"$gte": 50}})
            await items.wait_ready(timeout=5000 * MS)
            assert await items.find({}) == [{"_id": "in-in", "name": "cc", "n": 70}]
        finally:
            await remote.close()

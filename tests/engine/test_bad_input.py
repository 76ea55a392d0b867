"""A misbehaving (or merely no-merge) server: the engine logs, tolerates, and keeps going."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from aioserversync.asyncio.server import DDPServer, Publication, serve
from aioserversync.stores import MemoryStore, SQLiteStore
from tests.conftest import MS
from tests.engine.conftest import edge
from tests.utils import wait_for_condition


def frame(**msg: Any) -> bytes:
    return orjson.dumps(msg)


ODD_FRAMES = [
    frame(msg="changed", collection="items", id="ghost", fields={"g": 1}),  # unknown id: added
    frame(msg="removed", collection="items", id="nobody"),  # unknown id: ignored
    frame(msg="added", collection="items", id="a", fields={"v": 1}),
    frame(msg="added", collection="items", id="a", fields={"v": 2}),  # duplicate: merged
    frame(msg="added", collection="elsewhere", id="z", fields={"v": 0}),  # never synced
    frame(msg="changed", collection="items", id="a", cleared=["v"]),  # only cleared
    frame(msg="added", collection="items", id="c", fields={"_id": "other", "v": 3}),  # _id: dropped
    frame(msg="changed", collection="items", id="c", fields={"_id": "x", "w": 1}, cleared=["_id"]),
    frame(msg="added", collection="items", id="b"),  # no fields
]


@pytest.mark.parametrize("strategy", ["no_merge", "no_merge_no_history"])
@pytest.mark.parametrize("phase", ["initial", "live"])
@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_odd_data_is_tolerated(
    strategy: str, phase: str, kind: str, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="aioserversync")
    server = DDPServer(compression=None)
    subs: list[Publication] = []

    @server.publish("items", strategy=strategy)  # type: ignore[arg-type]
    async def items_pub(pub: Publication) -> None:
        subs.append(pub)
        if phase == "initial":
            pub.send_wire(ODD_FRAMES)
        pub.ready()

    async with serve(server, "127.0.0.1", 0) as running:
        store = MemoryStore() if kind == "memory" else SQLiteStore(str(tmp_path / "edge.db"))
        remote = await edge(f"http://127.0.0.1:{running.port}", store)
        try:
            items = await remote.sync("items", mode="read")
            await items.wait_ready(timeout=5000 * MS)
            if phase == "live":
                subs[0].send_wire(ODD_FRAMES)
                await wait_for_condition(lambda: items.get("b"), message="last frame applied")
                await remote._sync_barrier()
            docs = sorted(await items.find({}), key=lambda d: d["_id"])
            assert docs == [
                {"_id": "a"},
                {"_id": "b"},
                {"_id": "c", "v": 3, "w": 1},
                {"_id": "ghost", "g": 1},
            ]
            assert await items.find({"_id": {"$in": ["other", "x"]}}) == []
            assert remote.client.connected
            assert any("'elsewhere'" in r.getMessage() for r in caplog.records)
        finally:
            await remote.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_invalid_ejson_in_fields_is_dropped_not_fatal(kind: str, tmp_path: Path) -> None:
    server = DDPServer(compression=None)

    @server.publish("items", strategy="no_merge_no_history")
    async def items_pub(pub: Publication) -> None:
        pub.send_wire(
            [
                frame(msg="added", collection="items", id="bad", fields={"at": {"$date": "nope"}}),
                frame(msg="added", collection="items", id="bin", fields={"b": {"$binary": "@@"}}),
                b'{"msg":"added","collection":"items"',  # truncated JSON
                # Dates a datetime cannot hold (JavaScript's reach further): refused on arrival,
                # not stored to fail every later read.
                frame(msg="added", collection="items", id="far", fields={"at": {"$date": 10**16}}),
                frame(msg="added", collection="items", id="big", fields={"at": {"$date": 1e20}}),
                frame(
                    msg="added", collection="items", id="old", fields={"at": {"$date": -(10**14)}}
                ),
                frame(msg="added", collection="items", id="good", fields={"v": 1}),
            ]
        )
        pub.ready()

    async with serve(server, "127.0.0.1", 0) as running:
        store = MemoryStore() if kind == "memory" else SQLiteStore(str(tmp_path / "edge.db"))
        remote = await edge(f"http://127.0.0.1:{running.port}", store)
        try:
            items = await remote.sync("items", mode="read")
            await items.wait_ready(timeout=5000 * MS)
            assert [d["_id"] for d in await items.find({})] == ["good"]
            assert items.stats.resyncs == 1 and remote.client.stats.reconnects == 0  # the first
        finally:
            await remote.close()

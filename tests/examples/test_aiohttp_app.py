"""The aiohttp example, run in-process (``cleanup_ctx`` included) against a loopback DDP server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from examples.aiohttp_app import create_app
from tests.conftest import MS
from tests.examples.conftest import SEED
from tests.meteor_app import MeteorApp
from tests.utils import wait_for_condition


async def test_reads_writes_status_and_clean_shutdown(
    ddp_server: MeteorApp, example_env: Path
) -> None:
    tasks_before = asyncio.all_tasks()
    async with TestClient(TestServer(create_app())) as client:

        async def live() -> bool:
            r = await client.get("/status")
            return bool((await r.json())["live"])

        await wait_for_condition(live, timeout=5000 * MS, message="collection live")

        r = await client.get("/items")
        assert r.status == 200
        assert await r.json() == SEED

        r = await client.post("/items", json={"name": "from aiohttp"})
        assert r.status == 201
        new_id = (await r.json())["_id"]
        await wait_for_condition(
            lambda: ddp_server.get("items", new_id) is not None, message="insert pushed"
        )
        assert ddp_server.get("items", new_id) == {"_id": new_id, "name": "from aiohttp"}

        ddp_server.remove("items", "d2")

        async def removed() -> bool:
            return (await client.get("/items/d2")).status == 404

        await wait_for_condition(removed, message="server removal mirrored")

        status = await (await client.get("/status")).json()
        assert status["connected"] is True
        assert status["documents"] == len(SEED)  # one added, one removed
        assert status["pending"] == 0

        assert (await client.post("/items", data=b"not json")).status == 400
        assert (await client.post("/items", json=[1, 2])).status == 400

    leftover = {t for t in asyncio.all_tasks() - tasks_before if not t.done()}
    assert leftover == set()
    assert await asyncio.to_thread(example_env.exists)

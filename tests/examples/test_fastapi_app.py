"""The FastAPI example, run in-process (lifespan included) against a loopback DDP server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from examples.fastapi_app import create_app
from tests.conftest import MS
from tests.examples.conftest import SEED
from tests.meteor_app import MeteorApp
from tests.utils import wait_for_condition


async def test_reads_writes_status_and_clean_shutdown(
    ddp_server: MeteorApp, example_env: Path
) -> None:
    tasks_before = asyncio.all_tasks()
    api = create_app()
    async with (
        LifespanManager(api) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://example"
        ) as client,
    ):

        async def live() -> bool:
            return bool((await client.get("/status")).json()["live"])

        await wait_for_condition(live, timeout=5000 * MS, message="collection live")

        r = await client.get("/items")
        assert r.status_code == 200
        assert r.json() == SEED

        r = await client.post("/items", json={"name": "from fastapi"})
        assert r.status_code == 201
        new_id = r.json()["_id"]
        await wait_for_condition(
            lambda: ddp_server.get("items", new_id) is not None, message="insert pushed"
        )
        assert ddp_server.get("items", new_id) == {"_id": new_id, "name": "from fastapi"}

        # A change on the server shows up in the local reads.
        ddp_server.update("items", "d1", {"$set": {"name": "renamed"}})

        async def renamed() -> bool:
            r = await client.get("/items/d1")
            return r.status_code == 200 and r.json()["name"] == "renamed"

        await wait_for_condition(renamed, message="server change mirrored")
        assert (await client.get("/items/nope")).status_code == 404

        status = (await client.get("/status")).json()
        assert status["connected"] is True
        assert status["documents"] == len(SEED) + 1
        assert status["pending"] == 0
        assert status["mode"] == "online-write"

        bad = await client.post("/items", json={"_id": "d0", "name": "duplicate"})
        assert bad.status_code == 400

    leftover = {t for t in asyncio.all_tasks() - tasks_before if not t.done()}
    assert leftover == set()
    assert await asyncio.to_thread(example_env.exists)  # the cache stays for the next start

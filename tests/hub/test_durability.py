"""Durability: a hub killed with SIGKILL loses no acknowledged write, and its revisions only grow.

The hub runs in a subprocess (``tests.hub.hub_proc``, through ``run_hub``) on a real SQLite file.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.asyncio.test_server_support import RawClient
from tests.conftest import MS, ROOT
from tests.hub.conftest import call, client, insert_change, update_change


@asynccontextmanager
async def hub_process(db: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.hub.hub_proc", str(db), stdout=asyncio.subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20_000 * MS):
            line = (await proc.stdout.readline()).decode()
        assert line.startswith("port "), line
        yield proc, f"ws://127.0.0.1:{int(line.split()[1])}/websocket"
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def pull_all(c: RawClient) -> dict[str, list[Any]]:
    docs: dict[str, list[Any]] = {}
    since = 0
    while True:
        page = await call(c, "serversync/pull", "items", since, 500)
        for wid, rev, fields in page["docs"]:
            docs[wid] = [rev, fields]
        since = page["next"]
        if not page["more"]:
            return docs


async def test_sigkill_loses_no_acknowledged_write_and_revisions_keep_growing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "hub.sqlite3"
    acked: dict[str, int] = {}
    async with hub_process(db) as (proc, url), client(url, "tok") as c:
        for i in range(40):
            changes = [insert_change(f"m{i}-{j}", f"d{i}-{j}", {"i": i, "j": j}) for j in range(5)]
            result = await call(c, "serversync/push", "items", changes)
            for change, entry in zip(changes, result, strict=True):
                assert entry["status"] == "accepted"
                acked[change["id"]] = entry["rev"]
        result = await call(
            c, "serversync/push", "items", [update_change("u1", "d0-0", 1, {"i": -1})]
        )
        acked["d0-0"] = result[0]["rev"]
        # One more push goes out; the hub dies without our waiting for its result.
        in_flight = [insert_change(f"x{j}", f"x{j}", {"j": j}) for j in range(50)]
        await c.send(
            {
                "msg": "method",
                "id": "last",
                "method": "serversync/push",
                "params": ["items", in_flight],
            }
        )
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    top = max(acked.values())
    async with hub_process(db) as (proc, url), client(url, "tok") as c:
        docs = await pull_all(c)
        for wid, rev in acked.items():
            assert docs[wid][0] == rev, wid
        assert docs["d0-0"][1] == {"i": -1, "j": 0}
        # The in-flight push was all or nothing; re-sent, it is applied exactly once.
        landed = {wid for wid in docs if wid.startswith("x")}
        assert landed in (set(), {f"x{j}" for j in range(50)})
        result = await call(c, "serversync/push", "items", in_flight)
        assert [r["status"] for r in result] == ["accepted"] * 50
        revs = [r["rev"] for r in result]
        assert revs == sorted(revs) and revs[0] > top
        after = await call(c, "serversync/push", "items", [insert_change("n1", "new", {})])
        assert after[0]["rev"] > max(revs)
        docs = await pull_all(c)
        assert len(docs) == len(acked) + 50 + 1

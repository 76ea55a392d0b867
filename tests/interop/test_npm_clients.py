"""The npm DDP clients ``simpleddp`` and ``ddp.js`` against our DDPServer, run as Node processes.

Each script connects, subscribes, receives documents carrying a ``$date`` field, calls methods
(one unknown) and unsubscribes, then prints one JSON line of what it observed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from aioserversync.asyncio.server import DDPServer, MethodContext, Publication, serve
from tests.conftest import MS

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
AT = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
AT_MS = 1704164645678


def make_server() -> DDPServer:
    ddp = DDPServer()

    @ddp.publish("tasks")
    async def tasks(pub: Publication, list_id: str) -> None:
        pub.connection.data["tasks"] = pub
        pub.added("tasks", "t1", {"text": "hello", "list": list_id, "at": AT})
        pub.added("tasks", "t2", {"text": "second", "list": list_id, "at": AT})
        pub.ready()

    @ddp.method("tasks.add")
    async def add(ctx: MethodContext, text: str, when: datetime) -> dict[str, Any]:
        return {"text": text.upper(), "when": when, "session": ctx.connection.id}

    @ddp.method("tasks.rename")
    def rename(ctx: MethodContext, doc_id: str, text: str) -> bool:
        ctx.connection.data["tasks"].changed("tasks", doc_id, {"text": text})
        return True

    return ddp


async def run_node(node_modules: Path, script: str, url: str) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None
    env = {**os.environ, "NODE_PATH": str(node_modules)}
    proc = await asyncio.create_subprocess_exec(
        node,
        str(HERE / script),
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        async with asyncio.timeout(30_000 * MS):
            stdout, stderr = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    lines = stdout.decode().strip().splitlines()
    assert lines, f"no output from {script}; stderr:\n{stderr.decode()}"
    report: dict[str, Any] = orjson.loads(lines[-1])
    assert proc.returncode == 0 and "error" not in report, (report, stderr.decode())
    return report


async def test_simpleddp(node_modules: Path) -> None:
    ddp = make_server()
    async with serve(ddp, "127.0.0.1", 0) as running:
        report = await run_node(node_modules, "simpleddp_client.js", running.url)
    assert report["connected"] is True
    assert sorted(report["docs"], key=lambda d: d["id"]) == [
        {"id": "t1", "text": "hello", "list": "L1", "atIsDate": True, "atMs": AT_MS},
        {"id": "t2", "text": "second", "list": "L1", "atIsDate": True, "atMs": AT_MS},
    ]
    result = report["result"]
    assert result["text"] == "FROM NODE"
    assert result["whenIsDate"] is True and result["whenMs"] == 86_400_000
    assert isinstance(result["session"], str) and len(result["session"]) == 17
    assert report["afterRename"] == "renamed"
    assert report["unknownMethod"] == {"error": 404, "reason": "Method 'no.such.method' not found"}
    assert report["afterUnsub"] == 0


async def test_ddpjs(node_modules: Path) -> None:
    ddp = make_server()
    async with serve(ddp, "127.0.0.1", 0) as running:
        report = await run_node(node_modules, "ddpjs_client.js", running.url)
    assert report["connected"] is True
    assert report["readyDocs"] == 2
    add = report["results"]["add"]["result"]
    assert add["text"] == "FROM DDP.JS" and add["when"] == {"$date": 0}
    missing = report["results"]["missing"]["error"]
    assert missing["error"] == 404 and missing["reason"] == "Method 'no.such.method' not found"
    assert sorted(report["updated"]) == sorted(report["ids"].values())
    assert report["nosub"]["msg"] == "nosub" and "error" not in report["nosub"]
    assert report["docs"] == []  # unsub removed the documents before nosub

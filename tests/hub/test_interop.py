"""The npm client ``simpleddp`` against the hub: plain publication, resume login, mutators."""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from aioserversync.hub import HubServing, ServerSyncServer
from tests.conftest import MS
from tests.interop.conftest import node_modules  # noqa: F401 - the fixture

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent


async def run_node(node_modules: Path, script: str, *args: str) -> dict[str, Any]:  # noqa: F811
    node = shutil.which("node")
    assert node is not None
    proc = await asyncio.create_subprocess_exec(
        node,
        str(HERE / script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NODE_PATH": str(node_modules)},
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


async def test_simpleddp_subscribes_and_writes_through_mutators(
    hub: tuple[ServerSyncServer, HubServing],
    node_modules: Path,  # noqa: F811
) -> None:
    h, running = hub
    await h.insert("items", {"_id": "a", "name": "pen", "at": datetime(1970, 1, 1, tzinfo=UTC)})
    report = await run_node(node_modules, "hub_simpleddp.js", running.url, "tok-bob")
    assert report["login"] == {"id": "bob", "type": "resume", "expiresIsDate": True}
    assert report["initial"] == [{"id": "a", "name": "pen", "atMs": 0}]
    assert report["inserted"] == "js1"
    assert report["afterInsert"] == [
        {"id": "a", "name": "pen", "atMs": 0},
        {"id": "js1", "name": "from node", "atMs": 86400000},
    ]
    assert (report["updated"], report["afterUpdate"]) == (1, 5)
    assert report["nonIdRemove"] == {
        "error": 403,
        "reason": "Not permitted. Untrusted code may only remove documents by ID.",
    }
    assert (report["removed"], report["afterRemove"]) == (1, ["a"])
    assert h.revision("items") == 4

"""A write-mode edge killed with SIGKILL in the middle of its writes and pushes.

The edge (:mod:`tests.engine.edge_script`, its own process, SQLite) runs a seeded script of
inserts, ``$inc``, ``$set``, ``$unset`` and removes against documents it synced, and is killed at
a random moment: while it is still writing, or once the remote has applied some of its pushes.
A new process on the same file drains what was queued. Every write that returned reaches the
remote, and no write is taken for a conflict or dead-lettered.

Against a hub, none is applied twice either (each mutation id is accepted at one revision, and
the hub's revisions grew once per recorded mutation), and in half the runs the hub purges its
tombstones and mutation ids before the restart. Against a stock Meteor server (mutator methods,
decided by content), every insert is applied once.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from aioserversync.asyncio.method_context import WireResult
from aioserversync.hub import ServerSyncServer
from aioserversync.hub.collection import MUTATIONS_PREFIX
from aioserversync.stores import SQLiteStore
from tests.conftest import MS, ROOT
from tests.engine.conftest import seeds
from tests.engine.edge_script import SEED_DOCS, model, script
from tests.meteor_app import MeteorApp
from tests.utils import wait_for_condition

WRITES = 40


def record_pushes(hub: ServerSyncServer) -> dict[str, set[int]]:
    """Wrap the real hub's ``serversync/push`` handler: the revisions each mutation id was
    accepted at (a re-sent mutation is answered with its first result, so one revision)."""
    push = hub.ddp._methods["serversync/push"]
    accepted: dict[str, set[int]] = {}

    async def recording(ctx: Any, *params: Any) -> Any:
        result = await push(ctx, *params)
        value = result.value if isinstance(result, WireResult) else result
        entries = orjson.loads(orjson.dumps(value))
        for entry in entries:
            if isinstance(entry, dict) and entry.get("status") == "accepted":
                accepted.setdefault(entry["mid"], set()).add(entry["rev"])
        return result

    hub.ddp._methods["serversync/push"] = recording
    return accepted


async def _lines(proc: asyncio.subprocess.Process, out: list[str]) -> None:
    assert proc.stdout is not None
    async for raw in proc.stdout:
        out.append(raw.decode().strip())


async def kill_and_restart(
    seed: int,
    port: int,
    tmp_path: Path,
    applied: Callable[[], int],
    purge: bool,
    hub: ServerSyncServer | None,
) -> tuple[int, list[str]]:
    """Run the edge's script, kill it, (purge the hub), restart it to drain; return the number
    of writes that returned before the kill and the restarted edge's report lines."""
    rng = random.Random(seed * 7 + 1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "tests.engine.edge_script",
        "--url",
        f"http://127.0.0.1:{port}",
        "--db",
        str(tmp_path / "edge.db"),
    ]
    lines: list[str] = []
    proc = await asyncio.create_subprocess_exec(
        *cmd, "--seed", str(seed), "--writes", str(WRITES), stdout=asyncio.subprocess.PIPE, env=env
    )
    try:
        reader = asyncio.create_task(_lines(proc, lines))
        k = rng.randint(1, WRITES // 2)
        if rng.random() < 0.4:  # killed while it is still writing
            await wait_for_condition(
                lambda: sum(x.startswith("ack ") for x in lines) >= k,
                timeout=30_000 * MS,
                interval=MS,
            )
        else:  # killed once the remote has applied some of its pushes (or it is done)
            await wait_for_condition(
                lambda: applied() >= k or any(x.startswith("drained") for x in lines),
                timeout=30_000 * MS,
                interval=MS,
            )
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await reader
        acked = sum(x.startswith("ack ") for x in lines)
        if purge and hub is not None:
            await hub.purge("items")
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            "--writes",
            "0",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
        except TimeoutError:
            proc.kill()
            out, err = await proc.communicate()
            raise AssertionError(
                f"the restarted edge did not finish in 90 s; it said {out.decode()!r}, "
                f"and logged {err.decode()[-4000:]!r}"
            ) from None
        if proc.returncode != 0:
            (tmp_path / "restarted.err").write_bytes(err)
        assert proc.returncode == 0, (out, err.decode()[-4000:], str(tmp_path / "restarted.err"))
        report = out.decode().splitlines()
        assert "drained conflicts=0 failed=0" in report, (report, lines)
        return acked, report
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize("seed", seeds("AIOSERVERSYNC_HUB_KILL_RUNS", 10))
async def test_write_edge_killed_mid_drain_applies_every_write_once(
    seed: int, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    # Half the runs: the hub purges its tombstones and mutation ids while the edge is down (it
    # stayed away past the retention), so nothing the edge re-sends is recognised, and its
    # checkpoint has usually expired: it resyncs in full with its writes of unknown outcome.
    purge = rng.random() < 0.5
    hub = ServerSyncServer(
        SQLiteStore(tmp_path / "hub.db"),
        allow_anonymous=True,
        heartbeat_interval=0,
        purge_interval=0,
        tombstone_retention=1,
    )
    hub.collection("items")
    running = await hub.serve()
    accepted = record_pushes(hub)
    for i in range(SEED_DOCS):
        await hub.insert("items", {"_id": f"c{i}", "n": 0})
    rev0 = hub.revision("items")
    try:
        acked, report = await kill_and_restart(
            seed, running.port, tmp_path, lambda: hub.revision("items") - rev0, purge, hub
        )
        hub_docs = sorted(await hub.store.find("items", {}), key=lambda d: str(d["_id"]))
        check_outcome(seed, acked, report, hub_docs)
        # At most once: every mutation was accepted, each answered at its one revision, and
        # (without a purge) each revision after the seed documents was made by one of them.
        records = await hub.store.find(MUTATIONS_PREFIX + "items", {})
        assert {r["s"] for r in records} <= {"accepted"}, records
        assert all(len(revs) == 1 for revs in accepted.values()), accepted
        by_mid = {r["_id"]: r["v"] for r in records}
        assert all(revs == {by_mid[mid]} for mid, revs in accepted.items() if mid in by_mid)
        if not purge:
            revs = sorted(r["v"] for r in records)
            assert revs == list(range(rev0 + 1, hub.revision("items") + 1))
    finally:
        await hub.close()


def check_outcome(seed: int, acked: int, report: list[str], remote_docs: list[Any]) -> None:
    """Every write that returned is on the remote (the one in progress at the kill may be too),
    and the restarted edge holds what the remote holds."""
    steps = script(seed, WRITES)
    assert remote_docs in (model(steps[:acked]), model(steps[: acked + 1])), (acked, remote_docs)
    edge_docs = orjson.loads(next(x for x in report if x.startswith("docs "))[5:])
    assert edge_docs == remote_docs


@pytest.mark.parametrize("seed", seeds("AIOSERVERSYNC_HUB_KILL_RUNS", 10))
async def test_write_edge_killed_mid_drain_against_a_stock_server(
    seed: int, tmp_path: Path
) -> None:
    """The same against a stock Meteor server: mutator methods, decided by content (a Meteor
    server does not remember mutations; docs/modes.md). Every write that returned lands and
    none is taken for a conflict."""
    app = MeteorApp()
    app.add_collection("items", [{"_id": f"c{i}", "n": 0} for i in range(SEED_DOCS)])
    app.method_delay = 0.002
    await app.start()
    try:
        acked, report = await kill_and_restart(
            seed, app.port, tmp_path, lambda: sum(app.applied.values()), False, None
        )
        docs = sorted(app.docs["items"].values(), key=lambda d: str(d["_id"]))
        check_outcome(seed, acked, report, docs)
        inserts = [k for k in app.applied if k[1] == "insert"]
        assert all(app.applied[k] == 1 for k in inserts), app.applied
    finally:
        await app.stop()

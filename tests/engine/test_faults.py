"""Durability under faults: cuts and blackholes mid initial sync, mid resync and mid drain; kill -9.

In every case each acknowledged local write reaches the server exactly once or is reported as a
conflict, and both sides converge to the "remote wins" model.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from aioserversync.stores import SQLiteStore
from tests.conftest import MS, ROOT
from tests.engine.conftest import converged, drain_events, edge, go_offline, go_online, seeds
from tests.meteor_app import MeteorApp
from tests.proxy import FaultProxy
from tests.utils import wait_for_condition

FAULT_OPTIONS = {"heartbeat_interval": 0.05, "heartbeat_timeout": 0.1}


async def _fault(proxy: FaultProxy, rng: random.Random, remote: Any) -> None:
    """Break the link one way or another, then restore it."""
    kind = rng.choice(["cut", "blackhole"])
    if kind == "cut":
        proxy.cut()
    else:
        links = proxy.links()
        proxy.blackhole()
        await wait_for_condition(
            lambda: proxy.dropped(links) and not remote.client.connected, message="dead link seen"
        )
    proxy.restore()


async def _when(pred: Any, limit: float) -> None:
    """Wait for a fault-injection point; give up quietly if the run got there faster."""
    with contextlib.suppress(AssertionError):
        await wait_for_condition(pred, timeout=limit, interval=MS)


@pytest.mark.parametrize("seed", seeds("AIOSERVERSYNC_FAULT_RUNS"))
async def test_randomized_faults_converge(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    app = MeteorApp()
    app.add_collection("items", [{"_id": f"s{i}", "n": i, "tag": "seed"} for i in range(300)])
    await app.start()
    try:
        async with FaultProxy(app.port) as proxy:
            remote = await edge(proxy.url(), SQLiteStore(str(tmp_path / "e.db")), **FAULT_OPTIONS)
            try:
                items = await remote.sync("items", mode="write")
                # 1. A fault in the middle of the initial sync.
                if rng.random() < 0.7:
                    k = rng.randint(1, 299)
                    await _when(lambda: items.stats.received >= k, 2.0)
                    await _fault(proxy, rng, remote)
                await items.wait_ready(timeout=10_000 * MS)
                assert await items.count() == 300

                # 2. Both sides change things while the link is down.
                await go_offline(proxy, remote)
                base = {d["_id"]: d for d in app.docs["items"].values()}
                for _ in range(rng.randint(0, 15)):
                    op, i = rng.choice(["update", "remove", "insert"]), rng.randrange(300)
                    if op == "update":
                        app.update("items", f"s{i}", {"$set": {"n": 1000 + rng.randrange(99)}})
                    elif op == "remove":
                        app.remove("items", f"s{i}")
                    elif app.get("items", f"r{seed}-{i}") is None:
                        app.insert("items", {"_id": f"r{seed}-{i}", "n": -1})
                remote_after = {d["_id"]: d for d in app.docs["items"].values()}
                mid_round = rng.random() < 0.5

                async def change_in_round(name: str) -> None:
                    # The first round after the reconnect also gets changes between its added
                    # and its ready: they are part of the remote state that round reconciles.
                    nonlocal mid_round
                    if not mid_round:
                        return
                    mid_round = False
                    for _ in range(rng.randint(1, 6)):
                        i = rng.randrange(300)
                        if rng.random() < 0.7:
                            app.update(name, f"s{i}", {"$set": {"n": 3000 + rng.randrange(99)}})
                        else:
                            app.remove(name, f"s{i}")
                    remote_after.clear()
                    remote_after.update((d["_id"], d) for d in app.docs[name].values())

                app.before_ready = change_in_round
                local_inserts: list[str] = []
                for j in range(rng.randint(0, 25)):
                    op, i = rng.choice(["update", "remove", "insert"]), rng.randrange(300)
                    if op == "update":
                        await items.update(f"s{i}", {"$set": {"n": 2000 + j, "by": "edge"}})
                    elif op == "remove":
                        await items.remove(f"s{i}")
                    else:
                        doc_id = f"l{seed}-{j}"
                        await items.insert({"_id": doc_id, "n": j})
                        local_inserts.append(doc_id)
                local_after = {d["_id"]: d for d in await items.find({})}
                events = items.changes(max_queue=100_000)

                # 3. Reconnect, with faults mid resync and mid drain.
                app.method_delay = 0.001
                proxy.restore()
                if rng.random() < 0.5:
                    r0 = items.stats.received
                    k = rng.randint(1, 200)
                    await _when(lambda: items.stats.received >= r0 + k, 2.0)
                    await _fault(proxy, rng, remote)
                if rng.random() < 0.6:
                    k = rng.randint(1, 10)
                    await _when(
                        lambda: sum(app.calls[m] for m in app.calls if m[0] == "/") >= k, 2.0
                    )
                    await _fault(proxy, rng, remote)
                await go_online(proxy, items)
                await wait_for_condition(lambda: converged(app, items), message="convergence")

                # The "remote wins" model.
                expected: dict[str, Any] = {}
                conflicts_expected = set()
                for doc_id in set(base) | set(remote_after) | set(local_after):
                    b, r, loc = base.get(doc_id), remote_after.get(doc_id), local_after.get(doc_id)
                    if r != b:
                        final = r
                        if loc != b and loc != r:
                            conflicts_expected.add(doc_id)
                    else:
                        final = loc
                    if final is not None:
                        expected[doc_id] = final
                assert {d["_id"]: d for d in app.docs["items"].values()} == expected
                conflicts = {e.id for e in drain_events(events) if e.op == "conflict"}
                assert conflicts == conflicts_expected
                for doc_id in local_inserts:
                    assert app.applied[("items", "insert", doc_id)] == (
                        0 if doc_id not in local_after else 1
                    )
                assert all(n == 1 for (_, op, _), n in app.applied.items() if op == "insert")
                assert items.stats.pending == 0
            finally:
                await remote.close()
    finally:
        await app.stop()


async def test_rounds_are_atomic_for_readers(tmp_path: Path) -> None:
    app = MeteorApp()
    app.add_collection("items", [{"_id": f"s{i}", "v": 0} for i in range(2000)])
    await app.start()
    try:
        async with FaultProxy(app.port) as proxy:
            remote = await edge(proxy.url(), SQLiteStore(str(tmp_path / "a.db")))
            try:
                items = await remote.sync("items", mode="read")
                seen: set[int] = set()
                while not items.is_live:  # a reader polling during the initial round
                    seen.add(await items.count())
                    await asyncio.sleep(0)
                assert seen <= {0, 2000}
                await go_offline(proxy, remote)
                for i in range(0, 2000, 2):
                    app.update("items", f"s{i}", {"$set": {"v": 1}})
                for i in range(1, 2000, 10):
                    app.remove("items", f"s{i}")
                proxy.restore()
                counts: set[tuple[int, int]] = set()
                await wait_for_condition(lambda: remote.client.connected)
                while True:  # a reader polling during the resync round
                    docs = await items.find({})  # one read: one consistent snapshot
                    counts.add((sum(d["v"] == 1 for d in docs), len(docs)))
                    if items.is_live:
                        break
                    await asyncio.sleep(0)
                assert counts <= {(0, 2000), (1000, 1800)}
                assert (await items.count({"v": 1}), await items.count()) == (1000, 1800)
            finally:
                await remote.close()
    finally:
        await app.stop()


async def test_restart_offline_serves_cache_then_sweeps(tmp_path: Path) -> None:
    app = MeteorApp()
    app.add_collection("items", [{"_id": f"s{i}", "v": i} for i in range(5)])
    await app.start()
    db = str(tmp_path / "cache.db")
    try:
        async with FaultProxy(app.port) as proxy:
            first = await edge(proxy.url(), SQLiteStore(db))
            items = await first.sync("items", mode="write")
            await items.wait_ready(timeout=5000 * MS)
            await first.close()
            proxy.refuse()  # the server is unreachable from now on
            app.remove("items", "s1")
            app.insert("items", {"_id": "new", "v": 9})
            second = await edge(proxy.url(), SQLiteStore(db))
            try:
                items = await second.sync("items", mode="write")
                assert await items.count() == 5  # at once, from the cache
                assert items.is_stale
                await items.insert({"_id": "offline"})
                await go_online(proxy, items)
                assert not items.is_stale
                assert await items.get("s1") is None and await items.get("new") is not None
                assert app.applied[("items", "insert", "offline")] == 1
                assert await converged(app, items)
            finally:
                await second.close()
    finally:
        await app.stop()


async def _read_lines(proc: asyncio.subprocess.Process, acked: list[str]) -> None:
    assert proc.stdout is not None
    async for raw in proc.stdout:
        line = raw.decode().strip()
        if line.startswith("ack "):
            acked.append(line[4:])


@pytest.mark.parametrize("seed", seeds("AIOSERVERSYNC_KILL_RUNS"))
async def test_kill_9_mid_drain_applies_every_acked_write_once(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    app = MeteorApp()
    app.add_collection("items")
    app.method_delay = 0.002
    url = await app.start()
    db = str(tmp_path / "edge.db")
    n = 60
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tests.engine.edge_proc", "--url", url, "--db", db]
    try:
        acked: list[str] = []
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            "--inserts",
            str(n),
            "--prefix",
            f"k{seed}-",
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        reader = asyncio.create_task(_read_lines(proc, acked))
        if rng.random() < 0.3:  # kill while inserts are still being queued
            k = rng.randint(1, n - 1)
            await wait_for_condition(lambda: len(acked) >= k, timeout=30_000 * MS, interval=MS)
        else:  # kill in the middle of the drain
            k = rng.randint(1, n - 1)
            await wait_for_condition(
                lambda: app.calls["/items/insert"] >= k, timeout=30_000 * MS, interval=MS
            )
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await reader
        # Restart: it drains what survived, without queueing anything new.
        proc = await asyncio.create_subprocess_exec(
            *cmd, "--inserts", "0", stdout=asyncio.subprocess.PIPE, env=env
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert b"drained" in out and proc.returncode == 0
        for doc_id in acked:
            assert app.applied[("items", "insert", doc_id)] == 1, doc_id
        assert all(v == 1 for v in app.applied.values())
    finally:
        await app.stop()

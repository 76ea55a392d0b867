"""A hub (``ServerSyncServer`` on SQLite) in its own process, driven over stdin, for the benches.

    python -m benchmarks.hubproc --store PATH [--docs N] [--port 0]

Pre-fills an empty store with N documents (ddp-blaster's shape: ~250 B with a date, random
Meteor ids) written straight into the store, so the hub gives them revisions when it starts
(that is what it does with documents it finds without one). Then it serves ``items`` on loopback
(anonymous access, no compression, no heartbeats) and prints ``URL ws://...``. Commands, one per
line on stdin, each answered by one JSON line on stdout:

* ``update K``: one ``$set`` of ``{"n": <counter>}`` on the first K documents (``update_where``
  in chunks of 500 per transaction); answers ``{"updated", "seconds", "rev"}``;
* ``rate R S``: for S seconds, every 10 ms, ``$set`` ``{"ts": <time.time()>, "n": i}`` on the
  next R/100 documents (one hub transaction per tick); answers ``{"writes", "seconds"}``;
* ``stats``: ``{"cpu_s", "rss_mb", "peak_rss_mb", "rev"}`` of this process;
* ``quit``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aioserversync.hub import ServerSyncServer
from aioserversync.stores import PutDoc, SQLiteStore
from benchmarks.blaster import CACHE

_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
DATE0 = 1_704_164_645_678
HUB_CACHE = CACHE
"""Where pre-filled hub stores are kept between scenarios and runs."""


def make_ids(n: int, seed: int = 11) -> list[str]:
    """``n`` Meteor-style ids from a fixed seed."""
    rnd = random.Random(seed)
    return ["".join(rnd.choices(_ALPHABET, k=17)) for _ in range(n)]


def make_fields(i: int) -> dict[str, Any]:
    """One document's wire fields, shaped like ddp-blaster's (~250 B, one ``$date``)."""
    return {
        "title": f"Item number {i} of the benchmark collection",
        "owner": f"user{i % 997:04d}",
        "status": ("open", "closed", "review")[i % 3],
        "score": round(i * 0.37, 2),
        "n": i,
        "done": i % 2 == 0,
        "tags": ["alpha", "beta", "gamma"],
        "meta": {"rank": i % 100, "group": f"g{i % 13}"},
        "createdAt": {"$date": DATE0 + i * 1000},
    }


async def prefill(path: Path, n: int) -> None:
    """Write ``n`` documents without revisions into a new store (batches of 5000)."""
    async with SQLiteStore(path) as store:
        if await store.count("items") >= n:
            return
        ids = make_ids(n)
        for b in range(0, n, 5000):
            await store.apply(
                [PutDoc("items", ids[i], make_fields(i)) for i in range(b, min(b + 5000, n))]
            )


def _reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _stats(hub: ServerSyncServer) -> dict[str, Any]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    rss = 0.0
    try:
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        pass
    return {
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
        "rss_mb": round(rss, 1),
        "peak_rss_mb": round(ru.ru_maxrss / 1024, 1),
        "rev": hub.revision("items"),
    }


async def _rate(hub: ServerSyncServer, ids: list[str], rate: int, seconds: float) -> dict[str, Any]:
    per_tick = max(rate // 100, 1)
    ticks = int(seconds * 100)
    loop = asyncio.get_running_loop()
    start = loop.time()
    writes = 0
    cursor = 0
    for t in range(ticks):
        chunk = [ids[(cursor + k) % len(ids)] for k in range(per_tick)]
        cursor += per_tick
        await hub.update(
            "items",
            {"_id": {"$in": chunk}},
            {"$set": {"ts": time.time(), "n": writes}},
            multi=True,
        )
        writes += len(chunk)
        delay = start + (t + 1) / 100 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    return {"writes": writes, "seconds": round(loop.time() - start, 3)}


async def serve(path: Path, docs: int, port: int) -> None:
    """Serve ``items`` from ``path`` and answer stdin commands until ``quit`` or EOF."""
    await prefill(path, docs)
    ids = make_ids(docs)
    hub = ServerSyncServer(
        SQLiteStore(path),
        allow_anonymous=True,
        compression=None,
        heartbeat_interval=0,
        purge_interval=0,
    )
    hub.collection("items")
    async with hub, hub.serve("127.0.0.1", port) as running:
        _reply({"url": running.url})
        counter = 0
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            words = line.split()
            if not words or words[0] == "quit":
                break
            if words[0] == "update":
                k = int(words[1])
                counter += 1
                t = time.perf_counter()
                n = await hub.update(
                    "items", {"_id": {"$in": ids[:k]}}, {"$set": {"n": -counter}}, multi=True
                )
                elapsed = round(time.perf_counter() - t, 3)
                _reply({"updated": n, "seconds": elapsed, "rev": hub.revision("items")})
            elif words[0] == "rate":
                _reply(await _rate(hub, ids, int(words[1]), float(words[2])))
            elif words[0] == "stats":
                _reply(_stats(hub))
            else:
                _reply({"error": f"unknown command {words[0]!r}"})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", type=Path, required=True)
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()
    asyncio.run(serve(a.store, a.docs, a.port))


if __name__ == "__main__":
    main()


class Hub:
    """The hub process seen from a scenario: start, send commands, stop (``with`` blocks).

    Args:
        path: The hub's SQLite file (pre-filled on first start, reused after).
        docs: Documents to pre-fill.
        port: The port (0: a free one; pass the previous port to restart on the same URL).
    """

    def __init__(self, path: Path, docs: int, port: int = 0) -> None:
        self.path = path
        self.docs = docs
        self.port = port
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> Hub:
        from benchmarks.common import ROOT

        cmd = [sys.executable, "-m", "benchmarks.hubproc", "--store", str(self.path)]
        cmd += ["--docs", str(self.docs), "--port", str(self.port)]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        first = self._read()
        self.url = first["url"]
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])
        return self

    def _read(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the hub process exited ({self.proc.wait()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def command(self, text: str) -> dict[str, Any]:
        """Send one command and return its JSON answer (blocking: use ``asyncio.to_thread``)."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self._read()

    def __exit__(self, *exc: object) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.write("quit\n")
            proc.stdin.flush()
            proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()


def hub_file(docs: int, folder: Path) -> Path:
    """A copy, in ``folder``, of a hub store holding ``docs`` revised documents.

    The first call for a size builds it (pre-fill, then one hub start to give the documents
    their revisions) in the bench cache folder; later calls copy it (a few hundred ms).
    """
    import shutil

    base = HUB_CACHE / f"aioserversync-hub-{docs}.sqlite3"
    if not base.exists():
        building = base.with_suffix(".building")
        for p in building.parent.glob(building.name + "*"):
            p.unlink()
        with Hub(building, docs):
            pass
        building.rename(base)
    target = folder / f"hub-{docs}.sqlite3"
    shutil.copy(base, target)
    return target

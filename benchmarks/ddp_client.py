"""DDP client receive throughput against ddp-blaster: raw websockets vs DDPClient.

    python -m benchmarks.ddp_client [--docs 100000] [--repeats 5] [--quick] [--profile]

Starts /work/shared/bench/ddp-blaster (``node server.js --port 0 --docs N``; when its
``node_modules`` is missing it is copied to a temporary folder and ``npm ci`` runs there) and
measures, in the same run and interleaved per round, the time from sending ``sub items [N]`` to
``ready``:

(a) raw: ``websockets.asyncio.client`` + ``orjson.loads`` of every frame (the floor any Python
    client pays; py-websockets-parse in the shared bench);
(b) DDPClient, full EJSON decoding, documents received through ``on_data``;
(c) DDPClient with ``decode_data=False`` (wire-form fields, what the sync engine uses).

Target: (b) at least 60 % of (a). Besides wall-clock rates, the table gives docs per CPU second
of this process over the same span (the server runs in another process): on a shared, noisy
machine that ratio is the steadier measure of client cost. ``--profile`` runs (b) once more
under cProfile and prints the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import time
from typing import Any

import orjson
from websockets.asyncio.client import connect

from aioserversync.asyncio.client import DDPClient
from aioserversync.protocol.events import Added
from benchmarks.blaster import Blaster
from benchmarks.common import emit, machine_info, now, peak_rss_mb

Timing = tuple[float, float]
"""(wall seconds, CPU seconds of this process) from ``sub`` to ``ready``."""


async def run_raw(url: str, docs: int) -> Timing:
    loads = orjson.loads
    async with connect(
        url, max_size=64 * 2**20, compression=None, proxy=None, ping_interval=None
    ) as ws:
        await ws.send(orjson.dumps({"msg": "connect", "version": "1", "support": ["1"]}), text=True)
        while loads(await ws.recv(decode=False)).get("msg") != "connected":
            pass
        recv = ws.recv
        sub = orjson.dumps({"msg": "sub", "id": "s1", "name": "items", "params": [docs]})
        t0, c0 = now(), time.process_time()
        await ws.send(sub, text=True)
        n = 0
        while True:
            m = loads(await recv(decode=False))
            t = m["msg"]
            if t == "added":
                n += 1
            elif t == "ready":
                break
        dt, dc = now() - t0, time.process_time() - c0
    assert n == docs, (n, docs)
    return dt, dc


async def run_client(url: str, docs: int, *, decode: bool) -> Timing:
    n = 0

    def on_data(events: list[Any]) -> None:
        nonlocal n
        for ev in events:
            if type(ev) is Added:
                n += 1

    async with DDPClient(
        url, on_data=on_data, decode_data=decode, compression=None, max_size=64 * 2**20
    ) as client:
        t0, c0 = now(), time.process_time()
        sub = await client.subscribe("items", docs)
        await sub.ready(timeout=300)
        dt, dc = now() - t0, time.process_time() - c0
    assert n == docs, (n, docs)
    return dt, dc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="20k docs, 3 rounds")
    p.add_argument("--profile", action="store_true", help="profile one DDPClient run")
    args = p.parse_args()
    if args.quick:
        args.docs, args.repeats = min(args.docs, 20_000), 3
    cases = {
        "(a) raw websockets + orjson.loads": lambda url: run_raw(url, args.docs),
        "(b) DDPClient, EJSON decoded": lambda url: run_client(url, args.docs, decode=True),
        "(c) DDPClient, decode_data=False": lambda url: run_client(url, args.docs, decode=False),
    }
    times: dict[str, list[Timing]] = {k: [] for k in cases}
    with Blaster(args.docs) as server:
        for fn in cases.values():  # warm-up round, not recorded
            asyncio.run(fn(server.url))
        for _ in range(args.repeats):
            for name, fn in cases.items():
                times[name].append(asyncio.run(fn(server.url)))
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            asyncio.run(run_client(server.url, args.docs, decode=True))
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(18)
    raw_key = "(a) raw websockets + orjson.loads"
    raw_wall = statistics.median(t for t, _ in times[raw_key])
    raw_cpu = statistics.median(c for _, c in times[raw_key])
    rows = []
    for name, ts in times.items():
        wall = statistics.median(t for t, _ in ts)
        cpu = statistics.median(c for _, c in ts)
        rows.append(
            {
                "case": name,
                "median docs/s": round(args.docs / wall),
                "best docs/s": round(args.docs / min(t for t, _ in ts)),
                "median s": round(wall, 3),
                "docs per CPU s": round(args.docs / cpu),
                "ratio to (a), wall": round(raw_wall / wall, 3),
                "ratio to (a), CPU": round(raw_cpu / cpu, 3),
            }
        )
    emit(
        f"DDP client receive: {args.docs:,} added, sub -> ready ({args.repeats} rounds)",
        rows,
        extra={"machine": machine_info(), "peak_rss_mb": peak_rss_mb(), "pid": os.getpid()},
    )


if __name__ == "__main__":
    main()

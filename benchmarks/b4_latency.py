"""B4: live latency through the hub: hub commit -> edge commit, at 1k and 10k writes/s.

    python -m benchmarks.b4_latency [--rates 1000,10000] [--seconds 5] [--docs 100000] [--quick]

A hub (its own process) serves N documents; an edge (``ServerSync(mode="read")``, SQLiteStore,
the hub protocol) has synced them and follows the change feed. The hub then updates documents at
R writes/s for S seconds: every 10 ms one transaction ``$set``s ``{"ts": time.time(), ...}`` on
R/100 documents. The edge's ``after_sync_down`` hook, which runs once the batch holding the
change is committed to its store, records ``time.time() - ts``: the latency from just before the
hub's commit to the edge's commit (both processes read the same clock). Reported: p50/p95/p99/max
and the rate the edge applied. Target: p99 < 50 ms at 1k/s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from aioserversync import ServerSync
from aioserversync.stores import SQLiteStore
from benchmarks.common import emit
from benchmarks.edges import CLIENT_OPTIONS, temp_folder
from benchmarks.hubproc import Hub, hub_file


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


async def _measure(
    hub: Hub, edge: Path, rates: tuple[int, ...], seconds: float
) -> list[dict[str, Any]]:
    latencies: list[float] = []

    def after(op: str, _id: Any, fields: Any) -> None:
        if op == "changed" or op == "added":
            ts = fields.get("ts") if isinstance(fields, dict) else None
            if isinstance(ts, float):
                latencies.append(time.time() - ts)

    rows = []
    async with ServerSync(hub.url, store=SQLiteStore(edge), **CLIENT_OPTIONS) as remote:
        items = await remote.sync("items", mode="read", after_sync_down=after)
        await items.wait_ready(timeout=600)
        for rate in rates:
            latencies.clear()
            t0 = time.perf_counter()
            done = await asyncio.to_thread(hub.command, f"rate {rate} {seconds}")
            async with asyncio.timeout(60):
                while len(latencies) < done["writes"]:  # noqa: ASYNC110 - a bounded poll
                    await asyncio.sleep(0.005)
            elapsed = time.perf_counter() - t0
            ms = [x * 1000 for x in latencies]
            rows.append(
                {
                    "target rate /s": rate,
                    "writes": done["writes"],
                    "applied /s": round(len(ms) / elapsed),
                    "p50 ms": round(statistics.median(ms), 2),
                    "p95 ms": round(percentile(ms, 95), 2),
                    "p99 ms": round(percentile(ms, 99), 2),
                    "max ms": round(max(ms), 2),
                }
            )
    return rows


def run(
    *, rates: tuple[int, ...] = (1_000, 10_000), seconds: float = 5.0, docs: int = 100_000
) -> list[dict[str, Any]]:
    """Run B4 and emit its table."""
    with temp_folder("b4") as tmp:
        folder = Path(tmp)
        with Hub(hub_file(docs, folder), docs) as hub:
            rows = asyncio.run(_measure(hub, folder / "edge.sqlite3", rates, seconds))
    p99 = next((r["p99 ms"] for r in rows if r["target rate /s"] == 1_000), None)
    return [
        emit(
            f"B4: live latency hub commit -> edge commit ({docs:,} docs, {seconds:g} s per rate)",
            rows,
            extra={"targets": {"p99_ms_at_1k_per_s": {"target": 50, "got": p99}}},
        )
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", default="1000,10000")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--quick", action="store_true", help="200 writes/s for 1 s over 5k docs")
    a = p.parse_args()
    if a.quick:
        run(rates=(200,), seconds=1.0, docs=5_000)
    else:
        run(rates=tuple(int(r) for r in a.rates.split(",")), seconds=a.seconds, docs=a.docs)


if __name__ == "__main__":
    main()

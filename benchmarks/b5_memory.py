"""B5: peak RSS of an initial sync into SQLiteStore at growing sizes, each in a fresh process.

    python -m benchmarks.b5_memory [--sizes 100000,1000000,3000000] [--quick]

For each size N, a new Python process syncs ``items [N]`` into a new SQLite file with
``ServerSync(mode="read")`` from :mod:`benchmarks.stream_server` (a separate process, not
counted, that generates ddp-blaster's document shape while it sends, where ddp-blaster would
first spend about 1.5 minutes building 3M frames) and reports its own peak RSS (``VmHWM``: the
high-water mark of the whole process, interpreter included) and its rate. The process's RSS
after imports and an idle connection is shown too, as the floor. Target: < 250 MB at 1M
documents, flat with size (a resync round is staged on disk, never held in memory).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, emit
from benchmarks.stream_server import StreamServer


def high_water_mb() -> float:
    """This process's peak RSS in MB: ``VmHWM``, which, unlike ``ru_maxrss``, does not carry
    the parent's size over ``fork``/``exec`` (a child of a large process would report at least
    the parent's RSS)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _database_bytes(path: str) -> int:
    """The database's size (pages in the file and in the WAL not yet copied back)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    return int(pages) * int(page_size)


def _child(url: str, docs: int, path: str) -> None:
    from aioserversync import ServerSync
    from aioserversync.stores import SQLiteStore
    from benchmarks.edges import CLIENT_OPTIONS, timed_sync

    floor = high_water_mb()

    async def sync_and_report() -> None:
        async with ServerSync(url, store=SQLiteStore(path), **CLIENT_OPTIONS) as remote:
            wall, cpu_s = await timed_sync(remote, docs)
            peak = high_water_mb()
            size = _database_bytes(path)
            row = {
                "docs": docs,
                "seconds": round(wall, 2),
                "docs/s": round(docs / wall),
                "CPU s": round(cpu_s, 2),
                "RSS after imports MB": round(floor, 1),
                "peak RSS MB": round(peak, 1),
                "file MB": round(size / 2**20),
            }
            print(json.dumps(row), flush=True)
            # The round is committed. Closing would now copy the WAL back into the database
            # file (3 s at 1M documents, about 10 s at 3M), which B5 does not measure; the
            # parent deletes the files, so the child leaves at once.
            os._exit(0)

    asyncio.run(sync_and_report())


def measure(docs: int, folder: Path, url: str) -> dict[str, Any]:
    """Run one size in a fresh process against the server at ``url`` and return its row.

    Raises:
        RuntimeError: The child process failed.
    """
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.b5_memory",
            "--child",
            url,
            str(docs),
            str(folder / f"b5-{docs}.sqlite3"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    for p in folder.glob(f"b5-{docs}.sqlite3*"):
        p.unlink()
    if proc.returncode != 0:
        raise RuntimeError(f"B5 child failed for {docs}: {proc.stderr[-2000:]}")
    row: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return row


def run(*, sizes: tuple[int, ...] = (100_000, 1_000_000, 3_000_000)) -> list[dict[str, Any]]:
    """Run B5 over ``sizes`` and emit the table."""
    from benchmarks.edges import temp_folder

    with StreamServer() as server, temp_folder("b5") as tmp:
        rows = [measure(n, Path(tmp), server.url) for n in sizes]
    at_1m = next((r["peak RSS MB"] for r in rows if r["docs"] == 1_000_000), None)
    return [
        emit(
            "B5: peak RSS of an initial sync into SQLiteStore (fresh process per size)",
            rows,
            extra={"targets": {"peak_rss_mb_at_1m": {"target": 250, "got": at_1m}}},
        )
    ]


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100000,1000000,3000000")
    p.add_argument("--quick", action="store_true", help="10k and 50k documents")
    a = p.parse_args()
    sizes = (10_000, 50_000) if a.quick else tuple(int(s) for s in a.sizes.split(","))
    run(sizes=sizes)


if __name__ == "__main__":
    main()

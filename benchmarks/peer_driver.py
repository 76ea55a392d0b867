"""aioserversync as a client of the shared DDP bench (``run_peers.sh`` driver contract).

    python -m benchmarks.peer_driver --url URL --docs N [--changes M] --timeout S [--store sqlite]

Connects a ``ServerSync`` (``mode="read"``) to ddp-blaster; once DDP is connected it starts the
clock and syncs ``items`` with params ``[N]`` (or ``[N, M]`` with ``--changes``), and stops it
when ``wait_ready()`` returns: the round is staged and committed to the store. With ``--changes``
it then times, from ready, until the ``END`` document is seen through ``changes()`` (the
collection's change events, as an application would watch them). It checks its cache (N
documents; highest ``counter`` = M) outside the timed span and prints one JSON line:
``{"client", "docs", "seconds", "docs_per_s", "peak_rss_mb"}`` (+ the change figures), or
``{"client", "error"}``. The store is a new SQLite file in a temporary folder (``--store memory``
for MemoryStore).

Run it next to the peers::

    EXTRA_CLIENTS='aioserversync (SQLite)|/path/.venv/bin/python -m benchmarks.peer_driver' \\
        ./run_peers.sh

(with the repository root on ``PYTHONPATH``, or from the repository root).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from aioserversync import ServerSync
from aioserversync.stores import MemoryStore, SQLiteStore, Store
from benchmarks.edges import CLIENT_OPTIONS

now = __import__("time").perf_counter


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _fail(client: str, docs: int, error: str) -> None:
    _emit({"client": client, "docs": docs, "error": error, "peak_rss_mb": _peak_rss_mb()})
    os._exit(1)


async def _run(args: argparse.Namespace, store: Store) -> dict[str, float]:
    timing: dict[str, float] = {}
    params = [args.docs, args.changes] if args.changes > 0 else [args.docs]
    async with ServerSync(args.url, store=store, **CLIENT_OPTIONS) as remote:
        await remote.client.wait_connected(timeout=args.timeout)
        timing["t0"] = now()
        items = await remote.sync("items", mode="read", args=params)
        stream = items.changes(max_queue=args.changes + args.docs + 10) if args.changes else None
        await items.wait_ready(timeout=args.timeout)
        timing["ready"] = now()
        if stream is not None:
            async for ev in stream:
                if ev.id == "END":
                    break
            timing["end"] = now()
        n = await items.count({"_id": {"$ne": "END"}})
        if n != args.docs:
            raise AssertionError(f"got {n} docs, expected {args.docs}")
        if args.changes:
            top = await items.find({"counter": {"$exists": True}}, sort=[("counter", -1)], limit=1)
            if not top or top[0]["counter"] != args.changes:
                raise AssertionError("the change stream did not land in the store")
    return timing


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--changes", type=int, default=0)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    args = p.parse_args()
    client = f"aioserversync ({args.store})"
    watchdog = threading.Timer(args.timeout, _fail, (client, args.docs, "timeout"))
    watchdog.daemon = True
    watchdog.start()
    with tempfile.TemporaryDirectory(prefix="aioserversync-driver-") as tmp:
        store: Store = (
            SQLiteStore(Path(tmp) / "edge.sqlite3") if args.store == "sqlite" else MemoryStore()
        )
        try:
            timing = asyncio.run(_run(args, store))
        except Exception as exc:
            _fail(client, args.docs, f"{type(exc).__name__}: {exc}")
    out: dict[str, Any] = {"client": client, "docs": args.docs}
    s = timing["ready"] - timing["t0"]
    out["seconds"] = round(s, 3)
    out["docs_per_s"] = round(args.docs / s)
    if args.changes:
        cs = timing["end"] - timing["ready"]
        out["changes"] = args.changes
        out["changes_seconds"] = round(cs, 3)
        out["changes_per_s"] = round(args.changes / cs)
    out["peak_rss_mb"] = _peak_rss_mb()
    _emit(out)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()

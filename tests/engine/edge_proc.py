"""An edge process for kill -9 tests: queues inserts durably, then drains them.

Prints one line per event so the parent can kill it at chosen moments:
``ack <id>`` when an insert returned (it is then durable), ``ready pulled=<n> count=<n>`` when the
first round is applied (``pulled``: documents received through the hub's ``serversync/pull``),
``drained`` at the end.

    python -m tests.engine.edge_proc --url URL --db PATH --inserts N --prefix P
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from aioserversync.asyncio.sync import ServerSync
from aioserversync.stores import SQLiteStore

PROCESS_OPTIONS: dict[str, Any] = {
    "heartbeat_interval": 0,
    "backoff_initial": 0.005,
    "backoff_max": 0.05,
    "stable_after": 0,
}
"""ServerSync options of the edge processes of kill -9 tests (fast reconnects on loopback)."""


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--inserts", type=int, default=0)
    p.add_argument("--prefix", default="k")
    p.add_argument("--mode", default="write")
    args = p.parse_args()
    async with ServerSync(
        args.url,
        store=SQLiteStore(args.db),
        name="app",
        **PROCESS_OPTIONS,
    ) as remote:
        items = await remote.sync("items", mode=args.mode)
        for i in range(args.inserts):
            doc_id = f"{args.prefix}{i}"
            await items.insert({"_id": doc_id, "i": i})
            sys.stdout.write(f"ack {doc_id}\n")
            sys.stdout.flush()
        await items.wait_ready(timeout=30)
        sys.stdout.write(f"ready pulled={remote._hub.pulled} count={await items.count()}\n")
        sys.stdout.flush()
        await items.wait_drained(timeout=60)
        sys.stdout.write("drained\n")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())

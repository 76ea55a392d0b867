"""A hub in its own process, for the kill -9 tests: ``python -m tests.hub.hub_proc DB``.

It serves collection ``items`` on a free loopback port through :func:`aioserversync.hub.run_hub`
(token ``tok`` -> ``edge``) and prints ``port <n>`` once it listens.
"""

from __future__ import annotations

import asyncio
import sys

from aioserversync.hub import HubConfig, HubServing, run_hub


async def main(db: str) -> None:
    def started(running: HubServing) -> None:
        sys.stdout.write(f"port {running.port}\n")
        sys.stdout.flush()

    config = HubConfig(
        store=db,
        collections=["items"],
        port=0,
        tokens={"tok": "edge"},
        compression=None,
        heartbeat_interval=0,
    )
    await run_hub(config, started=started)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))

"""Live ``changed`` application rate: 100k ``changed`` over 1,000 documents from ddp-blaster.

    python -m benchmarks.live_changes [--changes 100000] [--repeats 3] [--quick]

``sub items [1000, M]``: 1,000 ``added``, ``ready``, then M ``changed`` of ``{"counter": k}``
cycling over the documents and an ``added`` of id ``END``. Timed from ``wait_ready()`` to the END
document applied, with ``ServerSync(mode="read")`` into SQLiteStore and MemoryStore, each in two
ways: with a ``changes()`` listener (a change event per document, what an application watching
the collection pays; END is seen as an event) and without one (END is looked up in the store).
The raw websockets + orjson + dict baseline runs in the same rounds. Target: >= 150k changes/s.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import connect

from benchmarks.blaster import Blaster
from benchmarks.common import cpu, emit, now, rate_row
from benchmarks.edges import StoreFactory, Timing, live_changes, temp_folder

DOCS = 1000


async def raw_store(url: str, changes: int) -> Timing:
    """py-websockets-store for the change stream: apply each ``changed`` to a dict."""
    loads = orjson.loads
    async with connect(
        url, max_size=64 * 2**20, compression=None, proxy=None, ping_interval=None
    ) as ws:
        await ws.send(orjson.dumps({"msg": "connect", "version": "1", "support": ["1"]}), text=True)
        while loads(await ws.recv(decode=False)).get("msg") != "connected":
            pass
        params = [DOCS, changes]
        await ws.send(
            orjson.dumps({"msg": "sub", "id": "s", "name": "items", "params": params}), text=True
        )
        docs: dict[str, Any] = {}
        while True:
            m = loads(await ws.recv(decode=False))
            if m["msg"] == "added":
                docs[m["id"]] = m["fields"]
            elif m["msg"] == "ready":
                break
        t0, c0 = now(), cpu()
        while True:
            m = loads(await ws.recv(decode=False))
            if m["msg"] == "changed":
                d = docs.get(m["id"])
                if d is not None:
                    d.update(m.get("fields", ()))
                    for k in m.get("cleared", ()):
                        d.pop(k, None)
            elif m["msg"] == "added" and m["id"] == "END":
                break
        timing = now() - t0, cpu() - c0
    assert max(d.get("counter", 0) for d in docs.values()) == changes
    return timing


def run(*, changes: int = 100_000, repeats: int = 3) -> list[dict[str, Any]]:
    """Run the live changes scenario and emit its table."""
    with temp_folder("live") as tmp:
        folder = Path(tmp)
        todo: dict[str, Callable[[str], Awaitable[Timing]]] = {
            "py-websockets-store (+ dict)": lambda url: raw_store(url, changes)
        }
        for kind, label in (("sqlite", "SQLiteStore"), ("memory", "MemoryStore")):
            factory = StoreFactory(kind, folder)
            for listen in (False, True):

                async def case(url: str, f: StoreFactory = factory, on: bool = listen) -> Timing:
                    async with f.make() as store:
                        return await live_changes(url, DOCS, changes, store, listen=on)

                how = "changes() listener" if listen else "no listener"
                todo[f"aioserversync -> {label}, {how}"] = case
        times: dict[str, list[Timing]] = {k: [] for k in todo}
        with Blaster(0, changes=changes, change_docs=DOCS) as blaster:
            asyncio.run(todo["aioserversync -> SQLiteStore, no listener"](blaster.url))  # warm-up
            for _ in range(repeats):
                for name, fn in todo.items():
                    times[name].append(asyncio.run(fn(blaster.url)))
    rows = [
        rate_row(name, changes, ts, unit="changes", total=repeats) for name, ts in times.items()
    ]
    best = max(r["median changes/s"] for r in rows[1:])
    return [
        emit(
            f"Live changes: {changes:,} changed over {DOCS:,} docs, ready -> END applied "
            f"({repeats} interleaved rounds)",
            rows,
            extra={"targets": {"changes_per_s": {"target": 150_000, "got": best}}},
        )
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--changes", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="10k changes, one round")
    a = p.parse_args()
    if a.quick:
        run(changes=min(a.changes, 10_000), repeats=1)
    else:
        run(changes=a.changes, repeats=a.repeats)


if __name__ == "__main__":
    main()

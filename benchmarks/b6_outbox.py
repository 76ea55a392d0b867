"""B6: draining 10k offline writes, through the hub (batched compare-and-set) and stock mutators.

    python -m benchmarks.b6_outbox [--writes 10000] [--docs 100000] [--quick]

An edge (``ServerSync(mode="write")``, SQLiteStore) syncs N documents from a hub (its own
process) and closes. The hub stops; the edge starts again offline and makes W local updates
(``$set`` on W distinct documents), which queue durably in its outbox. The hub comes back on the
same port; timed from the edge's DDP ``connected`` to ``wait_drained()`` (every write confirmed).
Through the hub the writes go as ``serversync/push`` batches with compare-and-set on each
document's base revision; through the stock path (``via="stock"``) one ``/items/update``
mutator call per write. A third case makes W new documents offline with one ``insert_many``
(one transaction) and drains them through the hub. Target: >= 5k writes/s through the hub.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from aioserversync import ServerSync
from aioserversync.stores import SQLiteStore
from benchmarks.common import cpu, emit, now
from benchmarks.edges import CLIENT_OPTIONS, temp_folder
from benchmarks.hubproc import Hub, hub_file, make_ids


async def _prime(url: str, edge: Path, via: str) -> None:
    async with ServerSync(url, store=SQLiteStore(edge), **CLIENT_OPTIONS) as remote:
        items = await remote.sync("items", mode="write", via=via)
        await items.wait_ready(timeout=600)


def _case(folder: Path, docs: int, writes: int, via: str, inserts: bool = False) -> dict[str, Any]:
    edge = folder / f"edge-{via}{'-inserts' if inserts else ''}.sqlite3"
    hub_path = hub_file(docs, folder)
    ids = make_ids(docs)[:writes]
    with Hub(hub_path, docs) as hub:
        port = hub.port
        asyncio.run(_prime(hub.url, edge, via))
    url = f"ws://127.0.0.1:{port}/websocket"

    async def scenario() -> tuple[float, float]:
        remote = ServerSync(url, store=SQLiteStore(edge), backoff_max=0.05, **CLIENT_OPTIONS)
        async with remote:
            items = await remote.sync("items", mode="write", via=via)
            t = now()
            if inserts:
                await items.insert_many({"name": f"new {k}", "k": k} for k in range(writes))
            for start in range(0, 0 if inserts else len(ids), 100):  # 100 writes at a time
                chunk = ids[start : start + 100]
                await asyncio.gather(
                    *(
                        items.update(doc_id, {"$set": {"edge": start + k}})
                        for k, doc_id in enumerate(chunk)
                    )
                )
            offline[via] = now() - t
            pending = len(await items.pending(limit=writes + 1))
            assert pending == writes, pending
            with Hub(hub_path, docs, port=port):
                await remote.client.wait_connected(timeout=60)
                t0, c0 = now(), cpu()
                await items.wait_drained(timeout=600)
                timing = now() - t0, cpu() - c0
                assert not await items.pending(limit=1)
                assert items.stats.pushed >= writes, items.stats.pushed
                # Close before the hub stops: stopping it waits for this edge's close handshake,
                # which a blocked event loop could not answer.
                await remote.close()
        return timing

    offline: dict[str, float] = {}
    wall, cpu_s = asyncio.run(scenario())
    label = "hub: serversync/push batches" if via == "auto" else "stock: /items/update per write"
    if inserts:
        label = "hub: new documents (one insert_many), serversync/push batches"
    return {
        "case": label,
        "writes": writes,
        "seconds": round(wall, 3),
        "writes/s": round(writes / wall),
        "edge CPU s": round(cpu_s, 3),
        "offline writes/s (local apply + outbox)": round(writes / offline[via]),
    }


def run(*, writes: int = 10_000, docs: int = 100_000) -> list[dict[str, Any]]:
    """Run B6 and emit its table."""
    with temp_folder("b6") as tmp:
        folder = Path(tmp)
        rows = [_case(folder, docs, writes, via) for via in ("auto", "stock")]
        # Last: its new documents stay in the hub's file.
        rows.append(_case(folder, docs, writes, "auto", inserts=True))
    return [
        emit(
            f"B6: outbox drain of {writes:,} offline writes, connected -> wait_drained()",
            rows,
            extra={"targets": {"hub_writes_per_s": {"target": 5_000, "got": rows[0]["writes/s"]}}},
        )
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--writes", type=int, default=10_000)
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--quick", action="store_true", help="300 writes over 5k docs")
    a = p.parse_args()
    if a.quick:
        run(writes=300, docs=5_000)
    else:
        run(writes=a.writes, docs=a.docs)


if __name__ == "__main__":
    main()

"""Store benchmarks: bulk apply, resync staging, live patches and indexed finds.

Run: ``python -m benchmarks.stores [--docs 100000] [--quick] [--no-mongo]``

* apply N documents (~250 B of JSON with a date) in batches of 1000 ``PutDoc`` into SQLiteStore
  (a file, WAL), MemoryStore and MongoStore (PyMongo async to an nx-27017 server started here, or
  ``MONGODB_URI``), in docs/s; plus the raw ``sqlite3`` ceiling of this machine for scale, and
  the same batches as one ``PutDocs`` each (the form of a hub's pull page) into SQLiteStore;
* the same into SQLiteStore in batches of 10,000 (a hub pull page's size; each commit writes the
  ``id`` index pages its random ids dirtied, so larger batches write fewer of them), as
  ``PutDoc``, as ``PutDocs``, and as ``PutDocs`` whose keys the caller checked (as the sync
  engine sends a pull page);
* a resync round into SQLiteStore: staging N documents (``StageDocs`` of 64, as received), then
  ``StageCommit`` into an empty collection, of an identical round, and of a round with 1 %
  changed documents;
* N ``PatchDoc`` (a live ``changed`` of ``{"counter": k}`` spread over 1000 documents), batches of
  1000, in ops/s;
* a find by an indexed field over the N documents, median of 50 runs in ms.

Targets (set on a faster machine; compare with the raw sqlite3 row to read them here):
>= 300k docs/s into SQLiteStore, PatchDoc >= 150k ops/s, indexed find < 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from aioserversync.stores import (
    MemoryStore,
    PatchDoc,
    PutDoc,
    PutDocs,
    SQLiteStore,
    StageClear,
    StageCommit,
    StageDocs,
    Store,
)
from aioserversync.stores.sqlite_schema import DEFAULT_PAGE_SIZE
from benchmarks.common import emit, machine_info, now, peak_rss_mb

BATCH = 1000
BIG_BATCH = 10_000
STAGE_RUN = 64
DATE0 = 1_704_164_645_678
_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
_IDS: list[str] = []
_RND = random.Random(7)


def doc_id(i: int) -> str:
    """The i-th document id: a Meteor-style random 17-character id (fixed seed, so every run and
    every store gets the same ids). Random ids matter: they land all over the id index."""
    while len(_IDS) <= i:
        _IDS.append("".join(_RND.choices(_ALPHABET, k=17)))
    return _IDS[i]


def make_fields(i: int) -> dict[str, Any]:
    """One ~250-byte document in wire form."""
    return {
        "name": f"Item number {i}",
        "sku": f"SKU-{i:08d}",
        "owner": f"user{i % 997:04d}",
        "price": round(i * 0.37, 2),
        "qty": i % 50,
        "tags": ["alpha", "beta"] if i % 2 else ["gamma"],
        "createdAt": {"$date": DATE0 + i * 1000},
        "active": i % 3 == 0,
        "note": "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
        "dims": {"w": i % 100, "h": i % 37},
    }


async def apply_in_batches(
    store: Store, n: int, build: Callable[[int, int], list[Any]], batch_size: int = BATCH
) -> float:
    """Apply ``build(start, stop)`` batches of ``batch_size`` documents; return the seconds
    spent in apply.

    Each batch is built just before it is applied (as the sync engine does), outside the timed
    section, so prebuilt documents do not weigh on the garbage collector.
    """
    total = 0.0
    for b in range(0, n, batch_size):
        batch = build(b, min(b + batch_size, n))
        t = now()
        await store.apply(batch)
        total += now() - t
    return total


def raw_sqlite_ceiling(path: Path, n: int, page_size: int) -> float:
    """docs/s of bare sqlite3: orjson + executemany upserts into the same schema and pragmas,
    one commit per 1000 rows, no store around it (what SQLiteStore could reach at best)."""
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in (
        f"page_size={page_size}",
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "cache_size=-65536",
        f"wal_autocheckpoint={40 * 2**20 // page_size}",
    ):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute(
        "CREATE TABLE d(id TEXT NOT NULL UNIQUE, fields TEXT NOT NULL, origin TEXT, rev INTEGER)"
    )
    conn.execute("CREATE INDEX d_o ON d(origin)")
    conn.execute("CREATE INDEX d_r ON d(rev, id) WHERE rev IS NOT NULL")
    dumps = orjson.dumps
    total = 0.0
    for b in range(0, n, BATCH):
        docs = [(doc_id(i), make_fields(i)) for i in range(b, min(b + BATCH, n))]
        t = now()
        rows = [(i, dumps(f).decode(), "bench", None) for i, f in docs]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO d VALUES (?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
            "fields=excluded.fields, origin=excluded.origin, rev=excluded.rev",
            rows,
        )
        conn.execute("COMMIT")
        total += now() - t
    conn.close()
    return n / total


async def bench_apply(store: Store, n: int, batch_size: int = BATCH) -> float:
    def build(start: int, stop: int) -> list[Any]:
        return [
            PutDoc("items", doc_id(i), make_fields(i), origin="bench") for i in range(start, stop)
        ]

    return n / await apply_in_batches(store, n, build, batch_size)


async def bench_apply_pages(
    store: Store, n: int, batch_size: int = BATCH, keys_checked: bool = False
) -> float:
    """The same documents as one ``PutDocs`` per batch (a hub pull page's form), with revisions.

    With ``keys_checked`` as the sync engine sends a pull page: it has checked the keys itself
    (``wireform.revised_keys``, about 1 ms per 10,000 keys on its event loop, untimed here).
    """

    def build(start: int, stop: int) -> list[Any]:
        page = {f"{i + 1}:{doc_id(i)}": make_fields(i) for i in range(start, stop)}
        text = orjson.dumps(page).decode()
        return [PutDocs("items", text, origin="bench", keys_checked=keys_checked)]

    return n / await apply_in_batches(store, n, build, batch_size)


async def bench_big_batches(tmpdir: Path, n: int) -> list[dict[str, Any]]:
    """SQLiteStore with batches of :data:`BIG_BATCH` (a hub pull page's size)."""
    rows: list[dict[str, Any]] = []
    async with SQLiteStore(tmpdir / "big.db") as sq:
        rows.append(
            {
                "store": "SQLiteStore, PutDoc",
                "docs": n,
                "docs/s": await bench_apply(sq, n, BIG_BATCH),
            }
        )
    for checked, label in ((False, ""), (True, ", keys checked by the caller (a pull page)")):
        async with SQLiteStore(tmpdir / f"bigpages{checked}.db") as sq:
            rate = await bench_apply_pages(sq, n, BIG_BATCH, keys_checked=checked)
        rows.append(
            {"store": f"SQLiteStore, one PutDocs per batch{label}", "docs": n, "docs/s": rate}
        )
    return [{**row, "docs/s": round(row["docs/s"])} for row in rows]


async def bench_patch(store: Store, n_ops: int, n_docs: int = 1000) -> float:
    await store.apply(
        [PutDoc("live", f"p{i}", make_fields(i), origin="bench") for i in range(n_docs)]
    )

    def build(start: int, stop: int) -> list[Any]:
        return [PatchDoc("live", f"p{k % n_docs}", {"counter": k}) for k in range(start, stop)]

    rate = n_ops / await apply_in_batches(store, n_ops, build)
    doc = await store.get("live", "p7")
    assert doc is not None and doc["counter"] == max(k for k in range(n_ops) if k % n_docs == 7)
    return rate


async def bench_staging(store: SQLiteStore, n: int) -> list[dict[str, Any]]:
    rows = []

    async def stage(change_every: int = 0) -> float:
        def build(start: int, stop: int) -> list[Any]:
            # As the sync engine stages received ``added``: runs of up to 64 as one StageDocs.
            ops: list[Any] = []
            for run in range(start, stop, STAGE_RUN):
                docs = {
                    doc_id(i): {**make_fields(i), "qty": -1}
                    if change_every and i % change_every == 0
                    else make_fields(i)
                    for i in range(run, min(run + STAGE_RUN, stop))
                }
                ops.append(StageDocs("bench", "items", orjson.dumps(docs).decode()))
            return ops

        await store.apply([StageClear("bench")])
        return await apply_in_batches(store, n, build)

    async def commit(label: str, expect: tuple[int, int]) -> None:
        t = now()
        res = (
            await store.apply([StageCommit("bench", "items", "bench", diff_limit=1000)])
        ).commits[0]
        dt = now() - t
        assert (res.added, res.changed) == expect, (res.added, res.changed)
        rows.append(
            {
                "step": f"StageCommit: {label}",
                "docs": n,
                "seconds": round(dt, 3),
                "docs/s": round(n / dt),
            }
        )

    dt = await stage()
    rows.append(
        {
            "step": f"StageDocs of {STAGE_RUN} (resync buffer)",
            "docs": n,
            "seconds": round(dt, 3),
            "docs/s": round(n / dt),
        }
    )
    await commit("into empty collection", (n, 0))
    await commit("identical round", (0, 0))
    await stage(change_every=100)
    await commit("1% changed", (0, len(range(0, n, 100))))
    return rows


async def bench_find(store: Store, n: int, runs: int = 50) -> dict[str, float]:
    await store.create_index("items", ["sku"])
    await store.create_index("items", ["owner"])
    out = {}
    for label, selector, expect in (
        ("sku (1 match)", {"sku": f"SKU-{n // 2:08d}"}, 1),
        ("owner (~n/997 matches)", {"owner": "user0042"}, None),
    ):
        times = []
        for _ in range(runs):
            t = now()
            docs = await store.find("items", selector)
            times.append(now() - t)
        if expect is not None:
            assert len(docs) == expect
        out[label] = statistics.median(times) * 1000
        out[label + " results"] = len(docs)
    return out


async def main(n: int, quick: bool, mongo: bool) -> None:
    info = machine_info()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aioserversync-bench-") as tmp:
        tmpdir = Path(tmp)
        for page_size, label in ((DEFAULT_PAGE_SIZE, ""), (4096, ", 4 KiB pages")):
            ceiling = raw_sqlite_ceiling(tmpdir / f"raw{page_size}.db", n, page_size)
            results.append(
                {
                    "store": f"raw sqlite3 + orjson, no store (ceiling){label}",
                    "docs": n,
                    "docs/s": round(ceiling),
                }
            )
        async with SQLiteStore(tmpdir / "small.db", page_size=4096) as sq4:
            rate = round(await bench_apply(sq4, n))
        results.append(
            {"store": "SQLiteStore, 4 KiB pages (SQLite's default)", "docs": n, "docs/s": rate}
        )

        async with SQLiteStore(tmpdir / "bench.db") as sq:
            results.append(
                {"store": "SQLiteStore", "docs": n, "docs/s": round(await bench_apply(sq, n))}
            )
            patch_sq = await bench_patch(sq, n)
            finds = await bench_find(sq, n)
        async with SQLiteStore(tmpdir / "pages.db") as sq3:
            rate = round(await bench_apply_pages(sq3, n))
        results.append({"store": "SQLiteStore, one PutDocs per batch", "docs": n, "docs/s": rate})
        async with SQLiteStore(tmpdir / "stage.db") as sq2:
            staging = await bench_staging(sq2, n)

        big = await bench_big_batches(tmpdir, n)

        mem = MemoryStore()
        await mem.open()
        results.append(
            {"store": "MemoryStore", "docs": n, "docs/s": round(await bench_apply(mem, n))}
        )
        patch_mem = await bench_patch(mem, n)
        await mem.close()

        if mongo:
            # nx-27017 (a Python server) takes a few thousand documents per second.
            results.append(await bench_mongo(tmpdir, min(n, 2_000 if quick else 5_000)))

    emit("apply() of PutDoc batches (1000 per batch)", results, extra={"machine": info})
    emit(f"apply() of batches of {BIG_BATCH:,} documents into SQLiteStore", big)
    emit("Resync round into SQLiteStore", staging)
    emit(
        "PatchDoc ({'counter': k} over 1000 docs, 1000 per batch)",
        [
            {"store": "SQLiteStore", "ops": n, "ops/s": round(patch_sq)},
            {"store": "MemoryStore", "ops": n, "ops/s": round(patch_mem)},
        ],
    )
    emit(
        f"SQLiteStore find by an indexed field over {n:,} docs (median of 50)",
        [
            {"query": k, "ms": round(v, 3), "results": finds[k + " results"]}
            for k, v in finds.items()
            if not k.endswith(" results")
        ],
        extra={"peak_rss_mb": peak_rss_mb()},
    )


async def bench_mongo(tmpdir: Path, n: int) -> dict[str, Any]:
    from pymongo import AsyncMongoClient

    from aioserversync.stores import MongoStore
    from tests.mongo_server import mongo_uri_from_env, start_nx27017

    uri = mongo_uri_from_env()
    server = None if uri else start_nx27017(tmpdir / "nx")
    try:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri or server.uri)  # type: ignore[union-attr]
        try:
            async with MongoStore(client["aioserversync_bench"]) as store:
                rate = await bench_apply(store, n)
            await client.drop_database("aioserversync_bench")
        finally:
            await client.close()
    finally:
        if server is not None:
            server.stop()
    label = "MongoStore (real MongoDB)" if uri else "MongoStore (nx-27017)"
    return {"store": label, "docs": n, "docs/s": round(rate)}


def run(*, docs: int = 100_000, quick: bool = False, mongo: bool = True) -> list[dict[str, Any]]:
    """Run the store benchmarks; return the emitted tables."""
    from benchmarks.common import RECORD

    first = len(RECORD)
    asyncio.run(main(docs, quick, mongo))
    return RECORD[first:]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10k documents, short Mongo run")
    parser.add_argument("--no-mongo", action="store_true")
    args = parser.parse_args()
    docs = 10_000 if args.quick and args.docs == 100_000 else args.docs
    asyncio.run(main(docs, args.quick, not args.no_mongo))

"""Hub throughput on loopback: ``serversync/pull`` catch-up and change-feed fan-out.

Rows:

* ``pull -> receive``: an edge process pulls N documents from a hub (SQLite store) in pages of
  ``--page``, reading only the paging fields of each result: what the hub can serve;
* ``pull -> parse``: the same, parsing each result (``orjson.loads``);
* ``pull -> sqlite``: the same edge writes every page into its own SQLiteStore (one
  ``apply`` per page: the documents and the checkpoint), requesting the next page before writing
  the current one: end to end, docs/s into an edge's store (target B2: >= 260k docs/s);
* ``push``: one client pushes ``--pushes`` inserts, 500 per ``serversync/push`` call (each
  call one transaction with its mutation records), waiting for each result;
* ``feed fan-out``: C sink processes subscribed to ``serversync/changes``; an in-process client
  pushes M inserts in pushes of 200; time until every sink has every entry. Each entry is
  encoded once for all sessions.

Run: ``python -m benchmarks.hub [--docs N] [--page P] [--clients C] [--changes M]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import connect

from aioserversync.hub import ServerSyncServer
from aioserversync.stores import MetaSet, PutDoc, SQLiteStore
from benchmarks.common import emit, machine_info, peak_rss_mb
from benchmarks.ddp_server import _SINK

TOKEN = "bench-token"


def _doc(i: int) -> dict[str, Any]:
    return {
        "title": f"Document number {i}",
        "owner": "u8Hk2mPqRsTvWxYz3",
        "status": "open" if i % 3 else "done",
        "score": i * 0.5,
        "count": i,
        "flag": bool(i % 2),
        "at": {"$date": 1704164645678 + i},
        "tags": ["a", "b", "c"],
        "nested": {"x": i, "y": "z"},
        "text": "lorem ipsum dolor sit amet " * 4,
    }


async def fill(path: Path, docs: int) -> None:
    """Write N documents with revisions 1..N straight into a hub store."""
    async with SQLiteStore(path) as store:
        for start in range(0, docs, 10_000):
            ops: list[Any] = [
                PutDoc("items", f"d{i:016d}", _doc(i), None, i + 1)
                for i in range(start, min(docs, start + 10_000))
            ]
            await store.apply(ops)
        await store.apply(
            [MetaSet("serversync/rev/items", docs), MetaSet("serversync/stamped/items", 1)]
        )


def _tail(frame: bytes) -> dict[str, Any]:
    # ``…],"next":N,"more":B,"purged":P}}``: read the paging fields without parsing the docs.
    start = frame.rfind(b'"next":')
    info: dict[str, Any] = orjson.loads(b"{" + frame[start:-1])
    info["count"] = frame.count(b'],["') + 1 if b'"docs":[]' not in frame else 0
    return info


async def edge(url: str, db: str | None, page: int, mode: str) -> None:
    """The edge side (run in its own process): pull everything, print ``docs seconds``."""
    store = SQLiteStore(db) if db else None
    if store is not None:
        await store.open()
    async with connect(url, proxy=None, max_size=None, compression=None) as ws:
        ids = iter(range(1, 1 << 30))

        async def send(method: str, *params: Any) -> str:
            mid = str(next(ids))
            msg = {"msg": "method", "id": mid, "method": method, "params": list(params)}
            await ws.send(orjson.dumps(msg), text=True)
            return mid

        async def result(mid: str, paging: bool = True) -> Any:
            head = b'{"msg":"result","id":"%s"' % mid.encode()
            while True:
                frame = await ws.recv(decode=False)
                if frame.startswith(head):
                    if mode == "receive" and paging:
                        return _tail(frame)
                    return orjson.loads(frame)["result"]

        await ws.send(b'{"msg":"connect","version":"1","support":["1"]}', text=True)
        await ws.recv()
        await result(await send("login", {"resume": TOKEN}), paging=False)
        t0 = time.perf_counter()
        total = 0
        pending = await send("serversync/pull", "items", 0, page)
        writing: asyncio.Task[Any] | None = None
        while True:
            res = await result(pending)
            if res["more"]:
                pending = await send("serversync/pull", "items", res["next"], page)
            if mode == "receive":
                total += res["count"]
                if not res["more"]:
                    break
                continue
            docs = res["docs"]
            total += len(docs)
            if store is not None:
                ops: list[Any] = [PutDoc("items", i, f, "hub", r) for i, r, f in docs]
                ops.append(MetaSet("checkpoint/items", res["next"]))
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(store.apply(ops))
            if not res["more"]:
                break
        if writing is not None:
            await writing
        elapsed = time.perf_counter() - t0
    if store is not None:
        await store.close()
    print(total, elapsed, flush=True)


async def run_pull(docs: int, page: int, mode: str, tmp: Path) -> dict[str, Any]:
    hub_db = tmp / "hub.sqlite3"
    if not hub_db.exists():
        await fill(hub_db, docs)
    hub = ServerSyncServer(SQLiteStore(hub_db), tokens={TOKEN: "edge"}, compression=None)
    hub.collection("items")
    edge_db = tmp / f"edge-{time.monotonic_ns()}.sqlite3"
    async with hub.serve() as running:
        args = [sys.executable, "-m", "benchmarks.hub", "--edge", running.url]
        args += ["--page", str(page), "--edge-mode", mode]
        if mode == "sqlite":
            args += ["--edge-db", str(edge_db)]
        c0 = time.process_time()
        proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        cpu = time.process_time() - c0
    count, elapsed = out.split()
    n, seconds = int(count), float(elapsed)
    assert n == docs, (n, docs)
    return {
        "case": f"pull -> {mode}",
        "docs": n,
        "page": page,
        "seconds": round(seconds, 3),
        "docs_per_s": round(n / seconds),
        "hub_cpu_s": round(cpu, 3),
    }


async def run_push(changes: int, batch: int, tmp: Path) -> dict[str, Any]:
    hub = ServerSyncServer(
        SQLiteStore(tmp / f"push-{time.monotonic_ns()}.sqlite3"),
        allow_anonymous=True,
        compression=None,
    )
    hub.collection("items")
    async with (
        hub.serve() as running,
        connect(running.url, proxy=None, max_size=None, compression=None) as ws,
    ):
        await ws.send(b'{"msg":"connect","version":"1","support":["1"]}', text=True)
        await ws.recv()
        t0, c0 = time.perf_counter(), time.process_time()
        for start in range(0, changes, batch):
            docs = [
                {"mid": f"m{i}", "op": "insert", "id": f"d{i}", "base": None, "doc": _doc(i)}
                for i in range(start, min(changes, start + batch))
            ]
            msg = {"msg": "method", "id": str(start), "method": "serversync/push"}
            await ws.send(orjson.dumps({**msg, "params": ["items", docs]}), text=True)
            head = b'{"msg":"result","id":"%d"' % start
            while not (await ws.recv(decode=False)).startswith(head):
                pass
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "case": f"push ({batch} per call)",
        "docs": changes,
        "seconds": round(elapsed, 3),
        "docs_per_s": round(changes / elapsed),
        "hub_cpu_s": round(cpu, 3),
    }


async def run_fanout(clients: int, changes: int) -> dict[str, Any]:
    hub = ServerSyncServer(":memory:", allow_anonymous=True, compression=None)
    coll = hub.collection("items")
    subscribed = asyncio.Event()
    register = coll.add_feed

    def add_feed(pub: Any) -> None:  # counts the sinks as they go live
        register(pub)
        if len(coll.feed_pubs) >= clients:
            subscribed.set()

    coll.add_feed = add_feed  # type: ignore[method-assign]
    async with hub.serve() as running:
        sub = {"msg": "sub", "id": "f", "name": "serversync/changes", "params": ["items", 0]}
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _SINK,
                str(running.port),
                orjson.dumps(sub).decode(),
                '"i":"END"',
                stdout=asyncio.subprocess.PIPE,
            )
            for _ in range(clients)
        ]
        async with asyncio.timeout(60):
            await subscribed.wait()
        async with connect(running.url, proxy=None, compression=None) as ws:
            await ws.send(b'{"msg":"connect","version":"1","support":["1"]}', text=True)
            await ws.recv()
            t0, c0 = time.perf_counter(), time.process_time()
            for start in range(0, changes, 200):
                batch = [
                    {"mid": f"m{i}", "op": "insert", "id": f"d{i}", "base": None, "doc": _doc(i)}
                    for i in range(start, min(changes, start + 200))
                ]
                if start + 200 >= changes:
                    batch.append({"mid": "end", "op": "insert", "id": "END", "doc": {}})
                msg = {"msg": "method", "id": str(start), "method": "serversync/push"}
                await ws.send(orjson.dumps({**msg, "params": ["items", batch]}), text=True)
                while True:
                    reply = orjson.loads(await ws.recv(decode=False))
                    if reply.get("msg") == "result" and reply["id"] == str(start):
                        break
            for p in procs:
                await p.communicate()
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    entries = (changes + 1) * clients
    return {
        "case": "feed fan-out",
        "docs": changes,
        "clients": clients,
        "seconds": round(elapsed, 3),
        "entries_per_s": round(entries / elapsed),
        "hub_cpu_s": round(cpu, 3),
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--page", type=int, default=10_000)
    ap.add_argument("--pushes", type=int, default=20_000)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--changes", type=int, default=5_000)
    ap.add_argument("--edge", help=argparse.SUPPRESS)
    ap.add_argument("--edge-db", help=argparse.SUPPRESS)
    ap.add_argument("--edge-mode", default="parse", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.edge:
        await edge(args.edge, args.edge_db, args.page, args.edge_mode)
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            await run_pull(args.docs, args.page, "receive", Path(tmp)),
            await run_pull(args.docs, args.page, "parse", Path(tmp)),
            await run_pull(args.docs, args.page, "sqlite", Path(tmp)),
            await run_push(args.pushes, 500, Path(tmp)),
            await run_fanout(args.clients, args.changes),
        ]
    emit(
        "Hub: pull catch-up and feed fan-out (loopback)",
        rows,
        columns=[
            "case",
            "docs",
            "page",
            "clients",
            "seconds",
            "docs_per_s",
            "entries_per_s",
            "hub_cpu_s",
        ],
        extra={"machine": machine_info(), "peak_rss_mb": peak_rss_mb()},
    )


if __name__ == "__main__":
    asyncio.run(main())

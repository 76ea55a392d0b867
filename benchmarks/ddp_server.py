"""DDPServer throughput on loopback: one publication sending N ``added``, and fan-out.

The receivers are separate processes that do the WebSocket handshake by hand, send ``connect``
and ``sub``, then only count bytes until ``ready`` (or the end marker) arrives, so the figures
measure the server rather than a client's parsing.

Rows:

* ``initial``: one client; the publication sends N documents through the merge box, then
  ``ready`` (compression off, and with permessage-deflate for comparison);
* ``initial (wire)``: the same with pre-encoded wire fields (``added_wire``);
* ``fan-out``: C clients subscribed to a ``no_merge_no_history`` publication; a change stream
  of M ``changed`` frames encoded once is broadcast to all of them (``DDPServer.broadcast``).

Run: ``python -m benchmarks.ddp_server [--docs N] [--clients C] [--changes M]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson

from aioserversync.asyncio.server import DDPServer, Publication, serve
from aioserversync.protocol.server import changed_frame
from benchmarks.common import emit, machine_info, peak_rss_mb

_SINK = r"""
import base64, os, socket, sys, time
port, sub, marker = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode()
s = socket.create_connection(("127.0.0.1", port))
key = base64.b64encode(os.urandom(16)).decode()
s.sendall((f"GET /websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(4096)
def frame(payload):
    n = len(payload)
    if n < 126:
        return bytes([0x81, 0x80 | n]) + b"\0\0\0\0" + payload
    return bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big") + b"\0\0\0\0" + payload
s.sendall(frame(b'{"msg":"connect","version":"1","support":["1"]}') + frame(sub))
total, tail, t0 = 0, b"", None
while True:
    d = s.recv(1 << 20)
    if not d:
        break
    if t0 is None:
        t0 = time.perf_counter()
    total += len(d)
    if marker in tail + d:
        break
    tail = d[-64:]
print(total, time.perf_counter() - (t0 or time.perf_counter()), flush=True)
"""


def _doc(i: int) -> dict[str, Any]:
    return {
        "title": f"Document number {i}",
        "owner": "u8Hk2mPqRsTvWxYz3",
        "status": "open" if i % 3 else "done",
        "score": i * 0.5,
        "count": i,
        "flag": bool(i % 2),
        "tags": ["a", "b", "c"],
        "nested": {"x": i, "y": "z"},
    }


def build_server(
    docs: int, compression: str | None, subscribers: int = 0
) -> tuple[DDPServer, list[Publication], asyncio.Event]:
    ddp = DDPServer(compression=compression)  # type: ignore[arg-type]
    fanout: list[Publication] = []
    all_subscribed = asyncio.Event()
    wire_docs = [(f"d{i:016d}", orjson.loads(orjson.dumps(_doc(i)))) for i in range(docs)]

    @ddp.publish("items")
    async def items(pub: Publication, n: int) -> None:
        for i in range(n):
            pub.added("items", f"d{i:016d}", _doc(i))
            if i % 1024 == 1023:
                await pub.drain()
        pub.ready()

    @ddp.publish("items.wire")
    async def items_wire(pub: Publication, n: int) -> None:
        for i in range(n):
            wid, fields = wire_docs[i]
            pub.added_wire("items", wid, fields)
            if i % 1024 == 1023:
                await pub.drain()
        pub.ready()

    @ddp.publish("feed", strategy="no_merge_no_history")
    async def feed(pub: Publication) -> None:
        fanout.append(pub)
        pub.ready()
        if len(fanout) >= subscribers:
            all_subscribed.set()

    return ddp, fanout, all_subscribed


async def _sink(port: int, sub: dict[str, Any], marker: bytes) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _SINK,
        str(port),
        orjson.dumps(sub).decode(),
        marker.decode(),
        stdout=asyncio.subprocess.PIPE,
    )


async def run_initial(docs: int, compression: str | None, wire: bool) -> dict[str, Any]:
    ddp, _, _ = build_server(docs, compression)
    async with serve(ddp, "127.0.0.1", 0) as running:
        name = "items.wire" if wire else "items"
        sub = {"msg": "sub", "id": "s1", "name": name, "params": [docs]}
        t0, c0 = time.perf_counter(), time.process_time()
        proc = await _sink(running.port, sub, b'"msg":"ready"')
        out, _ = await proc.communicate()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    total = int(out.split()[0])
    return {
        "case": f"initial{' (wire)' if wire else ''}",
        "compression": compression or "off",
        "clients": 1,
        "messages": docs,
        "seconds": round(elapsed, 3),
        "msgs_per_s": round(docs / elapsed),
        "server_cpu_s": round(cpu, 3),
        "msgs_per_cpu_s": round(docs / cpu),
        "MB": round(total / 1e6, 1),
    }


async def run_fanout(clients: int, changes: int) -> dict[str, Any]:
    ddp, fanout, all_subscribed = build_server(0, None, clients)
    async with serve(ddp, "127.0.0.1", 0) as running:
        sub = {"msg": "sub", "id": "f1", "name": "feed", "params": []}
        procs = [await _sink(running.port, sub, b'"id":"END"') for _ in range(clients)]
        async with asyncio.timeout(60):
            await all_subscribed.wait()
        t0, c0 = time.perf_counter(), time.process_time()
        sessions = {pub.connection for pub in fanout}
        batch: list[bytes] = []
        for k in range(changes):
            frame = changed_frame("items", f"d{k % 1000:016d}", {"counter": k}, wire=True)
            assert frame is not None
            batch.append(frame)
            if len(batch) == 256:
                ddp.broadcast(batch, fanout)
                batch = []
                await asyncio.gather(*(s.drain() for s in sessions))
        batch.append(orjson.dumps({"msg": "added", "collection": "items", "id": "END"}))
        ddp.broadcast(batch, fanout)
        for p in procs:
            await p.communicate()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "case": "fan-out (broadcast)",
        "compression": "off",
        "clients": clients,
        "messages": changes * clients,
        "seconds": round(elapsed, 3),
        "msgs_per_s": round(changes * clients / elapsed),
        "server_cpu_s": round(cpu, 3),
        "msgs_per_cpu_s": round(changes * clients / cpu),
        "MB": None,
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--changes", type=int, default=20_000)
    args = ap.parse_args()
    rows = [
        await run_initial(args.docs, None, False),
        await run_initial(args.docs, None, True),
        await run_initial(args.docs, "deflate", False),
        await run_fanout(args.clients, args.changes),
    ]
    emit(
        "DDPServer loopback throughput",
        rows,
        extra={"machine": machine_info(), "peak_rss_mb": peak_rss_mb()},
    )


if __name__ == "__main__":
    asyncio.run(main())

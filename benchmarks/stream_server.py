"""A DDP server that streams N generated documents without building them first (for B5).

    python -m benchmarks.stream_server [--port 0]

``sub items [N]`` gets N ``added`` frames of ddp-blaster's document shape (~250 B of fields with
one ``$date``, random 17-character Meteor ids from a fixed seed), generated in chunks while they
are sent (a ``no_merge_no_history`` publication, so the server keeps nothing per document), then
``ready``. It prints ``URL ws://...`` once it listens. ddp-blaster pre-builds every frame before it
serves (about 1.5 minutes and 1 GB for 3M documents); B5 measures the client's memory, which does
not depend on how the server makes its frames.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import subprocess
import sys
from typing import Any

import orjson

from aioserversync.asyncio.server import DDPServer, Publication, serve
from benchmarks.common import ROOT
from benchmarks.hubproc import make_fields

_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
_CHUNK = 1024


def frames(start: int, stop: int, rnd: random.Random) -> list[bytes]:
    """The ``added`` frames of documents ``start`` to ``stop - 1``."""
    head = b'{"msg":"added","collection":"items","id":"'
    out = []
    for i in range(start, stop):
        doc_id = "".join(rnd.choices(_ALPHABET, k=17)).encode()
        out.append(head + doc_id + b'","fields":' + orjson.dumps(make_fields(i)) + b"}")
    return out


def build() -> DDPServer:
    """The server: one ``items`` publication taking the document count."""
    ddp = DDPServer(compression=None, heartbeat_interval=0)

    @ddp.publish("items", strategy="no_merge_no_history")
    async def items(pub: Publication, n: Any = 0) -> None:
        rnd = random.Random(5)
        for start in range(0, int(n), _CHUNK):
            pub.send_wire(frames(start, min(start + _CHUNK, int(n)), rnd))
            await pub.drain()
        pub.ready()

    return ddp


async def _main(port: int) -> None:
    async with serve(build(), "127.0.0.1", port) as running:
        sys.stdout.write(f"URL ws://127.0.0.1:{running.port}/websocket\n")
        sys.stdout.flush()
        await asyncio.to_thread(sys.stdin.read)  # until the parent closes stdin


class StreamServer:
    """The server in its own process, for ``with`` blocks (``url`` once it listens)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> StreamServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.stream_server"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"ws://\S+", line)
        if not m:
            self.__exit__()
            raise RuntimeError(f"the stream server did not start: {line!r}")
        self.url = m.group(0)
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    asyncio.run(_main(p.parse_args().port))


if __name__ == "__main__":
    main()

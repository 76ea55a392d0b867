"""SQLiteStore batches are atomic under ``kill -9``.

A forked child process applies, again and again, one large batch: 50,000 ``PutDoc`` rewriting
the same documents with a new generation number, 10 outbox appends, and a ``MetaSet("gen", n)``
checkpoint. The parent kills it with SIGKILL at a random moment, reopens the file and checks that
the store holds exactly one whole generation (the checkpoint's), that every generation up to it
left its 10 outbox records, and that no record seen after an earlier kill was lost. Then it starts
the next child on the same file, 20 times.
"""

from __future__ import annotations

import asyncio
import os
import random
import select
import signal
import time
from pathlib import Path
from typing import Any

from aioserversync.stores import MetaSet, OutboxAppend, OutboxRecord, PutDoc, SQLiteStore

DOCS = 50_000
OUTBOX_PER_BATCH = 10
ROUNDS = 20


def _build(gen: int) -> list[Any]:
    batch: list[Any] = [
        PutDoc("items", f"d{i}", {"gen": gen, "i": i, "pad": "x" * 120}) for i in range(DOCS)
    ]
    batch += [
        OutboxAppend(OutboxRecord("items", f"g{gen}-{j}", "insert", {"gen": gen}))
        for j in range(OUTBOX_PER_BATCH)
    ]
    batch.append(MetaSet("gen", gen))
    return batch


async def _child(path: Path, ready_fd: int) -> None:
    async with SQLiteStore(path) as store:
        gen = (await store.get_meta("gen") or 0) + 1
        batch = _build(gen)
        os.write(ready_fd, b"started\n")
        while True:
            await store.apply(batch)
            gen += 1
            batch = _build(gen)


async def _check(path: Path) -> tuple[int, dict[int, int]]:
    async with SQLiteStore(path) as store:
        gen = await store.get_meta("gen") or 0
        assert await store.count("items") == (DOCS if gen else 0)
        if gen:
            assert await store.count("items", {"gen": gen}) == DOCS, "documents of mixed batches"
        records = await store.outbox_peek(limit=0)
        by_gen: dict[int, int] = {}
        for r in records:
            by_gen[r.payload["gen"]] = by_gen.get(r.payload["gen"], 0) + 1
        assert by_gen == {g: OUTBOX_PER_BATCH for g in range(1, gen + 1)}
        return gen, {r.seq: r.payload["gen"] for r in records}


def _start_child(path: Path) -> int:
    """Fork a child that applies batches forever; return its PID once it says it started."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        code = 1
        try:
            os.close(read_fd)
            asyncio.run(_child(path, write_fd))
        finally:
            os._exit(code)
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], 60)
        if not ready or not os.read(read_fd, 100).startswith(b"started"):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the child never reported it started")
    finally:
        os.close(read_fd)
    return pid


def test_batches_survive_kill_9_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "kill.db"
    rng = random.Random(1234)
    seen: dict[int, int] = {}
    gens = []
    for _ in range(ROUNDS):
        pid = _start_child(path)
        # Fault injection: kill after a random delay; this is not a wait for any condition.
        time.sleep(rng.uniform(0.0, 1.0))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        gen, records = asyncio.run(_check(path))
        assert seen.items() <= records.items(), "committed outbox records were lost"
        seen = records
        gens.append(gen)
    assert gens == sorted(gens)
    # Some rounds committed batches and some were killed before their first commit.
    assert gens[-1] >= 3 and len(set(gens)) < ROUNDS, gens

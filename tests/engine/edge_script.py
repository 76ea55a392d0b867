"""A write-mode edge for kill -9 tests against a hub: a seeded script of writes, then a drain.

Prints one line per event so the parent can kill it at chosen moments: ``ready`` once the first
round is applied, ``ack <i>`` when write ``i`` returned (it is then durable), and at the end
``drained conflicts=<n> failed=<n>`` and ``docs <json>`` (the local documents, sorted by id).

    python -m tests.engine.edge_script --url URL --db PATH --seed S --writes N

A restarted edge runs with ``--writes 0``: it only drains what the killed one queued.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
from typing import Any

import orjson

from aioserversync.asyncio.sync import ServerSync
from aioserversync.stores import SQLiteStore
from tests.engine.edge_proc import PROCESS_OPTIONS

SEED_DOCS = 8
"""Documents ``c0``..``c7`` (``{"n": 0}``) the hub holds before the edge starts."""

Step = tuple[str, str, Any]


def script(seed: int, n: int) -> list[Step]:
    """The ``n`` writes of a run: inserts, ``$inc``, ``$set``, ``$unset`` and removes."""
    rng = random.Random(seed)
    live = [f"c{i}" for i in range(SEED_DOCS)]
    steps: list[Step] = []
    for i in range(n):
        r = rng.random()
        if r < 0.1 or len(live) < 3:
            live.append(f"new{i}")
            steps.append(("insert", live[-1], {"n": 0}))
        elif r < 0.2:
            steps.append(("remove", live.pop(rng.randrange(len(live))), None))
        elif r < 0.6:
            steps.append(("inc", rng.choice(live), rng.randint(1, 9)))
        elif r < 0.9:
            steps.append(("set", rng.choice(live), rng.choice(["x", "y", "z"]) * rng.randint(1, 3)))
        else:
            steps.append(("unset", rng.choice(live), None))
    return steps


def model(steps: list[Step]) -> list[dict[str, Any]]:
    """The documents after ``steps``, sorted by id."""
    docs: dict[str, dict[str, Any]] = {f"c{i}": {"_id": f"c{i}", "n": 0} for i in range(SEED_DOCS)}
    for op, doc_id, arg in steps:
        if op == "insert":
            docs[doc_id] = {"_id": doc_id, **arg}
        elif op == "remove":
            del docs[doc_id]
        elif op == "inc":
            docs[doc_id]["n"] += arg
        elif op == "set":
            docs[doc_id]["s"] = arg
        else:
            docs[doc_id].pop("s", None)
    return [docs[k] for k in sorted(docs)]


async def _write(items: Any, step: Step) -> None:
    op, doc_id, arg = step
    if op == "insert":
        await items.insert({"_id": doc_id, **arg})
    elif op == "remove":
        assert await items.remove(doc_id) == 1
    elif op == "inc":
        assert await items.update(doc_id, {"$inc": {"n": arg}}) == 1
    elif op == "set":
        assert await items.update(doc_id, {"$set": {"s": arg}}) == 1
    else:
        assert await items.update(doc_id, {"$unset": {"s": ""}}) == 1


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--writes", type=int, default=0)
    args = p.parse_args()
    # For the parent's report when a run fails: what the edge did, on stderr.
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(relativeCreated)d %(name)s %(message)s"
    )
    async with ServerSync(
        args.url,
        store=SQLiteStore(args.db),
        name="hub",
        **PROCESS_OPTIONS,
    ) as remote:
        items = await remote.sync("items", mode="write")
        stream = items.changes()
        await items.wait_ready(timeout=30)
        _say("ready")
        for i, step in enumerate(script(args.seed, args.writes)):
            await _write(items, step)
            _say(f"ack {i}")
        await items.wait_drained(timeout=60)
        stats = items.stats
        _say(f"drained conflicts={stats.conflicts} failed={stats.failed}")
        while (ev := stream.try_next()) is not None:
            if ev.error is not None:  # a conflict or a rejection, for the parent's report
                e = ev.error
                _say(f"{ev.op} {ev.id} {e} local={e.local} base={e.base} remote={e.remote}")
        docs = sorted(await items.find({}), key=lambda d: str(d["_id"]))
        _say("docs " + orjson.dumps(docs).decode())


if __name__ == "__main__":
    asyncio.run(main())

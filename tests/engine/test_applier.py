"""The applier's grouped jobs: joining, splitting, order, cancellation and shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aioserversync.asyncio.applier import Applier
from aioserversync.exceptions import InvalidState


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[Any]] = []
        self.gate = asyncio.Event()

    async def blocker(self) -> str:
        await self.gate.wait()
        self.calls.append(["blocker"])
        return "blocked"

    async def run(self, items: list[Any]) -> list[tuple[bool, Any]]:
        self.calls.append(list(items))
        return [
            (False, ValueError(item)) if str(item).startswith("bad") else (True, item * 2)
            for item in items
        ]


async def test_items_queued_together_run_in_one_call_in_order() -> None:
    applier = Applier(max_backlog=100)
    rec = Recorder()
    applier.start()
    try:
        first = applier.submit_nowait(rec.blocker)  # holds the queue while items arrive
        futs = [applier.submit_grouped("k", f"m{i}", i, rec.run) for i in range(5)]
        rec.gate.set()
        assert await first == "blocked"
        assert [await f for f in futs] == [0, 2, 4, 6, 8]
        assert rec.calls == [["blocker"], [0, 1, 2, 3, 4]]
    finally:
        await applier.close()


async def test_a_repeated_member_other_key_or_other_job_starts_a_new_group() -> None:
    applier = Applier(max_backlog=100)
    rec = Recorder()
    applier.start()
    try:
        first = applier.submit_nowait(rec.blocker)
        a = applier.submit_grouped("k", "doc1", 1, rec.run)
        b = applier.submit_grouped("k", "doc2", 2, rec.run)
        c = applier.submit_grouped("k", "doc1", 3, rec.run)  # doc1 again: a new group
        d = applier.submit_grouped("other", "doc3", 4, rec.run)  # another key
        between = applier.submit_nowait(lambda: rec.run(["plain"]))
        e = applier.submit_grouped("other", "doc4", 5, rec.run)  # after a plain job
        f = applier.submit_grouped("k", "x", 6, rec.run, max_items=2)
        g = applier.submit_grouped("k", "y", 7, rec.run, max_items=2)
        h = applier.submit_grouped("k", "z", 8, rec.run, max_items=2)  # group is full
        rec.gate.set()
        await asyncio.gather(first, a, b, c, d, between, e, f, g, h)
        assert rec.calls == [["blocker"], [1, 2], [3], [4], ["plain"], [5], [6, 7], [8]]
    finally:
        await applier.close()


async def test_item_errors_and_cancelled_items() -> None:
    applier = Applier(max_backlog=100)
    rec = Recorder()
    applier.start()
    try:
        first = applier.submit_nowait(rec.blocker)
        ok = applier.submit_grouped("k", 1, 1, rec.run)
        bad = applier.submit_grouped("k", 2, "bad", rec.run)
        gone = applier.submit_grouped("k", 3, 3, rec.run)
        gone.cancel()
        rec.gate.set()
        await first
        assert await ok == 2
        with pytest.raises(ValueError, match="bad"):
            await bad
        assert rec.calls[-1] == [1, "bad"]  # the cancelled item never ran
    finally:
        await applier.close()


async def test_a_failing_runner_fails_every_item_and_the_applier_goes_on() -> None:
    applier = Applier(max_backlog=100)
    applier.start()

    async def broken(items: list[Any]) -> list[tuple[bool, Any]]:
        raise RuntimeError("store down")

    try:
        futs = [applier.submit_grouped("k", i, i, broken) for i in range(3)]
        for fut in futs:
            with pytest.raises(RuntimeError, match="store down"):
                await fut
        assert await applier.submit(lambda: asyncio.sleep(0, "next")) == "next"
    finally:
        await applier.close()


async def test_closing_fails_grouped_items_still_queued() -> None:
    applier = Applier(max_backlog=100)
    rec = Recorder()
    applier.start()
    first = applier.submit_nowait(rec.blocker)
    queued = applier.submit_grouped("k", 1, 1, rec.run)
    await applier.abort()
    with pytest.raises(InvalidState):
        await queued
    assert first.done()
    with pytest.raises(InvalidState):
        applier.submit_grouped("k", 2, 2, rec.run)

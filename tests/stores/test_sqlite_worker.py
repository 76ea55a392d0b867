"""The SQLite store's private worker thread: order, errors, cancellation and shutdown."""

from __future__ import annotations

import asyncio
import threading

import pytest

from aioserversync.exceptions import InvalidState
from aioserversync.stores.sqlite_worker import WorkerThread


async def test_jobs_run_in_order_on_one_named_thread() -> None:
    worker = WorkerThread("test-worker")
    worker.start()
    seen: list[tuple[int, str]] = []

    def job(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        return i * 2

    try:
        results = await asyncio.gather(*(worker.run(job, i) for i in range(50)))
    finally:
        worker.stop()
    assert results == [i * 2 for i in range(50)]
    assert [i for i, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"test-worker"}
    assert threading.current_thread().name != "test-worker"


async def test_keyword_arguments_and_errors_reach_the_caller() -> None:
    worker = WorkerThread("test-worker")
    worker.start()

    def divide(a: int, *, by: int) -> float:
        return a / by

    try:
        assert await worker.run(divide, 6, by=3) == 2
        with pytest.raises(ZeroDivisionError):
            await worker.run(divide, 1, by=0)
        assert await worker.run(divide, 1, by=1) == 1  # the thread survives a failed job
    finally:
        worker.stop()


async def test_a_cancelled_caller_does_not_cut_the_job_short() -> None:
    worker = WorkerThread("test-worker")
    worker.start()
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def slow() -> str:
        started.set()
        release.wait(10)
        finished.append("done")
        return "done"

    try:
        task = asyncio.ensure_future(worker.run(slow))
        assert await asyncio.to_thread(started.wait, 10)  # the job is running
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        # The next job runs after the cancelled one, which therefore finished first.
        assert await worker.run(lambda: list(finished)) == ["done"]
    finally:
        release.set()
        worker.stop()


async def test_stop_refuses_new_jobs_and_runs_queued_ones() -> None:
    worker = WorkerThread("test-worker")
    worker.start()
    assert worker.running
    started, gate = threading.Event(), threading.Event()

    def blocked() -> bool:
        started.set()
        return gate.wait(10)

    queued = asyncio.ensure_future(worker.run(blocked))
    later = asyncio.ensure_future(worker.run(lambda: "still runs"))
    # While this waits, both tasks start and queue their jobs (in order).
    assert await asyncio.to_thread(started.wait, 10)
    worker.stop()
    worker.stop()  # idempotent
    assert not worker.running
    with pytest.raises(InvalidState):
        await worker.run(lambda: None)
    gate.set()
    assert await queued is True
    assert await later == "still runs"


async def test_stop_after_runs_the_last_job_and_ends_the_thread() -> None:
    worker = WorkerThread("test-worker-last")
    worker.start()
    ran: list[str] = []
    await worker.stop_after(lambda: ran.append("last"))
    assert ran == ["last"]
    assert not worker.running
    assert all(t.name != "test-worker-last" for t in threading.enumerate())
    with pytest.raises(InvalidState):
        await worker.stop_after(lambda: None)


async def test_a_result_for_a_closed_loop_is_dropped_quietly() -> None:
    """A job whose loop closed before it finished does not kill the thread."""
    worker = WorkerThread("test-worker")
    worker.start()
    started, gate = threading.Event(), threading.Event()

    def blocked() -> bool:
        started.set()
        return gate.wait(10)

    def other_loop() -> None:
        async def submit() -> None:
            fut = asyncio.ensure_future(worker.run(blocked))
            assert await asyncio.to_thread(started.wait, 10)
            fut.cancel()

        asyncio.run(submit())  # closes its loop while the job still waits

    try:
        await asyncio.to_thread(other_loop)
        gate.set()  # the job ends and finds its loop closed
        assert await worker.run(lambda: "alive") == "alive"
    finally:
        worker.stop()

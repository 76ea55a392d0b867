"""A hub that answers ``serversync/push`` badly: queued writes are retried or dead-lettered,
never lost, and never applied twice.

The misbehaviour is injected by wrapping the real hub's method handler (fault injection: the
hub under test is real, only its answers are spoiled).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import pytest

from aioserversync.exceptions import MeteorError, NotAuthorized
from aioserversync.hub.collection import MUTATIONS_PREFIX
from aioserversync.stores import SQLiteStore
from tests.conftest import MS
from tests.engine.conftest import drain_events, edge, go_offline, go_online
from tests.engine.test_hub_sync import HubEnv, converged, env, hub_edge, short_memory_hub
from tests.proxy import FaultProxy
from tests.utils import wait_for_condition

__all__ = ["env"]  # the hub fixture, shared with test_hub_sync


def spoil_push(env: HubEnv, answers: list[Any]) -> list[list[dict[str, Any]]]:
    """Answer the next pushes with ``answers`` (a value, or an exception to raise), then let
    the real handler answer. Returns the changes of every push the hub received."""
    push = env.hub.ddp._methods["serversync/push"]
    seen: list[list[dict[str, Any]]] = []

    async def spoiled(ctx: Any, *params: Any) -> Any:
        seen.append(list(params[1]))
        if answers:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return await push(ctx, *params)

    env.hub.ddp._methods["serversync/push"] = spoiled
    return seen


@asynccontextmanager
async def write_edge(env: HubEnv) -> AsyncIterator[tuple[Any, Any]]:
    """A write-mode edge of the hub on SQLite, its ``items`` ready; closed on exit."""
    remote = await hub_edge(env, SQLiteStore(env.tmp / "edge.db"))
    try:
        items = await remote.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        yield remote, items
    finally:
        await remote.close()


class HeldPush:
    """The hub's next push, held (see :func:`hold_first_push`)."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.go_on = asyncio.Event()
        self.judged = asyncio.Event()
        self.answer = asyncio.Event()

    def release(self) -> None:
        self.go_on.set()
        self.answer.set()


def hold_first_push(env: HubEnv) -> tuple[asyncio.Event, asyncio.Event, asyncio.Event]:
    """Hold the hub's next push: ``entered`` is set when it arrives; it is applied (committed and
    published on the feed) once ``go_on`` is set, and answered once ``answer`` is set. Later
    pushes pass straight through."""
    held = hold_push(env)
    return held.entered, held.go_on, held.answer


def hold_push(env: HubEnv) -> HeldPush:
    """Like :func:`hold_first_push`; ``judged`` is also set once the hub has applied the push
    (or refused it), before its answer is released."""
    push = env.hub.ddp._methods["serversync/push"]
    state = HeldPush()

    async def held(ctx: Any, *params: Any) -> Any:
        if state.entered.is_set():
            return await push(ctx, *params)
        state.entered.set()
        await state.go_on.wait()
        result = await push(ctx, *params)
        state.judged.set()
        await state.answer.wait()
        return result

    env.hub.ddp._methods["serversync/push"] = held
    return state


async def offline_edits(env: HubEnv, *, insert: bool = True) -> tuple[Any, Any]:
    """An edge in write mode that updates d1 (and inserts ``new``) while offline."""
    remote = await hub_edge(env, SQLiteStore(env.tmp / "edge.db"))
    items = await remote.sync("items", mode="write")
    await items.wait_ready(timeout=5000 * MS)
    await go_offline(env.proxy, remote)
    await items.update("d1", {"$set": {"name": "edge"}})
    if insert:
        await items.insert({"_id": "new", "v": 1})
    return remote, items


@pytest.mark.parametrize(
    "bad",
    [
        {"not": "a list"},
        [{"status": "accepted"}],  # one entry for two changes
        [{"status": "later"}, {"status": "accepted", "rev": "7"}],  # unknown status, bad rev
    ],
    ids=["not-a-list", "wrong-length", "bad-entries"],
)
async def test_malformed_push_results_are_retried_and_applied_once(
    env: HubEnv, caplog: pytest.LogCaptureFixture, bad: Any
) -> None:
    seen = spoil_push(env, [bad, bad])
    remote, items = await offline_edits(env)
    try:
        with caplog.at_level(logging.WARNING, logger="aioserversync"):
            await go_online(env.proxy, items)
        assert len(seen) == 3 and all(len(changes) == 2 for changes in seen)
        assert seen[0] == seen[2]  # the same mutation ids each time: idempotent on the hub
        hub_d1 = await env.hub.store.get("items", "d1")
        assert hub_d1 is not None and hub_d1["name"] == "edge"
        assert env.hub.revision("items") == 5 + 2  # each write applied once
        assert items.stats.pending == 0 and items.stats.failed == 0
        if isinstance(bad, dict) or len(bad) == 1:
            assert any("malformed serversync/push result" in m for m in caplog.messages)
        assert await converged(env, items)
    finally:
        await remote.close()


async def test_a_change_the_hub_rejects_is_dead_lettered_and_can_be_retried(
    env: HubEnv,
) -> None:
    rejected = {"status": "rejected", "error": {"error": 400, "reason": "bad name"}}
    seen = spoil_push(env, [[rejected]])
    remote, items = await offline_edits(env, insert=False)
    stream = items.changes()
    try:
        await go_online(env.proxy, items)
        assert len(seen) == 1
        failed = await items.failed()
        assert [(r.doc_id, r.op) for r in failed] == [("d1", "update")]
        assert failed[0].error["reason"] == "bad name"
        assert (await items.get("d1"))["name"] == "doc 1"  # the remote's version stands
        events = drain_events(stream)
        rejection = next(ev for ev in events if ev.op == "rejected")
        assert isinstance(rejection.error.cause_error, MeteorError)
        assert items.stats.failed == 1 and items.stats.pending == 0
        # Once the hub accepts such a change again, the dead letter can be retried.
        assert await items.retry_failed() == 1
        await items.wait_drained(timeout=5000 * MS)
        await wait_for_condition(
            lambda: env.hub.revision("items") >= 6, message="the retried update on the hub"
        )
        assert (await env.hub.store.get("items", "d1"))["name"] == "edge"
    finally:
        await remote.close()


async def test_a_push_refused_as_a_whole_dead_letters_every_change_in_it(env: HubEnv) -> None:
    spoil_push(env, [NotAuthorized(403, "Access denied")])
    remote, items = await offline_edits(env)
    try:
        await go_online(env.proxy, items)
        failed = await items.failed()
        assert sorted(r.doc_id for r in failed) == ["d1", "new"]
        assert await items.get("new") is None  # never on the remote: gone locally too
        assert (await items.get("d1"))["name"] == "doc 1"
        assert await env.hub.store.get("items", "new") is None
        assert items.stats.failed == 2 and items.stats.pending == 0
    finally:
        await remote.close()


async def test_an_own_push_echoed_before_its_result_keeps_a_later_local_write(
    env: HubEnv,
) -> None:
    """The hub commits a push and publishes it on the change feed, but its ``result`` is held
    back (fault injection) while a later local write of the same document waits in the queue.
    The echo must not overwrite the local copy nor count as a conflict; the result settles the
    push, and the later write goes out on the new base revision."""
    entered, go_on, answered = hold_first_push(env)
    async with write_edge(env) as (remote, items):
        try:
            stream = items.changes()
            await items.update("d1", {"$set": {"name": "first"}})
            await asyncio.wait_for(entered.wait(), 5)
            await items.update("d1", {"$set": {"n": 100}})  # queued behind the one in flight
            go_on.set()
            await wait_for_condition(lambda: env.hub.revision("items") == 6, message="committed")
            # The edge's checkpoint reaches the push's revision: the echo arrived.
            await wait_for_condition(lambda: items._cs.checkpoint == 6, message="echo received")
            await remote._sync_barrier()
            assert await items.get("d1") == {"_id": "d1", "name": "first", "n": 100}
            assert [r.state for r in await items.pending()] == ["in_flight", "pending"]
            answered.set()
            await items.wait_drained(timeout=5000 * MS)
            assert items.stats.pushed == 2 and items.stats.conflicts == 0
            assert not [ev for ev in drain_events(stream) if ev.op == "conflict"]
            assert env.hub.revision("items") == 5 + 2
            assert await env.hub.store.get("items", "d1") == {
                "_id": "d1",
                "name": "first",
                "n": 100,
            }
            assert await converged(env, items)
        finally:
            answered.set()
            go_on.set()


async def test_closing_a_hub_collection_stops_its_change_feed(env: HubEnv) -> None:
    async with write_edge(env) as (remote, items):
        feeds = [s for s in remote.client.subscriptions.values() if s.name == "serversync/changes"]
        assert len(feeds) == 1
        await items.close()
        await wait_for_condition(lambda: not remote.client.subscriptions, message="feed stopped")
        await env.hub.update("items", "d1", {"$set": {"name": "hub"}})
        again = await remote.sync("items", mode="write")
        await again.wait_ready(timeout=5000 * MS)  # caught up from its checkpoint
        assert (await again.get("d1"))["name"] == "hub"
        names = [s.name for s in remote.client.subscriptions.values()]
        assert names == ["serversync/changes"]  # one feed, the new one


@pytest.mark.parametrize("method", ["serversync/capabilities", "serversync/pull"])
async def test_a_sync_call_the_hub_never_answers_drops_the_link_and_starts_over(
    env: HubEnv, method: str
) -> None:
    """A capabilities or pull call left unanswered on a live link would stall the collection
    for as long as the link stays up; past ``push_timeout`` the edge drops the link and the
    next session starts over."""
    real = env.hub.ddp._methods[method]
    calls: list[int] = []

    async def first_hangs(ctx: Any, *params: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.Event().wait()  # never answers (ends with its session)
        return await real(ctx, *params)

    env.hub.ddp._methods[method] = first_hangs
    remote = await hub_edge(env, SQLiteStore(env.tmp / "edge.db"), push_timeout=0.2)
    try:
        items = await remote.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        assert await converged(env, items)
        assert len(calls) == 2 and remote.client.stats.reconnects >= 1
        assert items.is_live
    finally:
        await remote.close()


async def test_a_write_made_after_a_push_of_unknown_outcome_is_pushed_too(env: HubEnv) -> None:
    """A push is applied and echoed on the feed, but its result is lost with the link. The echo
    settles it (it is not queued again), and a later edit of the document, made before the
    collection is live again, must reach the hub. (Before the echo settled such a push, it was
    queued again and the later edit folded into it was answered by the hub's replay of the
    first push and settled as if applied: a lost update the edge kept showing.)"""
    handlers = env.hub.ddp._methods
    push = handlers["serversync/push"]
    pushes = 0

    async def drop_first(ctx: Any, *params: Any) -> Any:
        nonlocal pushes
        pushes += 1
        result = await push(ctx, *params)
        if pushes == 1:
            # Applied and echoed on the feed (the edge's checkpoint covers it, so the catch-up
            # will not send it again), then the link drops before ``result``.
            rev = env.hub.revision("items")
            await wait_for_condition(lambda: holder[0]._cs.checkpoint == rev, message="echo")
            ctx.connection.close(1011, "fault injection")
            await asyncio.Event().wait()  # never answers (cancelled with its session)
        return result

    handlers["serversync/push"] = drop_first
    feed, strategy = env.hub.ddp._publications["serversync/changes"]
    release = asyncio.Event()
    feeds = 0

    async def held_feed(pub: Any, *params: Any) -> Any:
        nonlocal feeds
        feeds += 1
        if feeds == 2:  # the new session's feed: the collection is not live until released
            await release.wait()
        return await feed(pub, *params)

    env.hub.ddp._publications["serversync/changes"] = (held_feed, strategy)
    holder: list[Any] = []
    async with write_edge(env) as (_remote, items):
        try:
            holder.append(items)
            await items.update("d3", {"$inc": {"n": 10}})

            async def settled() -> bool:
                return feeds == 2 and await items.pending() == []

            await wait_for_condition(settled, message="settled by its echo after the reconnect")
            await items.update("d3", {"$set": {"x": 1}})
            release.set()
            await items.wait_drained(timeout=5000 * MS)
            assert await env.hub.store.get("items", "d3") == {
                "_id": "d3",
                "name": "doc 3",
                "n": 13,
                "x": 1,
            }
            assert await converged(env, items)
            assert items.stats.conflicts == 0
        finally:
            release.set()


@pytest.mark.parametrize("ours_first", [True, False])
async def test_a_hub_write_while_our_push_is_in_flight_wins_on_the_edge(
    env: HubEnv, ours_first: bool
) -> None:
    """The hub's application code writes a document while the edge's push of it is in flight.

    Ours first: the push is applied (its echo arrives), then the hub's later write supersedes
    it; the edge must end with the hub's version, and nothing was discarded (no conflict).
    Theirs first: the push's compare-and-set fails; the hub's version wins and the discarded
    local update is reported. The edge used to merge the hub's change as if it could be its
    own echo, keep its own values and settle the push: it then showed a version the hub did
    not have."""
    entered, go_on, answer = hold_first_push(env)
    async with write_edge(env) as (_remote, items):
        try:
            stream = items.changes()
            rev = env.hub.revision("items")
            await items.update("d1", {"$set": {"name": "edge", "n": 100}})
            await asyncio.wait_for(entered.wait(), 5)
            if ours_first:
                go_on.set()
                await wait_for_condition(lambda: items._cs.checkpoint == rev + 1, message="echo")
                await env.hub.update("items", "d1", {"$set": {"name": "hub"}})
            else:
                await env.hub.update("items", "d1", {"$set": {"name": "hub"}})
                go_on.set()
            want = await env.hub.store.get("items", "d1")
            head = rev + (2 if ours_first else 1)
            await wait_for_condition(
                lambda: items._cs.checkpoint == head, message="the hub's write"
            )
            answer.set()
            await items.wait_drained(timeout=5000 * MS)
            assert await env.hub.store.get("items", "d1") == want
            assert want == {"_id": "d1", "name": "hub", "n": 100 if ours_first else 1}
            assert await converged(env, items)
            conflicts = [ev for ev in drain_events(stream) if ev.op == "conflict"]
            assert len(conflicts) == (0 if ours_first else 1)
        finally:
            go_on.set()
            answer.set()


async def test_a_hub_write_after_our_echoed_push_whose_result_was_lost_is_no_conflict(
    env: HubEnv,
) -> None:
    """As above (ours first), but the link drops after the push's echo and before its result,
    and the hub's later write reaches the edge through the catch-up pull (no mutation id): the
    echo already proved the push applied, so nothing of the edge's was discarded."""
    push = env.hub.ddp._methods["serversync/push"]
    holder: list[Any] = []

    async def echo_then_drop(ctx: Any, *params: Any) -> Any:
        result = await push(ctx, *params)
        rev = env.hub.revision("items")
        await wait_for_condition(lambda: holder[0]._cs.checkpoint == rev, message="echo")
        env.proxy.refuse()
        ctx.connection.close(1011, "fault injection")
        await asyncio.Event().wait()  # never answers (cancelled with its session)
        return result

    env.hub.ddp._methods["serversync/push"] = echo_then_drop
    async with write_edge(env) as (remote, items):
        holder.append(items)
        stream = items.changes()
        await items.update("d1", {"$set": {"name": "edge", "n": 100}})
        await wait_for_condition(lambda: not remote.client.connected, message="link dropped")
        env.hub.ddp._methods["serversync/push"] = push
        await env.hub.update("items", "d1", {"$set": {"name": "hub"}})
        await go_online(env.proxy, items)
        assert await env.hub.store.get("items", "d1") == {"_id": "d1", "name": "hub", "n": 100}
        assert await converged(env, items)
        assert not [ev for ev in drain_events(stream) if ev.op == "conflict"]
        assert items.stats.conflicts == 0


async def test_a_push_applied_unseen_then_a_later_edit_both_reach_the_hub(env: HubEnv) -> None:
    """The hub applies a push but the link drops before the edge sees its echo or result; the
    edge edits the document again offline. At the reconnect the catch-up pull shows the
    document as the push made it (a pull carries no mutation id): the push has landed, and
    the later edit, made on top of it, is pushed, with no conflict."""
    push = env.hub.ddp._methods["serversync/push"]

    async def drop_then_apply(ctx: Any, *params: Any) -> Any:
        env.proxy.refuse()
        ctx.connection.close(1011, "fault injection")
        return await push(ctx, *params)  # applied all the same (a hub write outlives its caller)

    env.hub.ddp._methods["serversync/push"] = drop_then_apply
    async with write_edge(env) as (remote, items):
        stream = items.changes()
        rev = env.hub.revision("items")
        await items.update("d1", {"$set": {"name": "edge"}})
        await wait_for_condition(lambda: env.hub.revision("items") == rev + 1, message="applied")
        await wait_for_condition(lambda: not remote.client.connected, message="link dropped")
        env.hub.ddp._methods["serversync/push"] = push
        await items.update("d1", {"$set": {"n": 100}})
        await go_online(env.proxy, items)
        assert await env.hub.store.get("items", "d1") == {"_id": "d1", "name": "edge", "n": 100}
        assert await converged(env, items)
        assert not [ev for ev in drain_events(stream) if ev.op == "conflict"]


async def test_two_hub_entries_of_a_pending_document_in_one_batch_conflict_once(
    env: HubEnv,
) -> None:
    """Entries of one batch that touch a document with pending writes are decided in order;
    once the first has decided it (the remote wins), the next is a plain change, not a second
    conflict. (Fed to the engine directly: a live feed rarely puts two in one batch.)"""
    from aioserversync.asyncio.engine import HubEntry

    async with write_edge(env) as (remote, items):
        stream = items.changes()
        await go_offline(env.proxy, remote)
        await items.update("d1", {"$set": {"name": "edge"}})
        engine = remote._engine
        entries = [
            HubEntry("items", "d1", 100, {"name": "hub", "n": 1}),
            HubEntry("items", "d1", 101, {"name": "hub again", "n": 1}),
        ]
        await engine.applier.submit(lambda: engine.apply_remote(entries))
        assert await items.get("d1") == {"_id": "d1", "name": "hub again", "n": 1}
        events = drain_events(stream)
        assert [ev.op for ev in events if ev.op == "conflict"] == ["conflict"]
        assert [(ev.op, ev.fields) for ev in events][-1] == ("changed", {"name": "hub again"})
        assert items.stats.pending == 0
        assert (await remote.store.get_meta_many("items", ["d1"]))["d1"].rev == 101


async def test_a_push_applied_unseen_then_undone_by_the_hub_leaves_the_hub_version(
    env: HubEnv,
) -> None:
    """As above, but the hub's own code sets the document back to what it was before the push
    (a later revision whose fields equal the push's base). The edge must not take that for the
    push never having landed: sent again, the push is answered with its first outcome and
    would be settled while the hub shows something else."""
    push = env.hub.ddp._methods["serversync/push"]

    async def drop_then_apply(ctx: Any, *params: Any) -> Any:
        env.proxy.refuse()
        ctx.connection.close(1011, "fault injection")
        return await push(ctx, *params)

    env.hub.ddp._methods["serversync/push"] = drop_then_apply
    async with write_edge(env) as (remote, items):
        rev = env.hub.revision("items")
        await items.update("d1", {"$set": {"name": "edge"}})
        await wait_for_condition(lambda: env.hub.revision("items") == rev + 1, message="applied")
        await wait_for_condition(lambda: not remote.client.connected, message="link dropped")
        env.hub.ddp._methods["serversync/push"] = push
        await env.hub.update("items", "d1", {"$set": {"name": "doc 1"}})  # back to the base
        await go_online(env.proxy, items)
        assert await env.hub.store.get("items", "d1") == {"_id": "d1", "name": "doc 1", "n": 1}
        assert await converged(env, items)


async def test_a_hub_write_after_our_echoed_push_beats_a_later_local_write(env: HubEnv) -> None:
    """Ours first, with a later local write of the document queued behind the push: the hub's
    write supersedes the push (applied, not a conflict) and wins over the later write, which
    is discarded and reported."""
    entered, go_on, answer = hold_first_push(env)
    async with write_edge(env) as (_remote, items):
        try:
            stream = items.changes()
            rev = env.hub.revision("items")
            await items.update("d1", {"$set": {"name": "edge"}})
            await asyncio.wait_for(entered.wait(), 5)
            await items.update("d1", {"$set": {"n": 100}})  # queued behind the push
            go_on.set()
            await wait_for_condition(lambda: items._cs.checkpoint == rev + 1, message="echo")
            await env.hub.update("items", "d1", {"$set": {"name": "hub"}})
            await wait_for_condition(lambda: items._cs.checkpoint == rev + 2, message="hub write")
            answer.set()
            await items.wait_drained(timeout=5000 * MS)
            assert await env.hub.store.get("items", "d1") == {"_id": "d1", "name": "hub", "n": 1}
            assert await converged(env, items)
            conflicts = [ev for ev in drain_events(stream) if ev.op == "conflict"]
            assert [ev.conflict.local for ev in conflicts] == [
                {"_id": "d1", "name": "edge", "n": 100}
            ]
            assert items.stats.pushed == 1 and items.stats.conflicts == 1
        finally:
            go_on.set()
            answer.set()


async def test_the_echo_of_a_push_queued_again_settles_it_and_keeps_later_writes(
    env: HubEnv,
) -> None:
    """A push whose outcome was unknown is queued again; before it goes out, the feed shows it
    committed (the hub finished the write late). The entry carries its mutation id: it settles
    the record, and a later local write stays queued on top of it (it was a conflict that
    discarded the later write). White-box: the record is marked as sent in memory, and the
    entry is fed to the engine directly."""
    from aioserversync.asyncio.engine import HubEntry

    async with write_edge(env) as (remote, items):
        stream = items.changes()
        await go_offline(env.proxy, remote)
        await items.update("d1", {"$set": {"name": "edge"}})
        [first] = items._cs.pending["d1"]
        first.attempts = 1  # sent once, outcome unknown, queued again
        await items.update("d1", {"$set": {"n": 100}})  # a record of its own (not folded)
        assert [r.seq for r in items._cs.pending["d1"]] == [first.seq, first.seq + 1]
        engine = remote._engine
        entry = HubEntry("items", "d1", 100, {"name": "edge", "n": 1}, first.mutation_id)
        await engine.applier.submit(lambda: engine.apply_remote([entry]))
        assert [r.op for r in await items.pending()] == ["update"]
        assert await items.get("d1") == {"_id": "d1", "name": "edge", "n": 100}
        meta = (await remote.store.get_meta_many("items", ["d1"]))["d1"]
        assert (meta.base, meta.base_rev) == ({"name": "edge", "n": 1}, 100)
        assert not [ev for ev in drain_events(stream) if ev.op == "conflict"]


async def test_a_refused_push_takes_the_newest_remote_version_the_edge_has_seen(
    env: HubEnv,
) -> None:
    """The hub refuses a push (its compare-and-set failed) with the document as it was then;
    by the time that answer arrives, the feed has brought a later revision. The edge must end
    with the later one: the answer's older version used to overwrite it, and the feed, already
    past it, never sent it again (seed 10311 of the randomized two-edge test)."""
    held = hold_push(env)
    async with write_edge(env) as (_remote, items):
        try:
            rev = env.hub.revision("items")
            await items.remove("d1")
            await asyncio.wait_for(held.entered.wait(), 5)
            await env.hub.update("items", "d1", {"$set": {"n": 10}})  # before the push is judged
            held.go_on.set()
            await asyncio.wait_for(held.judged.wait(), 5)  # a conflict, answered with n == 10
            await env.hub.update("items", "d1", {"$set": {"n": 20}})
            await wait_for_condition(lambda: items._cs.checkpoint == rev + 2, message="both seen")
            held.answer.set()
            await items.wait_drained(timeout=5000 * MS)
            assert await env.hub.store.get("items", "d1") == {"_id": "d1", "name": "doc 1", "n": 20}
            assert await converged(env, items)
            assert items.stats.conflicts == 1
        finally:
            held.release()


@asynccontextmanager
async def purging_hub(tmp_path: Path) -> AsyncIterator[tuple[Any, FaultProxy, HubEnv, HeldPush]]:
    """A hub keeping one revision of tombstones (so a purge drops mutation ids too), with the
    seed documents, behind a proxy, its next push held (:func:`hold_push`)."""
    async with short_memory_hub() as (hub, proxy):
        env = HubEnv(hub, proxy, tmp_path)
        yield hub, proxy, env, hold_push(env)


def crash_copy(db: Path, copy: Path) -> None:
    """Copy what a kill -9 would leave of a SQLite file now: every committed transaction."""
    with closing(sqlite3.connect(db)) as src, closing(sqlite3.connect(copy)) as dst:
        src.backup(dst)


@pytest.mark.parametrize("restart", [False, True], ids=["cut", "killed"])
@pytest.mark.parametrize("op", ["insert", "update", "remove"])
async def test_a_push_whose_echo_came_is_settled_by_it_after_its_mutation_id_is_purged(
    tmp_path: Path, op: str, restart: bool
) -> None:
    """The feed showed our push applied, then the link dropped before its result (or the
    process died: a copy of its SQLite file taken then restarts), and the hub purged the push's
    mutation id (the edge stayed away past the retention, its checkpoint still valid). The echo
    proves the push landed: it must not be sent again, as the hub would judge it afresh (a
    duplicate insert, a compare-and-set conflict, a remove of nothing). The edge used to send it
    again and take the answer for the remote's word: a document it had removed came back from
    its base. A restarted edge finds the echo again: the stored checkpoint stays below it."""
    async with purging_hub(tmp_path) as (hub, proxy, env, held):
        db = tmp_path / "edge.db"
        remote = await edge(proxy.url(), SQLiteStore(db))
        try:
            items = await remote.sync("items", mode="write")
            await items.wait_ready(timeout=5000 * MS)
            stream = items.changes()
            if op == "insert":
                await items.insert({"_id": "new", "v": 1})
            elif op == "update":
                await items.update("d1", {"$set": {"name": "edge"}})
            else:
                await items.remove("d1")
            await asyncio.wait_for(held.entered.wait(), 5)
            held.go_on.set()
            await asyncio.wait_for(held.judged.wait(), 5)
            head = hub.revision("items")
            await wait_for_condition(lambda: items._cs.checkpoint == head, message="echo")
            if restart:
                # What a kill -9 now leaves: every committed transaction (the edge is idle,
                # waiting for the result).
                crash_copy(db, tmp_path / "copy.db")
            await go_offline(proxy, remote)
            held.answer.set()
            if restart:
                await remote.close()
                remote = await edge(proxy.url(), SQLiteStore(tmp_path / "copy.db"))
                items = await remote.sync("items", mode="write")
                stream = items.changes()
            await hub.update("items", "d2", {"$set": {"name": "later"}})
            await hub.purge("items")
            assert await hub.store.find(MUTATIONS_PREFIX + "items", {}) == []
            await go_online(proxy, items)
            assert await converged(env, items)
            want = {
                "insert": ("new", {"_id": "new", "v": 1}),
                "update": ("d1", {"_id": "d1", "name": "edge", "n": 1}),
                "remove": ("d1", None),
            }[op]
            assert await hub.store.get("items", want[0]) == want[1]
            assert await items.failed() == []
            assert [e for e in drain_events(stream) if e.op in ("conflict", "rejected")] == []
        finally:
            held.go_on.set()
            held.answer.set()
            await remote.close()


async def test_a_full_resync_gives_a_kept_local_write_the_revision_it_now_applies_on(
    tmp_path: Path,
) -> None:
    """A push lands, then a later edit of the same document is queued, and the process dies
    before the push's result. Restarted after the hub purged its tombstones and mutation ids,
    the edge resyncs in full: the round shows the push landed and keeps the later edit, whose
    compare-and-set base must be the revision the round brought. It used to keep the old one:
    the hub refused the edit as a conflict and the edge discarded it."""
    async with purging_hub(tmp_path) as (hub, proxy, env, held):
        remote = await edge(proxy.url(), SQLiteStore(tmp_path / "edge.db"))
        try:
            items = await remote.sync("items", mode="write")
            await items.wait_ready(timeout=5000 * MS)
            await items.update("d1", {"$set": {"name": "first"}})
            await asyncio.wait_for(held.entered.wait(), 5)
            held.go_on.set()
            await asyncio.wait_for(held.judged.wait(), 5)
            head = hub.revision("items")
            await wait_for_condition(lambda: items._cs.checkpoint == head, message="echo")
            await items.update("d1", {"$inc": {"n": 10}})
            # What a kill -9 now leaves on disk (the edge waits for the result).
            crash_copy(tmp_path / "edge.db", tmp_path / "copy.db")
            await go_offline(proxy, remote)
            held.answer.set()
            await remote.close()
            await hub.remove("items", "d4")
            await hub.update("items", "d2", {"$set": {"name": "later"}})
            await hub.purge("items")  # the edge's checkpoint has expired: a full resync
            remote = await edge(proxy.url(), SQLiteStore(tmp_path / "copy.db"))
            items = await remote.sync("items", mode="write")
            stream = items.changes()
            await go_online(proxy, items)
            assert await hub.store.get("items", "d1") == {"_id": "d1", "name": "first", "n": 11}
            assert await converged(env, items)
            assert [e for e in drain_events(stream) if e.op in ("conflict", "rejected")] == []
            assert items.stats.resyncs >= 1 and items.stats.conflicts == 0
        finally:
            held.go_on.set()
            held.answer.set()
            await remote.close()

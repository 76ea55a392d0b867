"""``items.discard_failed()`` and ``items.retry_failed()``: what to do with dead-lettered writes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from aioserversync.asyncio.collection import SyncedCollection
from aioserversync.asyncio.sync import ServerSync
from aioserversync.exceptions import ConfigurationError, DuplicateKeyError
from aioserversync.stores.base import Store
from tests.conftest import MS
from tests.engine.conftest import converged, drain_events, edge, go_offline, go_online
from tests.meteor_app import MeteorApp
from tests.proxy import FaultProxy
from tests.utils import wait_for_condition

WRITES = ("/items/insert", "/items/update", "/items/remove")


@pytest.fixture
async def failed3(
    app: MeteorApp, proxy: FaultProxy, make_store: Callable[..., Store]
) -> AsyncIterator[tuple[ServerSync, SyncedCollection]]:
    """A write-mode edge whose insert, update and remove were each refused with 403."""
    remote = await edge(proxy.url(), make_store())
    try:
        items = await remote.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        app.deny["items"] = lambda op, _id, doc: True
        await go_offline(proxy, remote)
        await items.insert({"_id": "new", "name": "fresh"})
        await items.update("d1", {"$set": {"name": "edited"}, "$unset": {"n": ""}})
        await items.remove("d2")
        await go_online(proxy, items)
        assert [(r.op, r.doc_id) for r in await items.failed()] == [
            ("insert", "new"),
            ("update", "d1"),
            ("remove", "d2"),
        ]
        yield remote, items
    finally:
        await remote.close()


async def test_retry_failed_issues_the_writes_again_once_allowed(
    app: MeteorApp, failed3: tuple[ServerSync, SyncedCollection]
) -> None:
    _, items = failed3
    assert items.stats.failed == 3
    calls = sum(app.calls[m] for m in WRITES)
    app.deny.clear()  # the server-side rule is fixed
    assert await items.retry_failed() == 3
    await items.wait_drained(timeout=5000 * MS)
    assert await items.failed() == [] and items.stats.failed == 0
    assert sum(app.calls[m] for m in WRITES) == calls + 3
    assert app.get("items", "new") == {"_id": "new", "name": "fresh"}
    assert app.get("items", "d1") == {"_id": "d1", "name": "edited"}
    assert app.get("items", "d2") is None
    assert await converged(app, items)


async def test_retry_failed_of_chosen_records_leaves_the_others(
    app: MeteorApp, failed3: tuple[ServerSync, SyncedCollection]
) -> None:
    _, items = failed3
    insert, update, remove = await items.failed()
    app.deny.clear()
    assert await items.retry_failed([update.seq]) == 1
    await items.wait_drained(timeout=5000 * MS)
    assert app.get("items", "d1") == {"_id": "d1", "name": "edited"}
    assert [r.seq for r in await items.failed()] == [insert.seq, remove.seq]
    assert items.stats.failed == 2


async def test_retry_failed_stops_at_a_write_that_raises(
    app: MeteorApp, failed3: tuple[ServerSync, SyncedCollection]
) -> None:
    _, items = failed3
    app.deny.clear()
    app.insert("items", {"_id": "new", "name": "made on the server"})
    await wait_for_condition(lambda: items.get("new"), message="the server's insert")
    with pytest.raises(DuplicateKeyError):
        await items.retry_failed()
    # The insert came first: nothing was retried, every dead letter is still there.
    assert [r.op for r in await items.failed()] == ["insert", "update", "remove"]


async def test_discard_failed_forgets_dead_letters_only(
    app: MeteorApp, proxy: FaultProxy, failed3: tuple[ServerSync, SyncedCollection]
) -> None:
    remote, items = failed3
    insert, update, remove = await items.failed()
    await go_offline(proxy, remote)
    await items.insert({"_id": "queued"})
    (queued,) = await items.pending()
    with pytest.raises(ConfigurationError, match=str(queued.seq)):
        await items.discard_failed([insert.seq, queued.seq])
    assert len(await items.failed()) == 3 and len(await items.pending()) == 1
    assert await items.discard_failed([insert.seq]) == 1
    assert [r.seq for r in await items.failed()] == [update.seq, remove.seq]
    assert await items.discard_failed() == 2
    assert await items.failed() == [] and items.stats.failed == 0
    assert [r.seq for r in await items.pending()] == [queued.seq]


async def test_a_write_failing_transiently_max_push_attempts_times_is_dead_lettered(
    app: MeteorApp, proxy: FaultProxy, make_store: Callable[..., Store]
) -> None:
    """500s are retried, but not for ever: after ``max_push_attempts`` the write is failed, its
    local change undone to the remote's version and reported, and the outbox moves on."""
    from aioserversync.exceptions import MeteorError

    app.fail_next["/items/update"] = [MeteorError(500, "Internal server error")] * 3
    remote = await edge(proxy.url(), make_store(), max_push_attempts=3)
    try:
        items = await remote.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        stream = items.changes()
        await items.update("d1", {"$set": {"name": "edited"}})
        await items.insert({"_id": "after"})
        await items.wait_drained(timeout=5000 * MS)
        assert app.calls["/items/update"] == 3 and app.get("items", "d1")["name"] == "doc 1"
        [failed] = await items.failed()
        assert (failed.op, failed.doc_id, failed.attempts) == ("update", "d1", 3)
        assert failed.error["error"] == 500
        assert await items.get("d1") == {"_id": "d1", "name": "doc 1", "n": 1}  # undone
        assert app.get("items", "after") == {"_id": "after"}  # the next write went through
        rejected = [ev for ev in drain_events(stream) if ev.op == "rejected"]
        assert [ev.id for ev in rejected] == ["d1"] and items.stats.failed == 1
        assert await converged(app, items)
    finally:
        await remote.close()

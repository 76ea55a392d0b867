"""Every row of the conflict table, over real websockets, for ``write`` and ``online-write``.

The edge syncs, the link is cut, both sides change things, the link comes back; then the edge and
the server must agree on the "remote wins" outcome and discarded local changes must be reported.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from aioserversync.exceptions import OfflineError
from tests.conftest import MS
from tests.engine.conftest import (
    converged,
    drain_events,
    edge,
    go_offline,
    go_online,
)
from tests.meteor_app import MeteorApp
from tests.utils import wait_for_condition

Remote = Callable[[MeteorApp], None]
Local = Callable[[Any], Awaitable[None]]


def r_none(app: MeteorApp) -> None:
    pass


def r_insert(app: MeteorApp) -> None:
    app.insert("items", {"_id": "new-remote", "name": "from server"})


def r_update(app: MeteorApp) -> None:
    app.update("items", "d1", {"$set": {"name": "server edit"}})


def r_remove(app: MeteorApp) -> None:
    app.remove("items", "d1")


async def l_none(items: Any) -> None:
    pass


async def l_insert(items: Any) -> None:
    await items.insert({"_id": "new-local", "name": "from edge"})


async def l_update(items: Any) -> None:
    await items.update("d1", {"$set": {"name": "edge edit"}, "$inc": {"n": 100}})


async def l_remove(items: Any) -> None:
    await items.remove("d1")


ROWS: list[tuple[str, Remote, Local, dict[str, Any]]] = [
    ("remote insert", r_insert, l_none, {"doc": ("new-remote", {"name": "from server"})}),
    ("local insert", r_none, l_insert, {"doc": ("new-local", {"name": "from edge"})}),
    ("remote update", r_update, l_none, {"doc": ("d1", {"name": "server edit", "n": 1})}),
    ("local update", r_none, l_update, {"doc": ("d1", {"name": "edge edit", "n": 101})}),
    ("remote remove", r_remove, l_none, {"doc": ("d1", None)}),
    ("local remove", r_none, l_remove, {"doc": ("d1", None)}),
    (
        "update/update",
        r_update,
        l_update,
        {"doc": ("d1", {"name": "server edit", "n": 1}), "conflict": True},
    ),
    (
        "remote update/local remove",
        r_update,
        l_remove,
        {"doc": ("d1", {"name": "server edit", "n": 1}), "conflict": True},
    ),
    ("remote remove/local update", r_remove, l_update, {"doc": ("d1", None), "conflict": True}),
]


def _strip(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if doc is None else {k: v for k, v in doc.items() if k != "_id"}


@pytest.mark.parametrize(
    ("label", "remote_change", "local_change", "expect"), ROWS, ids=[r[0] for r in ROWS]
)
async def test_write_mode_row(
    app, proxy, make_store, label, remote_change, local_change, expect
) -> None:
    remote = await edge(proxy.url(), make_store())
    try:
        items = await remote.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        await go_offline(proxy, remote)
        remote_change(app)
        await local_change(items)
        events = items.changes()
        await go_online(proxy, items)
        await wait_for_condition(lambda: converged(app, items), message="convergence")
        doc_id, expected = expect["doc"]
        assert _strip(app.get("items", doc_id)) == expected
        assert _strip(await items.get(doc_id)) == expected
        conflicts = [e for e in drain_events(events) if e.op == "conflict"]
        if expect.get("conflict"):
            assert len(conflicts) == 1 and conflicts[0].id == doc_id
            assert conflicts[0].error is not None
            assert conflicts[0].error.remote == (
                None if expected is None else {"_id": doc_id, **expected}
            )
            assert items.stats.conflicts == 1
        else:
            assert conflicts == []
        assert app.applied[("items", "insert", "new-local")] <= 1
        assert items.stats.pending == 0
    finally:
        await remote.close()


ONLINE_ROWS = [
    r for r in ROWS if r[0] in ("remote insert", "local insert", "remote update", "remote remove")
]


@pytest.mark.parametrize(
    ("label", "remote_change", "local_change", "expect"),
    ONLINE_ROWS,
    ids=[r[0] for r in ONLINE_ROWS],
)
async def test_online_write_row(
    app, proxy, make_store, label, remote_change, local_change, expect
) -> None:
    remote = await edge(proxy.url(), make_store())
    try:
        items = await remote.sync("items")
        assert items.mode == "online-write"
        await items.wait_ready(timeout=5000 * MS)
        await go_offline(proxy, remote)
        remote_change(app)
        await local_change(items)
        await go_online(proxy, items)
        await wait_for_condition(lambda: converged(app, items), message="convergence")
        doc_id, expected = expect["doc"]
        assert _strip(app.get("items", doc_id)) == expected
        assert app.applied[("items", "insert", "new-local")] <= 1
    finally:
        await remote.close()


async def test_online_write_update_and_remove_offline_raise_and_change_nothing(
    app, proxy, make_store
) -> None:
    remote = await edge(proxy.url(), make_store())
    try:
        items = await remote.sync("items")
        await items.wait_ready(timeout=5000 * MS)
        before = await items.find({})
        await go_offline(proxy, remote)
        with pytest.raises(OfflineError):
            await items.update("d1", {"$set": {"name": "x"}})
        with pytest.raises(OfflineError):
            await items.remove("d2")
        with pytest.raises(OfflineError):  # not in the cache: the server may still have it
            await items.update("nowhere", {"$set": {"name": "x"}})
        with pytest.raises(OfflineError):
            await items.remove({"name": "no such name"})
        assert await items.find({}) == before
        assert items.stats.pending == 0
    finally:
        await remote.close()


async def test_online_write_update_and_remove_online_go_to_server_first(
    app, proxy, make_store
) -> None:
    remote = await edge(proxy.url(), make_store())
    try:
        items = await remote.sync("items")
        await items.wait_ready(timeout=5000 * MS)
        assert await items.update("d1", {"$set": {"name": "online"}, "$inc": {"n": 1}}) == 1
        assert app.get("items", "d1") == {"_id": "d1", "name": "online", "n": 2}
        assert await items.get("d1") == {"_id": "d1", "name": "online", "n": 2}
        assert app.applied[("items", "update", "d1")] == 1
        assert await items.remove("d2") == 1
        assert app.get("items", "d2") is None and await items.get("d2") is None
        assert items.stats.pending == 0
    finally:
        await remote.close()


async def test_online_write_server_refusal_raises_and_changes_nothing(
    app, proxy, make_store
) -> None:
    from aioserversync.exceptions import NotAuthorized

    app.deny["items"] = lambda op, _id, doc: op == "update"
    remote = await edge(proxy.url(), make_store())
    try:
        items = await remote.sync("items")
        await items.wait_ready(timeout=5000 * MS)
        with pytest.raises(NotAuthorized):
            await items.update("d1", {"$set": {"name": "nope"}})
        assert await items.get("d1") == {"_id": "d1", "name": "doc 1", "n": 1}
        assert app.get("items", "d1") == {"_id": "d1", "name": "doc 1", "n": 1}
    finally:
        await remote.close()


async def test_a_pushed_update_the_server_matches_to_no_document_is_a_conflict(
    app, proxy, make_store
) -> None:
    """The server removed the document while the edge's update was on its way (its ``removed``
    not yet sent): Meteor answers the update with 0. In ``write`` mode the remote wins: the local
    document goes, and the discarded update is reported."""
    remote = await edge(proxy.url(), make_store())
    try:
        items = await remote.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        stream = items.changes()
        del app.docs["items"]["d1"]  # gone on the server; its publication says nothing yet
        assert await items.update("d1", {"$set": {"name": "edge"}}) == 1  # applied locally
        await items.wait_drained(timeout=5000 * MS)
        assert await items.get("d1") is None and items.stats.conflicts == 1
        events = drain_events(stream)
        conflict = [ev for ev in events if ev.op == "conflict"]
        assert [ev.id for ev in conflict] == ["d1"]
        assert conflict[0].conflict.local == {"_id": "d1", "name": "edge", "n": 1}
        assert conflict[0].conflict.remote is None
        assert "the remote removed items/d1 since the local update" in str(conflict[0].error)
        assert [ev.op for ev in events if ev.op != "conflict"] == ["changed", "removed"]
        assert await items.failed() == [] and items.stats.pending == 0
    finally:
        await remote.close()


async def test_online_write_update_the_server_matches_to_no_document_returns_0(
    app, proxy, make_store
) -> None:
    """As above in ``online-write``: the update returns 0 and changes nothing locally (the
    server's own ``removed`` follows)."""
    remote = await edge(proxy.url(), make_store())
    try:
        items = await remote.sync("items")
        await items.wait_ready(timeout=5000 * MS)
        del app.docs["items"]["d2"]
        assert await items.update("d2", {"$set": {"name": "edge"}}) == 0
        assert await items.get("d2") == {"_id": "d2", "name": "doc 2", "n": 2}
        assert items.stats.pending == 0 and items.stats.conflicts == 0
        assert app.calls["/items/update"] == 1
    finally:
        await remote.close()

"""A ``query=`` mirror with local writes pending while documents leave the filter.

A pending document is decided against the remote's real version, not the filtered view (which
would read as a removal), and leaves the mirror once its writes settle (docs/modes.md).
Deterministic, against a stock server and a hub, after a plain reconnect and a full resync.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from aioserversync.asyncio import scope
from aioserversync.stores import SQLiteStore
from tests.conftest import MS
from tests.engine.conftest import drain_events, edge, go_offline, go_online
from tests.engine.remotes import ItemsRemote
from tests.proxy import FaultProxy
from tests.utils import wait_for_condition

QUERY = {"status": "open"}
FIRST = [
    {"_id": "a", "status": "open", "n": 0},
    {"_id": "b", "status": "open", "n": 0},
    {"_id": "c", "status": "open", "n": 0},
]


@pytest.mark.parametrize("full", [False, True], ids=["reconnect", "resync"])
@pytest.mark.parametrize("kind", ["meteor", "hub"])
async def test_pending_writes_to_documents_leaving_the_filter(
    kind: str, full: bool, tmp_path: Path
) -> None:
    server = ItemsRemote(kind, FIRST)
    await server.start()
    proxy = await FaultProxy(server.port).start()
    remote = await edge(proxy.url(), SQLiteStore(tmp_path / "edge.db"))
    try:
        items = await remote.sync("items", mode="write", query=QUERY)
        await items.wait_ready(timeout=5000 * MS)
        events = items.changes()
        await go_offline(proxy, remote)
        # a: the remote closes it while the edge edits it (a conflict: the remote changed it).
        # b: the edge closes it itself (no conflict: pushed, then out of the mirror).
        # c: the edge edits it and it stays open (kept). d: a new closed document (pushed).
        await server.update("a", {"status": "closed"})
        await items.update("a", {"$set": {"n": 1}})
        await items.update("b", {"$set": {"status": "closed", "n": 2}})
        await items.update("c", {"$inc": {"n": 3}})
        await items.insert({"_id": "d", "status": "closed", "n": 4})
        resync = asyncio.ensure_future(items.resync()) if full else None
        await go_online(proxy, items)
        if resync is not None:
            await resync
        await items.wait_drained(timeout=5000 * MS)

        async def only_c_left() -> bool:
            return bool(await items.find({}) == [{"_id": "c", "status": "open", "n": 3}])

        await wait_for_condition(only_c_left, timeout=5000 * MS)
        assert await server.docs() == [
            {"_id": "a", "status": "closed", "n": 0},
            {"_id": "b", "status": "closed", "n": 2},
            {"_id": "c", "status": "open", "n": 3},
            {"_id": "d", "status": "closed", "n": 4},
        ]
        seen = drain_events(events)
        conflicts = [e for e in seen if e.op == "conflict"]
        assert [e.id for e in conflicts] == ["a"]
        error = conflicts[0].error
        assert error is not None
        assert error.remote == {"_id": "a", "status": "closed", "n": 0}
        assert error.local == {"_id": "a", "status": "open", "n": 1}
        assert items.stats.conflicts == 1 and items.stats.failed == 0
        removed = {e.id for e in seen if e.op == "removed"}
        assert {"a", "b", "d"} <= removed and "c" not in removed
    finally:
        await remote.close()
        await proxy.close()
        await server.stop()


@pytest.mark.parametrize("kind", ["meteor", "hub"])
async def test_online_write_update_that_leaves_the_filter(kind: str, tmp_path: Path) -> None:
    server = ItemsRemote(kind, FIRST)
    await server.start()
    remote = await edge(f"http://127.0.0.1:{server.port}", SQLiteStore(tmp_path / "edge.db"))
    try:
        items = await remote.sync("items", query=QUERY)
        await items.wait_ready(timeout=5000 * MS)
        assert await items.update("b", {"$set": {"status": "closed"}}) == 1
        await items.insert({"_id": "d", "status": "closed", "n": 4})
        await items.wait_drained(timeout=5000 * MS)

        async def left() -> bool:
            return {d["_id"] for d in await items.find({})} == {"a", "c"}

        await wait_for_condition(left, timeout=5000 * MS)
        docs = {d["_id"]: d for d in await server.docs()}
        assert docs["b"]["status"] == "closed" and docs["d"]["status"] == "closed"
        assert items.stats.conflicts == 0
    finally:
        await remote.close()
        await server.stop()


@pytest.mark.parametrize("mode", ["write", "online-write"])
@pytest.mark.parametrize("kind", ["meteor", "hub"])
async def test_a_document_left_unjudged_by_a_kill_is_judged_at_the_next_start(
    kind: str, mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write's settle and its document's judging are two jobs. Fault injection: the judging
    job is dropped, as a process killed between the two drops it; the document that left the
    filter stays in the store. The next start judges the stored documents, remote or not, and
    keeps a pending one."""
    server = ItemsRemote(kind, FIRST)
    await server.start()
    proxy = await FaultProxy(server.port).start()
    path = tmp_path / "edge.db"
    dropped: list[str] = []

    async def killed_before_judging(engine: object, cs: scope.CollectionState) -> None:
        dropped.extend(cs.unjudged)
        cs.unjudged.clear()

    with monkeypatch.context() as patch:
        patch.setattr(scope, "judge_scope", killed_before_judging)
        remote = await edge(proxy.url(), SQLiteStore(path))
        try:
            items = await remote.sync("items", mode=mode, query=QUERY)
            await items.wait_ready(timeout=5000 * MS)
            await items.insert({"_id": "d", "status": "closed", "n": 4})
            await items.wait_drained(timeout=5000 * MS)
            await wait_for_condition(lambda: "d" in dropped, message="d settled")
            if mode == "write":  # and a pending write that takes c out of the filter
                await go_offline(proxy, remote)
                await items.update("c", {"$set": {"status": "closed"}})
        finally:
            await remote.close()
    assert "d" in {d["_id"] for d in await stored(path)}  # what the kill left

    proxy.refuse()  # the next start cannot reach the remote
    remote = await edge(proxy.url(), SQLiteStore(path))
    try:
        items = await remote.sync("items", mode=mode, query=QUERY)
        # c: pending in write mode (kept whatever the filter says), still open otherwise
        await wait_for_condition(
            lambda: _ids(items, {"a", "b", "c"}), timeout=5000 * MS, message="d judged offline"
        )
        if mode == "write":
            await go_online(proxy, items)
            await wait_for_condition(
                lambda: _ids(items, {"a", "b"}), timeout=5000 * MS, message="c settled, judged"
            )
            assert {d["_id"]: d["status"] for d in await server.docs()}["c"] == "closed"
    finally:
        await remote.close()
        await proxy.close()
        await server.stop()


async def test_a_read_mirror_keeps_its_local_writes_at_the_next_start(tmp_path: Path) -> None:
    """In ``read`` mode a local write touches only the cache, outside the filter or not: the
    start-up judging is for the modes that push. (It would run before the start's catch-up:
    the applier takes jobs in order, so ``wait_ready`` returning means it would have run.)"""
    server = ItemsRemote("hub", FIRST)
    await server.start()
    path = tmp_path / "edge.db"
    try:
        remote = await edge(f"http://127.0.0.1:{server.port}", SQLiteStore(path))
        try:
            items = await remote.sync("items", mode="read", query=QUERY)
            await items.wait_ready(timeout=5000 * MS)
            await items.update("b", {"$set": {"status": "closed"}})
        finally:
            await remote.close()
        remote = await edge(f"http://127.0.0.1:{server.port}", SQLiteStore(path))
        try:
            items = await remote.sync("items", mode="read", query=QUERY)
            await items.wait_ready(timeout=5000 * MS)
            assert {d["_id"]: d["status"] for d in await items.find({})} == {
                "a": "open",
                "b": "closed",
                "c": "open",
            }
        finally:
            await remote.close()
    finally:
        await server.stop()


async def test_a_narrower_filter_drops_the_rest_at_start_a_chunk_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start-up judging pages through the candidates (chunks of 3 here), skipping the
    pending ones it keeps, so that every document outside the new filter goes."""
    monkeypatch.setattr(scope, "_CHUNK", 3)
    docs = [{"_id": f"d{i:02d}", "status": "open", "n": i} for i in range(20)]
    server = ItemsRemote("hub", docs)
    await server.start()
    proxy = await FaultProxy(server.port).start()
    path = tmp_path / "edge.db"
    try:
        remote = await edge(proxy.url(), SQLiteStore(path))
        try:
            items = await remote.sync("items", mode="write", query=QUERY)
            await items.wait_ready(timeout=5000 * MS)
            await go_offline(proxy, remote)
            for i in (1, 4, 5, 6, 9, 13):  # pending, and outside the next run's filter
                await items.update(f"d{i:02d}", {"$inc": {"n": -100}})
        finally:
            await remote.close()
        remote = await edge(proxy.url(), SQLiteStore(path))
        try:
            items = await remote.sync("items", mode="write", query={"n": {"$gte": 15}})
            want = {f"d{i:02d}" for i in (1, 4, 5, 6, 9, 13, 15, 16, 17, 18, 19)}
            await wait_for_condition(lambda: _ids(items, want), message="judged")
            await go_online(proxy, items)
            assert {d["_id"]: d["n"] for d in await server.docs()}["d13"] == -87
            # settled, the pending ones are judged like the others
            await wait_for_condition(
                lambda: _ids(items, {f"d{i}" for i in range(15, 20)}), message="settled"
            )
        finally:
            await remote.close()
    finally:
        await proxy.close()
        await server.stop()


class FindCounting(SQLiteStore):
    """A real SQLiteStore that counts the start-up judging's queries (a spy, not a mock)."""

    scans = 0

    async def find(self, collection: str, selector: Any = None, **options: Any) -> Any:
        if isinstance(selector, dict) and "$nor" in selector:
            type(self).scans += 1
        return await super().find(collection, selector, **options)


async def test_a_changed_filter_resyncs_and_the_scope_mark_spares_the_scan(
    tmp_path: Path,
) -> None:
    """Against a hub. Once every settled write was judged, the store holds the filter's mark and
    the next start does not scan. A run without the filter (here ``read``) resyncs in full, as
    its checkpoint never covered what the filter left out (z), and drops the mark; the next
    filtered start judges what that run kept, offline, and resyncs again once connected."""
    docs = [*FIRST, {"_id": "z", "status": "closed", "n": 0}]
    server = ItemsRemote("hub", docs)
    await server.start()
    proxy = await FaultProxy(server.port).start()
    path = tmp_path / "edge.db"

    async def run(scans: int, want: set[str], **sync: Any) -> None:
        FindCounting.scans = 0
        remote = await edge(proxy.url(), FindCounting(path))
        try:
            items = await remote.sync("items", **sync)
            await wait_for_condition(lambda: _ids(items, want), message=f"{want}")
            if proxy.refusing:
                return
            await items.wait_ready(timeout=5000 * MS)
            await items.wait_drained(timeout=5000 * MS)
            await wait_for_condition(lambda: _ids(items, want), message=f"{want} at the end")
        finally:
            await remote.close()
        assert FindCounting.scans == scans

    try:
        await run(1, {"a", "b", "c"}, mode="write", query=QUERY)  # a new store: scanned once
        await run(0, {"a", "b", "c"}, mode="write", query=QUERY)  # marked: no scan
        remote = await edge(proxy.url(), FindCounting(path))
        try:  # a write that leaves the filter, settled and judged: marked again
            items = await remote.sync("items", mode="write", query=QUERY)
            await items.wait_ready(timeout=5000 * MS)
            await items.update("c", {"$set": {"status": "closed"}})
            await items.wait_drained(timeout=5000 * MS)
            await wait_for_condition(lambda: _ids(items, {"a", "b"}), message="c judged")
            await wait_for_condition(lambda: items._cs.scope_clean, message="marked")
        finally:
            await remote.close()
        await run(0, {"a", "b"}, mode="write", query=QUERY)
        await run(0, {"a", "b", "c", "z"}, mode="read")  # no filter: everything, mark dropped
        proxy.refuse()
        await run(1, {"a", "b"}, mode="online-write", query=QUERY)  # judged offline at start
    finally:
        await proxy.close()
        await server.stop()


async def test_the_start_up_judging_leaves_other_remotes_documents_alone(
    tmp_path: Path,
) -> None:
    """Two remotes merged into one local collection: the filtered ``write`` one judges only its
    own documents at start, not the other remote's."""
    first, other = ItemsRemote("hub", FIRST), ItemsRemote("meteor", [])
    other.app.add_collection("things", [{"_id": "t1", "status": "closed"}])  # type: ignore[union-attr]
    await first.start()
    await other.start()
    store = SQLiteStore(tmp_path / "shared.db")
    try:
        rb = await edge(f"http://127.0.0.1:{other.port}", store, name="B")
        things = await rb.sync("things", mode="read", local="items")
        await things.wait_ready(timeout=5000 * MS)
        ra = await edge(f"http://127.0.0.1:{first.port}", store, name="A")
        items = await ra.sync("items", mode="write", query=QUERY)
        await items.wait_ready(timeout=5000 * MS)
        assert await _ids(things, {"a", "b", "c", "t1"})
        await ra.close()
        await rb.close()
    finally:
        await first.stop()
        await other.stop()


async def stored(path: Path) -> list[dict[str, object]]:
    async with SQLiteStore(path) as store:
        return await store.find("items")


async def _ids(items: object, want: set[str]) -> bool:
    return {d["_id"] for d in await items.find({})} == want  # type: ignore[attr-defined]

"""Hub protocol conformance, read side: capabilities, ``serversync/pull`` and the change feed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from aioserversync.hub import HubServing, ServerSyncServer
from aioserversync.hub.collection import HubCollection
from aioserversync.hub.methods import MAX_PULL_BYTES
from aioserversync.stores import SQLiteStore
from tests.hub.conftest import (
    MakeHub,
    call,
    call_error,
    client,
    feed_entries,
    insert_change,
    sub_error,
    update_change,
)
from tests.utils import wait_for_condition

AT = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
AT_WIRE = {"$date": 1704164645678}

Hub = tuple[ServerSyncServer, HubServing]


async def test_capabilities_lists_the_collections_the_caller_may_read(make_hub: MakeHub) -> None:
    _hub, running = await make_hub(
        collections=("items", "notes", "secret"),
        rules={"secret": {"read": lambda identity, coll: identity == "bob"}},
        max_pull=500,
    )
    async with client(running.url, "tok-alice") as alice, client(running.url, "tok-bob") as bob:
        assert await call(alice, "serversync/capabilities") == {
            "protocol": 1,
            "collections": ["items", "notes"],
            "maxPull": 500,
            "features": ["pull", "pull-text", "pull-page", "pull-full", "changes", "push"],
        }
        caps = await call(bob, "serversync/capabilities")
        assert caps["collections"] == ["items", "notes", "secret"]
    async with client(running.url, None) as anonymous:
        assert (await call(anonymous, "serversync/capabilities"))["collections"] == []


async def test_pull_text_form_sends_each_documents_fields_as_json_text(hub: Hub) -> None:
    h, running = hub
    await h.insert("items", {"_id": "d0", "n": 0, "at": AT, "s": 'quote " and \\'})
    await h.insert("items", {"_id": "d1", "n": 1})
    await h.remove("items", {"_id": "d1"})
    async with client(running.url) as c:
        plain = await call(c, "serversync/pull", "items", 0, 10)
        page = await call(c, "serversync/pull", "items", 0, 10, {"text": True})
        assert page["next"] == plain["next"] == 3 and page["more"] is False
        [[doc_id, rev, text]] = page["docs"]
        assert (doc_id, rev) == ("d0", 1) and isinstance(text, str)
        assert (
            orjson.loads(text)
            == plain["docs"][0][2]
            == {
                "n": 0,
                "at": AT_WIRE,
                "s": 'quote " and \\',
            }
        )
        after = await call(c, "serversync/pull", "items", 1, 10, {"text": True})
        assert after["docs"] == [["d1", 3, None]]  # tombstones stay null
        assert await call(c, "serversync/pull", "items", 0, 10, {"text": False}) == plain
        for bad in ("text", {"text": 1}, [True]):
            err = await call_error(c, "serversync/pull", "items", 0, 10, bad)
            assert err["error"] == 400


async def test_pull_page_form_sends_the_documents_as_one_json_text(hub: Hub) -> None:
    """The page form: ``page`` is the JSON text of an object "<rev>:<id>" -> fields (any id,
    colons included), ``docs`` holds only tombstones, ``next`` and ``more`` as usual."""
    h, running = hub
    await h.insert("items", {"_id": "d0", "n": 0, "at": AT, "s": 'quote " and \\'})
    await h.insert("items", {"_id": "a:b", "n": 1})
    await h.insert("items", {"_id": "gone", "n": 2})
    await h.remove("items", {"_id": "gone"})
    async with client(running.url) as c:
        plain = await call(c, "serversync/pull", "items", 0, 10)
        got = await call(c, "serversync/pull", "items", 0, 10, {"page": True})
        assert got["next"] == plain["next"] == 4 and got["more"] is False
        assert got["docs"] == []  # from 0 tombstones are left out
        assert isinstance(got["page"], str)
        assert orjson.loads(got["page"]) == {
            f"{rev}:{doc_id}": fields for doc_id, rev, fields in plain["docs"]
        }
        assert list(orjson.loads(got["page"])) == ["1:d0", "2:a:b"]
        after = await call(c, "serversync/pull", "items", 1, 10, {"page": True})
        assert after["docs"] == [["gone", 4, None]]
        assert orjson.loads(after["page"]) == {"2:a:b": {"n": 1}}
        first = await call(c, "serversync/pull", "items", 0, 1, {"page": True, "text": True})
        assert list(orjson.loads(first["page"])) == ["1:d0"] and first["more"] is True
        for bad in ({"page": 1}, {"page": "yes"}):
            err = await call_error(c, "serversync/pull", "items", 0, 10, bad)
            assert err["error"] == 400


async def test_pull_returns_changes_in_revision_order_with_paging(hub: Hub) -> None:
    h, running = hub
    for i in range(5):
        await h.insert("items", {"_id": f"d{i}", "n": i, "at": AT})
    await h.update("items", {"_id": "d1"}, {"$set": {"n": 10}})  # d1 moves to rev 6
    await h.remove("items", {"_id": "d3"})  # tombstone at rev 7
    async with client(running.url) as c:
        page = await call(c, "serversync/pull", "items", 0, 3)
        assert page == {
            "docs": [
                ["d0", 1, {"n": 0, "at": AT_WIRE}],
                ["d2", 3, {"n": 2, "at": AT_WIRE}],
                ["d4", 5, {"n": 4, "at": AT_WIRE}],
            ],
            "next": 5,
            "more": True,
            "purged": 0,
        }
        rest = await call(c, "serversync/pull", "items", page["next"], 3)
        assert rest == {
            "docs": [["d1", 6, {"n": 10, "at": AT_WIRE}], ["d3", 7, None]],
            "next": 7,
            "more": False,
            "purged": 0,
        }
        # Caught up: nothing after the checkpoint, next stays where it was.
        assert await call(c, "serversync/pull", "items", 7, 3) == {
            "docs": [],
            "next": 7,
            "more": False,
            "purged": 0,
        }


async def test_pull_from_zero_skips_tombstones_but_moves_next_past_them(hub: Hub) -> None:
    h, running = hub
    await h.insert("items", {"_id": "a"})
    await h.remove("items", "a")  # tombstone at rev 2
    await h.insert("items", {"_id": "b"})  # rev 3
    async with client(running.url) as c:
        assert await call(c, "serversync/pull", "items", 0, 10) == {
            "docs": [["b", 3, {}]],
            "next": 3,
            "more": False,
            "purged": 0,
        }
        # Only a tombstone in the page: no entry, but the checkpoint advances past it.
        assert await call(c, "serversync/pull", "items", 0, 1) == {
            "docs": [],
            "next": 2,
            "more": True,
            "purged": 0,
        }
        assert await call(c, "serversync/pull", "items", 2, 1) == {
            "docs": [["b", 3, {}]],
            "next": 3,
            "more": False,
            "purged": 0,
        }
        # From a checkpoint the tombstone is an entry.
        assert (await call(c, "serversync/pull", "items", 1, 10))["docs"] == [
            ["a", 2, None],
            ["b", 3, {}],
        ]


async def test_pull_limit_is_capped_by_max_pull(make_hub: MakeHub) -> None:
    h, running = await make_hub(max_pull=2)
    for i in range(3):
        await h.insert("items", {"_id": f"d{i}"})
    async with client(running.url) as c:
        page = await call(c, "serversync/pull", "items", 0, 1000)
        assert [d[0] for d in page["docs"]] == ["d0", "d1"] and page["more"] is True
        page = await call(c, "serversync/pull", "items", 0)  # limit left out: maxPull
        assert len(page["docs"]) == 2


@pytest.mark.parametrize("form", ["object", "text", "page"])
async def test_pull_result_stops_growing_past_its_size_cap(make_hub: MakeHub, form: str) -> None:
    h, running = await make_hub()
    blob = "x" * 2**20  # documents of 1 MiB: a page holds about eight of them
    for i in range(12):
        await h.insert("items", {"_id": f"d{i:02d}", "blob": blob})
    options = [] if form == "object" else [{form: True}]
    got: list[str] = []
    async with client(running.url, max_size=64 * 2**20) as c:
        since, more = 0, True
        while more:
            page = await call(c, "serversync/pull", "items", since, 100, *options)
            size = len(orjson.dumps(page))
            assert size <= MAX_PULL_BYTES + 2 * 2**20, size
            if form == "page":
                page["docs"] = [
                    [k.partition(":")[2], int(k.partition(":")[0]), v]
                    for k, v in orjson.loads(page["page"]).items()
                ]
            assert 0 < len(page["docs"]) < 12
            got += [d[0] for d in page["docs"]]
            since, more = page["next"], page["more"]
            assert since == page["docs"][-1][1]
    assert got == [f"d{i:02d}" for i in range(12)]


async def test_pull_errors(make_hub: MakeHub) -> None:
    h, running = await make_hub(
        collections=("items", "secret"), rules={"secret": {"read": lambda i, c: False}}
    )
    await h.insert("items", {"_id": "a"})
    async with client(running.url) as c:
        assert (await call_error(c, "serversync/pull", "nope", 0, 10))["error"] == 404
        assert (await call_error(c, "serversync/pull", "secret", 0, 10))["error"] == 403
        for bad in (
            ("items", "0", 10),
            ("items", -1, 10),
            ("items", 0, 0),
            ("items", 0, "x"),
            (5, 0, 10),
            ("items", True, 10),
            ("items", None, 10),
        ):
            error = await call_error(c, "serversync/pull", *bad)
            assert error["error"] == 400, bad
        # A checkpoint beyond the newest revision: the hub's data is older than the client's.
        error = await call_error(c, "serversync/pull", "items", 99, 10)
        assert error["error"] == 410 and error["reason"] == "checkpoint-expired"


async def purged_hub(make_hub: MakeHub) -> Any:
    """A hub keeping 2 revisions of tombstones: d0..d3 inserted, d0 and d1 removed (revs 5, 6),
    d9 and d8 inserted (7, 8), then purged (tombstones <= 6 dropped)."""
    h, running = await make_hub(tombstone_retention=2)
    for i in range(4):
        await h.insert("items", {"_id": f"d{i}"})
    await h.remove("items", "d0")
    await h.remove("items", "d1")
    await h.insert("items", {"_id": "d9"})
    await h.insert("items", {"_id": "d8"})
    await h.purge("items")
    return h, running


async def test_pull_after_purge_answers_410_for_older_checkpoints(make_hub: MakeHub) -> None:
    h, running = await purged_hub(make_hub)
    coll = h.collections["items"]
    assert coll.purged == 6
    async with client(running.url) as c:
        for since in (1, 4, 5):
            error = await call_error(c, "serversync/pull", "items", since, 10)
            assert (error["error"], error["reason"]) == (410, "checkpoint-expired")
        page = await call(c, "serversync/pull", "items", 6, 10)
        assert page["purged"] == 6 and [d[0] for d in page["docs"]] == ["d9", "d8"]
        page = await call(c, "serversync/pull", "items", 0, 10)  # a full resync still works
        assert [d[0] for d in page["docs"]] == ["d2", "d3", "d9", "d8"]
        assert page["purged"] == 6
        assert (await sub_error(c, "serversync/changes", "items", 3))["error"] == 410


async def test_later_pages_of_a_full_pull_pass_tombstones_purged_before_it(
    make_hub: MakeHub,
) -> None:
    """``full`` (the purge mark of a full pull's first page) lets its later pages go past
    tombstones purged before it; a purge after that mark still expires them."""
    _, running = await purged_hub(make_hub)
    async with client(running.url) as c:
        first = await call(c, "serversync/pull", "items", 0, 1)
        assert [d[0] for d in first["docs"]] == ["d2"] and first["purged"] == 6
        page = await call(c, "serversync/pull", "items", first["next"], 10, {"full": 6})
        assert [d[0] for d in page["docs"]] == ["d3", "d9", "d8"]
        error = await call_error(c, "serversync/pull", "items", 3, 10)  # not a full pull
        assert error["error"] == 410
        error = await call_error(c, "serversync/pull", "items", 3, 10, {"full": 5})
        assert error["error"] == 410  # purged after the first page: removals may be lost
        for bad in (-1, "6", 1.5, True):
            error = await call_error(c, "serversync/pull", "items", 3, 10, {"full": bad})
            assert error["error"] == 400


async def test_purge_without_tombstones_keeps_every_checkpoint_valid(make_hub: MakeHub) -> None:
    h, running = await make_hub(tombstone_retention=1)
    for i in range(3):
        await h.insert("items", {"_id": f"d{i}"})
    await h.purge()
    assert h.collections["items"].purged == 0
    async with client(running.url) as c:
        page = await call(c, "serversync/pull", "items", 1, 10)
        assert [d[0] for d in page["docs"]] == ["d1", "d2"]


async def test_changes_feed_sends_backlog_then_ready_then_live(hub: Hub) -> None:
    h, running = hub
    await h.insert("items", {"_id": "a", "v": 1})
    await h.insert("items", {"_id": "b", "v": 1})
    await h.remove("items", "a")
    async with client(running.url) as c, client(running.url, "tok-bob") as writer:
        sid, backlog = await c.sub_ready("serversync/changes", "items", 1)
        assert backlog == [
            {
                "msg": "added",
                "collection": "serversync.changes/items",
                "id": "2",
                "fields": {"i": "b", "r": 2, "d": {"v": 1}},
            },
            {
                "msg": "added",
                "collection": "serversync.changes/items",
                "id": "3",
                "fields": {"i": "a", "r": 3, "d": None},
            },
        ]
        # Live: a push carries its mutation id, a local write none.
        await call(writer, "serversync/push", "items", [update_change("M1", "b", 2, {"v": 2})])
        await h.insert("items", {"_id": "c", "at": AT})
        other = await c.barrier()
        assert feed_entries(other) == [
            {"i": "b", "r": 4, "d": {"v": 2}, "m": "M1"},
            {"i": "c", "r": 5, "d": {"at": AT_WIRE}},
        ]
        # The feed keeps no history: unsubscribing removes nothing.
        await c.send({"msg": "unsub", "id": sid})
        msgs = await c.until(lambda m: m["msg"] == "nosub")
        assert msgs == [{"msg": "nosub", "id": sid}]


async def test_changes_feed_errors_come_as_nosub(make_hub: MakeHub) -> None:
    _h, running = await make_hub(
        collections=("items", "secret"), rules={"secret": {"read": lambda i, c: False}}
    )
    async with client(running.url) as c:
        assert (await sub_error(c, "serversync/changes", "nope", 0))["error"] == 404
        assert (await sub_error(c, "serversync/changes", "secret", 0))["error"] == 403
        assert (await sub_error(c, "serversync/changes", "items", "x"))["error"] == 400
        assert (await sub_error(c, "serversync/changes", "items", -2))["error"] == 400
        assert (await sub_error(c, "serversync/changes", 7, 0))["error"] == 400
    async with client(running.url, None) as anonymous:
        assert (await sub_error(anonymous, "serversync/changes", "items", 0))["error"] == 403


async def test_changes_feed_encodes_each_change_once_for_all_sessions(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, running = hub
    calls: list[int] = []
    original = HubCollection.feed_frame

    def counting(self: HubCollection, change: object) -> bytes:  # a spy on the real encoder
        calls.append(1)
        return original(self, change)  # type: ignore[arg-type]

    monkeypatch.setattr(HubCollection, "feed_frame", counting)
    async with client(running.url) as a, client(running.url) as b, client(running.url) as c:
        for x in (a, b, c):
            await x.sub_ready("serversync/changes", "items", 0)
        await h.insert("items", {"_id": "z", "n": 1})
        frames = []
        for x in (a, b, c):
            frames.append(feed_entries(await x.barrier()))
    assert frames == [[{"i": "z", "r": 1, "d": {"n": 1}}]] * 3
    assert len(calls) == 1


async def test_feed_subscribed_during_writes_misses_nothing(hub: Hub) -> None:
    h, running = hub
    for i in range(50):
        await h.insert("items", {"_id": f"d{i:02}"})
    async with client(running.url) as c:
        await c.sub("serversync/changes", "items", 0)
        for i in range(50, 60):
            await h.insert("items", {"_id": f"d{i:02}"})
        msgs = await c.until(lambda m: m["msg"] == "ready")
        msgs += await c.barrier()
    revs = [e["r"] for e in feed_entries(msgs)]
    assert revs == list(range(1, 61))


async def test_feed_entry_of_push_carries_mid_and_plain_subscribers_get_top_level_diff(
    hub: Hub,
) -> None:
    h, running = hub
    await h.insert("items", {"_id": "a", "x": 1, "y": {"z": 1}})
    async with client(running.url) as c:
        await c.sub_ready("items")
        # The data messages a method causes come before its ``updated``.
        other, result, _ = await c.call(
            "serversync/push",
            "items",
            [
                update_change("M2", "a", 1, {"y": {"z": 2}, "w": 3}, ["x"]),
                insert_change("M3", "n", {"k": True}),
            ],
        )
        assert [r["status"] for r in result["result"]] == ["accepted", "accepted"]
    data = [m for m in other if m["collection"] == "items"]
    assert data == [
        {
            "msg": "changed",
            "collection": "items",
            "id": "a",
            "fields": {"y": {"z": 2}, "w": 3},
            "cleared": ["x"],
        },
        {"msg": "added", "collection": "items", "id": "n", "fields": {"k": True}},
    ]


async def test_a_feed_subscriber_that_stops_reading_is_disconnected(make_hub: MakeHub) -> None:
    h, running = await make_hub(max_backlog=20, close_timeout=0.2)
    big = "x" * 65536
    # (``slow`` closes without waiting for a close handshake it could only read after MBs.)
    async with (
        client(running.url, close_timeout=0.1) as slow,
        client(running.url) as healthy,
    ):
        await slow.sub_ready("serversync/changes", "items", 0)
        await healthy.sub_ready("serversync/changes", "items", 0)
        slow_session = next(s for s in h.ddp.sessions.values() if s.id == slow.session)
        # ``slow`` reads nothing from now on: socket buffers fill, then frames queue up.
        for i in range(400):
            await h.insert("items", {"_id": f"d{i:03}", "big": big})
            if slow_session.closed:
                break
            msgs = await healthy.until(lambda m: m["msg"] == "added")
            assert msgs[-1]["fields"]["i"] == f"d{i:03}"
        await wait_for_condition(lambda: slow_session.closed, message="slow session closed")
        assert healthy.session in h.ddp.sessions


class CountingStore(SQLiteStore):
    """A real SQLiteStore that counts ``changes_since`` reads (instrumentation, not a mock)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads = 0

    async def changes_since(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return await super().changes_since(*args, **kwargs)


async def test_repeated_pulls_of_one_state_are_answered_once(make_hub: MakeHub, tmp_path) -> None:
    store = CountingStore(tmp_path / "counting.sqlite3")
    hub, running = await make_hub(store=store)
    for i in range(5):
        await hub.insert("items", {"_id": f"d{i}", "n": i})
    async with client(running.url) as a, client(running.url, "tok-bob") as b:
        before = store.reads
        first = await call(a, "serversync/pull", "items", 0, 3)
        assert await call(b, "serversync/pull", "items", 0, 3) == first
        assert await call(a, "serversync/pull", "items", 0, 3) == first
        assert store.reads - before == 1  # one store read for three identical requests
        assert [d[0] for d in first["docs"]] == ["d0", "d1", "d2"] and first["more"] is True
        # A commit changes the state: the same request reads again and sees it.
        await hub.update("items", "d1", {"$set": {"n": 10}})
        again = await call(a, "serversync/pull", "items", 0, 3)
        assert store.reads - before == 2
        assert [d[0] for d in again["docs"]] == ["d0", "d2", "d3"]
        assert await call(a, "serversync/pull", "items", 3, 10) != await call(
            a, "serversync/pull", "items", 2, 10
        )


def test_pull_cache_keeps_only_the_current_state_within_bounds() -> None:
    from aioserversync.hub.pull_cache import PullCache

    cache = PullCache(max_entries=2, max_bytes=100)
    cache.put((0, 10, False, 5, 0), b"a")
    cache.put((10, 10, False, 5, 0), b"b")
    cache.put((20, 10, False, 5, 0), b"c")  # the oldest goes
    assert cache.get((0, 10, False, 5, 0)) is None and cache.get((20, 10, False, 5, 0)) == b"c"
    cache.put((0, 10, False, 6, 0), b"d")  # a newer revision: answers of revision 5 go
    assert cache.get((10, 10, False, 5, 0)) is None and cache.get((0, 10, False, 6, 0)) == b"d"
    cache.put((0, 10, False, 6, 0), b"x" * 51)  # larger than its share of max_bytes: not kept
    assert cache.get((0, 10, False, 6, 0)) == b"d"
    cache.put((0, 10, True, 6, 0), b"t")  # the text form of the same page is another answer
    assert cache.get((0, 10, True, 6, 0)) == b"t" and cache.get((0, 10, False, 6, 0)) == b"d"

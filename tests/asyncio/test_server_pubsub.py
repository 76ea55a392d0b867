"""DDPServer publications on loopback: data messages, merge box, errors, strategies, fan-out."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from bson import ObjectId

from aioserversync.asyncio.server import READY, DDPServer, Publication, serve
from aioserversync.exceptions import MeteorError
from aioserversync.protocol.server import added_frame
from tests.asyncio.test_server_support import TIMEOUT, RawClient, error_obj

WHEN = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


async def test_sub_added_ready_then_live_changed_and_removed() -> None:
    ddp = DDPServer()
    go = asyncio.Event()

    @ddp.publish("tasks")
    async def tasks(pub: Publication, list_id: str) -> None:
        pub.added("tasks", "t1", {"_id": "t1", "text": "hi", "list": list_id, "at": WHEN})
        pub.added("tasks", ObjectId("5f1d7a0b2c3e4f5a6b7c8d9e"), {"text": "oid"})
        pub.added("tasks", "-dash", {})
        pub.ready()
        await go.wait()
        pub.changed("tasks", "t1", {"text": "new"}, ["list"])
        pub.changed("tasks", "t1", {"text": "new"})  # unchanged: suppressed
        pub.removed("tasks", "-dash")

    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        sid, data = await c.sub_ready("tasks", "L1")
        assert data == [
            {
                "msg": "added",
                "collection": "tasks",
                "id": "t1",
                "fields": {"text": "hi", "list": "L1", "at": {"$date": 1704164645678}},
            },
            {
                "msg": "added",
                "collection": "tasks",
                "id": "5f1d7a0b2c3e4f5a6b7c8d9e",
                "fields": {"text": "oid"},
            },
            {"msg": "added", "collection": "tasks", "id": "--dash"},
        ]
        go.set()
        assert await c.recv() == {
            "msg": "changed",
            "collection": "tasks",
            "id": "t1",
            "fields": {"text": "new"},
            "cleared": ["list"],
        }
        assert await c.recv() == {"msg": "removed", "collection": "tasks", "id": "--dash"}
        await c.send({"msg": "unsub", "id": sid})
        msgs = await c.until(lambda m: m["msg"] == "nosub")
        # The two remaining documents are removed (in any order), then nosub.
        assert sorted(m["id"] for m in msgs[:-1]) == ["5f1d7a0b2c3e4f5a6b7c8d9e", "t1"]
        assert {m["msg"] for m in msgs[:-1]} == {"removed"}
        assert msgs[-1] == {"msg": "nosub", "id": sid}


async def test_unsub_removes_documents_then_sends_nosub() -> None:
    ddp = DDPServer()

    @ddp.publish("docs")
    def docs(pub: Publication, n: int) -> Any:
        for i in range(n):
            pub.added("docs", f"d{i}", {"i": i})
        return READY

    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        sid, data = await c.sub_ready("docs", 3)
        assert [m["id"] for m in data] == ["d0", "d1", "d2"]
        await c.send({"msg": "unsub", "id": sid})
        msgs = await c.until(lambda m: m["msg"] == "nosub")
        assert sorted(m["id"] for m in msgs[:-1]) == ["d0", "d1", "d2"]
        assert all(m["msg"] == "removed" for m in msgs[:-1])
        assert msgs[-1] == {"msg": "nosub", "id": sid}
        # unsub of an unknown id still gets a nosub.
        await c.send({"msg": "unsub", "id": "never"})
        assert await c.recv() == {"msg": "nosub", "id": "never"}


async def test_unknown_publication_gets_nosub_404() -> None:
    async with serve(DDPServer(), "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        await c.sub("tasks.byList", sub_id="cKJ5zFnx3yBfAQXG2")
        assert await c.recv() == {
            "msg": "nosub",
            "id": "cKJ5zFnx3yBfAQXG2",
            "error": error_obj(404, "Subscription 'tasks.byList' not found"),
        }


async def test_publication_errors(caplog: pytest.LogCaptureFixture) -> None:
    ddp = DDPServer()

    @ddp.publish("crash")
    async def crash(pub: Publication) -> None:
        pub.added("c", "x", {"a": 1})
        raise KeyError("secret internals")

    @ddp.publish("denied")
    async def denied(pub: Publication) -> None:
        pub.error(MeteorError(403, "Access denied", {"why": "no"}))
        pub.added("c", "late", {})  # ignored after the error

    @ddp.publish("stops")
    async def stops(pub: Publication) -> None:
        pub.added("c", "s", {})
        pub.ready()
        pub.stop()

    caplog.set_level(logging.ERROR, logger="aioserversync.server")
    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        await c.sub("crash", sub_id="a")
        assert await c.recv() == {"msg": "added", "collection": "c", "id": "x", "fields": {"a": 1}}
        assert await c.recv() == {"msg": "removed", "collection": "c", "id": "x"}
        nosub = await c.recv()
        assert nosub == {
            "msg": "nosub",
            "id": "a",
            "error": error_obj(500, "Internal server error"),
        }
        assert "secret" not in orjson.dumps(nosub).decode()
        await c.sub("denied", sub_id="b")
        assert await c.recv() == {
            "msg": "nosub",
            "id": "b",
            "error": {
                "isClientSafe": True,
                "error": 403,
                "reason": "Access denied",
                "details": {"why": "no"},
                "message": "Access denied [403]",
                "errorType": "Meteor.Error",
            },
        }
        await c.sub("stops", sub_id="s")
        msgs = await c.until(lambda m: m["msg"] == "nosub")
        assert msgs == [
            {"msg": "added", "collection": "c", "id": "s"},
            {"msg": "ready", "subs": ["s"]},
            {"msg": "removed", "collection": "c", "id": "s"},
            {"msg": "nosub", "id": "s"},
        ]
        assert await c.barrier() == []
    assert any(r.exc_info and "secret internals" in str(r.exc_info[1]) for r in caplog.records)


async def test_duplicate_sub_id_is_ignored_and_no_auto_ready() -> None:
    ddp = DDPServer()
    runs: list[str] = []

    @ddp.publish("once")
    def once(pub: Publication) -> None:
        runs.append(pub.sub_id)
        pub.ready()

    @ddp.publish("never-ready")
    def never_ready(pub: Publication) -> None:
        pub.added("c", "n", {})

    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        await c.sub("once", sub_id="dup")
        await c.sub("once", sub_id="dup")
        await c.sub("never-ready", sub_id="nr")
        assert await c.barrier() == [
            {"msg": "ready", "subs": ["dup"]},
            {"msg": "added", "collection": "c", "id": "n"},
        ]
        assert runs == ["dup"]


async def test_two_subscriptions_share_a_document_through_the_merge_box() -> None:
    ddp = DDPServer()

    @ddp.publish("view")
    def view(pub: Publication, fields: dict[str, Any]) -> Any:
        pub.added("c", "x", fields)
        return READY

    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        _, d1 = await c.sub_ready("view", {"a": 1, "v": "first"}, sub_id="A")
        _, d2 = await c.sub_ready("view", {"b": 2, "v": "second"}, sub_id="B")
        assert d1 == [
            {"msg": "added", "collection": "c", "id": "x", "fields": {"a": 1, "v": "first"}}
        ]
        assert d2 == [{"msg": "changed", "collection": "c", "id": "x", "fields": {"b": 2}}]
        await c.send({"msg": "unsub", "id": "A"})
        assert await c.until(lambda m: m["msg"] == "nosub") == [
            {
                "msg": "changed",
                "collection": "c",
                "id": "x",
                "fields": {"v": "second"},
                "cleared": ["a"],
            },
            {"msg": "nosub", "id": "A"},
        ]
        await c.send({"msg": "unsub", "id": "B"})
        assert await c.until(lambda m: m["msg"] == "nosub") == [
            {"msg": "removed", "collection": "c", "id": "x"},
            {"msg": "nosub", "id": "B"},
        ]


@pytest.mark.parametrize("strategy", ["no_merge", "no_merge_no_history"])
async def test_no_merge_strategies(strategy: Any) -> None:
    ddp = DDPServer()

    @ddp.publish("raw", strategy=strategy)
    def raw(pub: Publication) -> Any:
        pub.added("c", "x", {"a": 1})
        return READY

    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        _, d1 = await c.sub_ready("raw", sub_id="A")
        _, d2 = await c.sub_ready("raw", sub_id="B")
        added = {"msg": "added", "collection": "c", "id": "x", "fields": {"a": 1}}
        assert d1 == d2 == [added]  # no merge box: a second added for the same id
        await c.send({"msg": "unsub", "id": "A"})
        msgs = await c.until(lambda m: m["msg"] == "nosub")
        expected_removed = (
            [{"msg": "removed", "collection": "c", "id": "x"}] if strategy == "no_merge" else []
        )
        assert msgs == [*expected_removed, {"msg": "nosub", "id": "A"}]


async def test_wire_publication_reuses_the_given_frame() -> None:
    ddp = DDPServer()
    fields = {"when": {"$date": 5}}
    frame = added_frame("c", "x", fields, wire=True).replace(b'"c"', b'"c" ')

    @ddp.publish("wire")
    def wire(pub: Publication) -> Any:
        pub.added_wire("c", "x", fields, frame=frame)
        pub.added_wire("c", "y", {"n": 1})
        pub.changed_wire(
            "c",
            "y",
            {"n": 2},
            frame=b'{"msg":"changed","collection":"c","id":"y","fields":{"n":2}} ',
        )
        pub.changed_wire("c", "y", {"n": 2}, frame=b"never sent: nothing changed")
        pub.removed_wire("c", "y", frame=b'{"msg":"removed","collection":"c","id":"y"} ')
        return READY

    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        await c.sub("wire", sub_id="w")
        raw = [await c.ws.recv() for _ in range(5)]
        assert raw[0] == frame.decode()  # the caller's bytes, as given
        assert orjson.loads(raw[1]) == {
            "msg": "added",
            "collection": "c",
            "id": "y",
            "fields": {"n": 1},
        }
        assert raw[2].endswith("} ")
        assert raw[3].endswith("} ") and orjson.loads(raw[3])["msg"] == "removed"
        assert orjson.loads(raw[4]) == {"msg": "ready", "subs": ["w"]}


async def test_broadcast_sends_the_same_frames_to_many_sessions() -> None:
    ddp = DDPServer()

    @ddp.publish("feed", strategy="no_merge_no_history")
    def feed(pub: Publication) -> Any:
        return READY

    @ddp.publish("other")
    def other(pub: Publication) -> Any:
        return READY

    async with (
        serve(ddp, "127.0.0.1", 0) as running,
        RawClient.open(running.url) as c1,
        RawClient.open(running.url) as c2,
        RawClient.open(running.url) as c3,
    ):
        for c in (c1, c2, c3):
            await c.connect()
        await c1.sub_ready("feed")
        await c2.sub_ready("feed")
        await c3.sub_ready("other")
        frames = [
            orjson.dumps({"msg": "changed", "collection": "c", "id": str(i), "fields": {"k": i}})
            for i in range(3)
        ]
        assert len(ddp.publications("feed")) == 2 and len(ddp.publications()) == 3
        assert ddp.broadcast(frames, ddp.publications("feed")) == 2
        for c in (c1, c2):
            assert [await c.recv() for _ in range(3)] == [orjson.loads(f) for f in frames]
        assert await c3.barrier() == []


async def test_large_publication_with_drain_arrives_in_order() -> None:
    ddp = DDPServer(compression=None)
    n = 20_000

    @ddp.publish("big")
    async def big(pub: Publication) -> None:
        for i in range(n):
            pub.added("big", f"d{i}", {"i": i})
            if i % 500 == 0:
                await pub.drain()
        pub.ready()

    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        _, data = await c.sub_ready("big")
        assert [m["fields"]["i"] for m in data] == list(range(n))


async def test_pings_are_answered_while_a_publication_blocks_the_queue() -> None:
    ddp = DDPServer()
    release = asyncio.Event()

    @ddp.publish("slow")
    async def slow(pub: Publication) -> None:
        await release.wait()
        pub.ready()

    @ddp.publish("unblocking")
    async def unblocking(pub: Publication) -> None:
        pub.unblock()
        await release.wait()
        pub.ready()

    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        await c.sub("slow", sub_id="slow")
        await c.send({"msg": "method", "id": "m", "method": "nope", "params": []})
        await c.send({"msg": "ping", "id": "p"})
        assert await c.recv() == {"msg": "pong", "id": "p"}
        release.set()
        msgs = await c.until(lambda m: m["msg"] == "updated")
        assert msgs[0] == {"msg": "ready", "subs": ["slow"]}  # the method waited for the sub
        release.clear()
        await c.sub("unblocking", sub_id="u")
        other = await c.barrier()  # answered although the publication has not finished
        assert other == []
        release.set()
        assert await c.recv() == {"msg": "ready", "subs": ["u"]}


async def test_on_stop_runs_for_unsub_and_async_callbacks() -> None:
    ddp = DDPServer()
    events: list[str] = []
    done = asyncio.Event()

    async def async_cb() -> None:
        events.append("async")
        done.set()

    @ddp.publish("p")
    def p(pub: Publication) -> Any:
        pub.on_stop(lambda: events.append("sync"))
        pub.on_stop(async_cb)
        return READY

    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        sid, _ = await c.sub_ready("p")
        await c.send({"msg": "unsub", "id": sid})
        assert await c.recv() == {"msg": "nosub", "id": sid}
        async with asyncio.timeout(TIMEOUT):
            await done.wait()
        assert events == ["sync", "async"]


async def test_publication_attributes_and_params() -> None:
    ddp = DDPServer()
    seen: dict[str, Any] = {}

    @ddp.publish("info")
    def info(pub: Publication, a: Any, b: Any) -> Any:
        seen.update(
            sub=pub.sub_id,
            name=pub.name,
            params=pub.params,
            user=pub.user_id,
            conn=pub.connection.id,
        )
        return READY

    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        session = await c.connect()
        await c.sub_ready("info", {"$date": 0}, [1], sub_id="i")
        assert seen == {
            "sub": "i",
            "name": "info",
            "params": [datetime(1970, 1, 1, tzinfo=UTC), [1]],
            "user": None,
            "conn": session,
        }


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_frames_of_every_length_class(compression: Any) -> None:
    # Uncompressed batches are framed by the server itself: 7-bit, 16-bit and 64-bit lengths.
    ddp = DDPServer(compression=compression)
    sizes = [0, 100, 126, 300, 65_535, 70_000, 1_200_000]

    @ddp.publish("sized")
    def sized(pub: Publication) -> Any:
        for n in sizes:
            pub.added("s", str(n), {"blob": "é" * (n // 2) + "x" * (n % 2)})
        return READY

    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        _, data = await c.sub_ready("sized")
        assert [m["id"] for m in data] == [str(n) for n in sizes]
        for m, n in zip(data, sizes, strict=True):
            assert len(m["fields"]["blob"]) == n // 2 + n % 2
        _, result, _ = await c.call("__after__")
        assert result["error"]["error"] == 404  # the stream is still in sync

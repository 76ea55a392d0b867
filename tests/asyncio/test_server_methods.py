"""DDPServer methods on loopback: result/updated shapes, ordering, fences, login re-runs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from aioserversync.asyncio.server import READY, DDPServer, MethodContext, Publication, serve
from aioserversync.exceptions import MeteorError
from tests.asyncio.test_server_support import RawClient, error_obj


def server_with_methods() -> DDPServer:
    ddp = DDPServer()

    @ddp.method("tasks.add")
    async def add(ctx: MethodContext, text: str, when: datetime) -> dict[str, Any]:
        return {"text": text.upper(), "at": when, "ok": True}

    @ddp.method("nothing")
    def nothing(ctx: MethodContext) -> None:
        return None

    @ddp.method("denied")
    async def denied(ctx: MethodContext) -> None:
        raise MeteorError(
            "not-authorized", "You must log in", {"when": datetime(1970, 1, 1, tzinfo=UTC)}
        )

    @ddp.method("crash")
    def crash(ctx: MethodContext) -> None:
        raise ZeroDivisionError("internal detail")

    @ddp.method("unencodable")
    def unencodable(ctx: MethodContext) -> Any:
        return {1, 2, 3}

    @ddp.method("args")
    def args(ctx: MethodContext, a: int) -> int:
        return a

    return ddp


async def test_method_results_and_errors_have_meteor_shapes() -> None:
    async with (
        serve(server_with_methods(), "127.0.0.1", 0) as running,
        RawClient.open(running.url) as c,
    ):
        await c.connect()
        await c.send(
            {
                "msg": "method",
                "id": "1",
                "method": "tasks.add",
                "params": ["hello", {"$date": 1704164645678}],
            }
        )
        other, result, updated = await c.wait_method("1")
        assert other == []
        assert result == {
            "msg": "result",
            "id": "1",
            "result": {"text": "HELLO", "at": {"$date": 1704164645678}, "ok": True},
        }
        assert updated == {"msg": "updated", "methods": ["1"]}

        _, result, _ = await c.call("nothing")
        assert result == {"msg": "result", "id": result["id"]}  # undefined: no result key

        _, result, _ = await c.call("denied")
        assert result["error"] == {
            "isClientSafe": True,
            "error": "not-authorized",
            "reason": "You must log in",
            "details": {"when": "1970-01-01T00:00:00.000Z"},
            "message": "You must log in [not-authorized]",
            "errorType": "Meteor.Error",
        }
        for name in ("crash", "unencodable"):
            _, result, _ = await c.call(name)
            assert result["error"] == error_obj(500, "Internal server error")
        _, result, _ = await c.call("args", 1, 2, 3)  # wrong arity is the handler's failure
        assert result["error"] == error_obj(500, "Internal server error")
        assert await c.barrier() == []  # exactly one result and one updated each


async def test_unknown_method_gets_404_result_then_updated() -> None:
    async with serve(DDPServer(), "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        await c.send({"msg": "method", "id": "7", "method": "nope", "params": []})
        assert await c.recv() == {
            "msg": "result",
            "id": "7",
            "error": error_obj(404, "Method 'nope' not found"),
        }
        assert await c.recv() == {"msg": "updated", "methods": ["7"]}


async def test_updated_precedes_result_without_pending_writes() -> None:
    async with (
        serve(server_with_methods(), "127.0.0.1", 0) as running,
        RawClient.open(running.url) as c,
    ):
        await c.connect()
        await c.send({"msg": "method", "id": "1", "method": "nothing", "params": []})
        assert [await c.recv() for _ in range(2)] == [
            {"msg": "updated", "methods": ["1"]},
            {"msg": "result", "id": "1"},
        ]


async def test_messages_are_handled_in_order_and_unblock_lets_later_ones_go() -> None:
    ddp = DDPServer()
    gate = asyncio.Event()

    @ddp.method("slow")
    async def slow(ctx: MethodContext, unblock: bool) -> str:
        if unblock:
            ctx.unblock()
        await gate.wait()
        return "slow"

    @ddp.method("fast")
    def fast(ctx: MethodContext) -> str:
        return "fast"

    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        # Blocking: "fast" waits for "slow"; a ping does not.
        await c.send({"msg": "method", "id": "1", "method": "slow", "params": [False]})
        await c.send({"msg": "method", "id": "2", "method": "fast", "params": []})
        await c.send({"msg": "ping", "id": "p"})
        assert await c.recv() == {"msg": "pong", "id": "p"}
        gate.set()
        got = [await c.recv() for _ in range(4)]
        assert [m["id"] for m in got if m["msg"] == "result"] == ["1", "2"]
        assert sorted(m["methods"][0] for m in got if m["msg"] == "updated") == ["1", "2"]
        # Unblocked: "fast" answers while "slow" still waits.
        gate.clear()
        await c.send({"msg": "method", "id": "3", "method": "slow", "params": [True]})
        _, result, _ = await c.call("fast")
        assert result["result"] == "fast"
        gate.set()
        _, result, _ = await c.wait_method("3")
        assert result["result"] == "slow"


async def test_data_messages_of_a_method_precede_its_updated() -> None:
    ddp = DDPServer()

    @ddp.publish("inbox")
    def inbox(pub: Publication) -> Any:
        pub.connection.data["inbox"] = pub
        return READY

    @ddp.method("post")
    async def post(ctx: MethodContext, text: str) -> str:
        pub: Publication = ctx.connection.data["inbox"]
        pub.added("inbox", text, {"text": text})
        return text

    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        await c.sub_ready("inbox")
        await c.send({"msg": "method", "id": "1", "method": "post", "params": ["hi"]})
        msgs = [await c.recv() for _ in range(3)]
        assert msgs[0] == {
            "msg": "added",
            "collection": "inbox",
            "id": "hi",
            "fields": {"text": "hi"},
        }
        assert {m["msg"] for m in msgs[1:]} == {"result", "updated"}


async def test_write_fence_holds_updated_until_the_data_is_published() -> None:
    ddp = DDPServer()
    published = asyncio.Event()

    @ddp.publish("inbox")
    def inbox(pub: Publication) -> Any:
        pub.connection.data["inbox"] = pub
        return READY

    @ddp.method("write")
    async def write(ctx: MethodContext, text: str) -> str:
        pub: Publication = ctx.connection.data["inbox"]

        async def observer() -> None:  # an asynchronous observer publishing the write later
            await published.wait()
            pub.added("inbox", text, {})

        ctx.add_write_fence(asyncio.ensure_future(observer()))
        return "written"

    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        await c.sub_ready("inbox")
        await c.send({"msg": "method", "id": "1", "method": "write", "params": ["x"]})
        assert await c.recv() == {"msg": "result", "id": "1", "result": "written"}
        await c.send({"msg": "ping", "id": "p"})
        assert await c.recv() == {"msg": "pong", "id": "p"}  # no updated yet
        published.set()
        assert await c.recv() == {"msg": "added", "collection": "inbox", "id": "x"}
        assert await c.recv() == {"msg": "updated", "methods": ["1"]}


async def test_random_stream_matches_meteor_client_stub_ids() -> None:
    ddp = DDPServer()

    @ddp.method("/tasks/insert")
    def insert(ctx: MethodContext, doc: dict[str, Any]) -> Any:
        stream = ctx.random_stream()
        assert stream is ctx.random_stream()
        return [stream.insert_id("tasks"), stream.insert_id("tasks"), ctx.random_seed]

    @ddp.method("unseeded")
    def unseeded(ctx: MethodContext) -> Any:
        return ctx.random_stream().insert_id("tasks")

    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        _, result, _ = await c.call("/tasks/insert", {"text": "hi"}, seed="0123456789abcdef0123")
        assert result["result"] == [
            "devBuvC559TzDB3E9",
            "MjBCWTC6R4Tr5jJ3h",
            "0123456789abcdef0123",
        ]
        _, result, _ = await c.call("unseeded")
        assert isinstance(result["result"], str) and len(result["result"]) == 17


def login_server() -> DDPServer:
    ddp = DDPServer()
    docs = {
        None: {"public": {"v": 1}, "shared": {"who": "anyone"}},
        "alice": {"shared": {"who": "alice"}, "mine": {"v": 2}, "public": {"v": 1}},
    }

    @ddp.publish("visible")
    def visible(pub: Publication) -> Any:
        for doc_id, fields in docs.get(pub.user_id, {}).items():
            pub.added("d", doc_id, fields)
        return READY

    @ddp.publish("raw", strategy="no_merge")
    def raw(pub: Publication) -> Any:
        pub.added("r", f"for-{pub.user_id}", {})
        return READY

    @ddp.method("login")
    async def login(ctx: MethodContext, user: Any) -> Any:
        await ctx.set_user_id(user)
        return {"id": ctx.user_id}

    @ddp.method("login.unblocked")
    async def login_unblocked(ctx: MethodContext, user: Any) -> None:
        ctx.unblock()
        await ctx.set_user_id(user)

    return ddp


async def test_set_user_id_reruns_subscriptions_and_sends_only_the_difference() -> None:
    async with serve(login_server(), "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        _, d1 = await c.sub_ready("visible", sub_id="v")
        assert sorted(m["id"] for m in d1) == ["public", "shared"]
        _, d2 = await c.sub_ready("raw", sub_id="r")
        assert d2 == [{"msg": "added", "collection": "r", "id": "for-None"}]

        before, result, _ = await c.call("login", "alice")
        assert result["result"] == {"id": "alice"}
        data = [m for m in before if m["msg"] != "ready"]
        ready = [m for m in before if m["msg"] == "ready"]
        assert ready == [{"msg": "ready", "subs": ["v", "r"]}]
        assert before[-1] == ready[0]  # all data, then ready, then the result
        # "public" is unchanged: nothing about it. No second added for "shared".
        assert sorted(
            (m["msg"], m["collection"], m["id"], str(m.get("fields"))) for m in data
        ) == sorted(
            [
                ("changed", "d", "shared", "{'who': 'alice'}"),
                ("added", "d", "mine", "{'v': 2}"),
                ("removed", "r", "for-None", "None"),
                ("added", "r", "for-alice", "None"),
            ]
        )
        removed_raw = data.index({"msg": "removed", "collection": "r", "id": "for-None"})
        assert removed_raw < data.index({"msg": "added", "collection": "r", "id": "for-alice"})

        before, result, _ = await c.call("login", None)  # logout
        data = [m for m in before if m["msg"] != "ready"]
        assert {"msg": "removed", "collection": "d", "id": "mine"} in data
        assert {
            "msg": "changed",
            "collection": "d",
            "id": "shared",
            "fields": {"who": "anyone"},
        } in data


async def test_set_user_id_after_unblock_is_refused() -> None:
    async with serve(login_server(), "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        _, result, _ = await c.call("login.unblocked", "alice")
        assert result["error"] == error_obj(500, "Internal server error")


async def test_method_running_when_the_session_closes_is_cancelled() -> None:
    ddp = DDPServer()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @ddp.method("hang")
    async def hang(ctx: MethodContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with serve(ddp, "127.0.0.1", 0) as running:
        async with RawClient.open(running.url) as c:
            await c.connect()
            await c.send({"msg": "method", "id": "1", "method": "hang", "params": []})
            await started.wait()
        async with asyncio.timeout(5):
            await cancelled.wait()


@pytest.mark.parametrize("params", [[], ["x"]])
async def test_sync_handlers_work(params: list[Any]) -> None:
    ddp = DDPServer()
    ddp.add_method("count", lambda ctx, *a: len(a))
    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        _, result, _ = await c.call("count", *params)
        assert result["result"] == len(params)

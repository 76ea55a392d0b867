"""Our DDPClient against our DDPServer, over real websockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from aioserversync.asyncio.client import DDPClient, Disconnected
from aioserversync.asyncio.server import DDPServer, serve
from aioserversync.exceptions import (
    MeteorError,
    MethodError,
    MethodNotFound,
    NotAuthorized,
    SubscriptionError,
    SubscriptionNotFound,
)
from aioserversync.protocol.events import Added, Changed, Connected, NoSub, Ready, Removed
from tests.asyncio.test_client import Recorder
from tests.conftest import MS
from tests.utils import wait_for_condition

T = 5000 * MS
AT = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def build_server(live: asyncio.Queue[Any]) -> DDPServer:
    ddp = DDPServer(heartbeat_interval=0)

    @ddp.method("add")
    async def add(ctx: Any, a: int, b: int) -> int:
        return a + b

    @ddp.method("echo")
    def echo(ctx: Any, value: Any) -> Any:
        return value

    @ddp.method("denied")
    async def denied(ctx: Any) -> None:
        raise MeteorError(403, "Access denied")

    @ddp.method("custom")
    async def custom(ctx: Any) -> None:
        raise MeteorError("not-allowed", "No", {"why": "because"})

    @ddp.method("crash")
    async def crash(ctx: Any) -> None:
        raise RuntimeError("secret internals")

    @ddp.publish("tasks")
    async def tasks(pub: Any, owner: str) -> None:
        pub.added("tasks", "a", {"owner": owner, "at": AT, "n": 1})
        pub.added("tasks", "b", {"owner": owner})
        pub.ready()
        while True:  # live changes driven by the test
            op = await live.get()
            if op == "change":
                pub.changed("tasks", "a", {"n": 2}, cleared=["at"])
            elif op == "remove":
                pub.removed("tasks", "b")
            elif op == "stop":
                pub.stop()
                return

    @ddp.publish("broken")
    async def broken(pub: Any) -> None:
        raise MeteorError("bad-params", "Bad params")

    return ddp


@pytest.fixture
async def running() -> Any:
    live: asyncio.Queue[Any] = asyncio.Queue()
    async with serve(build_server(live), "127.0.0.1", 0) as srv:
        srv.live = live  # type: ignore[attr-defined]
        yield srv


async def test_subscribe_ready_added_changed_removed_nosub(running: Any) -> None:
    rec = Recorder()
    async with DDPClient(running.url, on_data=rec, heartbeat_interval=0) as client:
        sub = await client.subscribe("tasks", "alice")
        await sub.ready(timeout=T)
        assert rec.calls[0] == [Connected(client.session or "")]
        added = rec.of(Added)
        assert added == [
            Added("tasks", "a", {"owner": "alice", "at": AT, "n": 1}),
            Added("tasks", "b", {"owner": "alice"}),
        ]
        assert rec.of(Ready) == [Ready((sub.id,))]
        running.live.put_nowait("change")
        running.live.put_nowait("remove")
        await wait_for_condition(lambda: rec.of(Removed), timeout=T)
        assert rec.of(Changed) == [Changed("tasks", "a", {"n": 2}, ("at",))]
        assert rec.of(Removed) == [Removed("tasks", "b")]
        running.live.put_nowait("stop")
        await wait_for_condition(lambda: sub.ended, timeout=T)
        with pytest.raises(SubscriptionError):  # stopped by the server, no error attached
            await sub.ready()
        nosub = rec.of(NoSub)[-1]
        assert nosub.id == sub.id and nosub.error is None
        assert rec.of(Removed)[-1] == Removed("tasks", "a")  # its documents go before nosub


async def test_unsubscribe_and_errors(running: Any) -> None:
    async with DDPClient(running.url, heartbeat_interval=0) as client:
        sub = await client.subscribe("tasks", "bob")
        await sub.ready(timeout=T)
        await sub.stop(timeout=T)
        assert sub.ended and sub.error is None
        missing = await client.subscribe("no-such-publication")
        with pytest.raises(SubscriptionNotFound):
            await missing.ready(timeout=T)
        broken = await client.subscribe("broken")
        with pytest.raises(SubscriptionError) as info:
            await broken.ready(timeout=T)
        assert (info.value.error, info.value.reason) == ("bad-params", "Bad params")


async def test_methods_results_and_errors(running: Any) -> None:
    async with DDPClient(running.url, heartbeat_interval=0) as client:
        assert await client.call("add", 2, 3, timeout=T) == 5
        value = {"at": AT, "bytes": b"\x00\x01", "nested": [1, {"$date": "looks special"}]}
        assert await client.call("echo", value, timeout=T) == value
        assert await client.call("echo", None, timeout=T) is None
        with pytest.raises(MethodNotFound):
            await client.call("missing", timeout=T)
        with pytest.raises(NotAuthorized):
            await client.call("denied", timeout=T)
        with pytest.raises(MethodError) as info:
            await client.call("custom", timeout=T)
        assert (info.value.error, info.value.details) == ("not-allowed", {"why": "because"})
        with pytest.raises(MethodError) as info:
            await client.call("crash", timeout=T)
        assert info.value.error == 500 and "secret" not in str(info.value)
        results = await asyncio.gather(*(client.call("add", i, i, timeout=T) for i in range(20)))
        assert results == [2 * i for i in range(20)]


async def test_server_shutdown_is_seen_as_a_disconnect() -> None:
    live: asyncio.Queue[Any] = asyncio.Queue()
    rec = Recorder()
    srv = await serve(build_server(live), "127.0.0.1", 0)
    client = DDPClient(srv.url, on_data=rec, heartbeat_interval=0, backoff=lambda n: 0.01)
    try:
        await client.connect(timeout=T)
        await srv.aclose()
        await wait_for_condition(lambda: rec.of(Disconnected), timeout=T)
        assert not client.connected
    finally:
        await client.close()

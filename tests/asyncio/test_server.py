"""DDPServer on loopback: handshake, routing, bad input, heartbeats, shutdown, hooks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from aioserversync.asyncio.server import DDPServer, Publication, RunningServer, Session, serve
from aioserversync.exceptions import ConfigurationError, InvalidState
from tests.asyncio.test_server_support import TIMEOUT, RawClient
from tests.conftest import MS
from tests.utils import wait_for_condition


async def http_get(running: RunningServer, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    async with asyncio.timeout(TIMEOUT):
        data = await reader.read(65536)
        while b"\r\n\r\n" not in data:
            more = await reader.read(65536)
            if not more:
                break
            data += more
    writer.close()
    await writer.wait_closed()
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


async def test_port_zero_reports_the_chosen_port_and_url() -> None:
    ddp = DDPServer()
    async with serve(ddp, "127.0.0.1", 0) as running:
        assert running.port > 0
        assert running.url == f"ws://127.0.0.1:{running.port}/websocket"
        async with RawClient.open(running.url) as c:
            session = await c.connect()
            assert len(session) == 17
            assert await wait_for_condition(lambda: session in ddp.sessions)
            assert ddp.sessions[session].version == "1"


async def test_await_serve_and_close() -> None:
    running = await serve(DDPServer(), "127.0.0.1", 0)
    async with RawClient.open(running.url) as c:
        await c.connect()
        await running.aclose()
        with pytest.raises(ConnectionClosed):
            await c.recv()
    assert c.ws.close_code == 1001


@pytest.mark.parametrize(
    "path", ["/websocket", "/websocket/", "/sockjs/websocket", "/websocket?x=1"]
)
async def test_ddp_is_served_on_meteor_paths(path: str) -> None:
    async with (
        serve(DDPServer(), "127.0.0.1", 0) as running,
        RawClient.open(f"ws://127.0.0.1:{running.port}{path}") as c,
    ):
        assert len(await c.connect()) == 17


async def test_http_routes() -> None:
    async with serve(DDPServer(), "127.0.0.1", 0) as running:
        assert await http_get(running, "/healthz") == (200, b"ok\n")
        status, _ = await http_get(running, "/nope")
        assert status == 404
        status, _ = await http_get(running, "/sockjs/info")
        assert status == 404


async def test_websocket_on_other_path_is_refused() -> None:
    from websockets.exceptions import InvalidStatus

    async with serve(DDPServer(), "127.0.0.1", 0) as running:
        with pytest.raises(InvalidStatus) as info:
            async with RawClient.open(f"ws://127.0.0.1:{running.port}/other"):
                pass
        assert info.value.response.status_code == 404


async def test_version_mismatch_sends_failed_and_closes() -> None:
    async with serve(DDPServer(), "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.send({"msg": "connect", "version": "pre2", "support": ["1", "pre2"]})
        assert await c.recv() == {"msg": "failed", "version": "1"}
        async with asyncio.timeout(TIMEOUT):
            await c.ws.wait_closed()


async def test_server_id_welcome_frame() -> None:
    async with serve(DDPServer(server_id=True), "127.0.0.1", 0) as running:
        async with RawClient.open(running.url) as c:
            assert await c.recv() == {"server_id": "0"}
            await c.connect()
        async with serve(DDPServer(), "127.0.0.1", 0) as plain, RawClient.open(plain.url) as c2:
            await c2.send({"msg": "connect", "version": "1", "support": ["1"]})
            assert (await c2.recv())["msg"] == "connected"


async def test_bad_json_is_answered_and_the_connection_stays_open() -> None:
    ddp = DDPServer()
    ddp.add_method("echo", lambda ctx, x: x)
    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.send(b"{nope")  # JSON is parsed before the connect check, as in Meteor
        assert await c.recv() == {"msg": "error", "reason": "Bad request"}
        await c.connect()
        await c.send(b"{nope")
        assert await c.recv() == {"msg": "error", "reason": "Bad request"}
        await c.send({"msg": "sub", "id": 5})
        assert await c.recv() == {
            "msg": "error",
            "reason": "Malformed subscription",
            "offendingMessage": {"msg": "sub", "id": 5},
        }
        await c.send(
            {"msg": "method", "id": "1", "method": "echo", "params": [{"$type": "q", "$value": 1}]}
        )
        assert await c.recv() == {"msg": "error", "reason": "Parse error"}
        _, result, _ = await c.call("echo", {"ok": True})
        assert result == {"msg": "result", "id": result["id"], "result": {"ok": True}}


async def test_messages_before_connect() -> None:
    async with serve(DDPServer(), "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.send({"msg": "sub", "id": "a", "name": "x"})
        assert await c.recv() == {
            "msg": "error",
            "reason": "Must connect first",
            "offendingMessage": {"msg": "sub", "id": "a", "name": "x"},
        }
        await c.connect()
        await c.send({"msg": "connect", "version": "1", "support": ["1"]})
        assert (await c.recv())["reason"] == "Already connected"


async def test_oversize_frame_closes_with_1009_and_server_keeps_serving() -> None:
    ddp = DDPServer(max_size=1024)
    ddp.add_method("echo", lambda ctx, x: x)
    async with serve(ddp, "127.0.0.1", 0) as running:
        async with RawClient.open(running.url) as c:
            await c.connect()
            await c.send({"msg": "method", "id": "1", "method": "echo", "params": ["x" * 2000]})
            with pytest.raises(ConnectionClosed):
                await c.recv()
            assert c.ws.close_code == 1009
        async with RawClient.open(running.url) as c2:
            await c2.connect()
            _, result, _ = await c2.call("echo", "small")
            assert result["result"] == "small"


async def test_server_pings_an_idle_client_and_a_live_client_stays() -> None:
    ddp = DDPServer(heartbeat_interval=50 * MS, heartbeat_timeout=2000 * MS)
    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        session = await c.connect()
        for _ in range(3):
            assert await c.recv() == {"msg": "ping"}
            await c.send({"msg": "pong"})
        assert session in ddp.sessions
        # Any message counts as life, not only pong.
        assert await c.recv() == {"msg": "ping"}
        _, result, _ = await c.call("__unknown__")
        assert result["error"]["error"] == 404
        assert session in ddp.sessions


async def test_silent_client_is_closed_and_its_subscriptions_stop() -> None:
    ddp = DDPServer(heartbeat_interval=50 * MS, heartbeat_timeout=50 * MS)
    stopped = asyncio.Event()
    gone: list[Session] = []

    @ddp.publish("live")
    async def live(pub: Publication) -> None:
        pub.on_stop(stopped.set)
        pub.ready()

    ddp.on_disconnect(gone.append)
    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        session = await c.connect()
        await c.sub_ready("live")
        with pytest.raises(ConnectionClosed):
            while True:
                assert await c.recv() == {"msg": "ping"}  # never answered
        assert c.ws.close_code == 1001
        async with asyncio.timeout(TIMEOUT):
            await stopped.wait()
        await wait_for_condition(lambda: gone, message="on_disconnect")
        assert gone[0].id == session and session not in ddp.sessions


async def test_pre1_session_has_no_heartbeat() -> None:
    ddp = DDPServer(heartbeat_interval=20 * MS, heartbeat_timeout=10_000 * MS)
    async with (
        serve(ddp, "127.0.0.1", 0) as running,
        RawClient.open(running.url) as old,
        RawClient.open(running.url) as new,
    ):
        await old.connect("pre1")
        await new.connect("1")
        # The "1" session, connected later, gets pinged: the pre1 one would have been by now.
        assert await new.recv() == {"msg": "ping"}
        assert await old.barrier() == []
        await old.send({"msg": "ping"})
        assert (await old.recv())["reason"] == "Bad request"


async def test_socket_without_connect_is_closed() -> None:
    ddp = DDPServer(connect_timeout=100 * MS)
    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        async with asyncio.timeout(TIMEOUT):
            await c.ws.wait_closed()
        assert c.ws.close_code == 1000
        assert c.ws.close_reason == "DDP connect timeout"


async def test_graceful_shutdown_closes_sessions_and_leaves_no_tasks() -> None:
    ddp = DDPServer()
    stops: list[str] = []
    closes: list[str] = []
    started = asyncio.Event()

    @ddp.publish("forever")
    async def forever(pub: Publication) -> None:
        pub.on_stop(lambda: stops.append(pub.sub_id))
        pub.ready()
        started.set()
        await asyncio.Event().wait()  # a live publication that never returns

    @ddp.method("slow")
    async def slow(ctx: Any) -> None:
        await asyncio.Event().wait()

    async def async_close_hook(session: Session) -> None:
        await asyncio.sleep(0)
        assert session.id is not None
        closes.append(session.id)

    ddp.on_disconnect(async_close_hook)
    clients = []
    async with contextlib.AsyncExitStack() as stack:
        async with serve(ddp, "127.0.0.1", 0) as running:
            for _ in range(3):
                c = await stack.enter_async_context(RawClient.open(running.url))
                clients.append(c)
                await c.connect()
                await c.sub_ready("forever", sub_id="f")
                await c.send({"msg": "method", "id": "9", "method": "slow", "params": []})
            await started.wait()
        for c in clients:
            with pytest.raises(ConnectionClosed):
                await c.recv()
            assert c.ws.close_code == 1001
    assert stops == ["f", "f", "f"]
    assert sorted(closes) == sorted(c.session for c in clients)
    assert ddp.sessions == {}
    leftover = [t for t in asyncio.all_tasks() if (t.get_name() or "").startswith("ddp-")]
    assert leftover == []


async def test_on_connect_hook_and_connection_info() -> None:
    ddp = DDPServer()
    seen: list[Session] = []
    ddp.on_connect(seen.append)

    @ddp.method("whoami")
    def whoami(ctx: Any) -> dict[str, Any]:
        conn = ctx.connection
        conn.data["calls"] = conn.data.get("calls", 0) + 1
        return {
            "id": conn.id,
            "addr": conn.client_address[0],
            "calls": conn.data["calls"],
            "ua": conn.http_headers.get("User-Agent", "")[:10],
        }

    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        session = await c.connect()
        _, r1, _ = await c.call("whoami")
        _, r2, _ = await c.call("whoami")
        assert r1["result"]["id"] == session and r1["result"]["addr"] == "127.0.0.1"
        assert (r1["result"]["calls"], r2["result"]["calls"]) == (1, 2)
        assert r1["result"]["ua"].startswith("Python")
        assert [s.id for s in seen] == [session]


async def test_session_close_from_the_server() -> None:
    ddp = DDPServer()
    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        session = await c.connect()
        ddp.sessions[session].close(4000, "bye")
        with pytest.raises(ConnectionClosed):
            await c.recv()
        assert (c.ws.close_code, c.ws.close_reason) == (4000, "bye")


def test_registry_validation() -> None:
    ddp = DDPServer()
    ddp.add_method("m", lambda ctx: None)
    with pytest.raises(ConfigurationError):
        ddp.add_method("m", lambda ctx: None)
    with pytest.raises(ConfigurationError):
        ddp.add_method("", lambda ctx: None)
    with pytest.raises(ConfigurationError):
        ddp.add_publication("p", lambda pub: None, strategy="fast")  # type: ignore[arg-type]
    ddp.add_publication("p", lambda pub: None)
    with pytest.raises(ConfigurationError):
        ddp.add_publication("p", lambda pub: None)
    with pytest.raises(ConfigurationError):
        DDPServer(compression="brotli")  # type: ignore[arg-type]


async def test_serve_object_starts_once() -> None:
    s = serve(DDPServer(), "127.0.0.1", 0)
    async with s:
        with pytest.raises(InvalidState):
            await s


async def test_internal_errors_are_logged_not_leaked(caplog: pytest.LogCaptureFixture) -> None:
    ddp = DDPServer()

    @ddp.method("boom")
    def boom(ctx: Any) -> None:
        raise RuntimeError("database password is hunter2")

    caplog.set_level(logging.ERROR, logger="aioserversync.server")
    async with serve(ddp, "127.0.0.1", 0) as running, RawClient.open(running.url) as c:
        await c.connect()
        _, result, _ = await c.call("boom")
        assert "hunter2" not in orjson.dumps(result).decode()
        assert result["error"]["error"] == 500
    assert any("hunter2" in (r.exc_text or "") or r.exc_info for r in caplog.records)

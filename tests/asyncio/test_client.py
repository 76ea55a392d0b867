"""DDPClient against a scripted DDP peer: handshake, data, subscriptions, methods, close."""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aioserversync.asyncio.client import (
    ClientState,
    ClientStatus,
    DDPClient,
    Disconnected,
    websocket_url,
)
from aioserversync.exceptions import (
    ConfigurationError,
    ConnectionClosedOK,
    EJSONError,
    InvalidState,
    LocalProtocolError,
    MeteorError,
    MethodError,
    MethodNotFound,
    NotAuthorized,
    NotConnected,
    RemoteProtocolError,
    SubscriptionError,
    SubscriptionNotFound,
    SyncTimeout,
)
from aioserversync.protocol.events import Added, Changed, Connected, NoSub, Ready, Removed
from tests.asyncio.scripted_server import ScriptedConnection, ScriptedServer
from tests.conftest import MS
from tests.utils import wait_for_condition

T = 5000 * MS  # bound for every wait in this module


class Recorder:
    """An on_data callback that records every call (one list per frame)."""

    def __init__(self) -> None:
        self.calls: list[list[Any]] = []

    def __call__(self, events: list[Any]) -> None:
        self.calls.append(list(events))

    @property
    def events(self) -> list[Any]:
        return [e for call in self.calls for e in call]

    def of(self, *types: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, types)]


def make_client(server: ScriptedServer, **kw: Any) -> DDPClient:
    kw.setdefault("heartbeat_interval", 0)
    kw.setdefault("backoff_initial", 0.01)
    kw.setdefault("backoff_max", 0.05)
    return DDPClient(server.url, **kw)


@pytest.fixture
async def server() -> Any:
    async with ScriptedServer() as srv:
        yield srv


# --------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://localhost:3000", "ws://localhost:3000/websocket"),
        ("http://localhost:3000/", "ws://localhost:3000/websocket"),
        ("https://example.com", "wss://example.com/websocket"),
        ("https://example.com/app", "wss://example.com/app/websocket"),
        ("https://example.com/app/?token=x&y=1", "wss://example.com/app/websocket?token=x&y=1"),
        ("HTTP://Example.com:80/a", "ws://Example.com:80/a/websocket"),
        ("ddp+sockjs://example.com/path", "wss://example.com/path/websocket"),
        ("ddpi+sockjs://example.com:3000", "ws://example.com:3000/websocket"),
        ("ws://127.0.0.1:3000/websocket", "ws://127.0.0.1:3000/websocket"),
        ("wss://h/custom/path?q=1", "wss://h/custom/path?q=1"),
        ("ws://h", "ws://h/"),
    ],
)
def test_url_mapping(given: str, expected: str) -> None:
    assert websocket_url(given) == expected


def test_url_star_becomes_a_digit() -> None:
    url = websocket_url("ddp+sockjs://ddp--*-app.example.com/")
    assert url.startswith("wss://ddp--") and url.endswith("-app.example.com/websocket")
    assert url[len("wss://ddp--")].isdigit()


@pytest.mark.parametrize(
    "bad",
    ["ftp://x", "localhost:3000", "", "http://", "ws://", "http://h#frag", "http://h:99999", 5],
)
def test_bad_urls(bad: Any) -> None:
    with pytest.raises(ConfigurationError):
        websocket_url(bad)
    with pytest.raises(ConfigurationError):
        DDPClient(bad)


@pytest.mark.parametrize(
    "options",
    [
        {"version": "2"},
        {"version": "1", "support": ("pre2",)},
        {"compression": "zstd"},
        {"heartbeat_interval": -1},
        {"open_timeout": 0},
        {"backoff_initial": 0},
    ],
)
def test_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        DDPClient("http://localhost:3000", **options)


# --------------------------------------------------------------------------- handshake and state


async def test_connect_handshake_and_state(server: ScriptedServer) -> None:
    client = make_client(server)
    assert client.state is ClientState.DISCONNECTED and not client.connected
    statuses = client.status_changes()
    async with client:
        conn = await server.next_connection()
        assert conn.connect_msg == {
            "msg": "connect",
            "version": "1",
            "support": ["1", "pre2", "pre1"],
        }
        assert client.connected and client.state is ClientState.CONNECTED
        assert client.session == conn.session
        assert client.server_version == "1"
        assert client.stats.connects == 1 and client.stats.reconnects == 0
        assert client.url == server.url
    assert client.state is ClientState.CLOSED and client.session is None
    seen = [s async for s in statuses]
    assert [s.state for s in seen] == [
        ClientState.DISCONNECTED,
        ClientState.CONNECTING,
        ClientState.CONNECTED,
        ClientState.CLOSED,
    ]
    assert seen[2] == ClientStatus(ClientState.CONNECTED, conn.session, None)


async def test_await_form_and_close(server: ScriptedServer) -> None:
    client = await make_client(server)
    assert client.connected
    await client.close()
    await client.close()  # idempotent
    with pytest.raises(InvalidState):
        await client.call("x")
    with pytest.raises(InvalidState):
        await client.subscribe("x")
    with pytest.raises(InvalidState):
        await client.start()
    with pytest.raises(InvalidState):
        client.data_events()


async def test_start_returns_at_once_when_the_server_is_unreachable() -> None:
    async with ScriptedServer() as srv:
        port = srv.port
    client = DDPClient(f"ws://127.0.0.1:{port}/websocket", backoff_initial=0.01, backoff_max=0.02)
    try:
        async with asyncio.timeout(T):
            await client.start()
        assert not client.connected
        await wait_for_condition(lambda: client.stats.attempts >= 3, timeout=T)
        with pytest.raises(SyncTimeout):
            await client.wait_connected(timeout=50 * MS)
        with pytest.raises(NotConnected):
            await client.call("x")
        assert isinstance(client.stats.last_error, OSError)
    finally:
        await client.close()


async def test_wait_connected_before_start() -> None:
    client = DDPClient("http://localhost:1")
    with pytest.raises(InvalidState):
        await client.wait_connected()
    await client.close()


async def test_server_id_frame_is_ignored() -> None:
    async with ScriptedServer(server_id=True) as srv, make_client(srv) as client:
        assert client.connected
        assert client.stats.protocol_errors == 0


async def test_version_negotiation_retries_with_the_suggested_version() -> None:
    async with ScriptedServer(versions=("pre2",)) as srv, make_client(srv) as client:
        assert client.server_version == "pre2"
        first, second = srv.connections[0], srv.connections[1]
        assert first.connect_msg is not None and first.connect_msg["version"] == "1"
        assert second.connect_msg is not None and second.connect_msg["version"] == "pre2"


async def test_version_mismatch_fails_for_good() -> None:
    async with ScriptedServer(versions=("2",)) as srv:
        client = make_client(srv)
        await client.start()
        with pytest.raises(Exception) as info:
            await client.wait_connected(timeout=T)
        assert type(info.value).__name__ == "VersionMismatch"
        assert client.state is ClientState.FAILED
        with pytest.raises(type(info.value)):
            await client.call("x", wait_connected=True)
        await client.close()
        assert client.state is ClientState.CLOSED


# --------------------------------------------------------------------------- subscriptions and data


async def test_subscribe_and_receive_data(server: ScriptedServer) -> None:
    rec = Recorder()
    async with make_client(server, on_data=rec) as client:
        conn = await server.next_connection()
        sub = await client.subscribe(
            "tasks.byList", "list1", {"since": datetime(1970, 1, 1, tzinfo=UTC)}
        )
        msg = await conn.expect("sub")
        assert msg == {
            "msg": "sub",
            "id": sub.id,
            "name": "tasks.byList",
            "params": ["list1", {"since": {"$date": 0}}],
        }
        assert not sub.is_ready
        await conn.send(
            {
                "msg": "added",
                "collection": "tasks",
                "id": "a",
                "fields": {"t": 1, "at": {"$date": 5}},
            }
        )
        await conn.send({"msg": "added", "collection": "tasks", "id": "b"})
        await conn.send(
            {
                "msg": "changed",
                "collection": "tasks",
                "id": "a",
                "fields": {"t": 2},
                "cleared": ["at"],
            }
        )
        await conn.send({"msg": "removed", "collection": "tasks", "id": "b"})
        await conn.send({"msg": "ready", "subs": [sub.id]})
        await sub.ready(timeout=T)
        assert sub.is_ready
        at = datetime(1970, 1, 1, 0, 0, 0, 5000, tzinfo=UTC)
        # on_data saw everything before ready() returned, in wire order; frames received
        # together may share a call, but ready comes in a call of its own after the data
        assert [ev for call in rec.calls for ev in call] == [
            Connected(conn.session or ""),
            Added("tasks", "a", {"t": 1, "at": at}),
            Added("tasks", "b", {}),
            Changed("tasks", "a", {"t": 2}, ("at",)),
            Removed("tasks", "b"),
            Ready((sub.id,)),
        ]
        assert rec.calls[0] == [Connected(conn.session or "")]
        assert rec.calls[-1] == [Ready((sub.id,))]
        assert client.subscriptions == {sub.id: sub}


async def test_raw_data_mode(server: ScriptedServer) -> None:
    rec = Recorder()
    async with make_client(server, on_data=rec, decode_data=False) as client:
        conn = await server.next_connection()
        await conn.send(
            {"msg": "added", "collection": "c", "id": "a", "fields": {"at": {"$date": 5}}}
        )
        await conn.send(
            {"msg": "added", "collection": "c", "id": "bad", "fields": {"b": {"$binary": "!"}}}
        )
        await wait_for_condition(lambda: client.stats.protocol_errors == 1, timeout=T)
        assert rec.of(Added) == [Added("c", "a", {"at": {"$date": 5}})]


async def test_sub_params_are_checked_at_once(server: ScriptedServer) -> None:
    async with make_client(server) as client:
        with pytest.raises(EJSONError):
            await client.subscribe("x", {1, 2})
        sub = await client.subscribe("x", sub_id="fixed")
        assert sub.id == "fixed"
        with pytest.raises(LocalProtocolError):
            await client.subscribe("y", sub_id="fixed")


async def test_nosub_with_error_is_raised_from_ready(server: ScriptedServer) -> None:
    rec = Recorder()
    async with make_client(server, on_data=rec) as client:
        conn = await server.next_connection()
        sub = await client.subscribe("nope")
        msg = await conn.expect("sub")
        error = {
            "isClientSafe": True,
            "error": 404,
            "reason": "Subscription 'nope' not found",
            "errorType": "Meteor.Error",
        }
        await conn.send({"msg": "nosub", "id": msg["id"], "error": error})
        with pytest.raises(SubscriptionNotFound) as info:
            await sub.ready(timeout=T)
        assert info.value.reason == "Subscription 'nope' not found"
        assert sub.ended and sub.error is info.value
        assert rec.of(NoSub)[0].error is info.value
        other = await client.subscribe("limited")
        msg = await conn.expect("sub")
        await conn.send({"msg": "nosub", "id": msg["id"], "error": {"error": "too-many-requests"}})
        with pytest.raises(SubscriptionError) as info2:
            await other.ready(timeout=T)
        assert info2.value.error == "too-many-requests"
        assert client.subscriptions == {}


async def test_server_stopping_a_sub_without_error(server: ScriptedServer) -> None:
    async with make_client(server) as client:
        conn = await server.next_connection()
        sub = await client.subscribe("x")
        msg = await conn.expect("sub")
        await conn.send({"msg": "ready", "subs": [msg["id"]]})
        await sub.ready(timeout=T)
        await conn.send({"msg": "nosub", "id": msg["id"]})
        await wait_for_condition(lambda: sub.ended, timeout=T)
        with pytest.raises(SubscriptionError):
            await sub.ready(timeout=T)
        assert sub.error is None


async def test_stop_sends_unsub_and_waits_for_nosub(server: ScriptedServer) -> None:
    async with make_client(server) as client:
        conn = await server.next_connection()
        sub = await client.subscribe("x")
        await conn.expect("sub")
        stopping = asyncio.create_task(sub.stop(timeout=T))
        unsub = await conn.expect("unsub")
        assert unsub == {"msg": "unsub", "id": sub.id}
        assert not stopping.done()
        await conn.send({"msg": "removed", "collection": "c", "id": "a"})
        await conn.send({"msg": "nosub", "id": sub.id})
        await stopping
        assert sub.ended and client.subscriptions == {}
        await sub.stop()  # idempotent


async def test_subscription_context_manager_and_unsubscribe(server: ScriptedServer) -> None:
    server.auto_unsub = True
    async with make_client(server) as client:
        conn = await server.next_connection()
        async with await client.subscribe("x") as sub:
            await conn.expect("sub")
        assert sub.ended
        await client.subscribe("y", sub_id="s2")
        await client.unsubscribe("s2", timeout=T)
        assert "s2" not in client.subscriptions
        await client.unsubscribe("unknown")  # still sent: the server answers nosub
        await wait_for_condition(
            lambda: conn.received[-1] == {"msg": "unsub", "id": "unknown"}, timeout=T
        )


async def test_stop_timeout(server: ScriptedServer) -> None:
    async with make_client(server) as client:
        sub = await client.subscribe("x")
        with pytest.raises(SyncTimeout):
            await sub.stop(timeout=20 * MS)
        assert sub.ended


async def test_subscribe_before_connecting_is_sent_once_connected(server: ScriptedServer) -> None:
    client = make_client(server)
    sub = await client.subscribe("early", 1)
    async with client:
        conn = await server.next_connection()
        msg = await conn.expect("sub")
        assert (msg["id"], msg["name"], msg["params"]) == (sub.id, "early", [1])
    with pytest.raises(ConnectionClosedOK):
        await sub.ready()


async def test_repeated_ready_is_harmless(server: ScriptedServer) -> None:
    async with make_client(server) as client:
        conn = await server.next_connection()
        a = await client.subscribe("a")
        b = await client.subscribe("b")
        await conn.send({"msg": "ready", "subs": [a.id, b.id, "unknown"]})
        await conn.send({"msg": "ready", "subs": [a.id]})
        await a.ready(timeout=T)
        await b.ready(timeout=T)


async def test_ready_timeout(server: ScriptedServer) -> None:
    async with make_client(server) as client:
        sub = await client.subscribe("slow")
        with pytest.raises(SyncTimeout):
            await sub.ready(timeout=20 * MS)
        assert not sub.ended


async def test_data_events_iterator(server: ScriptedServer) -> None:
    client = make_client(server)
    stream = client.data_events()
    async with client:
        conn = await server.next_connection()
        await conn.send({"msg": "added", "collection": "c", "id": "a"})
        await conn.send({"msg": "ready", "subs": ["s"]})
        got = []
        async with asyncio.timeout(T):
            async for ev in stream:
                got.append(ev)
                if isinstance(ev, Ready):
                    break
    assert got == [Connected(conn.session or ""), Added("c", "a", {}), Ready(("s",))]
    rest = [ev async for ev in stream]  # ends at close, after Disconnected
    assert rest == [Disconnected(None)]


async def test_data_events_overflow_drops_and_warns(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_client(server) as client:
        stream = client.data_events(max_queue=2)
        conn = await server.next_connection()
        for i in range(5):
            await conn.send({"msg": "removed", "collection": "c", "id": str(i)})
        await wait_for_condition(lambda: stream.dropped == 3, timeout=T)
        assert "dropping" in caplog.text
        assert [await anext(stream), await anext(stream)] == [Removed("c", "0"), Removed("c", "1")]
        await stream.aclose()
        assert stream.closed


# ------------------------------------------------------------------- backpressure and consumers


async def test_slow_consumer_slows_the_reader(server: ScriptedServer) -> None:
    gate = asyncio.Event()
    seen: list[Any] = []

    async def on_data(events: list[Any]) -> None:
        seen.extend(events)
        if any(isinstance(e, Added) and e.id == "1" for e in events):
            await gate.wait()

    async with make_client(
        server, on_data=on_data, heartbeat_interval=0.02, heartbeat_timeout=0.02
    ) as client:
        conn = await server.next_connection()
        for i in range(1, 4):
            await conn.send({"msg": "added", "collection": "c", "id": str(i)})
        await wait_for_condition(lambda: "1" in [getattr(e, "id", None) for e in seen], timeout=T)
        blocked = [e.id for e in seen[1:]]
        await conn.send({"msg": "added", "collection": "c", "id": "4"})
        # blocked in on_data: nothing more is delivered, and the heartbeat does not mistake the
        # busy reader for a dead link. Showing an absence takes a window of time: ten heartbeat
        # timeouts, during which the reader must stay blocked and the session up.
        loop = asyncio.get_running_loop()
        until = loop.time() + 10 * 0.02
        await wait_for_condition(lambda: loop.time() >= until, timeout=T)
        assert [e.id for e in seen[1:]] == blocked
        gate.set()
        await wait_for_condition(lambda: len(seen) == 5, timeout=T)
        assert [e.id for e in seen[1:]] == ["1", "2", "3", "4"]
        assert client.stats.connects == 1


async def test_consumer_error_drops_the_link_and_reconnects(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Any] = []

    def on_data(events: list[Any]) -> None:
        calls.append(events[0])
        if isinstance(events[0], Added):
            raise RuntimeError("consumer bug")

    async with make_client(server, on_data=on_data) as client:
        conn = await server.next_connection()
        await conn.send({"msg": "added", "collection": "c", "id": "x"})
        second = await server.next_connection()
        await wait_for_condition(lambda: len(calls) == 4, timeout=T)
        assert client.session == second.session
        assert [type(c) for c in calls] == [Connected, Added, Disconnected, Connected]
        assert "consumer bug" in caplog.text


# --------------------------------------------------------------------------- methods


async def test_call_result_after_updated_and_result(server: ScriptedServer) -> None:
    async with make_client(server) as client:
        conn = await server.next_connection()
        task = asyncio.create_task(
            client.call("tasks.add", "hi", {"at": datetime(1970, 1, 1, tzinfo=UTC)})
        )
        msg = await conn.expect("method")
        assert msg == {
            "msg": "method",
            "id": "1",
            "method": "tasks.add",
            "params": ["hi", {"at": {"$date": 0}}],
        }
        await conn.send({"msg": "result", "id": "1", "result": {"ok": True, "at": {"$date": 1}}})
        await conn.send(
            {"msg": "removed", "collection": "c", "id": "z"}
        )  # proof the reader moved on
        await wait_for_condition(lambda: client.stats.frames_in >= 3, timeout=T)
        assert not task.done()  # needs updated too
        await conn.send({"msg": "updated", "methods": ["1"]})
        assert await asyncio.wait_for(task, T) == {
            "ok": True,
            "at": datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC),
        }


async def test_updated_before_result(server: ScriptedServer) -> None:
    async with make_client(server) as client:
        conn = await server.next_connection()
        task = asyncio.create_task(client.call("m"))
        msg = await conn.expect("method")
        await conn.send({"msg": "updated", "methods": [msg["id"]]})
        await conn.send({"msg": "removed", "collection": "c", "id": "z"})
        await wait_for_condition(lambda: client.stats.frames_in >= 3, timeout=T)
        assert not task.done()
        await conn.send({"msg": "result", "id": msg["id"]})
        assert await asyncio.wait_for(task, T) is None


async def test_method_errors(server: ScriptedServer) -> None:
    def denied(params: list[Any]) -> Any:
        raise MeteorError(403, "Access denied")

    def custom(params: list[Any]) -> Any:
        raise MeteorError("not-authorized", "You must log in", {"when": "1970-01-01T00:00:00.000Z"})

    server.methods.update(denied=denied, custom=custom)
    async with make_client(server) as client:
        conn = await server.next_connection()
        task = asyncio.create_task(client.call("nope"))
        msg = await conn.expect("method")
        e404 = {
            "isClientSafe": True,
            "error": 404,
            "reason": "Method 'nope' not found",
            "errorType": "Meteor.Error",
        }
        await conn.send({"msg": "result", "id": msg["id"], "error": e404})
        await conn.send({"msg": "updated", "methods": [msg["id"]]})
        with pytest.raises(MethodNotFound):
            await asyncio.wait_for(task, T)
        with pytest.raises(NotAuthorized):
            await client.call("denied", timeout=T)
        with pytest.raises(MethodError) as info:
            await client.call("custom", timeout=T)
        assert (info.value.error, info.value.details) == (
            "not-authorized",
            {"when": "1970-01-01T00:00:00.000Z"},
        )


async def test_raw_result_and_random_seed(server: ScriptedServer) -> None:
    server.methods["echo"] = lambda params: params[0]
    async with make_client(server) as client:
        conn = await server.next_connection()
        value = {"at": datetime(1970, 1, 1, tzinfo=UTC)}
        assert await client.call("echo", value, timeout=T) == value
        assert await client.call("echo", value, raw_result=True, timeout=T) == {"at": {"$date": 0}}
        await client.call("echo", 1, random_seed="0123456789abcdef0123", timeout=T)
        assert conn.received[-1]["randomSeed"] == "0123456789abcdef0123"
        ids = [m["id"] for m in conn.received if m.get("msg") == "method"]
        assert ids == ["1", "2", "3"]


async def test_call_needs_a_session_unless_asked_to_wait(server: ScriptedServer) -> None:
    server.methods["m"] = lambda params: 7
    client = make_client(server)
    with pytest.raises(NotConnected):
        await client.call("m")
    await client.start()
    assert await client.call("m", wait_connected=True, timeout=T) == 7
    await client.close()


async def test_call_timeout_forgets_the_call(server: ScriptedServer) -> None:
    async with make_client(server) as client:
        conn = await server.next_connection()
        with pytest.raises(SyncTimeout):
            await client.call("slow", timeout=20 * MS)
        msg = await conn.expect("method")
        await conn.send({"msg": "result", "id": msg["id"], "result": 1})  # late: ignored
        await conn.send({"msg": "updated", "methods": [msg["id"]]})
        server.methods["next"] = lambda params: 2
        assert await client.call("next", timeout=T) == 2
        assert client.stats.protocol_errors == 0


async def test_bad_params_raise_before_sending(server: ScriptedServer) -> None:
    async with make_client(server) as client:
        with pytest.raises(EJSONError):
            await client.call("m", object())
        server.methods["m"] = lambda params: "ok"
        assert await client.call("m", timeout=T) == "ok"
        conn = server.connections[0]
        assert [m["id"] for m in conn.received if m.get("msg") == "method"] == ["1"]


async def test_concurrent_calls_answered_out_of_order(server: ScriptedServer) -> None:
    async with make_client(server) as client:
        conn = await server.next_connection()
        tasks = [asyncio.create_task(client.call("m", i)) for i in range(3)]
        msgs = [await conn.expect("method") for _ in range(3)]
        for msg in reversed(msgs):
            await conn.send({"msg": "result", "id": msg["id"], "result": msg["params"][0] * 10})
        await conn.send({"msg": "updated", "methods": [m["id"] for m in msgs]})
        assert await asyncio.wait_for(asyncio.gather(*tasks), T) == [0, 10, 20]


# -------------------------------------------------------------------- heartbeats and robustness


async def test_server_pings_are_answered(server: ScriptedServer) -> None:
    async with make_client(server) as client:
        conn = await server.next_connection()
        await conn.send({"msg": "ping"})
        assert await conn.expect("pong") == {"msg": "pong"}
        await conn.send({"msg": "ping", "id": "p-42"})
        assert await conn.expect("pong") == {"msg": "pong", "id": "p-42"}
        assert client.connected


async def test_idle_client_pings_and_stays_up_when_answered() -> None:
    srv = await ScriptedServer(answer_pings=False).start()
    hb = {"heartbeat_interval": 0.03, "heartbeat_timeout": 1.0}
    async with srv, make_client(srv, **hb) as client:
        conn = await srv.next_connection()
        ping = await conn.expect("ping")
        assert ping == {"msg": "ping"}
        await conn.send({"msg": "pong"})
        assert (await conn.expect("ping")) == {"msg": "ping"}  # idle again: another ping
        await conn.send({"msg": "added", "collection": "c", "id": "x"})  # any frame is life
        assert client.stats.connects == 1 and client.connected


async def test_malformed_server_frames_are_counted_not_fatal(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    async with make_client(server, on_data=rec) as client:
        conn = await server.next_connection()
        for frame in (
            b"nonsense",
            b"[1]",
            b'{"nomsg":1}',
            b'{"msg":"weird"}',
            b'{"msg":"added","collection":1,"id":"a"}',
        ):
            await conn.send(frame)
        await conn.send({"msg": "error", "reason": "Bad request", "offendingMessage": {"msg": "x"}})
        await conn.send({"msg": "result", "id": "999", "result": 1})
        await conn.send({"msg": "updated", "methods": ["999"]})
        await conn.send({"msg": "removed", "collection": "c", "id": "ok"})
        await wait_for_condition(lambda: rec.of(Removed), timeout=T)
        assert client.stats.protocol_errors == 5
        assert client.stats.server_errors == 1
        assert client.connected and client.stats.connects == 1
        assert "Bad request" in caplog.text


async def test_binary_frames_are_accepted_as_text(server: ScriptedServer) -> None:
    rec = Recorder()
    async with make_client(server, on_data=rec):
        conn = await server.next_connection()
        await conn.ws.send(b'{"msg":"removed","collection":"c","id":"b"}', text=False)
        await wait_for_condition(lambda: rec.of(Removed), timeout=T)


async def test_logging_adapter_names_the_url(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aioserversync")
    async with make_client(server):
        pass
    records = [r for r in caplog.records if r.name == "aioserversync.client"]
    assert records and all(getattr(r, "url", None) == server.url for r in records)


# --------------------------------------------------------------------------- close


async def test_close_fails_waiters_and_leaves_no_tasks(server: ScriptedServer) -> None:
    rec = Recorder()
    before = asyncio.all_tasks()
    client = make_client(server, on_data=rec, heartbeat_interval=0.5, heartbeat_timeout=0.5)
    await client.connect(timeout=T)
    conn: ScriptedConnection = await server.next_connection()
    sub = await client.subscribe("x")
    call = asyncio.create_task(client.call("never"))
    ready = asyncio.create_task(sub.ready())
    stream = client.data_events()
    await conn.expect("method")
    await client.close()
    with pytest.raises(ConnectionClosedOK):
        await asyncio.wait_for(call, T)
    with pytest.raises(ConnectionClosedOK):
        await asyncio.wait_for(ready, T)
    assert [ev async for ev in stream] == [Disconnected(None)]
    assert rec.events[-1] == Disconnected(None)
    await conn.wait_closed()
    assert conn.ws.close_code == 1000
    assert asyncio.all_tasks() - before == set()


# --------------------------------------------------------------------------- TLS


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_tls_with_an_ssl_context(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    args = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert)]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        "openssl", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    assert await asyncio.wait_for(proc.wait(), 60) == 0
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    srv = await ScriptedServer(ssl=server_ctx).start()
    try:
        assert srv.url.startswith("wss://")
        async with make_client(srv, ssl=client_ctx) as client:
            assert client.connected
        untrusting = make_client(srv, ssl=ssl.create_default_context(), backoff_max=0.01)
        await untrusting.start()
        await wait_for_condition(lambda: untrusting.stats.attempts >= 2, timeout=T)
        assert isinstance(untrusting.stats.last_error, ssl.SSLError)
        assert not untrusting.connected
        await untrusting.close()
    finally:
        await srv.close()


async def test_concurrent_closes(server: ScriptedServer) -> None:
    client = await make_client(server)
    await asyncio.wait_for(asyncio.gather(client.close(), client.close(), client.close()), T)
    assert client.state is ClientState.CLOSED


async def test_a_malformed_result_fails_the_call(server: ScriptedServer) -> None:
    async with make_client(server) as client:
        conn = await server.next_connection()
        task = asyncio.create_task(client.call("m"))
        msg = await conn.expect("method")
        await conn.send({"msg": "result", "id": msg["id"], "result": {"$binary": "%%"}})
        await conn.send({"msg": "updated", "methods": [msg["id"]]})
        with pytest.raises(RemoteProtocolError):
            await asyncio.wait_for(task, T)
        assert client.stats.protocol_errors == 1 and client.connected

"""DDPClient across link failures: resubscribe, re-login, call retry, backoff, heartbeats.

Faults come from the scripted peer (closing, refusing to answer) and from the TCP fault proxy
(cut, blackhole, refuse). Backoff is checked on the delays the client chose (an injected
``backoff`` makes them exact), never by sleeping.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aioserversync.asyncio.client import ClientState, DDPClient, Disconnected
from aioserversync.exceptions import (
    ConnectionClosedError,
    MeteorError,
    NotAuthorized,
    WriteOutcomeUnknown,
)
from aioserversync.protocol.events import Added, Connected, NoSub, Ready
from tests.asyncio.scripted_server import ScriptedConnection, ScriptedServer
from tests.asyncio.test_client import Recorder, make_client
from tests.conftest import MS
from tests.proxy import FaultProxy
from tests.utils import wait_for_condition

T = 5000 * MS
LOGIN_RESULT = {"id": "user1", "token": "T1", "tokenExpires": {"$date": 0}, "type": "password"}


def publish_items(conn: ScriptedConnection, msg: dict[str, Any]) -> Any:
    async def run() -> None:
        await conn.send({"msg": "added", "collection": "items", "id": "a", "fields": {"n": 1}})
        await conn.send({"msg": "ready", "subs": [msg["id"]]})

    return run()


@pytest.fixture
async def server() -> Any:
    async with ScriptedServer(publications={"items": publish_items}) as srv:
        yield srv


# --------------------------------------------------------------------------- resubscribe


async def test_reconnect_resubscribes_with_the_same_ids(server: ScriptedServer) -> None:
    rec = Recorder()
    async with make_client(server, on_data=rec) as client:
        first = await server.next_connection()
        sub = await client.subscribe("items", {"limit": 5})
        await sub.ready(timeout=T)
        first.abort()
        second = await server.next_connection()
        await sub.ready(timeout=T)  # the new session's ready
        await wait_for_condition(lambda: len(rec.of(Ready)) == 2, timeout=T)
        subs = [m for m in second.received if m.get("msg") == "sub"]
        assert subs == [{"msg": "sub", "id": sub.id, "name": "items", "params": [{"limit": 5}]}]
        assert second.connect_msg is not None and second.connect_msg["session"] == first.session
        assert client.session == second.session
        assert client.stats.connects == 2 and client.stats.reconnects == 1
        kinds = [type(e).__name__ for e in rec.events]
        assert kinds == [
            "Connected",
            "Added",
            "Ready",
            "Disconnected",
            "Connected",
            "Added",
            "Ready",
        ]
        lost = rec.of(Disconnected)[0]
        assert isinstance(lost.error, ConnectionClosedError)


async def test_sub_is_not_ready_between_sessions(server: ScriptedServer) -> None:
    server.publications.clear()
    async with make_client(server) as client:
        first = await server.next_connection()
        sub = await client.subscribe("manual")
        msg = await first.expect("sub")
        await first.send({"msg": "ready", "subs": [msg["id"]]})
        await sub.ready(timeout=T)
        await first.close()
        second = await server.next_connection()
        assert (await second.expect("sub"))["id"] == sub.id
        assert not sub.is_ready
        waiter = asyncio.create_task(sub.ready(timeout=T))
        await second.send({"msg": "ready", "subs": [sub.id]})
        await waiter


async def test_stopped_subscriptions_are_not_resent(server: ScriptedServer) -> None:
    async with make_client(server) as client:
        first = await server.next_connection()
        keep = await client.subscribe("items", 1)
        gone = await client.subscribe("items", 2)
        await keep.ready(timeout=T)
        stopping = asyncio.create_task(gone.stop())
        await first.expect("unsub")
        first.abort()  # the link drops before nosub: the stop still completes
        await asyncio.wait_for(stopping, T)
        second = await server.next_connection()
        await keep.ready(timeout=T)
        assert [m["id"] for m in second.received if m.get("msg") == "sub"] == [keep.id]


# --------------------------------------------------------------------------- login


async def test_relogin_with_the_resume_token_before_resubscribing(server: ScriptedServer) -> None:
    server.methods["login"] = lambda params: LOGIN_RESULT
    async with make_client(server) as client:
        first = await server.next_connection()
        result = await client.login_with_password("alice", "password", timeout=T)
        assert result["token"] == "T1" and client.user_id == "user1"
        login = next(m for m in first.received if m.get("method") == "login")
        assert login["params"] == [
            {
                "user": {"username": "alice"},
                "password": {
                    "digest": "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
                    "algorithm": "sha-256",
                },
            }
        ]
        sub = await client.subscribe("items")
        await sub.ready(timeout=T)
        del server.methods["login"]  # answer the resume by hand
        first.abort()
        second = await server.next_connection()
        resume = await second.expect("method")
        assert resume["method"] == "login" and resume["params"] == [{"resume": "T1"}]
        assert not client.connected
        assert [m.get("msg") for m in second.received] == ["connect", "method"]  # no sub yet
        await second.send({"msg": "updated", "methods": [resume["id"]]})
        await second.send(
            {"msg": "result", "id": resume["id"], "result": {**LOGIN_RESULT, "type": "resume"}}
        )
        await sub.ready(timeout=T)
        assert [m.get("msg") for m in second.received] == ["connect", "method", "sub"]
        assert client.connected and client.user_id == "user1"


async def test_login_with_email_and_token(server: ScriptedServer) -> None:
    server.methods["login"] = lambda params: LOGIN_RESULT
    async with make_client(server) as client:
        conn = await server.next_connection()
        await client.login_with_password("alice@example.com", "pw", timeout=T)
        await client.login_with_token("T0", timeout=T)
        logins = [m["params"][0] for m in conn.received if m.get("method") == "login"]
        assert logins[0]["user"] == {"email": "alice@example.com"}
        assert logins[1] == {"resume": "T0"}


async def test_refused_resume_drops_the_login_and_its_subscriptions(server: ScriptedServer) -> None:
    server.methods["login"] = lambda params: LOGIN_RESULT
    server.methods["echo"] = lambda params: params
    rec = Recorder()
    client = make_client(server, on_data=rec)
    statuses = client.status_changes()
    async with client:
        first = await server.next_connection()
        await client.login_with_token("T1", timeout=T)
        sub = await client.subscribe("items")
        await sub.ready(timeout=T)

        def refuse(params: list[Any]) -> Any:
            raise MeteorError(403, "You've been logged out by the server. Please log in again.")

        server.methods["login"] = refuse
        first.abort()
        second = await server.next_connection()
        with pytest.raises(NotAuthorized):
            await sub.ready(timeout=T)
        await client.wait_connected(timeout=T)
        assert await client.call("echo", 1, timeout=T) == [1]  # the link is fine, as nobody
        assert [m.get("msg") for m in second.received] == ["connect", "method", "method"]
        assert client.user_id is None
        assert isinstance(client.stats.login_error, NotAuthorized)
        nosub = rec.of(NoSub)[-1]
        assert nosub.id == sub.id and isinstance(nosub.error, NotAuthorized)
        assert client.subscriptions == {}
    errors = [s.error for s in [s async for s in statuses] if isinstance(s.error, NotAuthorized)]
    assert errors, "the refused login shows in the status stream"


@pytest.mark.parametrize("password_ok", [True, False])
async def test_a_refused_resume_logs_in_again_with_a_kept_password(
    server: ScriptedServer, password_ok: bool
) -> None:
    tokens = iter(["T1", "T2"])
    expired: set[str] = set()

    def login(params: list[Any]) -> Any:
        (p,) = params
        if "resume" in p:
            if p["resume"] in expired:
                raise MeteorError(403, "You've been logged out by the server. Please log in again.")
            return {**LOGIN_RESULT, "token": p["resume"], "type": "resume"}
        if not password_ok and "T1" in expired:
            raise MeteorError(403, "Incorrect password")
        return {**LOGIN_RESULT, "token": next(tokens)}

    server.methods["login"] = login
    async with make_client(server) as client:
        first = await server.next_connection()
        await client.login_with_password("alice", "pw", keep=True, timeout=T)
        sub = await client.subscribe("items")
        await sub.ready(timeout=T)
        expired.add("T1")
        first.abort()
        second = await server.next_connection()
        await client.wait_connected(timeout=T)
        logins = [m["params"][0] for m in second.received if m.get("method") == "login"]
        assert logins[0] == {"resume": "T1"} and "password" in logins[1] and len(logins) == 2
        if password_ok:
            await sub.ready(timeout=T)  # resubscribed, after the new login
            kinds = [m.get("msg") for m in second.received]
            assert kinds[:4] == ["connect", "method", "method", "sub"]
            assert client.user_id == "user1" and client.subscriptions
            second.abort()  # the next session resumes the new token
            third = await server.next_connection()
            await sub.ready(timeout=T)
            assert [m["params"][0] for m in third.received if m.get("method") == "login"] == [
                {"resume": "T2"}
            ]
        else:
            with pytest.raises(NotAuthorized):
                await sub.ready(timeout=T)
            assert client.user_id is None and client.subscriptions == {}
            assert isinstance(client.stats.login_error, NotAuthorized)


async def test_logout_forgets_the_token(server: ScriptedServer) -> None:
    server.methods.update(login=lambda params: LOGIN_RESULT, logout=lambda params: None)
    async with make_client(server) as client:
        first = await server.next_connection()
        await client.login_with_token("T1", timeout=T)
        await client.logout(timeout=T)
        assert client.user_id is None
        first.abort()
        second = await server.next_connection()
        await client.wait_connected(timeout=T)
        assert [m.get("msg") for m in second.received] == ["connect"]


# --------------------------------------------------------------------------- calls across a drop


async def test_outstanding_calls_on_reconnect(server: ScriptedServer) -> None:
    async with make_client(server) as client:
        first = await server.next_connection()
        retried = asyncio.create_task(
            client.call("a", 1, retry=True, random_seed="0123456789abcdef0123")
        )
        unknown = asyncio.create_task(client.call("b", 2))
        had_result = asyncio.create_task(client.call("c", 3))
        had_result_retry = asyncio.create_task(client.call("d", 4, retry=True))
        sent = {m["method"]: m for m in [await first.expect("method") for _ in range(4)]}
        await first.send({"msg": "result", "id": sent["c"]["id"], "result": "c-done"})
        await first.send({"msg": "result", "id": sent["d"]["id"], "result": "d-done"})
        await first.send(
            {"msg": "updated", "methods": [sent["a"]["id"]]}
        )  # updated alone is not enough
        await wait_for_condition(lambda: client.stats.frames_in >= 4, timeout=T)
        first.abort()
        with pytest.raises(WriteOutcomeUnknown):
            await asyncio.wait_for(unknown, T)
        assert await asyncio.wait_for(had_result, T) == "c-done"
        assert await asyncio.wait_for(had_result_retry, T) == "d-done"
        second = await server.next_connection()
        again = await second.expect("method")
        assert again == sent["a"]  # verbatim: same id, params and randomSeed
        assert not retried.done()
        await second.send({"msg": "result", "id": again["id"], "result": "a-done"})
        await second.send({"msg": "updated", "methods": [again["id"]]})
        assert await asyncio.wait_for(retried, T) == "a-done"
        assert [m["method"] for m in second.received if m.get("msg") == "method"] == ["a"]


async def test_method_ids_are_not_reused_across_sessions(server: ScriptedServer) -> None:
    server.methods["m"] = lambda params: None
    async with make_client(server) as client:
        first = await server.next_connection()
        await client.call("m", timeout=T)
        first.abort()
        second = await server.next_connection()
        await client.wait_connected(timeout=T)
        await client.call("m", timeout=T)
        assert [m["id"] for m in second.received if m.get("msg") == "method"] == ["2"]


async def test_call_waiting_for_a_session_survives_reconnects(server: ScriptedServer) -> None:
    server.methods["late"] = lambda params: "ok"
    proxy = await FaultProxy(server.port).start()
    client = DDPClient(proxy.url(), heartbeat_interval=0, backoff=lambda n: 0.002)
    async with proxy, client:
        proxy.refuse()
        proxy.cut()
        await wait_for_condition(lambda: proxy.refused >= 2, timeout=T)
        call = asyncio.create_task(client.call("late", wait_connected=True, timeout=T))
        await wait_for_condition(lambda: proxy.refused >= 4, timeout=T)
        assert not call.done() and not client.connected
        proxy.restore()
        assert await call == "ok"


# --------------------------------------------------------------------------- backoff


async def test_backoff_grows_while_the_server_refuses(server: ScriptedServer) -> None:
    async with FaultProxy(server.port) as proxy:
        proxy.refuse()
        client = DDPClient(proxy.url(), heartbeat_interval=0, backoff=lambda n: 0.002 * n)
        statuses = client.status_changes()
        await client.start()
        await wait_for_condition(lambda: proxy.refused >= 5, timeout=T)
        delays = list(client.stats.backoff_delays)[:4]
        assert delays == [0.002, 0.004, 0.006, 0.008]
        proxy.restore()
        await client.wait_connected(timeout=T)
        await client.close()
    states = [s.state async for s in statuses]
    assert ClientState.RECONNECTING in states and states[-2:] == [
        ClientState.CONNECTED,
        ClientState.CLOSED,
    ]


async def test_default_backoff_is_full_jitter_within_bounds() -> None:
    async with ScriptedServer() as srv:
        port = srv.port  # nothing listens there any more
    client = DDPClient(f"ws://127.0.0.1:{port}/websocket", backoff_initial=0.002, backoff_max=0.016)
    await client.start()
    await wait_for_condition(lambda: len(client.stats.backoff_delays) >= 12, timeout=T)
    await client.close()
    delays = list(client.stats.backoff_delays)[:12]
    for attempt, delay in enumerate(delays, start=1):
        assert 0 <= delay <= min(0.016, 0.002 * 2 ** (attempt - 1)) + 1e-9
    assert len(set(delays)) > 1  # random, not a fixed schedule


async def test_a_server_that_accepts_then_closes_does_not_cause_a_storm() -> None:
    async with ScriptedServer(handshake="close") as srv:
        client = DDPClient(
            srv.url, heartbeat_interval=0, backoff=lambda n: 0.001 * 2**n, stable_after=5.0
        )
        await client.start()
        await wait_for_condition(lambda: len(client.stats.backoff_delays) >= 5, timeout=T)
        await client.close()
    # every attempt reached "connected", yet the delays keep doubling: no reset per handshake
    assert list(client.stats.backoff_delays)[:5] == [0.002, 0.004, 0.008, 0.016, 0.032]
    assert client.stats.connects >= 5
    assert len(srv.connections) <= len(client.stats.backoff_delays) + 1


async def test_a_stable_session_resets_the_backoff(server: ScriptedServer) -> None:
    async with FaultProxy(server.port) as proxy:
        client = DDPClient(
            proxy.url(), heartbeat_interval=0, backoff=lambda n: 0.002 * n, stable_after=0.05
        )
        proxy.refuse()
        await client.start()
        await wait_for_condition(lambda: len(client.stats.backoff_delays) >= 3, timeout=T)
        proxy.restore()
        await client.wait_connected(timeout=T)
        loop = asyncio.get_running_loop()
        up_since = loop.time()
        await wait_for_condition(lambda: loop.time() - up_since > 0.1, timeout=T)  # stays up
        before = len(client.stats.backoff_delays)
        proxy.refuse()
        proxy.cut()
        await wait_for_condition(lambda: len(client.stats.backoff_delays) >= before + 3, timeout=T)
        await client.close()
    delays = list(client.stats.backoff_delays)
    assert delays[before : before + 3] == [0.002, 0.004, 0.006]  # back to the first step


# --------------------------------------------------------------------------- heartbeats


async def test_a_server_that_stops_answering_is_dropped_and_reconnected() -> None:
    async with ScriptedServer(answer_pings=False) as srv:
        rec = Recorder()
        client = make_client(
            srv,
            heartbeat_interval=0.03,
            heartbeat_timeout=0.03,
            backoff=lambda n: 0.001,
            on_data=rec,
        )
        async with client:
            first = await srv.next_connection()
            await first.expect("ping")
            await first.wait_closed()  # the client gave up on the silent link
            await srv.next_connection()
            await wait_for_condition(lambda: client.stats.connects == 2, timeout=T)
            lost = rec.of(Disconnected)[0]
            assert isinstance(lost.error, TimeoutError) and "heartbeat" in str(lost.error)


async def test_blackholed_link_is_detected_within_the_heartbeat_bound(
    server: ScriptedServer,
) -> None:
    rec = Recorder()
    async with FaultProxy(server.port) as proxy:
        client = DDPClient(
            proxy.url(),
            heartbeat_interval=0.05,
            heartbeat_timeout=0.05,
            open_timeout=0.2,
            backoff=lambda n: 0.01,
            on_data=rec,
        )
        async with client:
            sub = await client.subscribe("items")
            await sub.ready(timeout=T)
            loop = asyncio.get_running_loop()
            proxy.blackhole()
            cut_at = loop.time()
            await wait_for_condition(lambda: rec.of(Disconnected), timeout=T)
            detected = loop.time() - cut_at
            # at most: one idle interval, the ping's timeout, one tick of slack (plus CI jitter)
            assert detected < (0.05 + 0.05 + 0.05) * 5 + 0.5
            assert "heartbeat" in str(rec.of(Disconnected)[0].error)
            proxy.restore()
            await sub.ready(timeout=T)
            assert client.stats.connects == 2
            assert [type(e) for e in rec.events].count(Connected) == 2
            assert len(rec.of(Added)) == 2


async def test_cut_links_reconnect(server: ScriptedServer) -> None:
    proxy = await FaultProxy(server.port).start()
    client = DDPClient(proxy.url(), heartbeat_interval=0, backoff=lambda n: 0.001)
    async with proxy, client:
        sub = await client.subscribe("items")
        await sub.ready(timeout=T)
        for round_ in range(3):
            proxy.cut()
            await wait_for_condition(lambda r=round_: client.stats.connects == r + 2, timeout=T)
            await sub.ready(timeout=T)
        assert proxy.accepted == 4


# --------------------------------------------------------------------------- rarer paths


async def test_a_failing_resume_other_than_403_backs_off_and_retries(
    server: ScriptedServer,
) -> None:
    server.methods["login"] = lambda params: LOGIN_RESULT
    async with make_client(server, backoff=lambda n: 0.001) as client:
        first = await server.next_connection()
        await client.login_with_token("T1", timeout=T)
        sub = await client.subscribe("items")
        await sub.ready(timeout=T)

        def busy(params: list[Any]) -> Any:
            raise MeteorError("too-many-requests", "Slow down")

        server.methods["login"] = busy
        first.abort()
        second = await server.next_connection()
        await second.wait_closed()  # the client gave this session up
        server.methods["login"] = lambda params: LOGIN_RESULT
        await server.next_connection()
        await sub.ready(timeout=T)  # resumed and resubscribed as the same user
        assert client.user_id == "user1" and client.stats.login_error is None
        assert "resuming the login failed" in str(client.stats.last_error)


async def test_a_resume_the_server_never_answers_drops_the_session_after_open_timeout(
    server: ScriptedServer,
) -> None:
    """A session waits for its stored login before anything else; a server that never answers
    it would hold the client in that session for good (heartbeats still answered)."""
    server.methods["login"] = lambda params: LOGIN_RESULT
    async with make_client(server, open_timeout=0.2, stable_after=0) as client:
        first = await server.next_connection()
        await client.login_with_token("T1", timeout=T)
        sub = await client.subscribe("items")
        await sub.ready(timeout=T)
        del server.methods["login"]  # the next resume goes unanswered
        first.abort()
        second = await server.next_connection()
        assert (await second.expect("method"))["method"] == "login"
        await second.wait_closed()  # the client gave this session up
        server.methods["login"] = lambda params: LOGIN_RESULT
        await server.next_connection()
        await sub.ready(timeout=T)  # resumed and resubscribed as the same user
        assert client.user_id == "user1"
        assert "the stored login got no answer within 0.2s" in str(client.stats.last_error)


async def test_retry_calls_fail_with_a_refused_resume(server: ScriptedServer) -> None:
    server.methods["login"] = lambda params: LOGIN_RESULT
    async with make_client(server) as client:
        first = await server.next_connection()
        await client.login_with_token("T1", timeout=T)
        pending = asyncio.create_task(client.call("write", 1, retry=True))
        await first.expect("method")

        def refuse(params: list[Any]) -> Any:
            raise MeteorError(403, "You've been logged out by the server. Please log in again.")

        server.methods["login"] = refuse
        first.abort()
        with pytest.raises(NotAuthorized):
            await asyncio.wait_for(pending, T)  # not re-run as somebody else
        second = await server.next_connection()
        await client.wait_connected(timeout=T)
        assert [m.get("method") for m in second.received if m.get("msg") == "method"] == ["login"]


async def test_an_error_result_without_updated_completes_on_a_drop(server: ScriptedServer) -> None:
    async with make_client(server) as client:
        first = await server.next_connection()
        call = asyncio.create_task(client.call("m"))
        msg = await first.expect("method")
        await first.send(
            {"msg": "result", "id": msg["id"], "error": {"error": 409, "reason": "dup"}}
        )
        await wait_for_condition(lambda: client.stats.frames_in >= 2, timeout=T)
        first.abort()
        with pytest.raises(MeteorError) as info:
            await asyncio.wait_for(call, T)
        assert info.value.error == 409


async def test_on_data_failing_on_connected_backs_off(server: ScriptedServer) -> None:
    failures = 2

    def on_data(events: list[Any]) -> None:
        nonlocal failures
        if isinstance(events[0], Connected) and failures:
            failures -= 1
            raise RuntimeError("not ready yet")

    async with make_client(server, on_data=on_data, backoff=lambda n: 0.001 * n) as client:
        assert client.stats.connects == 3
        assert list(client.stats.backoff_delays) == [0.001, 0.002]

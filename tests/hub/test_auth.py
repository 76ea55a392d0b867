"""Hub authentication and permissions: resume tokens, anonymous access, per-collection rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aioserversync.exceptions import ConfigurationError
from aioserversync.hub import (
    LOGGED_OUT,
    HubConfig,
    ServerSyncServer,
    build_hub,
    check_bind,
    is_loopback,
    load_tokens,
)
from aioserversync.stores import MemoryStore
from tests.hub.conftest import (
    MakeHub,
    call,
    call_error,
    client,
    insert_change,
    sub_error,
)


async def test_resume_login_returns_meteors_result_and_sets_the_user(make_hub: MakeHub) -> None:
    _h, running = await make_hub()
    async with client(running.url, None) as c:
        _other, result, updated = await c.call("login", {"resume": "tok-bob"})
        value = result["result"]
        assert (value["id"], value["token"], value["type"]) == ("bob", "tok-bob", "resume")
        assert set(value["tokenExpires"]) == {"$date"}
        assert updated == {"msg": "updated", "methods": [result["id"]]}
        assert await call(c, "serversync/pull", "items", 0, 1) is not None
        await call(c, "logout")
        assert (await call_error(c, "serversync/pull", "items", 0, 1))["error"] == 403


async def test_wrong_or_missing_token_gets_403(make_hub: MakeHub) -> None:
    h, running = await make_hub()
    async with client(running.url, None) as c:
        for params in ({"resume": "nope"}, {"resume": ""}):
            error = await call_error(c, "login", params)
            assert (error["error"], error["reason"]) == (403, LOGGED_OUT)
        error = await call_error(c, "login", {"user": {"username": "x"}, "password": "p"})
        assert (error["error"], error["reason"]) == (400, "Unrecognized options for login request")
        # Not logged in: every read and write path refuses.
        assert (await call_error(c, "serversync/pull", "items", 0, 10))["error"] == 403
        push = [insert_change("m", "a", {})]
        assert (await call_error(c, "serversync/push", "items", push))["error"] == 403
        assert (await call_error(c, "/items/insert", {"_id": "a"}))["error"] == 403
        assert (await call_error(c, "/items/update", "a", {"$set": {"x": 1}}, {}))["error"] == 403
        assert (await call_error(c, "/items/remove", "a"))["error"] == 403
        assert (await sub_error(c, "items"))["error"] == 403
        assert (await sub_error(c, "serversync/changes", "items", 0))["error"] == 403
    assert h.revision("items") == 0


async def test_async_authenticate_callback(make_hub: MakeHub) -> None:
    async def authenticate(token: str) -> Any:
        return {"ok-1": 1001}.get(token)

    _h, running = await make_hub(tokens=None, authenticate=authenticate)
    async with client(running.url, None) as c:
        assert (await call(c, "login", {"resume": "ok-1"}))["id"] == "1001"
        assert (await call_error(c, "login", {"resume": "bad"}))["error"] == 403


async def test_anonymous_access_when_allowed(make_hub: MakeHub) -> None:
    _h, running = await make_hub(tokens=None, allow_anonymous=True)
    async with client(running.url, None) as c:
        assert await call(c, "/items/insert", {"_id": "a"}) == "a"
        assert (await call(c, "serversync/pull", "items", 0, 10))["docs"] == [["a", 1, {}]]
        _, docs = await c.sub_ready("items")
        assert [m["id"] for m in docs] == ["a"]


async def test_per_collection_read_deny_holds_for_pull_subscribe_and_push(
    make_hub: MakeHub,
) -> None:
    def read(identity: Any, coll: str) -> bool:
        return identity == "bob"

    async def write(identity: Any, coll: str, op: str, doc_id: Any, doc: Any) -> bool:
        return identity == "bob"

    h, running = await make_hub(
        collections=("items", "secret"), rules={"secret": {"read": read, "write": write}}
    )
    await h.insert("secret", {"_id": "s1", "v": 1})
    async with client(running.url, "tok-alice") as alice, client(running.url, "tok-bob") as bob:
        assert (await call_error(alice, "serversync/pull", "secret", 0, 10))["error"] == 403
        assert (await sub_error(alice, "secret"))["error"] == 403
        assert (await sub_error(alice, "serversync/changes", "secret", 0))["error"] == 403
        result = await call(
            alice,
            "serversync/push",
            "secret",
            [{"mid": "m1", "op": "remove", "id": "s1", "base": 1}],
        )
        assert result == [
            {"mid": "m1", "status": "rejected", "error": {"error": 403, "reason": "Access denied"}}
        ]
        assert (await call_error(alice, "/secret/remove", "s1"))["error"] == 403
        # Other collections and other users are unaffected.
        assert (await call(alice, "serversync/pull", "items", 0, 10))["docs"] == []
        assert (await call(bob, "serversync/pull", "secret", 0, 10))["docs"] == [
            ["s1", 1, {"v": 1}]
        ]
    assert h.revision("secret") == 1


async def test_login_reruns_subscriptions_under_the_new_identity(make_hub: MakeHub) -> None:
    h, running = await make_hub(
        allow_anonymous=True, rules={"items": {"read": lambda identity, coll: True}}
    )
    await h.insert("items", {"_id": "a"})
    async with client(running.url, None) as c:
        sid, docs = await c.sub_ready("items")
        assert [m["id"] for m in docs] == ["a"]
        other, _result, _ = await c.call("login", {"resume": "tok-alice"})
        # The re-run sends ``ready`` again for the subscription, before the result.
        assert any(m["msg"] == "ready" and sid in m["subs"] for m in other)


def test_non_loopback_bind_without_auth_refuses_to_start() -> None:
    hub = ServerSyncServer(MemoryStore(), allow_anonymous=True)
    hub.collection("items")
    for host in ("0.0.0.0", "", None, "::", "192.168.1.10", "example.com"):
        with pytest.raises(ConfigurationError, match="without authentication"):
            hub.serve(host, 0)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.5", "[::1]"):
        assert is_loopback(host)
    check_bind("0.0.0.0", authenticated=True, insecure_bind=False)
    check_bind("0.0.0.0", authenticated=False, insecure_bind=True)


async def test_insecure_bind_flag_allows_an_unauthenticated_network_hub() -> None:
    hub = ServerSyncServer(
        MemoryStore(), allow_anonymous=True, insecure_bind=True, heartbeat_interval=0
    )
    hub.collection("items")
    serving = await hub.serve("0.0.0.0", 0)
    try:
        async with client(f"ws://127.0.0.1:{serving.port}/websocket", None) as c:
            assert await call(c, "/items/insert", {"_id": "a"}) == "a"
    finally:
        await hub.close()


def test_tokens_file_formats(tmp_path: Path) -> None:
    lines = tmp_path / "tokens.txt"
    lines.write_text("# edges\n\ntok-1 edge-one\n  tok-2   Edge Two  \n")
    assert load_tokens(lines) == {"tok-1": "edge-one", "tok-2": "Edge Two"}
    as_json = tmp_path / "tokens.json"
    as_json.write_text('{"tok-1": "edge-one", "tok-3": 7}')
    assert load_tokens(as_json) == {"tok-1": "edge-one", "tok-3": "7"}
    for bad in ("tok-only\n", "", "{not json", '{"t": [1]}'):
        path = tmp_path / "bad.txt"
        path.write_text(bad)
        with pytest.raises(ConfigurationError):
            load_tokens(path)
    with pytest.raises(ConfigurationError):
        load_tokens(tmp_path / "missing.txt")


def test_hub_config_is_validated(tmp_path: Path) -> None:
    tokens = tmp_path / "t.txt"
    tokens.write_text("abc alice\n")
    hub = build_hub(
        HubConfig(
            store=str(tmp_path / "h.db"), collections=["a", "b", "a"], tokens_file=str(tokens)
        )
    )
    assert list(hub.collections) == ["a", "b"] and hub.auth.tokens == {"abc": "alice"}
    with pytest.raises(ConfigurationError):
        build_hub(HubConfig(store=str(tmp_path / "h.db")))
    with pytest.raises(ConfigurationError):
        build_hub(HubConfig(collections=["a"], keyfile="k.pem"))
    with pytest.raises(ConfigurationError):
        ServerSyncServer(MemoryStore(), max_pull=0)
    with pytest.raises(ConfigurationError):
        ServerSyncServer(MemoryStore(), tombstone_retention=-1)
    hub = ServerSyncServer(MemoryStore())
    for bad in ("", "a/b", "serversync.x"):
        with pytest.raises(ConfigurationError):
            hub.collection(bad)
    hub.collection("ok")
    with pytest.raises(ConfigurationError):
        hub.collection("ok")

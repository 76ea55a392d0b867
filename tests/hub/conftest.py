"""Fixtures for the hub tests: a ServerSyncServer on a real SQLite file, served on loopback.

Clients are real: :class:`tests.asyncio.test_server_support.RawClient` speaks DDP frame by frame
over websockets, so every assertion is about what the hub puts on the wire.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from aioserversync.hub import HubServing, ServerSyncServer
from aioserversync.stores import SQLiteStore
from tests.asyncio.test_server_support import Msg, RawClient

TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}

MakeHub = Callable[..., Awaitable[tuple[ServerSyncServer, HubServing]]]


@pytest.fixture
async def make_hub(tmp_path: Path) -> AsyncIterator[MakeHub]:
    """``await make_hub(collections=..., rules={name: {"read": f, "write": g}}, **options)``."""
    hubs: list[ServerSyncServer] = []

    async def factory(
        *,
        collections: tuple[str, ...] = ("items",),
        rules: Mapping[str, Mapping[str, Any]] | None = None,
        store: Any = None,
        **options: Any,
    ) -> tuple[ServerSyncServer, HubServing]:
        options.setdefault("tokens", TOKENS)
        options.setdefault("heartbeat_interval", 0)
        options.setdefault("compression", None)
        options.setdefault("purge_interval", 0)
        if store is None:
            store = SQLiteStore(tmp_path / f"hub{len(hubs)}.sqlite3")
        hub = ServerSyncServer(store, **options)
        for name in collections:
            hub.collection(name, **dict((rules or {}).get(name, {})))
        hubs.append(hub)
        running = await hub.serve()
        return hub, running

    yield factory
    for hub in hubs:
        await hub.close()


@pytest.fixture
async def hub(make_hub: MakeHub) -> tuple[ServerSyncServer, HubServing]:
    """A hub serving ``items`` and ``tasks`` with the default (token) authentication."""
    return await make_hub(collections=("items", "tasks"))


@asynccontextmanager
async def client(
    url: str, token: str | None = "tok-alice", **options: Any
) -> AsyncIterator[RawClient]:
    """A connected raw DDP client, logged in with ``token`` unless it is ``None``.

    ``options`` go to ``websockets.asyncio.client.connect``.
    """
    async with RawClient.open(url, **options) as c:
        await c.connect()
        if token is not None:
            _, result, _ = await c.call("login", {"resume": token})
            assert "result" in result, result
        yield c


async def call(c: RawClient, method: str, *params: Any) -> Any:
    """Call a method and return its ``result`` value; fail on an error."""
    _, result, _ = await c.call(method, *params)
    assert "error" not in result, result["error"]
    return result.get("result")


async def call_data(c: RawClient, method: str, *params: Any) -> tuple[Any, list[Msg]]:
    """Call a method; return its ``result`` value and the messages that came before it."""
    other, result, _ = await c.call(method, *params)
    assert "error" not in result, result["error"]
    return result.get("result"), other


async def call_error(c: RawClient, method: str, *params: Any) -> dict[str, Any]:
    """Call a method that must fail; return its error object."""
    _, result, _ = await c.call(method, *params)
    assert "error" in result, result
    error: dict[str, Any] = result["error"]
    return error


async def sub_error(c: RawClient, name: str, *params: Any) -> dict[str, Any]:
    """Subscribe to a publication that must refuse; return the ``nosub`` error object."""
    sid = await c.sub(name, *params)
    msgs = await c.until(lambda m: m["msg"] in ("ready", "nosub") and m.get("id") == sid)
    error: dict[str, Any] = msgs[-1]["error"]
    return error


def feed_entries(msgs: list[Msg], collection: str = "items") -> list[dict[str, Any]]:
    """The ``serversync/changes`` entries among messages, as ``fields`` dicts."""
    name = f"serversync.changes/{collection}"
    out = []
    for m in msgs:
        if m["msg"] == "added" and m["collection"] == name:
            assert m["id"] == str(m["fields"]["r"])
            out.append(m["fields"])
    return out


def insert_change(mid: str, doc_id: str, doc: dict[str, Any]) -> dict[str, Any]:
    """A push change inserting ``doc``."""
    return {"mid": mid, "op": "insert", "id": doc_id, "base": None, "doc": doc}


def update_change(
    mid: str,
    doc_id: str,
    base: int | None,
    set_: dict[str, Any] | None = None,
    unset: list[str] | None = None,
) -> dict[str, Any]:
    """A push change updating top-level fields."""
    ch: dict[str, Any] = {"mid": mid, "op": "update", "id": doc_id, "base": base}
    if set_ is not None:
        ch["set"] = set_
    if unset is not None:
        ch["unset"] = unset
    return ch


def remove_change(mid: str, doc_id: str, base: int | None) -> dict[str, Any]:
    """A push change removing a document."""
    return {"mid": mid, "op": "remove", "id": doc_id, "base": base}

"""A remote's password login, and stopping one collection while the remote stays up."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from aioserversync.asyncio.collection import SyncedCollection
from aioserversync.asyncio.publication import Publication
from aioserversync.exceptions import InvalidState, MeteorError, NotAuthorized
from aioserversync.stores import SQLiteStore
from tests.conftest import MS
from tests.engine.conftest import SEED, edge, go_offline, go_online
from tests.meteor_app import MeteorApp
from tests.proxy import FaultProxy
from tests.utils import wait_for_condition

DIGEST = hashlib.sha256(b"s3cret").hexdigest()


def add_accounts(
    app: MeteorApp, expired: set[str] | None = None, gate: asyncio.Event | None = None
) -> list[dict[str, Any]]:
    """A Meteor-style ``login`` (password digest or resume token) and a publication ``mine``
    that publishes ``items`` to the logged-in user only, as ``this.userId`` checks do (and
    ``vault``, the same documents in a collection ``vault``). Each
    password login issues a new token (T1, T2, …); tokens in ``expired`` are refused. With
    ``gate``, logins wait for it (a slow login).

    Returns the list of login parameters the server received.
    """
    logins: list[dict[str, Any]] = []
    issued: list[str] = []
    expired = set() if expired is None else expired

    async def login(ctx: Any, params: Any = None, *_: Any) -> Any:
        logins.append(params)
        if gate is not None:
            await gate.wait()
        password = {"digest": DIGEST, "algorithm": "sha-256"}
        if params.get("user") == {"username": "alice"} and params.get("password") == password:
            issued.append(f"T{len(issued) + 1}")
            token = issued[-1]
        elif params.get("resume") in issued and params["resume"] not in expired:
            token = params["resume"]
        else:
            raise MeteorError(403, "Incorrect password")
        await ctx.set_user_id("u1")
        return {"id": "u1", "token": token, "tokenExpires": datetime(2030, 1, 1, tzinfo=UTC)}

    def gated(collection: str) -> Any:
        async def publish(pub: Publication, *_: Any) -> None:
            if pub.user_id == "u1":
                for doc in app.docs["items"].values():
                    fields = {k: v for k, v in doc.items() if k != "_id"}
                    pub.added(collection, doc["_id"], fields)
            pub.ready()

        return publish

    app.server.add_method("login", login)
    app.server.add_publication("mine", gated("items"))  # items, under another name
    app.server.add_publication("vault", gated("vault"))  # a collection of its own name
    return logins


async def test_password_login_comes_before_the_subscription_and_is_resumed(
    app: MeteorApp, proxy: FaultProxy, tmp_path: Any
) -> None:
    logins = add_accounts(app)
    remote = await edge(
        proxy.url(), SQLiteStore(tmp_path / "e.db"), user="alice", password="s3cret"
    )
    try:
        items = await remote.sync("items", publication="mine", mode="read")
        await items.wait_ready(timeout=5000 * MS)
        assert await items.count() == len(SEED)  # subscribed as u1, not logged out
        assert remote.status.user_id == "u1" and remote.status.login_error is None
        assert logins[0]["user"] == {"username": "alice"} and "s3cret" not in str(logins[0])
        await go_offline(proxy, remote)
        app.insert("items", {"_id": "later", "n": 9})
        await go_online(proxy, items)
        await wait_for_condition(lambda: len(logins) == 2, message="second login")
        assert logins[1] == {"resume": "T1"}  # the new session resumed with the token
        await wait_for_condition(
            lambda: app.calls["sub:items"] == 0 and remote.status.user_id == "u1",
            message="resumed",
        )
        assert await items.get("later") == {"_id": "later", "n": 9}
    finally:
        await remote.close()


@pytest.mark.parametrize("name", ["mine", "vault"])
async def test_a_collection_synced_while_the_login_runs_subscribes_after_it(
    app: MeteorApp, proxy: FaultProxy, tmp_path: Any, name: str
) -> None:
    """``mine`` names its publication (the stock path at once); ``vault`` is synced by name,
    so the remote is first asked whether it is a hub."""
    gate = asyncio.Event()
    logins = add_accounts(app, gate=gate)
    remote = await edge(
        proxy.url(), SQLiteStore(tmp_path / "e.db"), user="alice", password="s3cret"
    )
    try:
        await wait_for_condition(lambda: logins, message="login sent")
        if name == "mine":
            items = await remote.sync("items", publication="mine", mode="read")
        else:
            items = await remote.sync("vault", mode="read")
        gate.set()
        await items.wait_ready(timeout=5000 * MS)
        assert await items.count() == len(SEED)  # the round ran as alice, not as nobody
    finally:
        gate.set()
        await remote.close()


async def test_an_expired_token_is_replaced_by_logging_in_again_before_subscribing(
    app: MeteorApp, proxy: FaultProxy, tmp_path: Any
) -> None:
    expired: set[str] = set()
    logins = add_accounts(app, expired)
    remote = await edge(
        proxy.url(), SQLiteStore(tmp_path / "e.db"), user="alice", password="s3cret"
    )
    try:
        items = await remote.sync("items", publication="mine", mode="read")
        await items.wait_ready(timeout=5000 * MS)
        await go_offline(proxy, remote)
        expired.add("T1")  # the server revoked the token meanwhile
        app.insert("items", {"_id": "later", "n": 9})
        await go_online(proxy, items)
        await wait_for_condition(lambda: items.stats.resyncs == 2, message="second round")
        assert [("resume" in p, "password" in p) for p in logins] == [
            (False, True),
            (True, False),
            (False, True),
        ]
        assert await items.get("later") == {"_id": "later", "n": 9}
        assert await items.count() == len(SEED) + 1  # the round ran logged in: nothing swept
        assert remote.status.user_id == "u1" and remote.status.login_error is None
    finally:
        await remote.close()


async def test_a_refused_login_is_reported_and_the_session_runs_logged_out(
    app: MeteorApp, proxy: FaultProxy, tmp_path: Any
) -> None:
    add_accounts(app)
    remote = await edge(proxy.url(), SQLiteStore(tmp_path / "e.db"), user="alice", password="bad")
    try:
        items = await remote.sync("items", publication="mine", mode="read")
        await items.wait_ready(timeout=5000 * MS)
        assert await items.count() == 0  # the publication saw no user
        status = remote.status
        assert isinstance(status.login_error, NotAuthorized) and status.user_id is None
        assert "Incorrect password" in str(status.login_error)
    finally:
        await remote.close()


async def test_closing_one_collection_keeps_the_remote_the_cache_and_the_queue(
    app: MeteorApp, proxy: FaultProxy, tmp_path: Any
) -> None:
    app.add_collection("tasks", [{"_id": "t1", "done": False}])
    remote = await edge(proxy.url(), SQLiteStore(tmp_path / "e.db"))
    try:
        items = await remote.sync("items", mode="write")
        tasks = await remote.sync("tasks", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        await tasks.wait_ready(timeout=5000 * MS)
        await go_offline(proxy, remote)
        await items.insert({"_id": "queued", "n": 1})
        await items.close()
        assert remote.status.collections == ("tasks",)
        with pytest.raises(Exception, match="closed"):
            await items.insert({"_id": "refused"})
        await go_online(proxy, tasks)
        # Resubscribed on the new session: tasks only; the closed collection is neither
        # resubscribed nor drained.
        assert app.calls["sub:tasks"] == 2 and app.calls["sub:items"] == 1
        assert app.get("items", "queued") is None
        app.insert("items", {"_id": "unseen"})
        # Synced again, the collection starts from its cache and pushes what it kept.
        again = await remote.sync("items", mode="write")
        assert await again.get("queued") == {"_id": "queued", "n": 1}
        await again.wait_ready(timeout=5000 * MS)
        await again.wait_drained(timeout=5000 * MS)
        assert app.get("items", "queued") == {"_id": "queued", "n": 1}
        assert await again.get("unseen") == {"_id": "unseen"}
    finally:
        await remote.close()


async def test_closing_a_collection_mid_round_lets_the_round_finish_for_the_others(
    app: MeteorApp, proxy: FaultProxy, tmp_path: Any
) -> None:
    """Two collections wait in one resync round; one of them is closed before its publication
    is ready. The round must not wait for it any longer: the other one becomes ready."""
    gate = asyncio.Event()

    async def slow(pub: Publication, *_: Any) -> None:
        pub.added("slow", "s1", {"v": 1})
        await gate.wait()
        pub.ready()

    app.server.add_publication("slow", slow)
    proxy.refuse()
    remote = await edge(proxy.url(), SQLiteStore(tmp_path / "e.db"))
    try:
        items = await remote.sync("items", mode="read")
        slow_coll = await remote.sync("slow", mode="read")
        proxy.restore()  # one session, one round with both collections
        await wait_for_condition(lambda: app.calls["sub:items"] == 1, message="subscribed")
        await slow_coll.close()
        await items.wait_ready(timeout=5000 * MS)
        assert await items.count() == len(SEED)
    finally:
        gate.set()
        await remote.close()


async def test_writes_queued_in_a_writing_mode_stay_queued_when_synced_in_read_mode(
    app, tmp_path, caplog
) -> None:
    """A later run syncing the collection in ``read`` mode never sends them: it says so at
    sync() and from wait_drained() (which would otherwise never return), and keeps them for a
    run in a writing mode, which pushes them."""
    db = str(tmp_path / "edge.db")
    offline = await edge("http://127.0.0.1:9", SQLiteStore(db))
    items = await offline.sync("items", mode="write")
    await items.insert({"_id": "queued", "v": 1})
    await offline.close()

    async with synced_at(app, db, "read") as items:
        assert items.stats.pending == 1 and await items.get("queued") == {"_id": "queued", "v": 1}
        assert any("mode 'read' never sends them" in r.getMessage() for r in caplog.records)
        with pytest.raises(InvalidState, match="never sent in mode 'read'"):
            await items.wait_drained(timeout=5000 * MS)
        assert app.get("items", "queued") is None

    async with synced_at(app, db, "online-write") as items:
        await items.wait_drained(timeout=5000 * MS)
        assert app.get("items", "queued") == {"_id": "queued", "v": 1}


@asynccontextmanager
async def synced_at(app: MeteorApp, db: str, mode: str) -> AsyncIterator[SyncedCollection]:
    remote = await edge(f"http://127.0.0.1:{app.port}", SQLiteStore(db))
    try:
        items = await remote.sync("items", mode=mode)
        await items.wait_ready(timeout=5000 * MS)
        yield items
    finally:
        await remote.close()

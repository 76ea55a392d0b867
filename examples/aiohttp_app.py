"""An aiohttp app that serves a collection synced from a DDP server (a hub or a Meteor app).

Run it with ``python -m aiohttp.web -H 127.0.0.1 -P 8080 examples.aiohttp_app:create_app``.
Configuration comes from the same environment variables as ``examples/fastapi_app.py``:
``AIOSERVERSYNC_URL``, ``AIOSERVERSYNC_STORE`` (default ``sqlite:///aiohttp-cache.db``),
``AIOSERVERSYNC_COLLECTION`` and ``AIOSERVERSYNC_MODE``.

The sync runs inside a ``cleanup_ctx`` generator: set up before the app serves, closed (with every
task it started) when the app shuts down; queued writes stay durable in the cache.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from aioserversync import ServerSync, ServerSyncError, SyncedCollection, ejson

REMOTE = web.AppKey("remote", ServerSync)
ITEMS = web.AppKey("items", SyncedCollection)


async def sync_ctx(app: web.Application) -> AsyncIterator[None]:
    url = os.environ.get("AIOSERVERSYNC_URL", "http://127.0.0.1:3000")
    store = os.environ.get("AIOSERVERSYNC_STORE", "sqlite:///aiohttp-cache.db")
    collection = os.environ.get("AIOSERVERSYNC_COLLECTION", "items")
    mode = os.environ.get("AIOSERVERSYNC_MODE", "online-write")
    async with ServerSync(url, store=store) as remote:
        app[REMOTE] = remote
        app[ITEMS] = await remote.sync(collection, mode=mode)
        yield


async def list_items(request: web.Request) -> web.Response:
    limit = int(request.query.get("limit", "100"))
    docs = await request.app[ITEMS].find({}, sort=[("_id", 1)], limit=limit)
    return web.json_response([ejson.encode(d) for d in docs])


async def get_item(request: web.Request) -> web.Response:
    doc = await request.app[ITEMS].get(request.match_info["item_id"])
    if doc is None:
        raise web.HTTPNotFound(text="no such item")
    return web.json_response(ejson.encode(doc))


async def add_item(request: web.Request) -> web.Response:
    try:
        body: Any = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object")
    try:
        new_id = await request.app[ITEMS].insert(ejson.decode(body))
    except (ServerSyncError, ValueError) as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    return web.json_response({"_id": ejson.encode(new_id)}, status=201)


async def status(request: web.Request) -> web.Response:
    remote, items = request.app[REMOTE], request.app[ITEMS]
    st, stats = remote.status, items.stats
    return web.json_response(
        {
            "connected": st.connected,
            "state": st.state,
            "reconnects": st.reconnects,
            "collection": items.name,
            "mode": items.mode,
            "live": stats.live,
            "documents": await items.count(),
            "pending": stats.pending,
            "failed": stats.failed,
            "conflicts": stats.conflicts,
            "last_sync": stats.last_sync,
        }
    )


def create_app(argv: list[str] | None = None) -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(sync_ctx)
    app.router.add_get("/items", list_items)
    app.router.add_get("/items/{item_id}", get_item)
    app.router.add_post("/items", add_item)
    app.router.add_get("/status", status)
    return app

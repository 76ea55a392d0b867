"""A FastAPI app that serves a collection synced from a DDP server (a hub or a Meteor app).

Run it with any ASGI server, e.g. ``uvicorn examples.fastapi_app:app``. Configuration comes from
the environment:

=============================  ==============================  ==================================
variable                       default                         meaning
=============================  ==============================  ==================================
``AIOSERVERSYNC_URL``          ``http://127.0.0.1:3000``       the remote (hub or Meteor app)
``AIOSERVERSYNC_STORE``        ``sqlite:///fastapi-cache.db``  the local cache
``AIOSERVERSYNC_COLLECTION``   ``items``                       the collection to sync
``AIOSERVERSYNC_MODE``         ``online-write``                ``read``, ``online-write``, ``write``
=============================  ==============================  ==================================

Reads (``GET /items``) come from the local cache, so they work and stay fast while the remote is
unreachable. ``POST /items`` inserts locally and queues the write durably; it reaches the remote
as soon as the link is live. The lifespan closes everything on shutdown: no task is left behind
and queued writes stay in the cache for the next start.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException, Request

from aioserversync import ServerSync, ServerSyncError, SyncedCollection, ejson


def settings() -> dict[str, str]:
    return {
        "url": os.environ.get("AIOSERVERSYNC_URL", "http://127.0.0.1:3000"),
        "store": os.environ.get("AIOSERVERSYNC_STORE", "sqlite:///fastapi-cache.db"),
        "collection": os.environ.get("AIOSERVERSYNC_COLLECTION", "items"),
        "mode": os.environ.get("AIOSERVERSYNC_MODE", "online-write"),
    }


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    conf = settings()
    async with ServerSync(conf["url"], store=conf["store"]) as remote:
        app.state.remote = remote
        app.state.items = await remote.sync(conf["collection"], mode=conf["mode"])
        yield
    # Leaving the block stopped the subscription and the push loop and closed the cache.


def create_app() -> FastAPI:
    app = FastAPI(title="aioserversync example", lifespan=lifespan)

    def items_of(request: Request) -> SyncedCollection:
        items: SyncedCollection = request.app.state.items
        return items

    @app.get("/items")
    async def list_items(request: Request, limit: int = 100) -> list[Any]:
        docs = await items_of(request).find({}, sort=[("_id", 1)], limit=limit)
        return [ejson.encode(d) for d in docs]

    @app.get("/items/{item_id}")
    async def get_item(request: Request, item_id: str) -> Any:
        doc = await items_of(request).get(item_id)
        if doc is None:
            raise HTTPException(404, "no such item")
        return ejson.encode(doc)

    @app.post("/items", status_code=201)
    async def add_item(request: Request, doc: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        try:
            new_id = await items_of(request).insert(ejson.decode(doc))
        except (ServerSyncError, ValueError) as exc:
            raise HTTPException(400, str(exc)) from exc
        return {"_id": ejson.encode(new_id)}

    @app.get("/status")
    async def status(request: Request) -> dict[str, Any]:
        remote: ServerSync = request.app.state.remote
        items = items_of(request)
        st, stats = remote.status, items.stats
        return {
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

    return app


app = create_app()

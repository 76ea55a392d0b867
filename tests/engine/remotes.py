"""One ``items`` collection served by a stock Meteor-like app or by a hub, behind one interface.

The randomized engine tests run the same scenario against both kinds of remote: the stock path
(publication, mutator methods, full resync) and the hub path (pull, change feed, compare-and-set).
"""

from __future__ import annotations

from typing import Any

from aioserversync.hub import ServerSyncServer
from aioserversync.stores import MemoryStore
from tests.meteor_app import MeteorApp

__all__ = ["ItemsRemote", "plain_hub"]


def plain_hub(**options: Any) -> ServerSyncServer:
    """A hub on a MemoryStore serving ``items``, open to anonymous callers, without heartbeats.

    ``options`` go to :class:`ServerSyncServer` (``tombstone_retention=3``, say).
    """
    hub = ServerSyncServer(
        MemoryStore(), allow_anonymous=True, heartbeat_interval=0, compression=None, **options
    )
    hub.collection("items")
    return hub


class ItemsRemote:
    """``items`` on a MeteorApp (``kind="meteor"``) or on a hub (``kind="hub"``).

    Args:
        kind: ``"meteor"`` or ``"hub"``.
        docs: The documents it starts with.
        strategy: The MeteorApp's publication strategy.
    """

    def __init__(self, kind: str, docs: list[dict[str, Any]], *, strategy: str = "merge") -> None:
        self.kind = kind
        self.first = docs
        self.app: MeteorApp | None = None
        self.hub: ServerSyncServer | None = None
        self.port = 0
        if kind == "meteor":
            self.app = MeteorApp(strategy=strategy)
            self.app.add_collection("items", docs)
        else:
            self.hub = plain_hub()

    async def start(self) -> None:
        if self.app is not None:
            await self.app.start()
            self.port = self.app.port
        else:
            assert self.hub is not None
            self.port = (await self.hub.serve()).port
            for doc in self.first:
                await self.hub.insert("items", doc)

    async def stop(self) -> None:
        if self.app is not None:
            await self.app.stop()
        elif self.hub is not None:
            await self.hub.close()

    async def insert(self, doc: dict[str, Any]) -> None:
        if self.app is not None:
            self.app.insert("items", doc)
        else:
            assert self.hub is not None
            await self.hub.insert("items", doc)

    async def update(self, doc_id: str, fields: dict[str, Any]) -> None:
        """``$set`` ``fields`` on a document."""
        if self.app is not None:
            self.app.update("items", doc_id, {"$set": fields})
        else:
            assert self.hub is not None
            await self.hub.update("items", doc_id, {"$set": fields})

    async def remove(self, doc_id: str) -> None:
        if self.app is not None:
            self.app.remove("items", doc_id)
        else:
            assert self.hub is not None
            await self.hub.remove("items", doc_id)

    async def docs(self) -> list[dict[str, Any]]:
        """Every document, by ``_id``."""
        if self.app is not None:
            docs = list(self.app.docs["items"].values())
        else:
            assert self.hub is not None
            docs = await self.hub.store.find("items", {})
        return sorted(docs, key=lambda d: str(d["_id"]))

    def send_noise(self, frames: list[bytes]) -> None:
        """Send ``frames`` on every open session, between the server's own messages."""
        server = self.app.server if self.app is not None else self.hub.ddp  # type: ignore[union-attr]
        for session in list(server.sessions.values()):
            session.publish_frames(frames)

    def inserted_at_most_once(self, doc_id: str) -> bool:
        # A hub refuses a second insert of an id by itself (and its pushes are idempotent).
        return self.app is None or self.app.applied[("items", "insert", doc_id)] <= 1

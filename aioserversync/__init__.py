"""aioserversync: asyncio server-to-server syncing of Meteor DDP collections.

::

    from aioserversync import ServerSync, SQLiteStore

    async with ServerSync("http://hub:3000", store=SQLiteStore("cache.db")) as remote:
        items = await remote.sync("items", mode="write")
        await items.wait_ready()

The names below are the public API. They load on first use, so importing a sans-I/O part (say
``aioserversync.protocol``) never pulls in asyncio, and PyMongo loads only if MongoStore is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .asyncio.client import DDPClient
    from .asyncio.collection import SyncedCollection
    from .asyncio.one_call import sync
    from .asyncio.server import DDPServer, serve
    from .asyncio.state import SyncStats
    from .asyncio.streams import ChangeStream
    from .asyncio.sync import RemoteStatus, ServerSync
    from .exceptions import (
        ConfigurationError,
        DuplicateKeyError,
        InvalidState,
        MeteorError,
        NotConnected,
        OfflineError,
        ServerSyncError,
        SyncTimeout,
        WriteConflict,
        WriteError,
        WriteOutcomeUnknown,
        WriteRejected,
    )
    from .hub import ServerSyncServer
    from .policies import OnlineWritePolicy, ReadPolicy, SyncPolicy, WritePolicy
    from .replication.changes import ChangeEvent
    from .stores import MemoryStore, MongoStore, SQLiteStore, Store, open_store

__all__ = [
    "ChangeEvent",
    "ChangeStream",
    "ConfigurationError",
    "DDPClient",
    "DDPServer",
    "DuplicateKeyError",
    "InvalidState",
    "MemoryStore",
    "MeteorError",
    "MongoStore",
    "NotConnected",
    "OfflineError",
    "OnlineWritePolicy",
    "ReadPolicy",
    "RemoteStatus",
    "SQLiteStore",
    "ServerSync",
    "ServerSyncError",
    "ServerSyncServer",
    "Store",
    "SyncPolicy",
    "SyncStats",
    "SyncTimeout",
    "SyncedCollection",
    "WriteConflict",
    "WriteError",
    "WriteOutcomeUnknown",
    "WritePolicy",
    "WriteRejected",
    "__version__",
    "open_store",
    "serve",
    "sync",
]

_LAZY = {
    "DDPClient": "asyncio.client",
    "SyncedCollection": "asyncio.collection",
    "DDPServer": "asyncio.server",
    "serve": "asyncio.server",
    "SyncStats": "asyncio.state",
    "ChangeStream": "asyncio.streams",
    "RemoteStatus": "asyncio.sync",
    "ServerSync": "asyncio.sync",
    "sync": "asyncio.one_call",
    "ChangeEvent": "replication.changes",
    "OnlineWritePolicy": "policies",
    "ReadPolicy": "policies",
    "SyncPolicy": "policies",
    "WritePolicy": "policies",
    **{
        name: "exceptions"
        for name in (
            "ConfigurationError",
            "DuplicateKeyError",
            "InvalidState",
            "MeteorError",
            "NotConnected",
            "OfflineError",
            "ServerSyncError",
            "SyncTimeout",
            "WriteConflict",
            "WriteError",
            "WriteOutcomeUnknown",
            "WriteRejected",
        )
    },
    "MemoryStore": "stores",
    "MongoStore": "stores",
    "SQLiteStore": "stores",
    "Store": "stores",
    "open_store": "stores",
    "ServerSyncServer": "hub",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

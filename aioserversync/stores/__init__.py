"""Local stores behind the :class:`~aioserversync.stores.base.Store` protocol.

* :class:`SQLiteStore`: the default, one SQLite file (or ``:memory:``).
* :class:`MemoryStore`: plain dicts, for tests and ephemeral use.
* :class:`MongoStore`: a user's MongoDB database or collection through PyMongo's async API.

:func:`open_store` builds one from a URL.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigurationError
from .base import (
    Batch,
    BatchResult,
    ClearBase,
    DeleteDoc,
    DocChange,
    DocMeta,
    EncodedFields,
    MetaSet,
    Op,
    OutboxAppend,
    OutboxDelete,
    OutboxRecord,
    OutboxState,
    OutboxUpdate,
    PatchDoc,
    PurgeTombstones,
    PutDoc,
    PutDocs,
    RevEntry,
    SetBase,
    SetRev,
    SortSpec,
    StageClear,
    StageCommit,
    StageCommitResult,
    StageDelete,
    StageDocs,
    StagePatch,
    StagePut,
    Store,
    Tombstone,
)

if TYPE_CHECKING:
    from .memory import MemoryStore
    from .mongo import MongoStore
    from .sqlite import SQLiteStore

    def _implements_store(a: MemoryStore, b: SQLiteStore, c: MongoStore) -> tuple[Store, ...]:
        return (a, b, c)  # mypy checks that each class matches the Store protocol


__all__ = [
    "Batch",
    "BatchResult",
    "ClearBase",
    "DeleteDoc",
    "DocChange",
    "DocMeta",
    "EncodedFields",
    "MemoryStore",
    "MetaSet",
    "MongoStore",
    "Op",
    "OutboxAppend",
    "OutboxDelete",
    "OutboxRecord",
    "OutboxState",
    "OutboxUpdate",
    "PatchDoc",
    "PurgeTombstones",
    "PutDoc",
    "PutDocs",
    "RevEntry",
    "SQLiteStore",
    "SetBase",
    "SetRev",
    "SortSpec",
    "StageClear",
    "StageCommit",
    "StageCommitResult",
    "StageDelete",
    "StageDocs",
    "StagePatch",
    "StagePut",
    "Store",
    "Tombstone",
    "open_store",
    "store_from",
]


def __getattr__(name: str) -> Any:
    # The backends load on first use: the sans-I/O layers import ``stores.base`` without pulling
    # in asyncio, and MongoStore's PyMongo async client (about 0.2 s) loads only when asked for.
    if name == "MongoStore":
        from .mongo import MongoStore

        return MongoStore
    if name == "SQLiteStore":
        from .sqlite import SQLiteStore

        return SQLiteStore
    if name == "MemoryStore":
        from .memory import MemoryStore

        return MemoryStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(url: str, **options: Any) -> Store:
    """Build the store a URL names (not opened yet: ``await store.open()`` or ``async with``).

    ============================  ===========================================================
    ``sqlite:///relative/path``   :class:`SQLiteStore` on ``relative/path``
    ``sqlite:////absolute/path``  :class:`SQLiteStore` on ``/absolute/path``
    ``sqlite://:memory:``         :class:`SQLiteStore` on a private in-memory database
    ``memory://``                 :class:`MemoryStore`
    ``mongodb://host:port/db``    :class:`MongoStore` with its own client (``mongodb+srv://``
                                  too); the database name is required
    ============================  ===========================================================

    Args:
        url: The store URL.
        **options: Passed to the store's constructor (or ``MongoStore.from_url``).

    Raises:
        ConfigurationError: Unknown scheme or malformed URL.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"store URL must be a string, got {type(url).__name__}")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError(f"store URL {url!r} has no scheme (sqlite://, memory://, …)")
    scheme = scheme.lower()
    from .memory import MemoryStore
    from .sqlite import SQLiteStore

    if scheme == "sqlite":
        if rest in ("", ":memory:", "/:memory:"):
            return SQLiteStore(":memory:", **options)
        if not rest.startswith("/") or rest == "/":
            raise ConfigurationError(
                f"store URL {url!r}: use sqlite:///relative/path or sqlite:////absolute/path"
            )
        path = rest[1:]
        if "?" in path or "#" in path:
            raise ConfigurationError(f"store URL {url!r}: query strings are not supported")
        return SQLiteStore(path, **options)
    if scheme == "memory":
        if rest not in ("", "/"):
            return MemoryStore(name=url, **options)
        return MemoryStore(**options)
    if scheme in ("mongodb", "mongodb+srv"):
        from .mongo import MongoStore

        return MongoStore.from_url(url, **options)
    raise ConfigurationError(f"unknown store URL scheme {scheme!r} in {url!r}")


def store_from(store: Store | str | os.PathLike[str] | None, default_path: str) -> Store:
    """The store a ``store=`` argument names (not opened yet).

    Args:
        store: A store (returned as it is), a store URL (see :func:`open_store`), a file path
            (SQLite), or ``None`` for a SQLite file at ``default_path``.
        default_path: The SQLite file used when ``store`` is ``None``.
    """
    from .sqlite import SQLiteStore

    if store is None:
        return SQLiteStore(default_path)
    if isinstance(store, str) and "://" in store:
        return open_store(store)
    if isinstance(store, str | os.PathLike):
        return SQLiteStore(os.fspath(store))
    return store

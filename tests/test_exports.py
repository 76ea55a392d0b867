"""The curated public API: every name in ``__all__`` resolves, and nothing heavy loads eagerly."""

from __future__ import annotations

import subprocess
import sys

import aioserversync


def test_every_public_name_resolves() -> None:
    for name in aioserversync.__all__:
        assert getattr(aioserversync, name) is not None, name


def test_documented_entry_points() -> None:
    from aioserversync import MemoryStore, MongoStore, ServerSync, SQLiteStore, sync

    assert callable(sync) and callable(ServerSync)
    assert {MemoryStore.__name__, MongoStore.__name__, SQLiteStore.__name__} == {
        "MemoryStore",
        "MongoStore",
        "SQLiteStore",
    }


def test_import_does_not_load_pymongo_async_client() -> None:
    code = "import sys, aioserversync; print('pymongo.asynchronous' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

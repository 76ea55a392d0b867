"""Fixtures for the example apps: a Meteor-like DDP server on loopback and a cache path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.meteor_app import MeteorApp

SEED = [{"_id": f"d{i}", "name": f"item {i}"} for i in range(3)]


@pytest.fixture
async def ddp_server() -> AsyncIterator[MeteorApp]:
    app = MeteorApp()
    app.add_collection("items", SEED)
    await app.start()
    yield app
    await app.stop()


@pytest.fixture
def example_env(ddp_server: MeteorApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the examples' environment variables at the loopback server and a fresh cache."""
    db = tmp_path / "cache.db"
    monkeypatch.setenv("AIOSERVERSYNC_URL", f"http://127.0.0.1:{ddp_server.port}")
    monkeypatch.setenv("AIOSERVERSYNC_STORE", f"sqlite:///{db}")
    monkeypatch.setenv("AIOSERVERSYNC_COLLECTION", "items")
    monkeypatch.setenv("AIOSERVERSYNC_MODE", "online-write")
    return db

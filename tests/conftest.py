"""Project-wide test configuration.

Timing: tests never sleep to synchronise. Bounded waits use ``MS`` multiples, scaled by
``AIOSERVERSYNC_TESTS_TIMEOUT_FACTOR`` for slow machines.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # lets tests import tests.* helpers and benchmarks.*

TIMEOUT_FACTOR = float(os.environ.get("AIOSERVERSYNC_TESTS_TIMEOUT_FACTOR", "1"))
MS = 0.001 * TIMEOUT_FACTOR


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``MONGODB_URI`` when set, else an nx-27017 server started for this test session."""
    from tests.mongo_server import MongoServer, mongo_uri_from_env, start_nx27017

    real = mongo_uri_from_env()
    if real is not None:
        yield real
        return
    server: MongoServer = start_nx27017(Path(tmp_path_factory.mktemp("nx27017")))
    try:
        yield server.uri
    finally:
        server.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``real_mongo`` tests unless ``MONGODB_URI`` points at a real MongoDB."""
    from tests.mongo_server import mongo_uri_from_env

    if mongo_uri_from_env() is not None:
        return
    skip = pytest.mark.skip(reason="needs real MongoDB (set MONGODB_URI)")
    for item in items:
        if "real_mongo" in item.keywords:
            item.add_marker(skip)

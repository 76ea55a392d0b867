from __future__ import annotations

import pytest

from aioserversync.stores import MemoryStore
from tests.stores.contract import MakeStore, StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def make_store(self) -> MakeStore:
        return MemoryStore

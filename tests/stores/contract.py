"""The store contract: one suite every :class:`~aioserversync.stores.base.Store` must pass.

Subclass :class:`StoreContract` as ``Test<Backend>`` and provide a ``make_store`` fixture that
returns a factory of new, unopened stores on the same backing data (a second store made by the
factory sees what the first one wrote, where the backend is durable). The ``store`` fixture
opens one and closes it after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from aioserversync.exceptions import (
    ConfigurationError,
    InvalidState,
    ModifierError,
    QueryError,
    StoreError,
)
from aioserversync.query import apply_update
from aioserversync.stores import (
    MetaSet,
    OutboxAppend,
    OutboxRecord,
    PatchDoc,
    PutDoc,
    StagePut,
    Store,
)
from tests.stores.contract_docs import DocsContract, put
from tests.stores.contract_pages import PagesContract
from tests.stores.contract_sync import SyncContract

__all__ = ["StoreContract"]

MakeStore = Callable[[], Store]


async def snapshot(store: Store) -> dict[str, Any]:
    """Everything observable that a failed batch must leave unchanged."""
    return {
        "docs": await store.find("items", sort=[("_id", 1)]),
        "users": await store.find("users", sort=[("_id", 1)]),
        "outbox": await store.outbox_peek(states=("pending", "in_flight", "unknown", "failed")),
        "meta": await store.get_meta_prefix(""),
        "staged": await store.stage_count("R", "items"),
    }


class StoreContract(DocsContract, SyncContract, PagesContract):
    """Lifecycle, atomicity and bad input, plus the docs, sync and pages contracts."""

    @pytest.fixture
    async def store(self, make_store: MakeStore) -> AsyncIterator[Store]:
        s = make_store()
        await s.open()
        try:
            yield s
        finally:
            await s.close()

    async def _seed(self, store: Store) -> None:
        await store.apply(
            [
                PutDoc("items", "a", {"n": 1}, origin="R"),
                OutboxAppend(OutboxRecord("items", "a", "insert", {"n": 1}, origin="R")),
                MetaSet("ckpt", 1),
            ]
        )

    # ------------------------------------------------------------------ lifecycle

    async def test_open_and_close_are_idempotent(self, make_store: MakeStore) -> None:
        s = make_store()
        assert isinstance(s, Store)
        assert not s.is_open  # type: ignore[attr-defined]
        await s.open()
        await s.open()
        await put(s, "items", "a", n=1)
        assert await s.count("items") == 1
        await s.close()
        await s.close()

    async def test_use_before_open_or_after_close_raises_invalid_state(
        self, make_store: MakeStore
    ) -> None:
        s = make_store()
        with pytest.raises(InvalidState):
            await s.get("items", "a")
        await s.open()
        await s.close()
        with pytest.raises(InvalidState):
            await s.apply([PutDoc("items", "a", {})])
        with pytest.raises(InvalidState):
            await s.find("items")
        with pytest.raises(InvalidState):
            await s.outbox_peek()
        with pytest.raises(InvalidState):
            [d async for d in s.iter_find("items")]

    # ------------------------------------------------------------------ atomicity

    async def test_a_batch_with_an_invalid_op_applies_nothing(self, store: Store) -> None:
        await self._seed(store)
        before = await snapshot(store)
        bad: list[Any] = [
            PutDoc("items", "b", {"n": 2}),
            PatchDoc("items", "a", {"n": 5}),
            OutboxAppend(OutboxRecord("items", "b", "insert")),
            MetaSet("ckpt", 2),
            StagePut("R", "items", "s", {}),
            PutDoc("items", "c", ["not", "a", "dict"]),  # type: ignore[arg-type]
        ]
        with pytest.raises(StoreError):
            await store.apply(bad)
        assert await snapshot(store) == before
        with pytest.raises(StoreError):
            await store.apply([PutDoc("items", "b", {}), "not an op"])  # type: ignore[list-item]
        assert await snapshot(store) == before

    async def test_a_batch_violating_a_unique_index_applies_nothing(self, store: Store) -> None:
        await store.create_index("users", ["email"], unique=True)
        await self._seed(store)
        await put(store, "users", "u1", email="a@x")
        before = await snapshot(store)
        with pytest.raises(StoreError):
            await store.apply(
                [
                    PutDoc("users", "u2", {"email": "b@x"}),
                    PutDoc("items", "b", {"n": 2}),
                    OutboxAppend(OutboxRecord("users", "u2", "insert")),
                    MetaSet("ckpt", 2),
                    PutDoc("users", "u3", {"email": "a@x"}),
                ]
            )
        assert await snapshot(store) == before

    # ------------------------------------------------------------------ bad input

    @pytest.mark.parametrize("name", ["", "a\x00b", 5])
    async def test_invalid_collection_names_are_refused(self, store: Store, name: Any) -> None:
        await self._seed(store)
        before = await snapshot(store)
        with pytest.raises(ConfigurationError):
            await store.apply([PutDoc("items", "z", {}), PutDoc(name, "a", {})])
        with pytest.raises(ConfigurationError):
            await store.get(name, "a")
        with pytest.raises(ConfigurationError):
            await store.find(name)
        assert await snapshot(store) == before

    @pytest.mark.parametrize(
        "selector",
        [
            {"n": {"$bogus": 1}},
            {"$where": "1"},
            {"n": {"$in": 5}},
            {"$and": {}},
            {"n": {"$size": "x"}},
        ],
    )
    async def test_malformed_selectors_raise_query_error(self, store: Store, selector: Any) -> None:
        await self._seed(store)
        before = await snapshot(store)
        with pytest.raises(QueryError):
            await store.find("items", selector)
        with pytest.raises(QueryError):
            await store.count("items", selector)
        with pytest.raises(QueryError):
            [d async for d in store.iter_find("items", selector)]
        assert await snapshot(store) == before

    async def test_malformed_sort_and_projection_raise_query_error(self, store: Store) -> None:
        await self._seed(store)
        with pytest.raises(QueryError):
            await store.find("items", sort=[("n", 2)])
        with pytest.raises(QueryError):
            await store.find("items", projection={"a": 1, "b": 0})

    @pytest.mark.parametrize(
        "op",
        [
            PutDoc("items", 5, {}),  # type: ignore[arg-type]
            PutDoc("items", "x", {"when": object()}),
            PatchDoc("items", "a", {"n": 1}, cleared="n"),
            PatchDoc("items", "a", "n"),  # type: ignore[arg-type]
            PutDoc("items", "x", {}, origin=5),  # type: ignore[arg-type]
            OutboxAppend(OutboxRecord("items", "a", "insert", state="bogus")),  # type: ignore[arg-type]
            MetaSet("k", {1, 2}),
        ],
        ids=["int-id", "object-value", "cleared-str", "fields-str", "int-origin", "state", "set"],
    )
    async def test_malformed_ops_raise_store_error(self, store: Store, op: Any) -> None:
        await self._seed(store)
        before = await snapshot(store)
        with pytest.raises(StoreError):
            await store.apply([PutDoc("items", "z", {}), op])
        assert await snapshot(store) == before

    @pytest.mark.parametrize(
        "modifier",
        [{"$inc": {"name": 1}}, {"$set": {"a": 1}, "$unset": {"a": ""}}, {"$bogus": {"a": 1}}],
    )
    async def test_modifier_errors_leave_the_store_unchanged(
        self, store: Store, modifier: Any
    ) -> None:
        await put(store, "items", "a", name="pen", n=1)
        doc = await store.get("items", "a")
        assert doc is not None
        with pytest.raises(ModifierError):
            apply_update(doc, modifier)
        assert await store.get("items", "a") == {"_id": "a", "name": "pen", "n": 1}

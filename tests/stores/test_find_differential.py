"""SQLiteStore's queries agree with MemoryStore's (hypothesis).

The selector translation is checked on its own against mongomock (tests/query). This checks
what a store builds around it, where the translation meets the rest: the SQL plan with or
without expression indexes, the Python post-filter of an inexact plan, then sort, skip, limit
and projection, in ``find``, ``iter_find`` (paged) and ``count``. MemoryStore, which runs the
Python matcher and sorter only, is the reference.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioserversync import ejson
from aioserversync.exceptions import QueryError
from aioserversync.stores import MemoryStore, PutDoc, SQLiteStore, Store
from tests.query.strategies import KEYS, PATHS, documents, selectors

sorts = st.lists(
    st.tuples(st.sampled_from(PATHS), st.sampled_from([1, -1])),
    max_size=2,
    unique_by=lambda t: t[0],
)
projections = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from([*KEYS[:3], "a.b"]), st.just(1), min_size=1, max_size=2),
    st.dictionaries(st.sampled_from([*KEYS[:3], "a.b"]), st.just(0), min_size=1, max_size=2),
)
# Generated selectors seldom match generated documents; broad ones make sort, skip, limit and
# projection see results.
broad = st.sampled_from(
    [{}, {"a": {"$exists": True}}, {"b": {"$ne": None}}, {"a": {"$gte": 0}}, {"c": {"$type": 2}}]
)
queries = st.tuples(
    st.one_of(selectors, broad), sorts, st.integers(0, 3), st.integers(0, 4), projections
)


def wire(docs: list[dict[str, Any]]) -> list[Any]:
    return [ejson.encode(d) for d in docs]


async def answers(store: Store, query: tuple[Any, ...]) -> Any:
    selector, sort, skip, limit, projection = query
    order = [*sort, ("_id", 1)]  # a total order: ties would otherwise be either way
    try:
        found = await store.find(
            "items", selector, sort=order, skip=skip, limit=limit, projection=projection
        )
        paged = [
            d
            async for d in store.iter_find(
                "items", selector, sort=order, projection=projection, batch_size=2
            )
        ]
        count = await store.count("items", selector)
    except QueryError:
        return "QueryError"
    return wire(found), wire(paged), count


async def compare(docs: list[dict[str, Any]], indexes: list[str], qs: list[Any]) -> None:
    ref, store = MemoryStore(), SQLiteStore(":memory:")
    async with ref, store:
        batch = [PutDoc("items", f"d{i}", ejson.encode(d)) for i, d in enumerate(docs)]
        for s in (ref, store):
            await s.apply(batch)
            for path in indexes:
                await s.create_index("items", [path])
        for q in qs:
            assert await answers(store, q) == await answers(ref, q), q


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(documents, min_size=2, max_size=10),
    st.lists(st.sampled_from(PATHS), max_size=2, unique=True),
    st.lists(queries, min_size=1, max_size=6),
)
def test_sqlite_find_agrees_with_memory_find(
    docs: list[dict[str, Any]], indexes: list[str], qs: list[Any]
) -> None:
    asyncio.run(compare(docs, indexes, qs))


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_limit_applies_after_the_post_filter(limit: int) -> None:
    # $where-free but inexact for SQL: a $size on a dotted path through arrays is post-filtered.
    docs = [{"a": [{"b": [1, 2]}]}, {"a": [{"b": [3]}]}, {"a": {"b": [4, 5]}}, {"a": 1}]
    q = ({"a.b": {"$size": 2}}, [], 0, limit, None)
    asyncio.run(compare(docs, [], [q]))

"""The page form built by SQLiteStore (``changes_page``) answers exactly as the generic path."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from aioserversync.hub.methods import FORM_PAGE, _page_by_store, pull_result
from tests.hub.conftest import MakeHub

IDS = ["a", "b:c", 'q"uote', "back\\slash", "é€", "7:x", "$d", "z"]


def parsed(result: bytes) -> dict[str, Any]:
    out: dict[str, Any] = orjson.loads(result)
    out["page"] = orjson.loads(out["page"])
    return out


@pytest.mark.parametrize("seed", range(12))
async def test_store_built_pages_equal_the_generic_ones(make_hub: MakeHub, seed: int) -> None:
    """Random inserts, updates, removes and purges; then every (since, limit) page: the same
    documents (text compared parsed), tombstones, next and more either way."""
    rng = random.Random(seed)
    hub, _ = await make_hub(tombstone_retention=3)  # a purge keeps the last 3 revisions
    for _ in range(40):
        doc_id = rng.choice(IDS)
        op = rng.random()
        if await hub.store.get("items", doc_id) is None:
            await hub.insert("items", {"_id": doc_id, "n": rng.randrange(100), "at": {"$date": 5}})
        elif op < 0.6:
            await hub.update("items", doc_id, {"$set": {"n": rng.randrange(100)}})
        else:
            await hub.remove("items", doc_id)
        if rng.random() < 0.05:
            await hub.purge("items")
    top = await hub.store.max_rev("items")
    assert top > 0
    checked = 0
    for since in range(top + 1):
        for limit in (1, 2, 3, 7, 100):
            entries = await hub.store.changes_since("items", since, limit + 1)
            want = parsed(pull_result(entries, since, limit, 0, form=FORM_PAGE))
            got = await _page_by_store(hub.store, "items", since, limit, 0, FORM_PAGE)
            assert got is not None
            assert parsed(got) == want, (since, limit)
            checked += 1
    assert checked == (top + 1) * 5


@pytest.mark.parametrize("seed", range(4))
async def test_pages_without_tombstones_equal_the_generic_ones(
    make_hub: MakeHub, seed: int
) -> None:
    """Inserts and updates only: every page's bounds come from the revision index alone."""
    rng = random.Random(seed)
    hub, _ = await make_hub()
    for n in range(30):
        doc_id = rng.choice(IDS) + str(rng.randrange(4))
        if await hub.store.get("items", doc_id) is None:
            await hub.insert("items", {"_id": doc_id, "n": n})
        else:
            await hub.update("items", doc_id, {"$set": {"n": n}})
    top = await hub.store.max_rev("items")
    assert top >= 30
    for since in range(top + 2):
        for limit in (1, 2, 5, 29, 30, 31, 100):
            entries = await hub.store.changes_since("items", since, limit + 1)
            want = parsed(pull_result(entries, since, limit, 0, form=FORM_PAGE))
            got = await _page_by_store(hub.store, "items", since, limit, 0, FORM_PAGE)
            assert got is not None
            assert parsed(got) == want, (since, limit)


async def test_a_page_over_the_size_cap_is_left_to_the_generic_path(make_hub: MakeHub) -> None:
    hub, _ = await make_hub()
    await hub.insert("items", {"_id": "big", "s": "x" * 1000})
    assert await hub.store.changes_page("items", 0, 10, 999) is None
    text, tombs, last, more = await hub.store.changes_page("items", 0, 10, 2000)
    assert orjson.loads(text) == {f"{last}:big": {"s": "x" * 1000}}
    assert (tombs, more) == ([], False)
    assert await hub.store.changes_page("items", last, 10, 2000) == ("{}", [], last, False)
    assert await hub.store.changes_page("nothing", 0, 10, 2000) == ("{}", [], 0, False)

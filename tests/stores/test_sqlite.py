from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from aioserversync import query
from aioserversync.exceptions import ConfigurationError, StoreError
from aioserversync.stores import (
    MemoryStore,
    MetaSet,
    MongoStore,
    OutboxAppend,
    OutboxRecord,
    PatchDoc,
    PutDoc,
    SetBase,
    SQLiteStore,
    StageCommit,
    StagePut,
    Tombstone,
    open_store,
)
from tests.stores.contract import MakeStore, StoreContract, snapshot


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> MakeStore:
        return lambda: SQLiteStore(tmp_path / "store.db")


class TestSQLiteSmallPages(StoreContract):
    """The same contract on 4 KiB pages: files created before the 16 KiB default keep theirs."""

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> MakeStore:
        return lambda: SQLiteStore(tmp_path / "store.db", page_size=4096)


class TestSQLiteMemoryDatabase(StoreContract):
    """The same contract on ``:memory:`` (no WAL, no file)."""

    @pytest.fixture
    def make_store(self) -> MakeStore:
        return lambda: SQLiteStore(":memory:")


async def test_reopening_the_file_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "keep.db"
    async with SQLiteStore(path) as s:
        await s.create_index("items", ["color"], unique=True)
        await s.apply(
            [
                PutDoc("items", "a", {"color": "red", "at": {"$date": 5}}, origin="R", rev=3),
                SetBase("items", "a", {"color": "blue"}, rev=2),
                Tombstone("items", "t", 4),
                OutboxAppend(OutboxRecord("items", "a", "update", {"$set": {"color": "red"}})),
                MetaSet("ckpt", {"items": 9}),
                StagePut("R", "items", "s", {"v": 1}),
            ]
        )
        before = await snapshot(s)
        meta = await s.get_meta_many("items", ["a"])
    assert before.pop("staged") == 1
    async with SQLiteStore(path) as s:
        after = await snapshot(s)
        assert after.pop("staged") == 0  # staged rounds are discarded when the store closes
        assert after == before
        assert await s.get_meta_many("items", ["a"]) == meta
        assert await s.max_rev("items") == 4
        assert await s.collections() == ["items"]
        with pytest.raises(StoreError):  # the unique index survived too
            await s.apply([PutDoc("items", "b", {"color": "red"})])
        (seq,) = (await s.apply([OutboxAppend(OutboxRecord("items", "b", "insert"))])).seqs
        assert seq == 2


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
async def test_top_level_dollar_keys_stay_escaped_through_patches(
    tmp_path: Path, kind: str
) -> None:
    # A document whose own field names look like EJSON travels as {"$escape": {...}}.
    store = SQLiteStore(tmp_path / "esc.db") if kind == "sqlite" else MemoryStore()
    async with store:
        await store.apply([PutDoc("items", "e", {"$escape": {"$date": 5}})])
        assert await store.get("items", "e") == {"_id": "e", "$date": 5}
        await store.apply([PatchDoc("items", "e", {"n": 1})])
        assert await store.get("items", "e") == {"_id": "e", "$date": 5, "n": 1}
        await store.apply([PatchDoc("items", "e", cleared=["n"])])
        assert await store.get_fields("items", ["e"]) == {"e": {"$escape": {"$date": 5}}}
        await store.apply([PutDoc("items", "f", {"$date": 1, "a": 2})])
        await store.apply([PatchDoc("items", "f", {"$odd": 3}, cleared=["a"])])
        assert await store.get("items", "f") == {"_id": "f", "$date": 1, "$odd": 3}
        await store.apply([PatchDoc("items", "f", cleared=["$odd"])])
        assert await store.get("items", "f") == {"_id": "f", "$date": 1}


async def test_a_closed_store_can_be_opened_again(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "again.db")
    await s.open()
    await s.apply([PutDoc("items", "a", {})])
    await s.close()
    await s.open()
    assert await s.count("items") == 1
    await s.close()


async def test_collection_names_are_case_sensitive_and_may_hold_quotes(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "names.db") as s:
        names = ["Items", "items", 'we"ird', "sp ace;--", "ünï"]
        await s.apply([PutDoc(n, "a", {"n": n}) for n in names])
        for n in names:
            assert await s.find(n) == [{"_id": "a", "n": n}]
        assert sorted(await s.collections()) == sorted(names)


async def test_an_indexed_query_uses_the_expression_index(tmp_path: Path) -> None:
    path = tmp_path / "plan.db"
    async with SQLiteStore(path) as s:
        await s.apply([PutDoc("items", f"d{i}", {"color": f"c{i % 50}"}) for i in range(500)])
        await s.create_index("items", ["color"])
        assert len(await s.find("items", {"color": "c7"})) == 10
    plan = query.compile_sql({"color": "c7"}, fields_col="fields", id_col="id")
    conn = sqlite3.connect(path)
    query.register_sqlite_functions(conn)
    (tbl,) = conn.execute("SELECT 'docs_' || n FROM sync_collections WHERE name='items'").fetchone()
    rows = conn.execute(
        f"EXPLAIN QUERY PLAN SELECT id, fields FROM {tbl} WHERE {plan.where}", plan.params
    ).fetchall()
    conn.close()
    assert any("_ix_" in r[-1] for r in rows), rows


async def test_concurrent_batches_from_many_tasks(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "conc.db") as s:

        async def writer(k: int) -> list[int]:
            seqs = []
            for j in range(20):
                res = await s.apply(
                    [
                        PatchDoc("items", "shared", {f"w{k}": j}),
                        OutboxAppend(OutboxRecord("items", f"{k}-{j}", "insert")),
                    ]
                )
                seqs += res.seqs
            return seqs

        results = await asyncio.gather(*(writer(k) for k in range(8)))
        all_seqs = [q for r in results for q in r]
        assert sorted(all_seqs) == list(range(1, 161))
        assert all(r == sorted(r) for r in results)
        assert await s.get("items", "shared") == {
            "_id": "shared",
            **{f"w{k}": 19 for k in range(8)},
        }


async def test_a_cancelled_caller_does_not_break_the_store(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "cancel.db") as s:
        task = asyncio.create_task(s.apply([PutDoc("items", f"d{i}", {}) for i in range(20000)]))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await s.apply([PutDoc("items", "after", {})])
        assert await s.count("items") in (1, 20001)


def _page_size(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()


async def test_a_new_file_takes_the_page_size_and_an_existing_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    async with SQLiteStore(tmp_path / "default.db") as s:
        await s.apply([PutDoc("items", "a", {"v": 1})])
    assert _page_size(tmp_path / "default.db") == 16384
    async with SQLiteStore(tmp_path / "small.db", page_size=4096) as s:
        await s.apply([PutDoc("items", "a", {"v": 1})])
    assert _page_size(tmp_path / "small.db") == 4096
    async with SQLiteStore(tmp_path / "small.db", page_size=65536) as s:
        await s.apply([PutDoc("items", f"d{i}", {"v": i}) for i in range(500)])
        assert await s.count("items") == 501
        assert await s.get("items", "a") == {"_id": "a", "v": 1}
    assert _page_size(tmp_path / "small.db") == 4096


@pytest.mark.parametrize("size", [0, 1000, 256, 131072])
def test_an_invalid_page_size_is_refused(tmp_path: Path, size: int) -> None:
    with pytest.raises(StoreError, match="page_size"):
        SQLiteStore(tmp_path / "x.db", page_size=size)
    assert not (tmp_path / "x.db").exists()


async def test_the_checkpoint_threshold_counts_pages_of_the_files_size(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "a.db", page_size=65536, wal_autocheckpoint=10) as s:
        assert s._db.checkpointer is not None
        assert s._db.checkpointer._threshold == 10 * 65536
    async with SQLiteStore(tmp_path / "b.db", page_size=4096) as s:
        assert s._db.checkpointer is not None
        assert s._db.checkpointer._threshold == 40 * 2**20  # the default: 40 MiB of pages
    async with SQLiteStore(tmp_path / "b.db", page_size=65536) as s:  # keeps 4 KiB pages
        assert s._db.checkpointer is not None
        assert s._db.checkpointer._threshold == 40 * 2**20


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        await SQLiteStore(path).open()


async def test_a_non_database_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database" * 100)
    store = SQLiteStore(path)
    with pytest.raises(StoreError):
        await store.open()
    assert not store.is_open


async def test_stage_commit_large_round_keeps_counts_without_details(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "big.db") as s:
        await s.apply([PutDoc("items", f"d{i}", {"v": i}, origin="A") for i in range(3000)])
        batch: list[Any] = [
            StagePut("A", "items", f"d{i}", {"v": i + (i % 3 == 0)}) for i in range(1000, 4000)
        ]
        batch.append(StageCommit("A", "items", "A", diff_limit=100))
        (res,) = (await s.apply(batch)).commits
        changed = sum(1 for i in range(1000, 3000) if i % 3 == 0)
        assert (res.added, res.changed, res.removed, res.changes) == (1000, changed, 1000, None)
        assert await s.count("items") == 3000
        fields = await s.get_fields("items", ["d999", "d1002", "d1003", "d3998"])
        assert fields == {"d1002": {"v": 1003}, "d1003": {"v": 1003}, "d3998": {"v": 3998}}


@pytest.mark.parametrize(
    ("url", "kind", "path"),
    [
        ("sqlite:///rel/cache.db", SQLiteStore, "rel/cache.db"),
        ("sqlite:////abs/cache.db", SQLiteStore, "/abs/cache.db"),
        ("sqlite://:memory:", SQLiteStore, ":memory:"),
        ("SQLITE://", SQLiteStore, ":memory:"),
        ("memory://", MemoryStore, None),
        ("mongodb://127.0.0.1:1/db", MongoStore, None),
    ],
)
async def test_open_store_urls(url: str, kind: type, path: str | None) -> None:
    store = open_store(url)
    assert isinstance(store, kind)
    if path is not None:
        assert store.path == path  # type: ignore[attr-defined]
    assert not store.is_open  # type: ignore[attr-defined]
    await store.close()


@pytest.mark.parametrize(
    "url",
    ["redis://x", "no-scheme", "sqlite://relative", "mongodb://127.0.0.1:1", "mongodb://:x:y/db"],
)
def test_open_store_refuses_bad_urls(url: str) -> None:
    with pytest.raises(ConfigurationError):
        open_store(url)

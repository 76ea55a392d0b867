"""SQLiteStore's bulk paths: JSON-batched statements, the staging log, partial indexes, checkpoints.

The contract suite checks the behaviour every store shares; these tests aim at what is particular
to the SQLite implementation: values keep their exact JSON form through ``json_each``, the
append-only staging log resolves repeated and mixed operations, index plans use the partial
indexes, the background checkpointer keeps the WAL bounded, and a version 1 file is upgraded.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from aioserversync import query
from aioserversync.exceptions import StoreError
from aioserversync.stores import (
    DeleteDoc,
    PatchDoc,
    PutDoc,
    SQLiteStore,
    StageClear,
    StageCommit,
    StageDelete,
    StagePatch,
    StagePut,
    Tombstone,
)
from tests.utils import wait_for_condition

ODD: dict[str, Any] = {
    'q"uote': {
        "s": 'é\u2028"\\/\U0001f600',
        "ctl": "\x00\x1f\t",
        "big": 18446744073709551615,
        "neg": -9223372036854775808,
        "f": 1.5e300,
        "negzero": -0.0,
        "one": 1.0,
        "arr": [{"$date": 5}, None, True, False],
        "e": {},
        "ea": [],
    },
    "ünï": {"k": "v"},
    "": {"empty id": 1},
    "plain": {},
    '-{"$type":"x"}': {"$escape": {"$date": 1}},
}


def _exact(got: dict[str, Any]) -> bool:
    # Equal, and floats stayed floats (1.0 is not stored as 1).
    return got == ODD and type(got['q"uote']["one"]) is float


async def test_values_keep_their_exact_json_through_every_write_path(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "odd.db") as s:
        await s.apply([PutDoc("put", k, v, "o") for k, v in ODD.items()])
        await s.apply([PutDoc("rev", k, v, "o", rev=i + 1) for i, (k, v) in enumerate(ODD.items())])
        await s.apply([StagePut("S", "staged", k, v) for k, v in ODD.items()])
        await s.apply([StageCommit("S", "staged", "o")])
        for coll in ("put", "rev", "staged"):
            assert _exact(await s.get_fields(coll, list(ODD))), coll
        revs = [(e.id, e.rev) for e in await s.changes_since("rev", 0, 100)]
        assert revs == [(k, i + 1) for i, k in enumerate(ODD)]


async def test_a_put_run_with_mixed_origins_and_revs_keeps_batch_order(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "mixed.db") as s:
        await s.apply([Tombstone("items", "a", 1), Tombstone("items", "c", 2)])
        await s.apply(
            [
                PutDoc("items", "a", {"v": 1}, "A"),
                PutDoc("items", "b", {"v": 1}, "A", rev=7),
                PutDoc("items", "a", {"v": 2}, "B", rev=8),
                PutDoc("items", "c", {"v": 3}, None),
                PutDoc("items", "b", {"v": 4}, "A"),
            ]
        )
        meta = await s.get_meta_many("items", ["a", "b", "c"])
        assert {k: (m.origin, m.rev) for k, m in meta.items()} == {
            "a": ("B", 8),
            "b": ("A", None),
            "c": (None, None),
        }
        assert await s.get_fields("items", ["a", "b", "c"]) == {
            "a": {"v": 2},
            "b": {"v": 4},
            "c": {"v": 3},
        }
        # A revision drops the id's tombstone; a put without one does not.
        assert [e.id for e in await s.changes_since("items", 0, 10) if e.fields_json is None] == [
            "c"
        ]


async def test_bad_values_in_a_put_run_fail_the_whole_batch(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "bad.db") as s:
        for bad in (
            PutDoc("items", "x", {"when": object()}),
            PutDoc("items", "x", ["no"]),  # type: ignore[arg-type]
            PutDoc("items", 5, {}),  # type: ignore[arg-type]
            PutDoc("items", "x", {}, origin=3),  # type: ignore[arg-type]
            PutDoc("items", "x", {}, rev="1"),  # type: ignore[arg-type]
            StagePut("S", "items", "x", {"k": {1, 2}}),
            StagePatch("S", "items", "x", {"k": 1}, cleared="k"),
            StagePatch("S", "items", "x", {"k": 1}, cleared=[3]),  # type: ignore[list-item]
        ):
            with pytest.raises(StoreError):
                await s.apply([PutDoc("items", "ok", {}), StagePut("S", "items", "ok", {}), bad])
            assert await s.count("items") == 0
            assert await s.stage_count("S", "items") == 0


async def test_the_staging_log_replays_repeated_and_mixed_operations(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "log.db") as s:
        await s.apply([PutDoc("items", "old", {"v": 0}, "R"), PutDoc("items", "kept", {}, "R")])
        await s.apply([StagePut("R", "items", f"d{i}", {"v": i}) for i in range(10)])
        await s.apply(
            [
                StagePut("R", "items", "d1", {"v": 100}),  # sent twice: the later one wins
                StagePatch("R", "items", "d2", {"w": 2}, cleared=["v"]),
                StageDelete("R", "items", "d3"),
                StagePatch("R", "items", "new", {"n": 1}, cleared=["ignored"]),
                StageDelete("R", "items", "d4"),
                StagePut("R", "items", "d4", {"back": True}),
                StagePut("R", "items", "d5", {"v": 5, "x": 1}),
            ]
        )
        await s.apply(
            [StagePatch("R", "items", "d5", cleared=["x"]), StageDelete("R", "items", "d6")]
        )
        assert await s.stage_count("R", "items") == 9
        staged = await s.stage_get("R", "items", ["d1", "d2", "d3", "d4", "d5", "d6", "new", "zz"])
        assert staged == {
            "d1": {"v": 100},
            "d2": {"w": 2},
            "d4": {"back": True},
            "d5": {"v": 5},
            "new": {"n": 1},
        }
        (res,) = (
            await s.apply(
                [StageCommit("R", "items", "R", keep=frozenset({"kept", "d9"}), diff_limit=100)]
            )
        ).commits
        assert (res.added, res.changed, res.removed) == (8, 0, 1)
        assert sorted((c.op, c.id) for c in res.changes or []) == [
            *[("added", i) for i in ("d0", "d1", "d2", "d4", "d5", "d7", "d8", "new")],
            ("removed", "old"),
        ]
        stored = await s.get_fields("items", [f"d{i}" for i in range(10)] + ["new", "old", "kept"])
        assert stored == {
            "d0": {"v": 0},
            "d1": {"v": 100},
            "d2": {"w": 2},
            "d4": {"back": True},
            "d5": {"v": 5},
            "d7": {"v": 7},
            "d8": {"v": 8},
            "new": {"n": 1},
            "kept": {},
        }
        # The log was compacted by the commit: a second commit sees the same round.
        assert await s.stage_count("R", "items") == 9
        (again,) = (await s.apply([StageCommit("R", "items", "R", diff_limit=100)])).commits
        assert (again.added, again.changed, again.removed) == (1, 0, 1)  # d9 added, kept swept
        await s.apply([StageClear("R")])
        assert await s.stage_count("R", "items") == 0


async def test_a_first_round_into_an_empty_collection_keeps_the_last_put(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "first.db") as s:
        await s.apply([StagePut("R", "items", f"d{i}", {"v": i}) for i in range(6)])
        await s.apply([StagePut("R", "items", "d1", {"v": 10}), StagePut("R", "items", "d0", {})])
        (res,) = (
            await s.apply([StageCommit("R", "items", "R", keep=frozenset({"d5"}), diff_limit=10)])
        ).commits
        assert (res.added, res.changed, res.removed) == (5, 0, 0)
        assert sorted((c.id, c.new) for c in res.changes or []) == [
            ("d0", {}),
            ("d1", {"v": 10}),
            ("d2", {"v": 2}),
            ("d3", {"v": 3}),
            ("d4", {"v": 4}),
        ]
        assert await s.count("items") == 5
        meta = await s.get_meta_many("items", ["d1"])
        assert (meta["d1"].origin, meta["d1"].rev) == ("R", None)
        # Committed again (the log was not compacted by that path): nothing differs.
        (again,) = (await s.apply([StageCommit("R", "items", "R", diff_limit=10)])).commits
        assert (again.added, again.changed, again.removed) == (1, 0, 0)  # d5, no longer kept
        assert await s.get_fields("items", ["d1", "d5"]) == {"d1": {"v": 10}, "d5": {"v": 5}}


async def test_staging_scopes_and_collections_stay_apart(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "scopes.db") as s:
        await s.apply(
            [
                StagePut("A", "one", "x", {"a": 1}),
                StagePut("B", "one", "x", {"b": 1}),
                StagePut("A", "two", "x", {"a": 2}),
            ]
        )
        await s.apply([StageClear("A")])
        assert await s.stage_count("A", "one") == 0
        assert await s.stage_count("A", "two") == 0
        assert await s.stage_get("B", "one", ["x"]) == {"x": {"b": 1}}
        (res,) = (await s.apply([StageCommit("B", "one", "B")])).commits
        assert res.added == 1
        assert await s.get_fields("two", ["x"]) == {}


async def test_a_rolled_back_batch_unstages_too(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "rb.db") as s:
        await s.apply([StagePut("R", "items", "a", {"v": 1})])
        with pytest.raises(StoreError):
            await s.apply(
                [
                    StagePut("R", "items", "b", {"v": 2}),
                    StageDelete("R", "items", "a"),
                    PutDoc("items", "bad", ["x"]),  # type: ignore[arg-type]
                ]
            )
        assert await s.stage_get("R", "items", ["a", "b"]) == {"a": {"v": 1}}


async def test_patch_runs_mix_the_fast_and_the_general_path(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "patch.db") as s:
        await s.apply(
            [
                PutDoc("items", "a", {"x": 1, "y": {"deep": 1}}, "R"),
                PutDoc("items", "esc", {"$escape": {"$date": 5}}, "R"),
                PutDoc("items", "b", {"x": 1}, "R"),
            ]
        )
        await s.apply(
            [
                PatchDoc("items", "a", {"x": 2}),
                PatchDoc("items", "a", {"y": {"other": None}, "z": [1, {"k": None}]}),
                PatchDoc("items", "esc", {"n": 1}),
                PatchDoc("items", "missing", {"m": 1}, cleared=["q"]),
                PatchDoc("items", "b", {'we"ird': 1, "$odd": 2}),
                PatchDoc("items", "b", cleared=["x"]),
                PatchDoc("items", "a", rev=9, origin="S"),
            ]
        )
        assert await s.get_fields("items", ["a", "esc", "missing", "b"]) == {
            "a": {"x": 2, "y": {"other": None}, "z": [1, {"k": None}]},
            "esc": {"$date": 5, "n": 1},
            "missing": {"m": 1},
            "b": {'we"ird': 1, "$odd": 2},
        }
        meta = await s.get_meta_many("items", ["a", "b"])
        assert (meta["a"].origin, meta["a"].rev, meta["b"].origin) == ("S", 9, "R")
        await s.apply([PatchDoc("items", "a", {"x": 3}), DeleteDoc("items", "a")])
        assert await s.get("items", "a") is None


def _plan(path: Path, selector: dict[str, Any]) -> str:
    conn = sqlite3.connect(path)
    query.register_sqlite_functions(conn)
    (tbl,) = conn.execute("SELECT 'docs_' || n FROM sync_collections WHERE name='items'").fetchone()
    sql = query.compile_sql(selector, fields_col="fields", id_col="id")
    rows = conn.execute(f"EXPLAIN QUERY PLAN SELECT id FROM {tbl} WHERE {sql.where}", sql.params)
    partial = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE sql LIKE '%WHERE%'"))
    plan = "\n".join(r[-1] for r in rows)
    conn.close()
    assert "SCAN " + tbl not in plan, plan
    return "\n".join(sql for name, sql in partial.items() if name in plan)


async def test_dotted_paths_and_date_ranges_use_partial_indexes(tmp_path: Path) -> None:
    import datetime

    path = tmp_path / "ix.db"
    async with SQLiteStore(path) as s:
        await s.apply(
            [
                PutDoc("items", f"d{i}", {"a": {"b": i % 50}, "at": {"$date": 1000 * i}})
                for i in range(2000)
            ]
        )
        await s.create_index("items", ["a.b"])
        await s.create_index("items", [("at", -1)])
        utc = datetime.UTC
        since = datetime.datetime.fromtimestamp(5, utc)
        until = datetime.datetime.fromtimestamp(9, utc)
        assert len(await s.find("items", {"a.b": 7})) == 40
        assert len(await s.find("items", {"at": {"$gte": since, "$lt": until}})) == 4
    assert "='array'" in _plan(path, {"a.b": 7})
    assert "IS NOT NULL" in _plan(path, {"at": {"$gte": since, "$lt": until}})


async def test_the_wal_is_checkpointed_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    async with SQLiteStore(path, wal_autocheckpoint=50, page_size=4096) as s:
        checkpointer = s._db.checkpointer
        assert checkpointer is not None
        autocheckpoint = await s._run(
            lambda db: db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        )
        assert autocheckpoint == 0  # the writer leaves checkpoints to the thread
        for b in range(10):
            await s.apply([PutDoc("items", f"d{b}-{i}", {"pad": "x" * 500}) for i in range(100)])
        await wait_for_condition(lambda: checkpointer.checkpoints > 0, message="a checkpoint")
    async with SQLiteStore(path) as s:
        assert await s.count("items") == 1000


async def test_background_checkpoints_are_spaced_after_a_large_transaction(
    tmp_path: Path,
) -> None:
    """One large batch leaves a WAL file above the threshold for good (SQLite rewinds the log but
    keeps the file): small commits after it must not each wake a checkpoint."""
    async with SQLiteStore(tmp_path / "wal.db", wal_autocheckpoint=50, page_size=4096) as s:
        checkpointer = s._db.checkpointer
        assert checkpointer is not None
        checkpointer._min_interval = 3600.0
        await s.apply([PutDoc("items", f"big{i}", {"pad": "x" * 500}) for i in range(2000)])
        await wait_for_condition(lambda: checkpointer.checkpoints == 1, message="a checkpoint")
        assert (tmp_path / "wal.db-wal").stat().st_size >= 50 * 4096
        for i in range(50):
            await s.apply([PutDoc("items", f"small{i}", {"n": i})])
            assert not checkpointer._wake.is_set()  # spaced: not woken again
        checkpointer._min_interval = 0.0
        await s.apply([PutDoc("items", "after", {"n": 0})])
        await wait_for_condition(lambda: checkpointer.checkpoints >= 2, message="next checkpoint")
        assert checkpointer.checkpoints == 2  # none for the 50 small commits
        assert await s.count("items") == 2051


async def test_a_version_1_file_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    async with SQLiteStore(path) as s:
        await s.apply([PutDoc("items", "a", {"v": 1}, "R")])
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE sync_staging(scope TEXT NOT NULL, coll TEXT NOT NULL, id TEXT NOT NULL, "
        "fields TEXT NOT NULL, UNIQUE(scope, coll, id))"
    )
    conn.execute("INSERT INTO sync_staging VALUES ('R', 'items', 'b', '{}')")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    async with SQLiteStore(path) as s:
        assert await s.get_fields("items", ["a"]) == {"a": {"v": 1}}
        assert await s.stage_count("R", "items") == 0
        await s.apply([StagePut("R", "items", "b", {"v": 2}), StageCommit("R", "items", "R")])
        assert await s.get_fields("items", ["b"]) == {"b": {"v": 2}}
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    conn.close()
    assert "sync_staging" not in tables


def _indexes(path: Path, table: str = "docs_1") -> set[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name=?", (table,)
        ).fetchall()
    finally:
        conn.close()
    return {(name, sql) for name, sql in rows}


@pytest.fixture
def bulk_calls(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Bulk-load every first round of 5 or more documents, and record each attempt's outcome."""
    from aioserversync.stores import sqlite_first_round

    calls: list[bool] = []
    real = sqlite_first_round.bulk_load

    def spy(*args: Any) -> bool:
        calls.append(real(*args))
        return calls[-1]

    monkeypatch.setattr(sqlite_first_round, "BULK_LOAD_MIN", 5)
    monkeypatch.setattr(sqlite_first_round, "bulk_load", spy)
    return calls


@pytest.mark.parametrize("reader", ["changes_since", "changes_page", "max_rev"])
async def test_the_revision_index_is_built_by_the_first_read_by_revision(
    tmp_path: Path, reader: str
) -> None:
    """An edge never reads by revision and its tables have no revision index; a hub's first
    read by revision builds it (on a table that holds documents already), and reads use it."""
    path = tmp_path / "rev.db"
    async with SQLiteStore(path) as s:
        await s.apply([PutDoc("items", f"d{i}", {"n": i}, "H", rev=100 - i) for i in range(50)])
        await s.apply([PutDoc("items", "local", {"n": 0})])
        assert "docs_1_rev" not in {name for name, _ in _indexes(path)}
        if reader == "changes_since":
            got = [(e.id, e.rev) for e in await s.changes_since("items", 60, 3)]
            assert got == [("d39", 61), ("d38", 62), ("d37", 63)]
        elif reader == "changes_page":
            page = await s.changes_page("items", 60, 3, 2**20)
            assert page is not None and page[2:] == (63, True)
        else:
            assert await s.max_rev("items") == 100
        assert "docs_1_rev" in {name for name, _ in _indexes(path)}
        plan = await s._run(
            lambda db: db.conn.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM docs_1 WHERE rev > 5 ORDER BY rev LIMIT 3"
            ).fetchall()
        )
        assert any("docs_1_rev" in str(row) for row in plan), plan
        await s.apply([PutDoc("items", "d0", {"n": 1}, "H", rev=101)])
        assert await s.max_rev("items") == 101
    async with SQLiteStore(path) as s:  # a file that has it keeps it
        assert await s.max_rev("items") == 101
        assert "docs_1_rev" in {name for name, _ in _indexes(path)}


async def test_a_large_first_round_is_loaded_with_its_indexes_rebuilt(
    tmp_path: Path, bulk_calls: list[bool]
) -> None:
    path = tmp_path / "bulk.db"
    async with SQLiteStore(path) as s:
        await s.create_index("items", ["sku"])
        assert await s.max_rev("items") == 0  # as a hub reads it: the revision index is built
        before = _indexes(path)
        assert {name for name, _ in before} >= {"docs_1_id", "docs_1_origin", "docs_1_rev"}
        await s.apply([StagePut("R", "items", f"d{i}", {"sku": i % 3}) for i in range(20)])
        (res,) = (await s.apply([StageCommit("R", "items", "R", diff_limit=0)])).commits
        assert bulk_calls == [True]
        assert res.added == 20
        assert _indexes(path) == before  # every index is back, the user's one too
        cache = await s._run(lambda db: db.conn.execute("PRAGMA cache_size").fetchone()[0])
        assert cache == -64 * 1024  # the smaller cache of the index build was undone
        assert await s.count("items", {"sku": 1}) == 7
        assert (await s.get_meta_many("items", ["d4"]))["d4"].origin == "R"
        # The rebuilt unique index still holds: a put of a known id replaces it.
        await s.apply([PutDoc("items", "d4", {"sku": 9}, "R")])
        assert await s.count("items") == 20
        assert await s.get_fields("items", ["d4"]) == {"d4": {"sku": 9}}
        with pytest.raises(StoreError):
            await s._run(
                lambda db: db.conn.execute(
                    "INSERT INTO docs_1(id, fields) VALUES ('d4', '{}')"
                ).fetchall()
            )


async def test_a_first_round_with_an_id_staged_twice_falls_back_to_the_upsert(
    tmp_path: Path, bulk_calls: list[bool]
) -> None:
    path = tmp_path / "twice.db"
    async with SQLiteStore(path) as s:
        await s.create_index("items", ["v"])
        before = _indexes(path)
        await s.apply([StagePut("R", "items", f"d{i}", {"v": i}) for i in range(10)])
        await s.apply([StagePut("R", "items", "d3", {"v": 30})])
        (res,) = (await s.apply([StageCommit("R", "items", "R")])).commits
        assert bulk_calls == [False]  # the rebuilt unique index refused the duplicate
        assert res.added == 10
        assert await s.get_fields("items", ["d3"]) == {"d3": {"v": 30}}
        assert _indexes(path) == before
        assert await s.count("items", {"v": {"$gte": 5}}) == 6  # d5-d9 and d3 (30)


async def test_a_table_from_an_earlier_version_keeps_its_unique_column(
    tmp_path: Path, bulk_calls: list[bool]
) -> None:
    """Earlier versions declared ``id`` UNIQUE on the column: that index cannot be dropped, and
    a first round still loads (the other indexes rebuilt) or falls back to the upsert."""
    path = tmp_path / "old.db"
    async with SQLiteStore(path) as s:
        await s.apply([PutDoc("items", "x", {}), DeleteDoc("items", "x")])
    conn = sqlite3.connect(path)
    conn.executescript(
        "DROP TABLE docs_1;"
        "CREATE TABLE docs_1(id TEXT NOT NULL UNIQUE, fields TEXT NOT NULL, origin TEXT, "
        "rev INTEGER);"
        "CREATE INDEX docs_1_origin ON docs_1(origin);"
    )
    conn.close()
    async with SQLiteStore(path) as s:
        await s.apply([StagePut("R", "items", f"d{i}", {"v": i}) for i in range(8)])
        (res,) = (await s.apply([StageCommit("R", "items", "R")])).commits
        assert res.added == 8
        await s.apply([StageClear("R")])
        await s.apply([DeleteDoc("items", f"d{i}") for i in range(8)])
        await s.apply([StagePut("R", "items", f"d{i}", {"v": i}) for i in range(8)])
        await s.apply([StagePut("R", "items", "d0", {"v": 100})])
        (res,) = (await s.apply([StageCommit("R", "items", "R")])).commits
        assert res.added == 8
        assert await s.get_fields("items", ["d0"]) == {"d0": {"v": 100}}
    assert bulk_calls == [True, False]
    assert {name for name, _ in _indexes(path)} == {"sqlite_autoindex_docs_1_1", "docs_1_origin"}


async def test_one_large_transaction_is_checkpointed_in_the_background(tmp_path: Path) -> None:
    """A WAL far beyond the threshold after one large batch is copied back by the background
    thread, not on the writer; only when it is still that large once the background checkpoint
    finished does the writer checkpoint itself."""
    path = tmp_path / "big.db"
    async with SQLiteStore(path, wal_autocheckpoint=50, page_size=4096) as s:
        checkpointer = s._db.checkpointer
        assert checkpointer is not None
        statements: list[str] = []
        await s._run(lambda db: db.conn.set_trace_callback(statements.append))
        await s.apply([PutDoc("items", f"big{i}", {"pad": "x" * 1000}) for i in range(3000)])
        assert (tmp_path / "big.db-wal").stat().st_size >= 8 * 50 * 4096
        assert not [q for q in statements if "wal_checkpoint" in q]
        await wait_for_condition(lambda: checkpointer.checkpoints == 1, message="a checkpoint")
        await wait_for_condition(lambda: not checkpointer._busy, message="the thread idle")
        await s.apply([PutDoc("items", "after", {"n": 1})])
        assert [q for q in statements if "wal_checkpoint" in q]
        await s._run(lambda db: db.conn.set_trace_callback(None))
        assert await s.count("items") == 3001


async def test_a_batch_that_ends_by_emptying_the_log_replaces_the_staging_database(
    tmp_path: Path,
) -> None:
    async with SQLiteStore(tmp_path / "reset.db") as s:
        statements: list[str] = []
        await s._run(lambda db: db.conn.set_trace_callback(statements.append))
        await s.apply([StagePut("R", "items", f"d{i}", {"v": i}) for i in range(10)])
        await s.apply([StageCommit("R", "items", "R"), StageClear("R")])
        assert await s.stage_count("R", "items") == 0
        assert "DETACH DATABASE stage" in statements
        assert not [q for q in statements if q.startswith("DELETE FROM sync_stage")]
        # The new log stages the next round as usual.
        await s.apply([StagePut("R", "items", "d1", {"v": 100})])
        (res,) = (await s.apply([StageCommit("R", "items", "R", sweep=True)])).commits
        assert (res.changed, res.removed) == (1, 9)
        await s._run(lambda db: db.conn.set_trace_callback(None))


async def test_emptying_the_log_mid_batch_or_in_a_failed_batch_keeps_transaction_order(
    tmp_path: Path,
) -> None:
    async with SQLiteStore(tmp_path / "order.db") as s:
        await s.apply([StagePut("R", "items", "a", {"v": 1})])
        # Not the last operation: the rows go inside the transaction, before the next put.
        await s.apply([StageClear("R"), StagePut("R", "items", "b", {"v": 2})])
        assert await s.stage_get("R", "items", ["a", "b"]) == {"b": {"v": 2}}
        with pytest.raises(StoreError):
            await s.apply(
                [PutDoc("items", "bad", ["x"]), StageClear("R")]  # type: ignore[arg-type]
            )
        assert await s.stage_get("R", "items", ["b"]) == {"b": {"v": 2}}
        assert s._db.stage_reset is False


async def test_the_log_is_emptied_by_deleting_its_rows_while_a_statement_reads_it(
    tmp_path: Path,
) -> None:
    async with SQLiteStore(tmp_path / "busy.db") as s:
        await s.apply([StagePut("R", "items", f"d{i}", {"v": i}) for i in range(5)])
        held: list[sqlite3.Cursor] = []

        def hold(db: Any) -> None:
            cur = db.conn.execute("SELECT seq FROM sync_stage")
            cur.fetchone()  # the statement stays active: the database cannot be detached
            held.append(cur)

        await s._run(hold)
        statements: list[str] = []
        await s._run(lambda db: db.conn.set_trace_callback(statements.append))
        await s.apply([StageClear("R")])
        await s._run(lambda db: db.conn.set_trace_callback(None))
        assert "DELETE FROM stage.sync_stage" in statements
        assert await s.stage_count("R", "items") == 0
        held.clear()
        await s.apply([StagePut("R", "items", "x", {"v": 1})])
        assert await s.stage_count("R", "items") == 1

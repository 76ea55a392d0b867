"""The first resync round of an SQLite collection (an initial sync): the staged log copied in.

A collection that holds nothing yet and whose round staged only puts needs no diff: the log is
copied into the table in its own order, and a large round is loaded with the random-order
indexes dropped and built again afterwards (:func:`bulk_load`).
"""

from __future__ import annotations

import sqlite3

from .base import DocChange, StageCommit, StageCommitResult
from .wireform import load_fields

__all__ = ["BULK_LOAD_MIN", "bulk_load", "commit_into_empty"]


def commit_into_empty(
    conn: sqlite3.Connection,
    tbl: str,
    op: StageCommit,
    origin: str,
    limit: int,
    res: StageCommitResult,
) -> StageCommitResult:
    """The first round of a collection (an initial sync): copy the log into the empty table.

    Only puts are staged, so the staged state of an id is its last put: copying the log in its
    own order with an upsert gives exactly that, with no sort. Nothing can be changed or swept.
    A large round is first tried as a bulk load (:func:`bulk_load`).
    """
    keep = "AND id NOT IN (SELECT id FROM temp.sync_keep)" if op.keep else ""
    select = (
        f"INSERT INTO {tbl}(id, fields, origin, rev) SELECT id, fields, ?, rev FROM sync_stage "
        f"WHERE scope=? AND coll=? {keep} ORDER BY seq"
    )
    args = (origin, op.scope, op.collection)
    staged = conn.execute(
        "SELECT count(*) FROM sync_stage WHERE scope=? AND coll=?", (op.scope, op.collection)
    ).fetchone()[0]
    if staged < BULK_LOAD_MIN or not bulk_load(conn, tbl, select, args):
        conn.execute(
            select + " ON CONFLICT(id) DO UPDATE SET fields=excluded.fields, rev=excluded.rev",
            args,
        )
    res.added = conn.execute(f"SELECT count(*) FROM {tbl}").fetchone()[0]
    if res.added <= limit:
        res.changes = [
            DocChange("added", doc_id, None, load_fields(text))
            for doc_id, text in conn.execute(f"SELECT id, fields FROM {tbl}")
        ]
    return res


BULK_LOAD_MIN = 50_000
"""Staged documents from which a first round is loaded with its table's indexes rebuilt."""


def bulk_load(conn: sqlite3.Connection, tbl: str, insert: str, args: tuple[str, ...]) -> bool:
    """Load a large first round with the ``id`` index and any user index dropped, then built again.

    Inserting random ids into the unique ``id`` index (and into any user index) touches pages all
    over it; once the index outgrows the page cache every insert is a cache miss. Building an
    index sorts instead. Measured on 1M and 3M staged documents (raw sqlite3): 6.1-7.6 s and
    28 s with the indexes in place, 4.7 s and 19 s with them rebuilt. Everything happens inside
    the batch's transaction, so readers see the old state or the new one, with every index.

    Returns:
        ``False`` (and nothing changed) if the round staged an id twice, which the rebuilt unique
        index refuses, or if the table's ``id`` constraint cannot be dropped (a table created by
        an earlier version): the caller then runs the usual upsert.
    """
    # The origin and revision indexes stay: a first round has one origin, and its revisions (a
    # hub's full pull) come in order, so their entries are appended in index order. Sorting them
    # instead cost more than that: 0.17 s for the origin index of 100k documents (their origin is
    # the server's URL), out of a 0.45 s commit.
    keep = (f"{tbl}_origin", f"{tbl}_rev")
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name=? AND sql IS NOT NULL"
        f" AND name NOT IN ({','.join('?' * len(keep))})",
        (tbl, *keep),
    ).fetchall()
    cache = conn.execute("PRAGMA main.cache_size").fetchone()[0]
    page_kib = conn.execute("PRAGMA main.page_size").fetchone()[0] // 1024
    sort_kib = min(_SORT_CACHE_KIB, -cache if cache < 0 else cache * page_kib)
    conn.execute("SAVEPOINT syncbulk_load")
    try:
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute(insert, args)
        # SQLite sorts in buffers as large as the page cache, on top of it: at 1M documents
        # that raised the process's peak RSS from 113 to 151 MB, where a 16 MiB cache for the
        # build kept it at 113 MB and built the indexes as fast (bare sqlite3, two runs each).
        conn.execute(f"PRAGMA main.cache_size={-sort_kib}")
        for _, sql in indexes:
            conn.execute(sql)
    except sqlite3.IntegrityError:
        conn.execute("ROLLBACK TO syncbulk_load")
        conn.execute("RELEASE syncbulk_load")
        return False
    finally:
        conn.execute(f"PRAGMA main.cache_size={cache}")
    conn.execute("RELEASE syncbulk_load")
    return True


_SORT_CACHE_KIB = 16 * 1024

"""``StageCommit`` for SQLite, done in SQL so a resync round never holds a collection in memory.

Staged rows and stored rows are compared by their JSON text in SQL. Rows whose text differs are
then compared in Python as Meteor's ``EJSON.equals`` does (key order ignored), a page at a time,
so a document whose only difference is key order is left alone. Id sets live in temporary tables;
only the reported :class:`~aioserversync.stores.base.DocChange` entries (at most ``diff_limit``)
are held in memory.
"""

from __future__ import annotations

from ..exceptions import StoreError
from .base import DocChange, StageCommit, StageCommitResult
from .sqlite_schema import SQLiteDB
from .wireform import check_collection, load_fields, wire_equal

__all__ = ["stage_commit"]

_PAGE = 1000


def stage_commit(db: SQLiteDB, op: StageCommit) -> StageCommitResult:
    """Make the staged documents of one collection the stored state (inside the open transaction).

    Raises:
        StoreError: If the operation is malformed.
    """
    coll = check_collection(op.collection)
    scope, origin = op.scope, op.origin
    if type(scope) is not str or type(origin) is not str:
        raise StoreError("StageCommit needs a string scope and a string origin")
    limit = max(int(op.diff_limit), 0)
    conn = db.conn
    tbl = db.create_table(coll)
    res = StageCommitResult(coll)
    conn.execute("DELETE FROM temp.sync_keep")
    conn.execute("DELETE FROM temp.sync_changed")
    conn.execute("DELETE FROM temp.sync_swept")
    keep = ""
    if op.keep:
        conn.executemany(
            "INSERT OR IGNORE INTO temp.sync_keep(id) VALUES (?)", [(k,) for k in op.keep]
        )
        keep = "AND s.id NOT IN (SELECT id FROM temp.sync_keep)"
    staged = f"FROM sync_staging s WHERE s.scope=? AND s.coll=? {keep}"
    sp = (scope, coll)

    # Changed: text differs in SQL, then EJSON.equals in Python, one page at a time.
    changed_details: list[DocChange] = []
    cur = conn.execute(
        f"SELECT s.id, s.fields, d.fields FROM sync_staging s JOIN {tbl} d ON d.id = s.id "
        f"WHERE s.scope=? AND s.coll=? {keep} AND d.fields <> s.fields",
        sp,
    )
    while True:
        page = cur.fetchmany(_PAGE)
        if not page:
            break
        really = []
        for doc_id, new_text, old_text in page:
            new = load_fields(new_text)
            old = load_fields(old_text)
            if not wire_equal(old, new):
                really.append((doc_id,))
                if len(changed_details) < limit:
                    changed_details.append(DocChange("changed", doc_id, old, new))
        if really:
            conn.executemany("INSERT INTO temp.sync_changed(id) VALUES (?)", really)
            res.changed += len(really)

    not_stored = f"AND NOT EXISTS (SELECT 1 FROM {tbl} d WHERE d.id = s.id)"
    res.added = conn.execute(f"SELECT count(*) {staged} {not_stored}", sp).fetchone()[0]

    if op.sweep:
        d_keep = "AND d.id NOT IN (SELECT id FROM temp.sync_keep)" if op.keep else ""
        conn.execute(
            f"INSERT INTO temp.sync_swept(id) SELECT d.id FROM {tbl} d WHERE d.origin=? {d_keep} "
            "AND NOT EXISTS (SELECT 1 FROM sync_staging s "
            "WHERE s.scope=? AND s.coll=? AND s.id = d.id)",
            (origin, scope, coll),
        )
        res.removed = conn.execute("SELECT count(*) FROM temp.sync_swept").fetchone()[0]

    total = res.added + res.changed + res.removed
    if total <= limit:
        details = [
            DocChange("added", doc_id, None, load_fields(text))
            for doc_id, text in conn.execute(f"SELECT s.id, s.fields {staged} {not_stored}", sp)
        ]
        details += changed_details
        details += [
            DocChange("removed", doc_id, load_fields(text), None)
            for doc_id, text in conn.execute(
                f"SELECT d.id, d.fields FROM {tbl} d JOIN temp.sync_swept w ON w.id = d.id"
            )
        ]
        res.changes = details

    # Apply: origin of identical documents, changed documents, removals, then additions.
    conn.execute(
        f"UPDATE {tbl} SET origin=? WHERE origin IS NOT ? AND id IN (SELECT s.id {staged})",
        (origin, origin, *sp),
    )
    if res.changed:
        conn.execute(
            f"UPDATE {tbl} SET fields=(SELECT s.fields FROM sync_staging s "
            f"WHERE s.scope=? AND s.coll=? AND s.id={tbl}.id), origin=?, rev=NULL "
            "WHERE id IN (SELECT id FROM temp.sync_changed)",
            (scope, coll, origin),
        )
    if res.removed:
        conn.execute(f"DELETE FROM {tbl} WHERE id IN (SELECT id FROM temp.sync_swept)")
        conn.execute(
            "DELETE FROM sync_bases WHERE coll=? AND id IN (SELECT id FROM temp.sync_swept)",
            (coll,),
        )
    if res.added:
        conn.execute(
            f"INSERT INTO {tbl}(id, fields, origin, rev) SELECT s.id, s.fields, ?, NULL "
            f"{staged} {not_stored}",
            (origin, *sp),
        )
    return res

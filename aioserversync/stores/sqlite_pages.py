"""SQLiteStore's :class:`~aioserversync.stores.base.PutDocs`: a page of documents as one JSON text.

A hub's pull page in its page form is one JSON object, ``"<rev>:<id>"`` -> fields. SQLite reads
that text as it is (``json_each``), splits each key at its first colon and writes every row in
one statement, without the GIL; no object per document is built in Python. A key that is not
``"<rev>:<id>"`` (``rev`` decimal digits, or empty for none) or a value that is not an object
makes ``json()`` fail on purpose, in the same pass as the insert, so the statement (and the
batch) fails as a whole. Checking the keys takes a fifth of the statement's time (SQLite calls
``instr`` once per use of the colon's position): a text whose keys the caller has checked
(``PutDocs.keys_checked``; an edge checks a pull page's keys with one regular expression while
SQLite writes the page before it) is written by a statement that only checks the values.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ..exceptions import StoreError
from .ops import BatchResult, PutDocs
from .sqlite_schema import SQLiteDB
from .wireform import check_collection, check_origin_rev

__all__ = ["put_docs"]

_UPSERT = (
    " ON CONFLICT(id) DO UPDATE "
    "SET fields=excluded.fields, origin=excluded.origin, rev=excluded.rev"
)
_PUT_DOCS = (
    "INSERT INTO {t}(id, fields, origin, rev) "
    "SELECT substr(key, p + 1), "
    "CASE WHEN type = 'object' AND (p = 1 OR (p BETWEEN 2 AND 19 "
    "AND substr(key, 1, p - 1) NOT GLOB '*[^0-9]*')) THEN value "
    "ELSE json('not a \"<rev>:<id>\" key with an object') END, "
    "?, CAST(NULLIF(substr(key, 1, p - 1), '') AS INTEGER) "
    "FROM (SELECT key, value, type, instr(key, ':') AS p FROM json_each(?)) WHERE true" + _UPSERT
)
# Keys proven "<rev>:<id>" with a revision (wireform.revised_keys): only the values checked.
_PUT_CHECKED_DOCS = (
    "INSERT INTO {t}(id, fields, origin, rev) "
    "SELECT substr(key, instr(key, ':') + 1), "
    "CASE WHEN type = 'object' THEN value ELSE json('fields that are not an object') END, "
    "?, CAST(substr(key, 1, instr(key, ':') - 1) AS INTEGER) FROM json_each(?) WHERE true" + _UPSERT
)
_DROP_TOMBSTONES = (
    "DELETE FROM sync_tombstones WHERE coll=? AND id IN "
    "(SELECT substr(key, instr(key, ':') + 1) FROM json_each(?) WHERE instr(key, ':') > 1)"
)


def put_docs(db: SQLiteDB, ops: Sequence[PutDocs], _: BatchResult) -> None:
    """Apply a run of ``PutDocs``, one statement each (worker thread).

    Raises:
        StoreError: A text is not a JSON object of ``"<rev>:<id>"`` -> fields objects.
    """
    conn = db.conn
    for op in ops:
        coll, docs, origin = op.collection, op.docs, op.origin
        check_collection(coll)
        if origin is not None and type(origin) is not str:
            check_origin_rev(origin, None)
        if type(docs) is not str or not docs.startswith("{"):
            raise StoreError(f"PutDocs needs the JSON text of an object, got {docs!r:.80}")
        tbl = db.create_table(coll)
        try:
            sql = _PUT_CHECKED_DOCS if op.keys_checked else _PUT_DOCS
            conn.execute(sql.format(t=tbl), (origin, docs))
        except sqlite3.OperationalError as exc:
            if "JSON" not in str(exc):
                raise
            raise StoreError(f"PutDocs needs a JSON object of wire-form fields: {exc}") from None
        if has_tombstones(conn, coll):
            conn.execute(_DROP_TOMBSTONES, (coll, docs))


def has_tombstones(conn: sqlite3.Connection, coll: str) -> bool:
    """Whether ``coll`` keeps any tombstone (only a hub does: an edge's puts skip the lookup)."""
    row = conn.execute("SELECT 1 FROM sync_tombstones WHERE coll=? LIMIT 1", (coll,)).fetchone()
    return row is not None

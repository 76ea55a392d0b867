"""Reads of :class:`~aioserversync.stores.sqlite.SQLiteStore`; every function runs on its worker.

Queries arrive compiled (:class:`FindQuery`): a SQL ``WHERE`` from ``query.compile_sql`` and, when
that translation is not exact, the Python matcher to post-filter rows. Decoding happens here too,
so the event loop only receives finished documents.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import orjson

from .. import query as _q
from ..typing import Document, JSONValue, WireFields
from .base import DocMeta, OutboxRecord, RevEntry, rev_entries
from .sqlite_schema import SQLiteDB
from .sqlite_staging import stage_count, stage_get, stage_revs
from .wireform import load_fields, load_json, row_to_doc

__all__ = [
    "FindQuery",
    "based_ids",
    "changes_since",
    "collections",
    "count",
    "find",
    "find_page",
    "get_docs",
    "get_fields",
    "get_meta",
    "get_meta_prefix",
    "ids_page",
    "max_rev",
    "meta_many",
    "min_tombstone_rev",
    "outbox_count",
    "outbox_select",
    "stage_count",
    "stage_get",
    "stage_revs",
]

_OUTBOX_COLUMNS = (
    "seq, coll, doc_id, op, payload, origin, state, mutation_id, base_rev, attempts, error, "
    "created_at, updated_at, extra"
)


@dataclass(frozen=True, slots=True)
class FindQuery:
    """A compiled query.

    Attributes:
        where: SQL condition over the ``id`` and ``fields`` columns.
        params: Its parameters.
        matcher: The Python matcher when ``where`` is only a superset; ``None`` when exact.
        order_sql: SQL ``ORDER BY`` terms, or ``None``.
        py_sort: A normalised sort to apply in Python (the SQL translation could not), or ``None``.
        projection: A projection to apply to each result, or ``None``.
    """

    where: str
    params: Sequence[Any]
    matcher: Any
    order_sql: str | None
    py_sort: list[tuple[str, int]] | None
    projection: Mapping[str, Any] | None


def _ids_json(ids: Sequence[str]) -> str:
    return orjson.dumps(list(ids)).decode()


def get_docs(db: SQLiteDB, coll: str, ids: Sequence[str]) -> dict[str, Document]:
    """Return decoded documents among ``ids``, in the order asked."""
    tbl = db.table(coll)
    if tbl is None or not ids:
        return {}
    found = dict(
        db.conn.execute(
            f"SELECT id, fields FROM {tbl} WHERE id IN (SELECT value FROM json_each(?))",
            (_ids_json(ids),),
        )
    )
    return {i: row_to_doc(i, found[i]) for i in ids if i in found}


def get_fields(db: SQLiteDB, coll: str, ids: Sequence[str]) -> dict[str, WireFields]:
    """Return the wire fields of the documents among ``ids``, in the order asked."""
    tbl = db.table(coll)
    if tbl is None or not ids:
        return {}
    found = dict(
        db.conn.execute(
            f"SELECT id, fields FROM {tbl} WHERE id IN (SELECT value FROM json_each(?))",
            (_ids_json(ids),),
        )
    )
    return {i: load_fields(found[i]) for i in ids if i in found}


def _project(q: FindQuery, docs: list[Document]) -> list[Document]:
    if q.projection:
        return [_q.apply_projection(d, q.projection) for d in docs]
    return docs


def find(db: SQLiteDB, coll: str, q: FindQuery, skip: int, limit: int) -> list[Document]:
    """Run a query with skip and limit (``limit=0``: no limit)."""
    tbl = db.table(coll)
    if tbl is None:
        return []
    conn = db.conn
    sql = f"SELECT id, fields FROM {tbl} WHERE {q.where}"
    params = list(q.params)
    if q.order_sql and q.py_sort is None:
        sql += f" ORDER BY {q.order_sql}"
    skip = max(skip, 0)
    if q.matcher is None and q.py_sort is None:
        if limit > 0 or skip:
            sql += " LIMIT ? OFFSET ?"
            params += [limit if limit > 0 else -1, skip]
        return _project(q, [row_to_doc(i, f) for i, f in conn.execute(sql, params)])
    matcher = q.matcher
    out: list[Document] = []
    if q.py_sort is None:
        skipped = 0
        for doc_id, text in conn.execute(sql, params):
            doc = row_to_doc(doc_id, text)
            if matcher is not None and not matcher.matches(doc):
                continue
            if skipped < skip:
                skipped += 1
                continue
            out.append(doc)
            if 0 < limit <= len(out):
                break
        return _project(q, out)
    for doc_id, text in conn.execute(sql, params):
        doc = row_to_doc(doc_id, text)
        if matcher is None or matcher.matches(doc):
            out.append(doc)
    out = _q.sort_documents(out, q.py_sort)[skip:]
    if limit > 0:
        out = out[:limit]
    return _project(q, out)


def find_page(
    db: SQLiteDB, coll: str, q: FindQuery, after: int, offset: int, size: int
) -> tuple[list[Document], int | None, int]:
    """Fetch one page of rows for ``iter_find`` (``q.py_sort`` must be ``None``).

    Without ``order_sql`` pages are keyed on ``rowid`` (``after``), which every index also
    orders by, so no page sorts; with it they use ``LIMIT``/``OFFSET``. Returns the matching
    documents of the page, the key to continue after (``None`` when the rows ran out) and the
    number of rows read.
    """
    tbl = db.table(coll)
    if tbl is None:
        return [], None, 0
    params = list(q.params)
    if q.order_sql:
        sql = (
            f"SELECT id, fields, rowid FROM {tbl} WHERE {q.where} ORDER BY {q.order_sql}, id "
            "LIMIT ? OFFSET ?"
        )
        params += [size, offset]
    else:
        sql = (
            f"SELECT id, fields, rowid FROM {tbl} WHERE ({q.where}) AND rowid > ? "
            "ORDER BY rowid LIMIT ?"
        )
        params += [after, size]
    rows = db.conn.execute(sql, params).fetchall()
    if not rows:
        return [], None, 0
    docs = [row_to_doc(i, f) for i, f, _ in rows]
    if q.matcher is not None:
        docs = [d for d in docs if q.matcher.matches(d)]
    last = rows[-1][2] if len(rows) == size else None
    return _project(q, docs), last, len(rows)


def count(db: SQLiteDB, coll: str, q: FindQuery) -> int:
    """Count matching documents."""
    tbl = db.table(coll)
    if tbl is None:
        return 0
    conn = db.conn
    if q.matcher is None:
        n: int = conn.execute(f"SELECT count(*) FROM {tbl} WHERE {q.where}", q.params).fetchone()[0]
        return n
    matcher = q.matcher
    return sum(
        1
        for i, f in conn.execute(f"SELECT id, fields FROM {tbl} WHERE {q.where}", q.params)
        if matcher.matches(row_to_doc(i, f))
    )


def collections(db: SQLiteDB) -> list[str]:
    """Names of collections with documents, bases or tombstones."""
    conn = db.conn
    names = {
        name for name, tbl in db.tables.items() if conn.execute(f"SELECT 1 FROM {tbl}").fetchone()
    }
    names.update(r[0] for r in conn.execute("SELECT DISTINCT coll FROM sync_bases"))
    names.update(r[0] for r in conn.execute("SELECT DISTINCT coll FROM sync_tombstones"))
    return sorted(names)


def meta_many(db: SQLiteDB, coll: str, ids: Sequence[str]) -> dict[str, DocMeta]:
    """Per-document metadata of the documents or bases among ``ids``."""
    if not ids:
        return {}
    conn = db.conn
    ids_json = _ids_json(ids)
    tbl = db.table(coll)
    docs: dict[str, tuple[Any, Any]] = {}
    if tbl is not None:
        docs = {
            i: (o, r)
            for i, o, r in conn.execute(
                f"SELECT id, origin, rev FROM {tbl} WHERE id IN (SELECT value FROM json_each(?))",
                (ids_json,),
            )
        }
    bases = {
        i: (f, r)
        for i, f, r in conn.execute(
            "SELECT id, fields, rev FROM sync_bases WHERE coll=? "
            "AND id IN (SELECT value FROM json_each(?))",
            (coll, ids_json),
        )
    }
    out: dict[str, DocMeta] = {}
    for i in ids:
        d = docs.get(i)
        b = bases.get(i)
        if d is None and b is None:
            continue
        out[i] = DocMeta(
            origin=None if d is None else d[0],
            rev=None if d is None else d[1],
            has_base=b is not None,
            base=None if b is None or b[0] is None else load_fields(b[0]),
            base_rev=None if b is None else b[1],
        )
    return out


def ids_page(
    db: SQLiteDB, coll: str, any_origin: bool, origin: str | None, after: int, size: int
) -> tuple[list[str], int]:
    """One page of ids in rowid order after rowid ``after``, optionally of one origin.

    Returns the ids and the rowid to continue after.
    """
    tbl = db.table(coll)
    if tbl is None:
        return [], after
    if any_origin:
        rows = db.conn.execute(
            f"SELECT id, rowid FROM {tbl} WHERE rowid > ? ORDER BY rowid LIMIT ?", (after, size)
        ).fetchall()
    else:
        rows = db.conn.execute(
            f"SELECT id, rowid FROM {tbl} WHERE origin IS ? AND rowid > ? ORDER BY rowid LIMIT ?",
            (origin, after, size),
        ).fetchall()
    return [r[0] for r in rows], (rows[-1][1] if rows else after)


def based_ids(db: SQLiteDB, coll: str) -> list[str]:
    """Ids with a base."""
    rows = db.conn.execute("SELECT id FROM sync_bases WHERE coll=? ORDER BY id", (coll,))
    return [r[0] for r in rows]


def _record(row: Sequence[Any]) -> OutboxRecord:
    return OutboxRecord(
        seq=row[0],
        collection=row[1],
        doc_id=row[2],
        op=row[3],
        payload=load_json(row[4]),
        origin=row[5],
        state=row[6],
        mutation_id=row[7],
        base_rev=row[8],
        attempts=row[9],
        error=load_json(row[10]),
        created_at=row[11],
        updated_at=row[12],
        extra=load_json(row[13]),
    )


def _outbox_where(
    collection: str | None, origin: str | None, states: Sequence[str]
) -> tuple[str, list[Any]]:
    where = ["state IN (SELECT value FROM json_each(?))"]
    params: list[Any] = [orjson.dumps(list(states)).decode()]
    if collection is not None:
        where.append("coll=?")
        params.append(collection)
    if origin is not None:
        where.append("origin=?")
        params.append(origin)
    return " AND ".join(where), params


def outbox_select(
    db: SQLiteDB,
    collection: str | None,
    origin: str | None,
    states: Sequence[str],
    after_seq: int,
    limit: int,
) -> list[OutboxRecord]:
    """Records in ``seq`` order."""
    where, params = _outbox_where(collection, origin, states)
    rows = db.conn.execute(
        f"SELECT {_OUTBOX_COLUMNS} FROM sync_outbox WHERE seq > ? AND {where} ORDER BY seq LIMIT ?",
        (after_seq, *params, limit if limit > 0 else -1),
    )
    return [_record(r) for r in rows]


def outbox_for_docs(db: SQLiteDB, coll: str, ids: Sequence[str]) -> list[OutboxRecord]:
    """Every record of the given documents, in ``seq`` order."""
    rows = db.conn.execute(
        f"SELECT {_OUTBOX_COLUMNS} FROM sync_outbox WHERE coll=? "
        "AND doc_id IN (SELECT value FROM json_each(?)) ORDER BY seq",
        (coll, _ids_json(ids)),
    )
    return [_record(r) for r in rows]


def outbox_count(
    db: SQLiteDB, collection: str | None, origin: str | None, states: Sequence[str]
) -> int:
    """Count records."""
    where, params = _outbox_where(collection, origin, states)
    n: int = db.conn.execute(f"SELECT count(*) FROM sync_outbox WHERE {where}", params).fetchone()[
        0
    ]
    return n


def get_meta(db: SQLiteDB, key: str) -> JSONValue:
    """One metadata value, or ``None``."""
    row = db.conn.execute("SELECT value FROM sync_meta WHERE key=?", (key,)).fetchone()
    return None if row is None else load_json(row[0])


def get_meta_prefix(db: SQLiteDB, prefix: str) -> dict[str, JSONValue]:
    """Metadata keys starting with ``prefix``, in key order."""
    out: dict[str, JSONValue] = {}
    for key, value in db.conn.execute(
        "SELECT key, value FROM sync_meta WHERE key >= ? ORDER BY key", (prefix,)
    ):
        if not key.startswith(prefix):
            break
        out[key] = load_json(value)
    return out


def changes_since(db: SQLiteDB, coll: str, since: int, limit: int) -> list[RevEntry]:
    """Documents and tombstones with ``rev > since``, by (rev, id), at most ``limit``."""
    if limit <= 0:
        return []
    conn = db.conn
    tbl = db.rev_table(coll)
    docs: list[tuple[str, int, bytes | None]] = []
    if tbl is not None:
        docs = [
            (i, r, f.encode())
            for i, r, f in conn.execute(
                f"SELECT id, rev, fields FROM {tbl} WHERE rev > ? ORDER BY rev, id LIMIT ?",
                (since, limit),
            )
        ]
    tombs: list[tuple[str, int, bytes | None]] = [
        (i, r, None)
        for i, r in conn.execute(
            "SELECT id, rev FROM sync_tombstones WHERE coll=? AND rev > ? ORDER BY rev, id LIMIT ?",
            (coll, since, limit),
        )
    ]
    if tombs:
        docs = list(islice(heapq.merge(docs, tombs, key=lambda e: (e[1], e[0])), limit))
    return rev_entries(docs)


def max_rev(db: SQLiteDB, coll: str) -> int:
    """Largest document or tombstone revision, 0 if none."""
    conn = db.conn
    tbl = db.rev_table(coll)
    best = 0
    if tbl is not None:
        row = conn.execute(
            f"SELECT rev FROM {tbl} WHERE rev IS NOT NULL ORDER BY rev DESC LIMIT 1"
        ).fetchone()
        best = row[0] if row else 0
    t = conn.execute("SELECT max(rev) FROM sync_tombstones WHERE coll=?", (coll,)).fetchone()[0]
    return max(best, t or 0)


def min_tombstone_rev(db: SQLiteDB, coll: str) -> int | None:
    """Smallest tombstone revision, or ``None``."""
    row = db.conn.execute("SELECT min(rev) FROM sync_tombstones WHERE coll=?", (coll,)).fetchone()
    value: int | None = row[0]
    return value

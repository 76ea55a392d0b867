"""An in-memory SQLite table in the store's layout, for running translated selectors and sorts."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from aioserversync import ejson
from aioserversync.ids import id_stringify
from aioserversync.query import (
    compile_selector,
    compile_sql,
    index_expressions,
    register_sqlite_functions,
    sql_order_by,
)


def wire_fields(doc: dict[str, Any]) -> str:
    """The ``fields`` column: JSON text of the wire form without ``_id``."""
    return ejson.dumps({k: v for k, v in doc.items() if k != "_id"}).decode()


class Table:
    """Rows ``(id, fields)``: the wire id and the EJSON wire form without ``_id``."""

    def __init__(self, indexed: Sequence[str] = ()) -> None:
        self.conn = sqlite3.connect(":memory:")
        register_sqlite_functions(self.conn)
        self.conn.execute("CREATE TABLE docs (id TEXT PRIMARY KEY, fields TEXT NOT NULL)")
        n = 0
        for path in indexed:
            for expr in index_expressions(path):
                self.conn.execute(f"CREATE INDEX ix{n} ON docs ({expr})")
                n += 1

    def load(self, docs: Sequence[dict[str, Any]]) -> None:
        """Replace the rows with ``docs`` (each needs an ``_id``)."""
        self.conn.execute("DELETE FROM docs")
        self.conn.executemany(
            "INSERT INTO docs VALUES (?, ?)",
            [(id_stringify(d["_id"]), wire_fields(d)) for d in docs],
        )

    def find_ids(self, selector: Any) -> tuple[set[str], bool]:
        """Wire ids the SQL selects (post-filtered by the matcher when inexact), and exactness."""
        plan = compile_sql(selector)
        rows = self.conn.execute(f"SELECT id, fields FROM docs WHERE {plan.where}", plan.params)
        if plan.exact:
            return {r[0] for r in rows}, True
        m = compile_selector(selector)
        out = set()
        for wire_id, fields in rows:
            doc = ejson.loads(fields)
            doc["_id"] = wire_id
            if m.matches(doc):
                out.add(wire_id)
        return out, False

    def sorted_ids(self, sort: Any) -> list[str]:
        """Wire ids in the order of ``sql_order_by`` (ties broken by insertion order)."""
        order = sql_order_by(sort)
        tail = f"{order}, rowid" if order else "rowid"
        return [r[0] for r in self.conn.execute(f"SELECT id FROM docs ORDER BY {tail}")]

    def plan_details(self, selector: Any) -> list[str]:
        """``EXPLAIN QUERY PLAN`` details for the translated selector."""
        plan = compile_sql(selector)
        rows = self.conn.execute(
            f"EXPLAIN QUERY PLAN SELECT id FROM docs WHERE {plan.where}", plan.params
        )
        return [r[3] for r in rows]

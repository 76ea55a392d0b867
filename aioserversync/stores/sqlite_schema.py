"""The SQLite schema of :class:`~aioserversync.stores.sqlite.SQLiteStore`, and its connection.

Layout (schema version 2, kept in ``PRAGMA user_version``):

* ``sync_collections(n, name)``: local collection names. Collection ``name`` lives in table
  ``docs_<n>`` (SQLite identifiers are case-insensitive, so names are never used as identifiers).
* ``docs_<n>(id TEXT, fields TEXT, origin TEXT, rev INTEGER)``: one row per document; ``id``
  is the wire id, ``fields`` the JSON text of the wire-form fields without ``_id``. Unique on
  ``id`` through the named index ``docs_<n>_id``, and indexed on ``origin``. The partial index
  ``docs_<n>_rev`` on ``(rev, id)`` is built the first time the collection is read by revision
  (:meth:`SQLiteDB.rev_table`): only a hub does that, and an edge's writes are 5-7 % faster
  without it (the revisions it stores are its hub's). A rowid table: measured much faster than
  ``WITHOUT ROWID`` for random ids. The ``id`` index is a named one (not a ``UNIQUE`` column
  constraint) so that a large first round can drop and rebuild every index of the table (see
  :mod:`.sqlite_staging`); tables created by earlier versions keep their column constraint and
  work the same, only without that speed-up.
* ``sync_bases``, ``sync_tombstones``, ``sync_outbox`` (``seq`` is ``AUTOINCREMENT``: never reused)
  and ``sync_meta``.
* The table ``sync_stage``: the append-only log of resync rounds (see :mod:`.sqlite_staging`).
  It lives in a private temporary database attached as ``stage`` (``ATTACH ''``): a file of its
  own that is never synced nor checkpointed, so a round never holds a collection in memory and
  its staged data is not written twice through the WAL (measured about 30 % faster end to end).
  It is part of every transaction (a rolled back batch unstages too), and it is discarded when
  the store closes: staged rows only matter to the round in progress, which restarts at the next
  connect anyway. A batch that ends by emptying the log replaces that database with a new one
  after its commit instead of deleting the rows (0.1 s instead of 1.4 s for 1M staged rows).
* Temporary tables ``sync_stage_ids``, ``sync_keep``, ``sync_changed``, ``sync_swept`` and
  ``sync_added`` hold id sets while a ``StageCommit`` runs.

A new file is created with 16 KiB pages unless told otherwise (``page_size``; SQLite's default is
4 KiB): random ids dirty pages all over the ``id`` index, and fewer, larger pages write a batch
faster (measured figures in docs/stores.md). A file keeps the page size it was created with.

Version 1 kept staged rows in a durable ``sync_staging`` table; opening a version 1 file drops it.

Every method of :class:`SQLiteDB` runs on the store's worker thread.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Literal

from .. import query as _q
from ..exceptions import StoreError
from .sqlite_checkpoint import Checkpointer

__all__ = ["SCHEMA_VERSION", "SQLiteDB", "Synchronous"]

log = logging.getLogger("aioserversync.stores.sqlite")

SCHEMA_VERSION = 2
_JOURNAL_SIZE_LIMIT = 64 * 2**20
_TEMP_CACHE_KIB = 16 * 1024
_WAL_THRESHOLD_BYTES = 40 * 2**20
PAGE_SIZES = tuple(2**k for k in range(9, 17))
"""The page sizes SQLite accepts: 512 B to 64 KiB."""
DEFAULT_PAGE_SIZE = 16384
Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sync_collections(
    n INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS sync_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_bases(
    coll TEXT NOT NULL, id TEXT NOT NULL, fields TEXT, rev INTEGER, UNIQUE(coll, id));
CREATE TABLE IF NOT EXISTS sync_tombstones(
    coll TEXT NOT NULL, id TEXT NOT NULL, rev INTEGER NOT NULL,
    PRIMARY KEY(coll, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sync_tombstones_rev ON sync_tombstones(coll, rev, id);
CREATE TABLE IF NOT EXISTS sync_outbox(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    coll TEXT NOT NULL, doc_id TEXT NOT NULL, op TEXT NOT NULL, payload TEXT NOT NULL,
    origin TEXT, state TEXT NOT NULL, mutation_id TEXT NOT NULL, base_rev INTEGER,
    attempts INTEGER NOT NULL, error TEXT NOT NULL, created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, extra TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sync_outbox_doc ON sync_outbox(coll, doc_id);
CREATE INDEX IF NOT EXISTS sync_outbox_state ON sync_outbox(state, seq);
DROP TABLE IF EXISTS sync_staging;
"""

_STAGE = """
CREATE TABLE IF NOT EXISTS stage.sync_stage(
    seq INTEGER PRIMARY KEY, scope TEXT NOT NULL, coll TEXT NOT NULL, id TEXT NOT NULL,
    kind INTEGER NOT NULL, fields TEXT, cleared TEXT, rev INTEGER);
CREATE INDEX IF NOT EXISTS stage.sync_stage_group ON sync_stage(scope, coll);
CREATE INDEX IF NOT EXISTS stage.sync_stage_edits ON sync_stage(scope, coll) WHERE kind<>0;
"""

_TEMP = """
CREATE TEMP TABLE IF NOT EXISTS sync_stage_ids(
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, n INTEGER NOT NULL, kind INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS sync_added(id TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS sync_keep(id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS sync_changed(id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS sync_swept(id TEXT PRIMARY KEY) WITHOUT ROWID;
"""

_DOC_TABLE = """
CREATE TABLE IF NOT EXISTS {t}(
    id TEXT NOT NULL, fields TEXT NOT NULL, origin TEXT, rev INTEGER);
CREATE UNIQUE INDEX IF NOT EXISTS {t}_id ON {t}(id);
CREATE INDEX IF NOT EXISTS {t}_origin ON {t}(origin);
"""
_REV_INDEX = "CREATE INDEX IF NOT EXISTS {t}_rev ON {t}(rev, id) WHERE rev IS NOT NULL"


class SQLiteDB:
    """The connection and the collection registry of one SQLite file.

    Args:
        path: The database file, or ``":memory:"``.
        synchronous: ``PRAGMA synchronous``; ``NORMAL`` (the default) never loses a committed
            transaction to a process crash, only possibly the last ones to a power loss.
        cache_mb: Page cache size in MiB.
        wal_autocheckpoint: WAL pages that trigger a checkpoint (larger: fewer checkpoints, a
            larger WAL file; 0: only when the store closes; ``None``: 40 MiB worth of pages).
            Checkpoints run on a background thread (:mod:`.sqlite_checkpoint`).
        busy_timeout_ms: How long to wait for another process holding the write lock.
        page_size: The page size of a new database file, in bytes (a power of two from 512 to
            65536). An existing file keeps the page size it was created with.
    """

    def __init__(
        self,
        path: str,
        *,
        synchronous: Synchronous = "NORMAL",
        cache_mb: int = 64,
        wal_autocheckpoint: int | None = None,
        busy_timeout_ms: int = 5000,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError(f"invalid synchronous mode {synchronous!r}")
        if page_size not in PAGE_SIZES:
            raise StoreError(
                f"invalid page_size {page_size!r}: a power of two from 512 to 65536 is required"
            )
        self.path = path
        self._synchronous = synchronous
        self._cache_kib = int(cache_mb) * 1024
        self._wal_autocheckpoint = None if wal_autocheckpoint is None else int(wal_autocheckpoint)
        self._page_size = int(page_size)
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._conn: sqlite3.Connection | None = None
        self.checkpointer: Checkpointer | None = None
        self.tables: dict[str, str] = {}
        self._created: list[str] = []
        self._rev_indexed: set[str] = set()
        self.stage_reset = False
        """Set by a batch that ends by emptying the staging log (see :meth:`reset_stage`)."""

    @property
    def conn(self) -> sqlite3.Connection:
        """The open connection."""
        conn = self._conn
        if conn is None:
            raise StoreError("the SQLite connection is closed")
        return conn

    def open(self) -> None:
        """Connect, set the pragmas, create the schema and load the registry."""
        if self._conn is not None:
            return
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, cached_statements=256
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
        checkpointer = None
        try:
            conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
            # Only a new, empty file takes it (before WAL mode is set); others keep theirs.
            conn.execute(f"PRAGMA page_size={self._page_size}")
            wal = False
            if self.path != ":memory:":
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                wal = str(mode).lower() == "wal"
                if not wal:
                    log.warning("%s: journal_mode is %s, not WAL", self.path, mode)
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute(f"PRAGMA cache_size={-self._cache_kib}")
            # Staged rounds live in the temporary database: on a file, with a bounded cache.
            conn.execute("PRAGMA temp_store=FILE")
            conn.execute(f"PRAGMA temp.cache_size={-_TEMP_CACHE_KIB}")
            page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
            threshold = self._wal_autocheckpoint
            if threshold is None:
                threshold = _WAL_THRESHOLD_BYTES // page_size
            if wal:
                # Checkpoints run on a thread of their own; the writer only appends to the WAL.
                conn.execute("PRAGMA wal_autocheckpoint=0")
                conn.execute(f"PRAGMA journal_size_limit={_JOURNAL_SIZE_LIMIT}")
                checkpointer = Checkpointer(
                    self.path,
                    threshold_pages=threshold,
                    page_size=page_size,
                    busy_timeout_ms=self._busy_timeout_ms,
                )
            else:
                conn.execute(f"PRAGMA wal_autocheckpoint={threshold}")
            conn.execute("PRAGMA foreign_keys=OFF")
            register = getattr(_q, "register_sqlite_functions", None)
            if register is not None:
                register(conn)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path!r} has schema version {version}, newer than this library "
                    f"({SCHEMA_VERSION})"
                )
            conn.execute("BEGIN IMMEDIATE")
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
            for stmt in _TEMP.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            self._attach_stage(conn)
            self.tables = {
                name: f"docs_{n}"
                for n, name in conn.execute("SELECT n, name FROM sync_collections")
            }
            if checkpointer is not None:
                checkpointer.start()
        except BaseException as exc:
            if checkpointer is not None:
                checkpointer.stop()
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
            raise
        self._conn = conn
        self.checkpointer = checkpointer

    @staticmethod
    def _attach_stage(conn: sqlite3.Connection) -> None:
        conn.execute("ATTACH DATABASE '' AS stage")
        conn.execute(f"PRAGMA stage.cache_size={-_TEMP_CACHE_KIB}")
        for stmt in _STAGE.split(";"):
            if stmt.strip():
                conn.execute(stmt)

    def reset_stage(self) -> None:
        """Empty the staging log at once by replacing its database (outside a transaction).

        Deleting the rows visits every page of the log (1.4 s for 1M staged documents); a new
        private database costs about as much as deleting a file. If a statement still reads
        the log, its rows are deleted instead. If the new database cannot be attached (no room
        for a temporary file), the error is logged and staging fails with a ``StoreError`` until
        the store is opened again.

        Raises:
            StoreError: The rows could not be deleted either (the batch itself was committed).
        """
        conn = self.conn
        try:
            conn.execute("DETACH DATABASE stage")
        except sqlite3.Error as exc:  # a statement still reads it: delete the rows instead
            log.debug("%s: staging log not replaced (%s); deleting its rows", self.path, exc)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("DELETE FROM stage.sync_stage")
                conn.execute("COMMIT")
            except sqlite3.Error as exc2:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StoreError(
                    f"the batch was committed, but its staging log could not be emptied: {exc2}"
                ) from exc2
            return
        try:
            self._attach_stage(conn)
        except sqlite3.Error:
            log.exception("%s: cannot attach a new staging database", self.path)

    def after_commit(self) -> None:
        """Let the checkpointer know that a transaction was committed."""
        checkpointer = self.checkpointer
        if checkpointer is not None and self._conn is not None:
            checkpointer.after_commit(self._conn)

    def close(self) -> None:
        """Stop the checkpointer and close the connection (idempotent)."""
        checkpointer, self.checkpointer = self.checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()
        conn, self._conn = self._conn, None
        if conn is not None:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()

    def table(self, collection: str) -> str | None:
        """Return the document table of ``collection``, or ``None`` if it has none yet."""
        return self.tables.get(collection)

    def rev_table(self, collection: str) -> str | None:
        """:meth:`table`, with the table's revision index built if it has none yet.

        Readers by revision (a hub's pulls, its feed and its counter) call this. On an existing
        table the build sorts the revised rows once (about 0.1 s per 100k documents).
        """
        tbl = self.tables.get(collection)
        if tbl is not None and tbl not in self._rev_indexed:
            self.conn.execute(_REV_INDEX.format(t=tbl))
            self._rev_indexed.add(tbl)
        return tbl

    def create_table(self, collection: str) -> str:
        """Return the document table of ``collection``, creating it inside the current transaction.

        A table created in a transaction that is rolled back is forgotten by
        :meth:`forget_created`.
        """
        tbl = self.tables.get(collection)
        if tbl is not None:
            return tbl
        conn = self.conn
        cur = conn.execute("INSERT INTO sync_collections(name) VALUES (?)", (collection,))
        tbl = f"docs_{cur.lastrowid}"
        for stmt in _DOC_TABLE.format(t=tbl).split(";"):
            if stmt.strip():
                conn.execute(stmt)
        self.tables[collection] = tbl
        self._created.append(collection)
        return tbl

    def commit_created(self) -> None:
        """Keep the tables created in the transaction that just committed."""
        self._created.clear()

    def forget_created(self) -> None:
        """Forget the tables (and revision indexes) created in the transaction just rolled back."""
        for name in self._created:
            self.tables.pop(name, None)
        self._created.clear()
        self._rev_indexed.clear()  # built again (IF NOT EXISTS) by the next reader

"""WAL checkpoints on a thread of their own, off the writer's path.

With SQLite's automatic checkpoints, the transaction whose commit pushes the WAL past the
threshold also copies the whole WAL back into the database file and syncs it: measured up to 6x
the cost of the commit itself on a bulk load, and paid while the engine waits for that batch.
:class:`Checkpointer` instead runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection and
thread whenever the writer reports that the WAL grew past the threshold. A passive checkpoint never
blocks the writer, and the writer's next transaction restarts the WAL once everything was copied
back. If the WAL still grows far beyond the threshold (a writer faster than the disk), the writer
checkpoints itself, so the file stays bounded. It does so only once a background checkpoint has had
its chance and finished: one large transaction (the first round of a big collection) also leaves a
WAL far beyond the threshold, and copying it back on the writer held that round's commit up by
2 s at 1M documents.

The trigger is the WAL *file* size, which does not shrink when SQLite rewinds the log (only when it
exceeds ``journal_size_limit``). After one large transaction (an initial sync) the file stays above
the threshold while the log inside is small, so background checkpoints are spaced at least
``min_interval`` apart: without that, each small commit woke a checkpoint and its two fsyncs, a
hundred times a second under live traffic, and the disk's periodic journal commit then stalled a
writer's commit for 60-100 ms (measured in the B4 benchmark: p99 latency 65 ms -> 10 ms).
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time

__all__ = ["Checkpointer"]

log = logging.getLogger("aioserversync.stores.sqlite")

_WRITER_FACTOR = 8


class Checkpointer:
    """Checkpoints one WAL database from a background thread.

    Args:
        path: The database file.
        threshold_pages: WAL pages that trigger a background checkpoint (``<= 0``: never).
        page_size: The database's page size in bytes.
        busy_timeout_ms: The checkpoint connection's busy timeout.
        min_interval: Seconds between the end of a background checkpoint and the next one.
    """

    def __init__(
        self,
        path: str,
        *,
        threshold_pages: int,
        page_size: int,
        busy_timeout_ms: int,
        min_interval: float = 0.5,
    ) -> None:
        self.path = path
        self._wal = path + "-wal"
        self._threshold = max(int(threshold_pages), 0) * int(page_size)
        self._busy_timeout_ms = busy_timeout_ms
        self._min_interval = float(min_interval)
        self._last = -math.inf
        self._wake = threading.Event()
        self._stop = False
        self._busy = False
        self._behind = False
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self.checkpoints = 0
        """Background checkpoints run so far."""

    @property
    def enabled(self) -> bool:
        """Whether checkpoints are triggered at all."""
        return self._threshold > 0

    def start(self) -> None:
        """Open the checkpoint connection and start the thread (idempotent).

        Raises:
            sqlite3.Error: The database cannot be opened.
        """
        if self._thread is not None or not self.enabled:
            return
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        self._conn = conn
        self._stop = False
        self._thread = threading.Thread(
            target=self._run, name="aioserversync-sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def after_commit(self, writer: sqlite3.Connection) -> None:
        """Called by the writer after each commit: wake the thread when the WAL is large."""
        if self._thread is None:
            return
        try:
            size = os.stat(self._wal).st_size
        except OSError:
            return
        if size < self._threshold:
            self._behind = False
            return
        if size >= self._threshold * _WRITER_FACTOR:
            if self._busy or not self._behind:
                # First let a background checkpoint copy it back (or finish the one it runs).
                self._behind = True
                if not self._busy:
                    self._wake.set()
                return
            # The background checkpoints cannot keep up: copy back on the writer, once.
            try:
                writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:
                log.warning("%s: checkpoint failed: %s", self.path, exc)
            return
        if time.monotonic() - self._last >= self._min_interval:
            self._wake.set()

    def _run(self) -> None:
        conn = self._conn
        assert conn is not None
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stop:
                return
            self._busy = True
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self.checkpoints += 1
            except sqlite3.Error as exc:  # busy, or the file went away: try again next time
                log.debug("%s: background checkpoint failed: %s", self.path, exc)
            finally:
                self._busy = False
            self._last = time.monotonic()

    def stop(self) -> None:
        """Stop the thread and close its connection (idempotent; blocks until it has finished)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop = True
            self._wake.set()
            thread.join()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

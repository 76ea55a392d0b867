"""A small cache of ``serversync/pull`` answers, per hub collection."""

from __future__ import annotations

__all__ = ["PullCache"]

PullKey = tuple[int, int, int, int, int]


class PullCache:
    """The last few ``serversync/pull`` answers of one collection, while they stay exact.

    Edges that start together (a fleet after a deploy, or a cold start) ask for the same pages:
    each answer is kept under ``(since, limit, form, revision, purged)``. The collection's
    revision moves only after a commit is in the store, so a key names one committed state; any
    commit or purge changes the key of later requests, and the next answer stored drops the
    older ones.
    """

    def __init__(self, max_entries: int = 4, max_bytes: int = 64 * 2**20) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._entries: dict[PullKey, bytes] = {}

    def get(self, key: PullKey) -> bytes | None:
        """The stored answer for ``key``, or ``None``."""
        return self._entries.get(key)

    def put(self, key: PullKey, result: bytes) -> None:
        """Store an answer; answers of an older state, and the oldest beyond the bounds, go."""
        if len(result) > self._max_bytes // self._max_entries:
            return
        entries = self._entries
        if any(k[3:] != key[3:] for k in entries):
            entries.clear()
        entries[key] = result
        while len(entries) > self._max_entries:
            del entries[next(iter(entries))]

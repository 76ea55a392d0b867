"""How long a hub keeps tombstones and mutation ids.

A retention is either an **age** (a :class:`~datetime.timedelta`: keep what was written within
that time) or a **revision count** (an ``int``: keep the last N revisions of the collection), or
``None`` (keep forever).

Ages are measured with *marks*: ``[milliseconds, revision]`` pairs saying "at this time the
collection's counter was at this revision". A write batch appends a mark when the last one is
older than a hundredth of the retention (so at most about a hundred marks are kept), stored with
the write. Everything at or below the revision of the newest mark older than the retention is
older than the retention and may go. Purging therefore lags behind the exact age by at most a
hundredth of it, never ahead of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TypeAlias

from ..exceptions import ConfigurationError

__all__ = ["Marks", "Retention", "RetentionSpec", "kept_marks", "wants_mark"]

RetentionSpec: TypeAlias = timedelta | int | None
Marks: TypeAlias = list[list[int]]
"""``[[milliseconds, revision], …]``, oldest first."""

_MIN_GRANULARITY_MS = 1000


class Retention:
    """A retention rule; see the module docstring.

    Args:
        spec: A :class:`~datetime.timedelta` (age), an ``int`` (revisions) or ``None`` (forever).
        what: Named in error messages.

    Raises:
        ConfigurationError: For a negative or zero value, or another type.
    """

    __slots__ = ("age_ms", "revisions")

    def __init__(self, spec: RetentionSpec, what: str = "retention") -> None:
        self.age_ms: int | None = None
        self.revisions: int | None = None
        if spec is None:
            return
        if isinstance(spec, timedelta):
            ms = int(spec.total_seconds() * 1000)
            if ms <= 0:
                raise ConfigurationError(f"{what} must be positive, got {spec!r}")
            self.age_ms = ms
        elif isinstance(spec, int) and not isinstance(spec, bool):
            if spec <= 0:
                raise ConfigurationError(f"{what} must be positive, got {spec!r}")
            self.revisions = spec
        else:
            raise ConfigurationError(
                f"{what} must be a timedelta (age), an int (revisions) or None, got {spec!r}"
            )

    def __repr__(self) -> str:
        if self.age_ms is not None:
            return f"Retention({timedelta(milliseconds=self.age_ms)!r})"
        return f"Retention({self.revisions!r})"

    @property
    def uses_marks(self) -> bool:
        """Whether writes must record time marks (age-based retention)."""
        return self.age_ms is not None

    def wants_mark(self, marks: Marks, now_ms: int) -> bool:
        """Whether a write at ``now_ms`` should append a mark."""
        if self.age_ms is None:
            return False
        if not marks:
            return True
        granularity = max(self.age_ms // 100, _MIN_GRANULARITY_MS)
        return now_ms - marks[-1][0] >= granularity

    def upto(self, rev: int, marks: Marks, now_ms: int) -> int:
        """The highest revision old enough to be dropped (0 when nothing is)."""
        if self.revisions is not None:
            return max(rev - self.revisions, 0)
        if self.age_ms is None:
            return 0
        cutoff = now_ms - self.age_ms
        best = 0
        for at, mark_rev in marks:
            if at > cutoff:
                break
            best = mark_rev
        return best


def wants_mark(marks: Marks, now_ms: int, rules: Sequence[Retention]) -> bool:
    """Whether a write at ``now_ms`` should append a mark for any of the age-based ``rules``."""
    return any(rule.wants_mark(marks, now_ms) for rule in rules)


def kept_marks(marks: Marks, now_ms: int, rules: Sequence[Retention]) -> Marks:
    """The marks the age-based ``rules`` still need at ``now_ms``.

    Marks newer than the shortest cutoff are kept, plus the newest one older than it (the one a
    purge uses).
    """
    ages = [rule.age_ms for rule in rules if rule.age_ms is not None]
    if not ages:
        return []
    cutoff = now_ms - max(ages)
    old = [m for m in marks if m[0] <= cutoff]
    new = [m for m in marks if m[0] > cutoff]
    return old[-1:] + new

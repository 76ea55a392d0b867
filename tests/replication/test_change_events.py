"""Change events built on the hot path equal those built by the dataclass."""

from __future__ import annotations

import dataclasses

import pytest

from aioserversync.replication.changes import ChangeEvent, remote_event


def test_remote_event_equals_the_dataclass() -> None:
    fast = remote_event("changed", "items", "a1", {"n": 1}, ("gone",), "hub")
    slow = ChangeEvent("changed", "items", "a1", {"n": 1}, ("gone",), origin="hub")
    assert type(fast) is ChangeEvent
    assert fast == slow and repr(fast) == repr(slow)
    assert fast.source == "remote" and fast.error is None and fast.conflict is None
    removed = remote_event("removed", "items", 7, None, (), None)
    assert removed == ChangeEvent("removed", "items", 7)


def test_remote_events_stay_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        remote_event("added", "items", "a", {}, (), None).op = "removed"  # type: ignore[misc]

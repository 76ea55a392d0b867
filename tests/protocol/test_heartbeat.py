"""Heartbeat: Meteor's liveness rules on fake timestamps (ddp-facts §2)."""

from __future__ import annotations

from aioserversync.protocol.heartbeat import Heartbeat


def test_idle_link_pings_after_interval_then_times_out() -> None:
    hb = Heartbeat(17.5, 15.0, now=100.0)
    assert hb.enabled
    assert hb.next_deadline() == 117.5
    assert hb.poll(117.4) is None
    assert hb.poll(117.5) == "ping"
    assert hb.awaiting_pong
    assert hb.next_deadline() == 132.5
    assert hb.poll(120.0) is None  # no second ping while one is outstanding
    assert hb.poll(132.49) is None
    assert hb.poll(132.5) == "timeout"


def test_any_message_is_proof_of_life() -> None:
    hb = Heartbeat(10, 5, now=0.0)
    assert hb.poll(10.0) == "ping"
    hb.received(12.0)  # not necessarily a pong
    assert not hb.awaiting_pong
    assert hb.poll(16.0) is None  # the timeout is cancelled
    assert hb.next_deadline() == 22.0
    assert hb.poll(22.0) == "ping"


def test_traffic_postpones_pings() -> None:
    hb = Heartbeat(10, 5, now=0.0)
    for t in (3.0, 9.0, 15.0):
        hb.received(t)
        assert hb.poll(t + 9.9) is None
    assert hb.poll(25.0) == "ping"


def test_zero_disables() -> None:
    for interval, timeout in ((0, 15.0), (17.5, 0), (0, 0)):
        hb = Heartbeat(interval, timeout, now=0.0)
        assert not hb.enabled
        assert hb.poll(1e9) is None
        assert hb.next_deadline() is None

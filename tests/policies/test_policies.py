"""Policy tables: routing per mode, coalescing, error classification, push parameters."""

from __future__ import annotations

import datetime as dt

import pytest

from aioserversync.exceptions import ConfigurationError, MeteorError, OfflineError
from aioserversync.policies import (
    OnlineWritePolicy,
    ReadPolicy,
    SyncPolicy,
    WritePolicy,
    get_policy,
    register_policy,
)


@pytest.mark.parametrize("op", ["insert", "update", "remove"])
@pytest.mark.parametrize("live", [True, False])
def test_read_routes_everything_locally(op, live) -> None:
    assert ReadPolicy().route(op, live=live) == "local"
    assert not ReadPolicy.pushes


@pytest.mark.parametrize("op", ["insert", "update", "remove"])
@pytest.mark.parametrize("live", [True, False])
def test_write_queues_everything(op, live) -> None:
    assert WritePolicy().route(op, live=live) == "queue"


def test_online_write_routes() -> None:
    p = OnlineWritePolicy()
    assert p.route("insert", live=False) == "queue"
    assert p.route("update", live=True) == "direct"
    assert p.route("remove", live=True) == "direct"
    with pytest.raises(OfflineError):
        p.route("update", live=False)
    with pytest.raises(OfflineError):
        p.route("remove", live=False)
    assert p.route("update", live=False, unsent_insert=True) == "queue"


@pytest.mark.parametrize(
    ("pending", "new", "result"),
    [
        (None, "update", "update"),
        ("insert", "update", "insert"),
        ("insert", "remove", None),
        ("update", "update", "update"),
        ("update", "remove", "remove"),
        ("remove", "insert", "update"),
    ],
)
def test_coalesce(pending, new, result) -> None:
    assert WritePolicy().coalesce(pending, new) == result


def test_classify_errors() -> None:
    p = WritePolicy()
    assert p.classify_error("insert", MeteorError(409, "dup"), resent=True) == "settled"
    assert p.classify_error("update", MeteorError(403, "Access denied"), resent=False) == "reject"
    assert p.classify_error("update", MeteorError(500, "Internal"), resent=False) == "retry"
    assert p.classify_error("update", MeteorError("too-many-requests"), resent=False) == "retry"
    assert p.classify_result("update", 0) == "conflict"
    assert p.classify_result("update", 1) == "settled"


def test_push_params_use_id_selectors_and_decoded_values() -> None:
    p = WritePolicy()
    base = {"n": 1, "old": True}
    target = {"n": 2, "at": {"$date": 0}}
    op, params = p.push_params("update", "abc", target, base)
    assert op == "update"
    assert params[0] == {"_id": "abc"}
    assert params[1]["$set"] == {"n": 2, "at": dt.datetime(1970, 1, 1, tzinfo=dt.UTC)}
    assert params[1]["$unset"] == {"old": ""}
    assert p.push_params("update", "abc", dict(base), base) is None
    assert p.push_params("remove", "abc", None, base) == ("remove", [{"_id": "abc"}])
    assert p.push_params("insert", "abc", {"n": 1}, None) == ("insert", [{"_id": "abc", "n": 1}])


def test_registry() -> None:
    class Custom(WritePolicy):
        name = "custom"

    register_policy("custom", Custom)
    assert isinstance(get_policy("custom"), Custom)
    with pytest.raises(ConfigurationError):
        get_policy("nope")
    with pytest.raises(ConfigurationError):
        register_policy("bad", object)  # type: ignore[arg-type]
    assert isinstance(get_policy("online-write"), SyncPolicy)

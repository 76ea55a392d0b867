"""ClientProtocol: every message type and state transition, and bad input (no event loop)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from aioserversync.ejson import EJSONCustom
from aioserversync.exceptions import (
    ConfigurationError,
    EJSONError,
    LocalProtocolError,
    MethodError,
    MethodNotFound,
    NotAuthorized,
    RemoteProtocolError,
    SubscriptionError,
    SubscriptionNotFound,
    VersionMismatch,
)
from aioserversync.protocol.client import ClientProtocol, PendingMethod
from aioserversync.protocol.connection import CLOSED, CONNECTED, CONNECTING, FAILED
from aioserversync.protocol.events import (
    Added,
    AddedBefore,
    Changed,
    Connected,
    Failed,
    InvalidMessage,
    MethodDone,
    MovedBefore,
    NoSub,
    Ping,
    Pong,
    Ready,
    Removed,
    Result,
    ServerError,
    Updated,
)

DATE = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
DATE_MS = 1704164645678


def wire(frames: list[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(f) for f in frames]


def feed(p: ClientProtocol, msg: dict[str, Any] | str | bytes) -> list[Any]:
    data = orjson.dumps(msg) if isinstance(msg, dict) else msg
    p.receive_text(data)
    return p.events_received()


def connected(**kw: Any) -> ClientProtocol:
    p = ClientProtocol(**kw)
    p.send_connect()
    p.data_to_send()
    assert feed(p, {"msg": "connected", "session": "S1"}) == [Connected("S1")]
    return p


def invalid(events: list[Any]) -> RemoteProtocolError:
    assert len(events) == 1 and isinstance(events[0], InvalidMessage), events
    return events[0].error


# --------------------------------------------------------------------------- handshake


def test_connect_frame_has_version_and_support() -> None:
    p = ClientProtocol()
    p.send_connect()
    assert wire(p.data_to_send()) == [
        {"msg": "connect", "version": "1", "support": ["1", "pre2", "pre1"]}
    ]


def test_connect_with_previous_session_and_version_choice() -> None:
    p = ClientProtocol(version="pre2", support=("pre2", "pre1"))
    p.send_connect(session="Jjwjg6gouWLXhMGKW")
    assert wire(p.data_to_send()) == [
        {
            "msg": "connect",
            "session": "Jjwjg6gouWLXhMGKW",
            "version": "pre2",
            "support": ["pre2", "pre1"],
        }
    ]


def test_connect_only_once() -> None:
    p = ClientProtocol()
    p.send_connect()
    with pytest.raises(LocalProtocolError):
        p.send_connect()


@pytest.mark.parametrize(("version", "support"), [("2", ("1",)), ("1", ()), ("1", ("1", 2))])
def test_bad_version_configuration(version: str, support: tuple[Any, ...]) -> None:
    with pytest.raises(ConfigurationError):
        ClientProtocol(version=version, support=support)


def test_connected_sets_state_session_and_version() -> None:
    p = ClientProtocol(version="pre2", support=("pre2",))
    p.send_connect()
    assert p.state is CONNECTING
    assert feed(p, {"msg": "connected", "session": "abc"}) == [Connected("abc")]
    assert (p.state, p.session, p.version) == (CONNECTED, "abc", "pre2")


def test_failed_sets_handshake_exc() -> None:
    p = ClientProtocol()
    p.send_connect()
    assert feed(p, {"msg": "failed", "version": "pre2"}) == [Failed("pre2")]
    assert p.state is FAILED
    assert isinstance(p.handshake_exc, VersionMismatch)
    assert p.handshake_exc.suggested == "pre2"


def test_second_connected_is_invalid() -> None:
    p = connected()
    err = invalid(feed(p, {"msg": "connected", "session": "S2"}))
    assert "connected" in str(err)
    assert p.session == "S1"


def test_failed_after_connected_is_invalid() -> None:
    p = connected()
    invalid(feed(p, {"msg": "failed", "version": "1"}))
    assert p.state is CONNECTED


def test_connected_needs_string_session() -> None:
    p = ClientProtocol()
    p.send_connect()
    invalid(feed(p, {"msg": "connected", "session": 5}))
    assert p.state is CONNECTING


def test_server_id_and_test_frames_are_ignored_silently() -> None:
    p = ClientProtocol()
    assert feed(p, {"server_id": "0"}) == []
    assert feed(p, {"testMessageOnConnect": True}) == []
    assert p.last_protocol_error is None


def test_other_frames_without_msg_are_invalid() -> None:
    p = ClientProtocol()
    invalid(feed(p, {"server_id": "0", "extra": 1}))
    invalid(feed(p, {"foo": 1}))
    assert p.last_protocol_error is not None


def test_unknown_msg_is_reported_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    p = connected()
    err = invalid(feed(p, {"msg": "wat"}))
    assert "wat" in str(err)
    assert "wat" in caplog.text
    # still usable afterwards
    assert feed(p, {"msg": "removed", "collection": "c", "id": "x"}) == [Removed("c", "x")]


def test_receive_eof_closes() -> None:
    p = connected()
    p.receive_eof()
    assert p.state is CLOSED
    with pytest.raises(LocalProtocolError):
        p.send_sub("x")


# --------------------------------------------------------------------------- heartbeats


def test_ping_is_answered_with_and_without_id() -> None:
    p = connected()
    assert feed(p, {"msg": "ping"}) == [Ping(None)]
    assert wire(p.data_to_send()) == [{"msg": "pong"}]
    assert feed(p, {"msg": "ping", "id": "p-42"}) == [Ping("p-42")]
    assert wire(p.data_to_send()) == [{"msg": "pong", "id": "p-42"}]


def test_pong_event_and_send_ping() -> None:
    p = connected()
    p.send_ping()
    p.send_ping("x")
    assert wire(p.data_to_send()) == [{"msg": "ping"}, {"msg": "ping", "id": "x"}]
    assert feed(p, {"msg": "pong", "id": "x"}) == [Pong("x")]
    assert feed(p, {"msg": "pong"}) == [Pong(None)]


def test_ping_before_connected_is_not_answered() -> None:
    p = ClientProtocol()
    assert feed(p, {"msg": "ping"}) == [Ping(None)]
    assert p.data_to_send() == []


def test_ping_with_bad_id_is_invalid() -> None:
    p = connected()
    invalid(feed(p, {"msg": "ping", "id": 5}))
    assert p.data_to_send() == []


# --------------------------------------------------------------------------- data


def test_added_with_fields_decoded() -> None:
    p = connected()
    events = feed(
        p,
        {
            "msg": "added",
            "collection": "tasks",
            "id": "a",
            "fields": {"t": "hi", "at": {"$date": DATE_MS}},
        },
    )
    assert events == [Added("tasks", "a", {"t": "hi", "at": DATE})]


def test_added_without_fields() -> None:
    p = connected()
    assert feed(p, {"msg": "added", "collection": "tasks", "id": "a"}) == [Added("tasks", "a", {})]


def test_added_nested_specials_and_escape() -> None:
    p = connected()
    fields = {
        "bin": {"$binary": "AAEC+vs="},
        "deep": {"list": [{"$date": 0}, {"$InfNaN": -1}], "x": {"$escape": {"$date": 5}}},
        "oid": {"$type": "oid", "$value": "5f1d7a0b2c3e4f5a6b7c8d9e"},
        "odd": {"$type": "mine", "$value": {"a": 1}},
    }
    [ev] = feed(p, {"msg": "added", "collection": "c", "id": "a", "fields": fields})
    f = ev.fields
    assert f["bin"] == b"\x00\x01\x02\xfa\xfb"
    assert f["deep"]["list"] == [datetime(1970, 1, 1, tzinfo=UTC), float("-inf")]
    assert f["deep"]["x"] == {"$date": 5}
    assert str(f["oid"]) == "5f1d7a0b2c3e4f5a6b7c8d9e"
    assert f["odd"] == EJSONCustom("mine", {"a": 1})


def test_added_fields_that_are_an_escaped_object() -> None:
    # A document whose only field is named "$date" is escaped at the top level by Meteor.
    p = connected()
    [ev] = feed(
        p, {"msg": "added", "collection": "c", "id": "a", "fields": {"$escape": {"$date": 5}}}
    )
    assert ev.fields == {"$date": 5}


def test_added_fields_that_decode_to_a_date_are_invalid() -> None:
    p = connected()
    invalid(feed(p, {"msg": "added", "collection": "c", "id": "a", "fields": {"$date": 5}}))


def test_added_as_str_frame() -> None:
    p = connected()
    text = '{"msg":"added","collection":"c","id":"a","fields":{"at":{"$date":0}}}'
    assert feed(p, text) == [Added("c", "a", {"at": datetime(1970, 1, 1, tzinfo=UTC)})]


def test_raw_mode_keeps_wire_fields_but_validates() -> None:
    p = connected(decode_data=False)
    fields = {"at": {"$date": DATE_MS}, "b": {"$binary": "AAEC"}, "n": {"x": [{"$date": 1}]}}
    assert feed(p, {"msg": "added", "collection": "c", "id": "a", "fields": fields}) == [
        Added("c", "a", fields)
    ]
    changed = {
        "msg": "changed",
        "collection": "c",
        "id": "a",
        "fields": {"at": {"$date": 1}},
        "cleared": ["b"],
    }
    assert feed(p, changed) == [Changed("c", "a", {"at": {"$date": 1}}, ("b",))]
    invalid(
        feed(p, {"msg": "added", "collection": "c", "id": "a", "fields": {"b": {"$binary": "!!"}}})
    )
    invalid(
        feed(p, {"msg": "changed", "collection": "c", "id": "a", "fields": {"d": {"$date": True}}})
    )
    invalid(
        feed(
            p,
            {
                "msg": "added",
                "collection": "c",
                "id": "a",
                "fields": {"o": {"$type": "oid", "$value": "zz"}},
            },
        )
    )


def test_raw_mode_escaped_keys_are_still_validated() -> None:
    # "\u0024date" is "$date": the frame holds no literal "$", so the fast path must not skip it.
    p = connected(decode_data=False)
    frame = b'{"msg":"added","collection":"c","id":"a","fields":{"d":{"\\u0024date":true}}}'
    invalid(feed(p, frame))
    p2 = connected()
    frame_ok = b'{"msg":"added","collection":"c","id":"a","fields":{"d":{"\\u0024date":0}}}'
    assert feed(p2, frame_ok) == [Added("c", "a", {"d": datetime(1970, 1, 1, tzinfo=UTC)})]


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (
            {"msg": "added", "collection": "c", "id": "a", "fields": {"_id": "b", "x": 1}},
            Added("c", "a", {"x": 1}),
        ),
        (
            {"msg": "changed", "collection": "c", "id": "a", "fields": {"_id": "b", "x": 1}},
            Changed("c", "a", {"x": 1}, ()),
        ),
        (
            {"msg": "changed", "collection": "c", "id": "a", "cleared": ["_id", "y"]},
            Changed("c", "a", {}, ("y",)),
        ),
        (
            {"msg": "addedBefore", "collection": "c", "id": "a", "fields": {"_id": 1, "x": 1}},
            AddedBefore("c", "a", {"x": 1}, None),
        ),
    ],
)
def test_an_id_among_the_fields_is_reported_and_dropped(msg: dict[str, Any], expected: Any) -> None:
    """The document id is the message's ``id``; a server sending ``_id`` among the fields would
    give the cached document a second id. The rest of the message still applies."""
    p = connected()
    events = feed(p, msg)
    assert events[-1] == expected
    assert [type(e) for e in events[:-1]] == [InvalidMessage]
    assert "'_id'" in str(events[0].error) and p.last_protocol_error is events[0].error


def test_changed_fields_and_cleared() -> None:
    p = connected()
    msg = {
        "msg": "changed",
        "collection": "c",
        "id": "a",
        "fields": {"when": {"$date": 0}},
        "cleared": ["done"],
    }
    assert feed(p, msg) == [
        Changed("c", "a", {"when": datetime(1970, 1, 1, tzinfo=UTC)}, ("done",))
    ]
    assert feed(p, {"msg": "changed", "collection": "c", "id": "a", "cleared": ["x"]}) == [
        Changed("c", "a", {}, ("x",))
    ]
    assert feed(p, {"msg": "changed", "collection": "c", "id": "a", "fields": {"x": 1}}) == [
        Changed("c", "a", {"x": 1}, ())
    ]


def test_removed() -> None:
    p = connected()
    assert feed(p, {"msg": "removed", "collection": "c", "id": "-5f1d"}) == [Removed("c", "-5f1d")]


def test_added_before_and_moved_before() -> None:
    p = connected()
    msg = {
        "msg": "addedBefore",
        "collection": "c",
        "id": "a",
        "fields": {"x": {"$date": 0}},
        "before": "b",
    }
    assert feed(p, msg) == [AddedBefore("c", "a", {"x": datetime(1970, 1, 1, tzinfo=UTC)}, "b")]
    msg = {"msg": "addedBefore", "collection": "c", "id": "a", "before": None}
    assert feed(p, msg) == [AddedBefore("c", "a", {}, None)]
    assert feed(p, {"msg": "movedBefore", "collection": "c", "id": "a", "before": None}) == [
        MovedBefore("c", "a", None)
    ]
    assert feed(p, {"msg": "movedBefore", "collection": "c", "id": "a", "before": "z"}) == [
        MovedBefore("c", "a", "z")
    ]
    invalid(feed(p, {"msg": "movedBefore", "collection": "c", "id": "a", "before": 3}))


def test_ready_with_several_subs() -> None:
    p = connected()
    assert feed(p, {"msg": "ready", "subs": ["a", "b"]}) == [Ready(("a", "b"))]


def test_nosub_plain_and_with_errors() -> None:
    p = connected()
    sid = p.send_sub("tasks")
    assert p.active_subs() == {sid: "tasks"}
    assert feed(p, {"msg": "nosub", "id": sid}) == [NoSub(sid, None)]
    assert p.active_subs() == {}
    err404 = {
        "isClientSafe": True,
        "error": 404,
        "reason": "Subscription 'x' not found",
        "message": "...",
        "errorType": "Meteor.Error",
    }
    [ev] = feed(p, {"msg": "nosub", "id": "s2", "error": err404})
    assert isinstance(ev.error, SubscriptionNotFound)
    assert ev.error.reason == "Subscription 'x' not found"
    [ev] = feed(
        p,
        {
            "msg": "nosub",
            "id": "s3",
            "error": {"error": "too-many-requests", "details": {"timeToReset": 5}},
        },
    )
    assert type(ev.error) is SubscriptionError
    assert (ev.error.error, ev.error.details) == ("too-many-requests", {"timeToReset": 5})
    [ev] = feed(p, {"msg": "nosub", "id": "s4", "error": {"error": 403}})
    assert isinstance(ev.error, NotAuthorized)


@pytest.mark.parametrize(
    "msg",
    [
        {"msg": "added", "collection": 1, "id": "a"},
        {"msg": "added", "collection": "c", "id": 2},
        {"msg": "added", "collection": "c"},
        {"msg": "added", "id": "a"},
        {"msg": "added", "collection": "c", "id": "a", "fields": [1]},
        {"msg": "added", "collection": "c", "id": "a", "fields": "x"},
        {"msg": "changed", "collection": "c", "id": "a", "fields": 3},
        {"msg": "changed", "collection": "c", "id": "a", "cleared": "x"},
        {"msg": "changed", "collection": "c", "id": "a", "cleared": [1]},
        {"msg": "changed", "collection": None, "id": "a"},
        {"msg": "removed", "collection": "c"},
        {"msg": "removed", "collection": "c", "id": None},
        {"msg": "addedBefore", "collection": "c", "id": "a", "fields": 1},
        {"msg": "ready", "subs": "a"},
        {"msg": "ready", "subs": [1]},
        {"msg": "ready"},
        {"msg": "nosub"},
        {"msg": "nosub", "id": 5},
        {"msg": "result"},
        {"msg": "result", "id": 1},
        {"msg": "updated", "methods": "1"},
        {"msg": "updated", "methods": [1]},
        {"msg": "updated"},
        {"msg": 5},
        {"msg": None, "x": 1},
        {"msg": ["added"]},
    ],
)
def test_wrong_types_are_invalid_messages(msg: dict[str, Any]) -> None:
    p = connected()
    err = invalid(feed(p, msg))
    assert err.frame is not None
    assert p.last_protocol_error is err


@pytest.mark.parametrize(
    "fields",
    [
        {"d": {"$date": "not a date"}},
        {"d": {"$date": True}},
        {"d": {"$date": 1e300}},
        {"d": {"$date": 10**17}},
        {"b": {"$binary": "%%%"}},
        {"b": {"$binary": 5}},
        {"n": {"$InfNaN": "x"}},
        {"r": {"$regexp": 1, "$flags": ""}},
        {"t": {"$type": 5, "$value": 1}},
        {"o": {"$type": "oid", "$value": "nothex"}},
        {"e": {"$escape": 5}},
        {"deep": [{"x": {"$date": "bad"}}]},
    ],
)
def test_invalid_ejson_in_fields(fields: dict[str, Any]) -> None:
    p = connected()
    err = invalid(feed(p, {"msg": "added", "collection": "c", "id": "a", "fields": fields}))
    assert isinstance(err.__cause__, EJSONError)


@pytest.mark.parametrize(
    "frame",
    [
        b"not json",
        b"{",
        b"[1, 2]",
        b"5",
        b'"x"',
        b"null",
        b"NaN",
        b'{"msg":"added"',
        "\udcff",
        b"\xff\xfe",
    ],
)
def test_bad_frames_never_raise(frame: bytes | str) -> None:
    p = connected()
    invalid(feed(p, frame))
    assert p.state is CONNECTED


def test_oversize_frame_is_refused() -> None:
    p = connected(max_size=100)
    big = orjson.dumps({"msg": "added", "collection": "c", "id": "a", "fields": {"x": "y" * 200}})
    err = invalid(feed(p, big))
    assert "max_size" in str(err)
    assert feed(p, {"msg": "removed", "collection": "c", "id": "a"}) == [Removed("c", "a")]
    unlimited = connected(max_size=None)
    assert len(feed(unlimited, big)) == 1


def test_unknown_fields_are_ignored() -> None:
    p = connected()
    msg = {"msg": "removed", "collection": "c", "id": "a", "future": {"x": 1}}
    assert feed(p, msg) == [Removed("c", "a")]


def test_receive_events_returns_pending_events_too() -> None:
    p = connected()
    p.receive_text(b'{"msg":"removed","collection":"c","id":"a"}')
    events = p.receive_events(b'{"msg":"added","collection":"c","id":"b","fields":{}}')
    assert events == [Removed("c", "a"), Added("c", "b", {})]
    assert p.events_received() == []


# --------------------------------------------------------------------------- subscriptions


def test_sub_frames() -> None:
    p = connected()
    sid = p.send_sub("tasks.byList", ["list1", {"limit": 10, "since": DATE}])
    assert len(sid) == 17
    sid2 = p.send_sub("all", id="mine")
    p.send_unsub("mine")
    assert wire(p.data_to_send()) == [
        {
            "msg": "sub",
            "id": sid,
            "name": "tasks.byList",
            "params": ["list1", {"limit": 10, "since": {"$date": DATE_MS}}],
        },
        {"msg": "sub", "id": "mine", "name": "all", "params": []},
        {"msg": "unsub", "id": "mine"},
    ]
    assert sid2 == "mine"


def test_sends_need_a_session() -> None:
    p = ClientProtocol()
    for call in (
        lambda: p.send_sub("x"),
        lambda: p.send_unsub("x"),
        lambda: p.send_method("m"),
        p.send_ping,
    ):
        with pytest.raises(LocalProtocolError):
            call()
    assert p.data_to_send() == []


def test_bad_params_raise_before_anything_is_queued() -> None:
    p = connected()
    with pytest.raises(EJSONError):
        p.send_sub("x", [{1, 2}])
    with pytest.raises(EJSONError):
        p.send_method("m", [object()])
    assert p.data_to_send() == []
    assert p.outstanding_methods() == []


def test_bad_names_raise() -> None:
    p = connected()
    with pytest.raises(LocalProtocolError):
        p.send_sub(5)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        p.send_method(None)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        p.send_method("m", random_seed=5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- methods


def test_method_ids_count_per_protocol_object() -> None:
    p = connected()
    assert [p.send_method("m"), p.send_method("m", [1]), p.send_method("m", id="x")] == [
        "1",
        "2",
        "x",
    ]
    assert p.send_method("m") == "3"
    frames = wire(p.data_to_send())
    assert frames[0] == {"msg": "method", "id": "1", "method": "m", "params": []}
    assert frames[1]["params"] == [1]


def test_method_frame_with_seed_and_ejson_params() -> None:
    p = connected()
    mid = p.send_method(
        "/tasks/insert", [{"text": "hi", "at": DATE}], random_seed="0123456789abcdef0123"
    )
    assert wire(p.data_to_send()) == [
        {
            "msg": "method",
            "id": mid,
            "method": "/tasks/insert",
            "params": [{"text": "hi", "at": {"$date": DATE_MS}}],
            "randomSeed": "0123456789abcdef0123",
        }
    ]


def test_duplicate_outstanding_id_is_refused() -> None:
    p = connected()
    p.send_method("m", id="7")
    with pytest.raises(LocalProtocolError):
        p.send_method("m", id="7")


def test_result_then_updated() -> None:
    p = connected()
    mid = p.send_method("m")
    assert feed(
        p, {"msg": "result", "id": mid, "result": {"ok": True, "at": {"$date": DATE_MS}}}
    ) == [Result(mid, {"ok": True, "at": DATE})]
    [pending] = p.outstanding_methods()
    assert pending.has_result and not pending.has_updated
    assert feed(p, {"msg": "updated", "methods": [mid]}) == [
        Updated((mid,)),
        MethodDone(mid, {"ok": True, "at": DATE}),
    ]
    assert p.outstanding_methods() == []


def test_updated_before_result() -> None:
    p = connected()
    mid = p.send_method("m")
    assert feed(p, {"msg": "updated", "methods": [mid]}) == [Updated((mid,))]
    assert feed(p, {"msg": "result", "id": mid}) == [Result(mid, None), MethodDone(mid, None)]


def test_result_error_404_and_others() -> None:
    p = connected()
    a, b, c = p.send_method("nope"), p.send_method("x"), p.send_method("y")
    e404 = {
        "isClientSafe": True,
        "error": 404,
        "reason": "Method 'nope' not found",
        "message": "Method 'nope' not found [404]",
        "errorType": "Meteor.Error",
    }
    [r] = feed(p, {"msg": "result", "id": a, "error": e404})
    assert isinstance(r.error, MethodNotFound) and r.result is None
    [r] = feed(
        p,
        {
            "msg": "result",
            "id": b,
            "error": {
                "error": "not-authorized",
                "reason": "You must log in",
                "details": {"when": "1970-01-01T00:00:00.000Z"},
            },
        },
    )
    assert type(r.error) is MethodError
    assert r.error.details == {"when": "1970-01-01T00:00:00.000Z"}  # details are plain JSON
    [r] = feed(p, {"msg": "result", "id": c, "error": "weird"})
    assert type(r.error) is MethodError and r.error.error == 500
    events = feed(p, {"msg": "updated", "methods": [a, b, c]})
    assert events[0] == Updated((a, b, c))
    assert [type(e) for e in events[1:]] == [MethodDone] * 3
    assert isinstance(events[1].error, MethodNotFound)


def test_result_and_updated_for_unknown_ids_are_ignored() -> None:
    p = connected()
    mid = p.send_method("m")
    assert feed(p, {"msg": "result", "id": "999", "result": 1}) == []
    assert feed(p, {"msg": "updated", "methods": ["999"]}) == []
    assert feed(p, {"msg": "updated", "methods": ["998", mid]}) == [Updated((mid,))]
    assert p.last_protocol_error is None


def test_duplicate_result_and_updated_are_ignored() -> None:
    p = connected()
    mid = p.send_method("m")
    feed(p, {"msg": "result", "id": mid, "result": 1})
    assert feed(p, {"msg": "result", "id": mid, "result": 2}) == []
    p2 = connected()
    mid2 = p2.send_method("m")
    feed(p2, {"msg": "updated", "methods": [mid2]})
    assert feed(p2, {"msg": "updated", "methods": [mid2]}) == []
    assert feed(p2, {"msg": "result", "id": mid2, "result": 3}) == [
        Result(mid2, 3),
        MethodDone(mid2, 3),
    ]


def test_raw_result_is_validated_not_decoded() -> None:
    p = connected()
    mid = p.send_method("m", decode_result=False)
    assert feed(p, {"msg": "result", "id": mid, "result": {"at": {"$date": 1}}}) == [
        Result(mid, {"at": {"$date": 1}})
    ]
    bad = p.send_method("m", decode_result=False)
    result, problem = feed(p, {"msg": "result", "id": bad, "result": [{"$binary": "!"}]})
    assert isinstance(result.error, RemoteProtocolError) and isinstance(problem, InvalidMessage)


def test_invalid_ejson_in_result_fails_the_call() -> None:
    # reported as bad input, and the method ends with a RemoteProtocolError instead of hanging
    p = connected()
    mid = p.send_method("m")
    events = feed(p, {"msg": "result", "id": mid, "result": {"$date": "nope"}})
    assert [type(e) for e in events] == [Result, InvalidMessage]
    assert isinstance(events[0].error, RemoteProtocolError) and events[0].result is None
    assert isinstance(events[1].error.__cause__, EJSONError)
    [done] = feed(p, {"msg": "updated", "methods": [mid]})[1:]
    assert isinstance(done, MethodDone) and isinstance(done.error, RemoteProtocolError)
    assert p.outstanding_methods() == []


def test_scalar_results() -> None:
    p = connected()
    for value in (None, 1, "s", True, 1.5, [1, {"$date": 0}]):
        mid = p.send_method("m")
        feed(p, {"msg": "updated", "methods": [mid]})
        [r, done] = feed(p, {"msg": "result", "id": mid, "result": value})
        expected = [1, datetime(1970, 1, 1, tzinfo=UTC)] if isinstance(value, list) else value
        assert r.result == expected == done.result


def test_forget_and_resend_on_a_new_protocol_object() -> None:
    p = connected()
    kept = p.send_method("keep", [{"at": DATE}], random_seed="0123456789abcdef0123", id="5")
    dropped = p.send_method("drop", id="6")
    assert p.forget_method(dropped) is True
    assert p.forget_method(dropped) is False
    first = wire(p.data_to_send())[0]
    feed(p, {"msg": "updated", "methods": [kept]})  # updated without result: not finished
    [pending] = p.outstanding_methods()
    assert (pending.id, pending.has_updated, pending.has_result) == ("5", True, False)
    p2 = connected()
    p2.resend_method(pending)
    assert wire(p2.data_to_send()) == [first]
    [again] = p2.outstanding_methods()
    assert again.has_updated is False
    with pytest.raises(LocalProtocolError):
        p2.resend_method(pending)
    assert feed(p2, {"msg": "result", "id": "5", "result": "ok"}) == [Result("5", "ok")]


def test_pending_method_to_wire() -> None:
    p = PendingMethod("3", "m", [1], None)
    assert p.to_wire() == {"msg": "method", "id": "3", "method": "m", "params": [1]}


# --------------------------------------------------------------------------- server errors


def test_error_message_becomes_server_error(caplog: pytest.LogCaptureFixture) -> None:
    p = connected()
    offending = {"msg": "sub", "id": 1}
    assert feed(
        p, {"msg": "error", "reason": "Malformed subscription", "offendingMessage": offending}
    ) == [ServerError("Malformed subscription", offending)]
    assert feed(p, {"msg": "error", "reason": "Bad request"}) == [ServerError("Bad request", None)]
    assert feed(p, {"msg": "error"}) == [ServerError("", None)]
    assert "Malformed subscription" in caplog.text
    assert p.last_protocol_error is None

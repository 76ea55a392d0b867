"""ServerProtocol: the sans-I/O DDP server core (no event loop, no socket)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from bson import ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st

from aioserversync.exceptions import EJSONError, LocalProtocolError, MeteorError
from aioserversync.protocol.connection import CONNECTED, CONNECTING, FAILED, SUPPORTED_VERSIONS
from aioserversync.protocol.events import Connect, InvalidMessage, Method, Ping, Pong, Sub, Unsub
from aioserversync.protocol.mergebox import WireOp
from aioserversync.protocol.server import (
    SERVER_ID_FRAME,
    ConnectFailed,
    ServerProtocol,
    changed_frame,
    error_frame,
    nosub_frame,
    result_frame,
)

CONNECT = {"msg": "connect", "version": "1", "support": ["1", "pre2", "pre1"]}


def feed(p: ServerProtocol, msg: Any) -> None:
    p.receive_text(msg if isinstance(msg, str | bytes) else orjson.dumps(msg))


def out(p: ServerProtocol) -> list[dict[str, Any]]:
    return [orjson.loads(f) for f in p.data_to_send()]


def connected(version: str = "1", **kw: Any) -> ServerProtocol:
    p = ServerProtocol(session_id_factory=lambda: "S" * 17, **kw)
    feed(p, {"msg": "connect", "version": version, "support": [version]})
    assert p.state is CONNECTED
    p.data_to_send()
    p.events_received()
    return p


# --------------------------------------------------------------------------- connect


def test_connect_opens_a_session_with_a_meteor_id() -> None:
    p = ServerProtocol()
    feed(p, CONNECT)
    frames = out(p)
    assert len(frames) == 1 and frames[0]["msg"] == "connected"
    session = frames[0]["session"]
    assert len(session) == 17 and set(frames[0]) == {"msg", "session"}
    assert p.events_received() == [Connect("1", session)]
    assert p.state is CONNECTED and p.version == "1" and p.session == session


def test_reconnect_with_old_session_gets_a_new_session() -> None:
    p = ServerProtocol(session_id_factory=lambda: "NewSessionId23456")
    feed(p, {**CONNECT, "session": "OldSessionId23456"})
    assert out(p) == [{"msg": "connected", "session": "NewSessionId23456"}]


@pytest.mark.parametrize(
    ("version", "support", "expected"),
    [
        ("pre2", ["pre2", "1"], "pre2"),
        ("pre1", ["pre1"], "pre1"),
        ("1", ["2", "1"], "1"),  # the first one we support
    ],
)
def test_version_negotiation_accepts(version: str, support: list[str], expected: str) -> None:
    p = ServerProtocol()
    feed(p, {"msg": "connect", "version": version, "support": support})
    assert out(p)[0]["msg"] == "connected"
    assert p.version == expected


@pytest.mark.parametrize(
    ("version", "support", "suggested"),
    [
        ("pre2", ["1", "pre2"], "1"),  # client prefers 1 in its list
        ("2", ["2"], "1"),  # nothing in common: the server's first choice
        ("pre1", ["pre2", "pre1"], "pre2"),
    ],
)
def test_version_negotiation_fails_with_suggestion(
    version: str, support: list[str], suggested: str
) -> None:
    p = ServerProtocol()
    feed(p, {"msg": "connect", "version": version, "support": support})
    assert out(p) == [{"msg": "failed", "version": suggested}]
    assert p.state is FAILED
    assert p.events_received() == [ConnectFailed(suggested)]


def test_server_versions_are_configurable() -> None:
    p = ServerProtocol(versions=("pre2",))
    feed(p, CONNECT)
    assert out(p) == [{"msg": "failed", "version": "pre2"}]


@pytest.mark.parametrize(
    "msg",
    [
        {"msg": "connect"},
        {"msg": "connect", "version": 1, "support": [1]},
        {"msg": "connect", "version": "1"},
        {"msg": "connect", "version": "1", "support": "1"},
        {"msg": "connect", "version": "1", "support": ["1", 2]},
        {"msg": "connect", "version": "1", "support": ["pre2"]},
    ],
)
def test_bad_connect_fails_with_version_1(msg: dict[str, Any]) -> None:
    p = ServerProtocol()
    feed(p, msg)
    assert out(p) == [{"msg": "failed", "version": "1"}]
    assert p.state is FAILED
    events = p.events_received()
    assert ConnectFailed("1") in events
    assert any(isinstance(e, InvalidMessage) for e in events)


def test_input_after_failed_is_ignored() -> None:
    p = ServerProtocol()
    feed(p, {"msg": "connect", "version": "9", "support": ["9"]})
    p.data_to_send()
    p.events_received()
    feed(p, {"msg": "sub", "id": "a", "name": "x"})
    feed(p, "not json")
    assert p.data_to_send() == [] and p.events_received() == []


def test_server_id_frame_only_when_asked() -> None:
    assert ServerProtocol().data_to_send() == []
    p = ServerProtocol(server_id=True)
    assert p.data_to_send() == [SERVER_ID_FRAME]
    assert orjson.loads(SERVER_ID_FRAME) == {"server_id": "0"}


def test_supported_versions_default() -> None:
    assert ServerProtocol().versions == SUPPORTED_VERSIONS == ("1", "pre2", "pre1")


# --------------------------------------------------------------------------- error table (§8)


@pytest.mark.parametrize(
    "msg",
    [
        {"msg": "sub", "id": "a", "name": "x"},
        {"msg": "method", "id": "1", "method": "m", "params": []},
        {"msg": "ping"},
        {"msg": "unsub", "id": "a"},
    ],
)
def test_anything_before_connect_must_connect_first(msg: dict[str, Any]) -> None:
    p = ServerProtocol()
    feed(p, msg)
    assert out(p) == [{"msg": "error", "reason": "Must connect first", "offendingMessage": msg}]
    assert p.state is CONNECTING
    assert [type(e) for e in p.events_received()] == [InvalidMessage]
    feed(p, CONNECT)
    assert out(p)[0]["msg"] == "connected"


def test_second_connect_is_already_connected() -> None:
    p = connected()
    feed(p, CONNECT)
    assert out(p) == [{"msg": "error", "reason": "Already connected", "offendingMessage": CONNECT}]
    assert p.state is CONNECTED


@pytest.mark.parametrize("frame", [b"{not json", b"", b"[1,", "\u2603"])
def test_invalid_json_is_bad_request_without_offending(frame: bytes | str) -> None:
    p = connected()
    p.receive_text(frame)
    assert out(p) == [{"msg": "error", "reason": "Bad request"}]
    assert p.state is CONNECTED
    assert [type(e) for e in p.events_received()] == [InvalidMessage]


@pytest.mark.parametrize("frame", [b"5", b'"x"', b"null", b"true"])
def test_non_object_json_is_bad_request_without_offending(frame: bytes) -> None:
    p = connected()
    p.receive_text(frame)
    assert out(p) == [{"msg": "error", "reason": "Bad request"}]


@pytest.mark.parametrize(
    "msg", [{"id": "1"}, {"msg": ""}, {"msg": None}, [1, 2], {"server_id": "0"}]
)
def test_without_msg_is_bad_request_with_offending(msg: Any) -> None:
    p = connected()
    feed(p, msg)
    assert out(p) == [{"msg": "error", "reason": "Bad request", "offendingMessage": msg}]


@pytest.mark.parametrize(
    "msg",
    [{"msg": "subscribe", "id": "a"}, {"msg": 5}, {"msg": ["sub"]}, {"msg": "added", "id": "x"}],
)
def test_unknown_msg_is_bad_request_with_offending(msg: dict[str, Any]) -> None:
    p = connected()
    feed(p, msg)
    assert out(p) == [{"msg": "error", "reason": "Bad request", "offendingMessage": msg}]
    assert p.state is CONNECTED


def test_frame_over_max_size_is_bad_request() -> None:
    p = connected(max_size=64)
    feed(p, {"msg": "method", "id": "1", "method": "m", "params": ["x" * 100]})
    assert out(p) == [{"msg": "error", "reason": "Bad request"}]
    feed(p, {"msg": "method", "id": "2", "method": "m", "params": []})
    assert p.events_received()[-1] == Method("2", "m", [], None)


@pytest.mark.parametrize(
    "params",
    [
        [{"$type": "nobody-registered-this", "$value": 1}],
        [{"nested": [{"$type": "unknown", "$value": {"a": 1}}]}],
        [{"$binary": "not base64!!"}],
        [{"$date": "not a date"}],
        [{"$type": "oid", "$value": "zz"}],
    ],
)
def test_bad_ejson_in_params_is_parse_error(params: list[Any]) -> None:
    p = connected()
    feed(p, {"msg": "method", "id": "1", "method": "m", "params": params})
    assert out(p) == [{"msg": "error", "reason": "Parse error"}]
    assert [type(e) for e in p.events_received()] == [InvalidMessage]
    assert p.state is CONNECTED


def test_parse_error_is_checked_before_connect_state_as_in_meteor() -> None:
    p = ServerProtocol()
    feed(p, {"msg": "sub", "id": "a", "name": "x", "params": [{"$type": "zz", "$value": 0}]})
    assert out(p) == [{"msg": "error", "reason": "Parse error"}]


def test_unknown_type_in_fields_is_parse_error() -> None:
    p = connected()
    feed(
        p,
        {
            "msg": "added",
            "collection": "c",
            "id": "x",
            "fields": {"a": {"$type": "q", "$value": 1}},
        },
    )
    assert out(p) == [{"msg": "error", "reason": "Parse error"}]


def test_offending_message_is_the_wire_form() -> None:
    p = ServerProtocol()
    msg = {"msg": "method", "id": "1", "method": "m", "params": [{"$date": 5}, {"$binary": "AAE="}]}
    feed(p, msg)
    assert out(p)[0]["offendingMessage"] == msg


@pytest.mark.parametrize("kind", ["ping", "pong"])
def test_ping_and_pong_under_pre1_are_bad_requests(kind: str) -> None:
    p = connected("pre1")
    feed(p, {"msg": kind})
    assert out(p) == [{"msg": "error", "reason": "Bad request", "offendingMessage": {"msg": kind}}]
    assert [type(e) for e in p.events_received()] == [InvalidMessage]


# --------------------------------------------------------------------------- heartbeats


def test_ping_gets_a_pong_echoing_the_id() -> None:
    p = connected()
    feed(p, {"msg": "ping"})
    feed(p, {"msg": "ping", "id": "p-42"})
    assert out(p) == [{"msg": "pong"}, {"msg": "pong", "id": "p-42"}]
    assert p.events_received() == [Ping(None), Ping("p-42")]


def test_pong_is_an_event_without_reply() -> None:
    p = connected("pre2")
    feed(p, {"msg": "pong", "id": "x"})
    assert out(p) == []
    assert p.events_received() == [Pong("x")]


def test_ping_with_non_string_id_is_bad_request() -> None:
    p = connected()
    feed(p, {"msg": "ping", "id": 5})
    assert out(p)[0]["reason"] == "Bad request"


def test_server_ping() -> None:
    p = connected()
    p.send_ping()
    assert out(p) == [{"msg": "ping"}]


# --------------------------------------------------------------------------- sub / unsub / method


def test_sub_event_with_params_and_default_params() -> None:
    p = connected()
    feed(p, {"msg": "sub", "id": "s1", "name": "tasks", "params": ["l1", {"limit": 10}]})
    feed(p, {"msg": "sub", "id": "s2", "name": "all"})
    assert p.events_received() == [
        Sub("s1", "tasks", ["l1", {"limit": 10}]),
        Sub("s2", "all", []),
    ]
    assert out(p) == []


def test_sub_params_are_ejson_decoded() -> None:
    p = connected()
    feed(p, {"msg": "sub", "id": "s", "name": "n", "params": [{"$date": 1704164645678}]})
    (ev,) = p.events_received()
    assert ev.params == [datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)]


@pytest.mark.parametrize(
    "msg",
    [
        {"msg": "sub", "name": "x"},
        {"msg": "sub", "id": 1, "name": "x"},
        {"msg": "sub", "id": "a"},
        {"msg": "sub", "id": "a", "name": "x", "params": {"a": 1}},
        {"msg": "sub", "id": "a", "name": "x", "params": None},
    ],
)
def test_malformed_subscription(msg: dict[str, Any]) -> None:
    p = connected()
    feed(p, msg)
    assert out(p) == [{"msg": "error", "reason": "Malformed subscription", "offendingMessage": msg}]
    assert [type(e) for e in p.events_received()] == [InvalidMessage]


def test_unsub_event_and_malformed_unsub() -> None:
    p = connected()
    feed(p, {"msg": "unsub", "id": "s1"})
    assert p.events_received() == [Unsub("s1")]
    feed(p, {"msg": "unsub"})
    assert out(p) == [
        {"msg": "error", "reason": "Bad request", "offendingMessage": {"msg": "unsub"}}
    ]


def test_method_event_with_seed_and_decoded_params() -> None:
    p = connected()
    oid = "5f1d7a0b2c3e4f5a6b7c8d9e"
    feed(
        p,
        {
            "msg": "method",
            "id": "1",
            "method": "/tasks/insert",
            "params": [{"text": "hi", "ref": {"$type": "oid", "$value": oid}}],
            "randomSeed": "0123456789abcdef0123",
        },
    )
    feed(p, {"msg": "method", "id": "2", "method": "noargs"})
    assert p.events_received() == [
        Method(
            "1", "/tasks/insert", [{"text": "hi", "ref": ObjectId(oid)}], "0123456789abcdef0123"
        ),
        Method("2", "noargs", [], None),
    ]


@pytest.mark.parametrize(
    "msg",
    [
        {"msg": "method", "id": 1, "method": "m"},
        {"msg": "method", "id": "1"},
        {"msg": "method", "id": "1", "method": 5},
        {"msg": "method", "id": "1", "method": "m", "params": "x"},
        {"msg": "method", "id": "1", "method": "m", "params": [], "randomSeed": 12},
        {"msg": "method", "id": "1", "method": "m", "params": [], "randomSeed": None},
    ],
)
def test_malformed_method_invocation(msg: dict[str, Any]) -> None:
    p = connected()
    feed(p, msg)
    assert out(p) == [
        {"msg": "error", "reason": "Malformed method invocation", "offendingMessage": msg}
    ]
    assert [type(e) for e in p.events_received()] == [InvalidMessage]


def test_bad_input_never_raises_and_keeps_the_session() -> None:
    p = connected()
    for frame in (b"\xff\xfe", b"[]", b"{}", b'{"msg":{}}', b'{"msg":"sub","id":[],"name":{}}'):
        p.receive_text(frame)
    assert p.state is CONNECTED
    assert len(p.data_to_send()) == 5
    assert p.last_protocol_error is not None


# --------------------------------------------------------------------------- output


def test_send_added_encodes_fields_and_strips_id() -> None:
    p = connected()
    p.send_added(
        "tasks", "abc", {"_id": "abc", "text": "hi", "at": datetime(2024, 1, 2, tzinfo=UTC)}
    )
    p.send_added("tasks", "only-id", {"_id": "only-id"})
    p.send_added("tasks", "none")
    assert out(p) == [
        {"msg": "added", "collection": "tasks", "id": "abc",
         "fields": {"text": "hi", "at": {"$date": 1704153600000}}},
        {"msg": "added", "collection": "tasks", "id": "only-id"},
        {"msg": "added", "collection": "tasks", "id": "none"},
    ]  # fmt: skip


def test_send_added_keeps_key_order() -> None:
    p = connected()
    p.send_added("c", "x", {"z": 1, "a": 2, "m": 3})
    assert p.data_to_send() == [
        b'{"msg":"added","collection":"c","id":"x","fields":{"z":1,"a":2,"m":3}}'
    ]


def test_send_added_wire_fields_pass_through() -> None:
    p = connected()
    p.send_added("c", "x", {"when": {"$date": 5}, "b": {"$binary": "AAE="}}, wire=True)
    assert out(p)[0]["fields"] == {"when": {"$date": 5}, "b": {"$binary": "AAE="}}


def test_send_changed_omits_empty_members_and_sends_nothing_when_empty() -> None:
    p = connected()
    p.send_changed("c", "x", {"a": 1})
    p.send_changed("c", "x", cleared=["b"])
    p.send_changed("c", "x", {"a": float("nan")}, ["b", "c"])
    p.send_changed("c", "x", {}, [])
    p.send_changed("c", "x", {"_id": "x"})
    assert out(p) == [
        {"msg": "changed", "collection": "c", "id": "x", "fields": {"a": 1}},
        {"msg": "changed", "collection": "c", "id": "x", "cleared": ["b"]},
        {"msg": "changed", "collection": "c", "id": "x", "fields": {"a": {"$InfNaN": 0}},
         "cleared": ["b", "c"]},
    ]  # fmt: skip
    assert changed_frame("c", "x") is None


def test_send_removed_ready_updated() -> None:
    p = connected()
    p.send_removed("c", "-5f1d7a0b2c3e4f5a6b7c8d9e")
    p.send_ready(["s1", "s2"])
    p.send_updated(["1"])
    assert out(p) == [
        {"msg": "removed", "collection": "c", "id": "-5f1d7a0b2c3e4f5a6b7c8d9e"},
        {"msg": "ready", "subs": ["s1", "s2"]},
        {"msg": "updated", "methods": ["1"]},
    ]


def test_send_nosub_plain_and_with_error() -> None:
    p = connected()
    p.send_nosub("s1")
    p.send_nosub("s2", MeteorError(404, "Subscription 'tasks.byList' not found"))
    assert p.data_to_send() == [
        b'{"msg":"nosub","id":"s1"}',
        b'{"msg":"nosub","id":"s2","error":{"isClientSafe":true,"error":404,'
        b'"reason":"Subscription \'tasks.byList\' not found",'
        b'"message":"Subscription \'tasks.byList\' not found [404]","errorType":"Meteor.Error"}}',
    ]


def test_send_result_shapes() -> None:
    p = connected()
    p.send_result("1", {"ok": True, "at": datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)})
    p.send_result("2", None)
    p.send_result("3")
    p.send_result("4", {"$date": 7}, wire=True)
    assert out(p) == [
        {"msg": "result", "id": "1", "result": {"ok": True, "at": {"$date": 1704164645678}}},
        {"msg": "result", "id": "2", "result": None},
        {"msg": "result", "id": "3"},
        {"msg": "result", "id": "4", "result": {"$date": 7}},
    ]


def test_send_result_errors_serialise_exactly_like_meteor() -> None:
    p = connected()
    when = datetime(1970, 1, 1, tzinfo=UTC)
    p.send_result("2", error=MeteorError("not-authorized", "You must log in", {"when": when}))
    p.send_result("3", error=MeteorError(500, "Internal server error"))
    p.send_result("7", error=MeteorError(404, "Method 'nope' not found"))
    p.send_result("8", error=MeteorError("no-reason"))
    assert p.data_to_send() == [
        b'{"msg":"result","id":"2","error":{"isClientSafe":true,"error":"not-authorized",'
        b'"reason":"You must log in","details":{"when":"1970-01-01T00:00:00.000Z"},'
        b'"message":"You must log in [not-authorized]","errorType":"Meteor.Error"}}',
        b'{"msg":"result","id":"3","error":{"isClientSafe":true,"error":500,'
        b'"reason":"Internal server error","message":"Internal server error [500]",'
        b'"errorType":"Meteor.Error"}}',
        b'{"msg":"result","id":"7","error":{"isClientSafe":true,"error":404,'
        b'"reason":"Method \'nope\' not found","message":"Method \'nope\' not found [404]",'
        b'"errorType":"Meteor.Error"}}',
        b'{"msg":"result","id":"8","error":{"isClientSafe":true,"error":"no-reason",'
        b'"message":"[no-reason]","errorType":"Meteor.Error"}}',
    ]


def test_error_details_never_fail_to_serialise() -> None:
    frame = result_frame("1", error=MeteorError(400, "bad", {"raw": b"\x00\x01", "set": {1}}))
    assert orjson.loads(frame)["error"]["details"] == {"raw": "AAE=", "set": [1]}


def test_send_result_refuses_values_ejson_cannot_carry() -> None:
    p = connected()
    with pytest.raises(EJSONError):
        p.send_result("1", {1, 2})
    with pytest.raises(EJSONError):
        p.send_added("c", "x", {"s": {1}})
    assert p.data_to_send() == []


def test_send_error_and_frames() -> None:
    p = ServerProtocol()
    p.send_error("Bad request")
    p.send_error("Bad request", {"x": 1})
    p.send_frame(b'{"msg":"ping"}')
    p.send_frames([b"1", b"2"])
    assert p.pending_frames == 5
    assert p.data_to_send() == [
        error_frame("Bad request"),
        b'{"msg":"error","reason":"Bad request","offendingMessage":{"x":1}}',
        b'{"msg":"ping"}',
        b"1",
        b"2",
    ]


def test_send_op() -> None:
    p = connected()
    p.send_op(WireOp("added", "c", "x", {"a": 1}))
    p.send_op(WireOp("changed", "c", "x", None, ["a"]))
    p.send_op(WireOp("changed", "c", "x", None, None))
    p.send_op(WireOp("removed", "c", "x"))
    assert [m["msg"] for m in out(p)] == ["added", "changed", "removed"]


@pytest.mark.parametrize(
    "call",
    [
        lambda p: p.send_added("c", "x", {}),
        lambda p: p.send_changed("c", "x", {"a": 1}),
        lambda p: p.send_removed("c", "x"),
        lambda p: p.send_ready(["s"]),
        lambda p: p.send_nosub("s"),
        lambda p: p.send_result("1", 1),
        lambda p: p.send_updated(["1"]),
        lambda p: p.send_ping(),
        lambda p: p.send_op(WireOp("removed", "c", "x")),
    ],
)
def test_data_output_needs_a_connected_session(call: Any) -> None:
    p = ServerProtocol()
    with pytest.raises(LocalProtocolError):
        call(p)


def test_nosub_frame_is_plain_json() -> None:
    assert orjson.loads(nosub_frame("s")) == {"msg": "nosub", "id": "s"}


def test_eof_closes() -> None:
    p = connected()
    p.receive_eof()
    feed(p, {"msg": "ping"})
    assert p.data_to_send() == []


# --------------------------------------------------------------------------- fuzz

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(
        st.sampled_from(["msg", "id", "name", "method", "params", "version", "support", "$date",
                         "$type", "$value", "$binary", "$escape", "randomSeed", "x"]),
        inner,
        max_size=4,
    ),
    max_leaves=12,
)  # fmt: skip
messages = st.fixed_dictionaries(
    {"msg": st.sampled_from(["connect", "sub", "unsub", "method", "ping", "pong", "x", ""])},
    optional={
        "id": json_values,
        "name": json_values,
        "method": json_values,
        "params": json_values,
        "version": st.sampled_from(["1", "pre1", "pre2", 1]),
        "support": st.lists(st.sampled_from(["1", "pre1", "pre2", 5]), max_size=3),
        "randomSeed": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            messages.map(orjson.dumps), json_values.map(orjson.dumps), st.binary(max_size=40)
        ),
        max_size=12,
    )
)
def test_any_input_is_answered_or_accepted_never_raised(frames: list[bytes]) -> None:
    p = ServerProtocol()
    for frame in frames:
        before = p.state
        p.receive_text(frame)
        for reply in p.data_to_send():
            msg = orjson.loads(reply)  # every reply is valid JSON
            assert msg["msg"] in {"connected", "failed", "error", "pong"}
        for ev in p.events_received():
            assert isinstance(
                ev, Connect | ConnectFailed | Sub | Unsub | Method | Ping | Pong | InvalidMessage
            )
        if before is FAILED:
            assert p.state is FAILED

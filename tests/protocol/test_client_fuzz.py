"""ClientProtocol fed arbitrary server input (hypothesis): it never raises and never wedges.

A misbehaving server may send anything. Whatever arrives, the core must report it as an event
(an :class:`InvalidMessage` for what it refuses), keep its own bookkeeping consistent, and still
understand the next well-formed message.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from aioserversync.exceptions import RemoteProtocolError
from aioserversync.protocol.client import ClientProtocol
from aioserversync.protocol.connection import CLOSED, CONNECTED, FAILED
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

EVENTS = (
    Added, AddedBefore, Changed, Connected, Failed, InvalidMessage, MethodDone, MovedBefore,
    NoSub, Ping, Pong, Ready, Removed, Result, ServerError, Updated,
)  # fmt: skip

KEYS = ["msg", "id", "collection", "fields", "cleared", "subs", "methods", "result", "error",
        "before", "session", "version", "reason", "offendingMessage", "$date", "$binary",
        "$type", "$value", "$escape", "$InfNaN", "$regexp", "$flags", "_id", "x"]  # fmt: skip
SERVER_MSGS = ["connected", "failed", "ping", "pong", "added", "changed", "removed", "ready",
               "nosub", "result", "updated", "addedBefore", "movedBefore", "error", "x",
               ""]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["1", "2", "s1", "s2", "c", "a", "b", "", "-Infinity", "AAAA", "oid"])
    | st.text(max_size=6)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=14,
)
# Messages shaped like DDP, with ids the client knows (methods "1" and "2", subs "s1" and "s2").
messages = st.fixed_dictionaries(
    {"msg": st.sampled_from(SERVER_MSGS)},
    optional={
        "id": st.sampled_from(["1", "2", "3", "s1", "s2", "a"]) | json_values,
        "collection": st.sampled_from(["c", "d"]) | json_values,
        "fields": st.dictionaries(st.sampled_from(KEYS), json_values, max_size=3) | json_values,
        "cleared": st.lists(st.sampled_from(["x", "y", "_id"]), max_size=2) | json_values,
        "subs": st.lists(st.sampled_from(["s1", "s2", "zz"]), max_size=2) | json_values,
        "methods": st.lists(st.sampled_from(["1", "2", "9"]), max_size=2) | json_values,
        "result": json_values,
        "error": json_values,
        "before": json_values,
        "session": json_values,
        "version": json_values,
    },
)


def dumps(value: Any) -> bytes:
    """JSON text of ``value``; unlike orjson, integers beyond 64 bits are written too."""
    return json.dumps(value, allow_nan=False).encode()


frames = st.one_of(
    messages.map(dumps),
    messages.map(lambda m: dumps(m).decode()),
    json_values.map(dumps),
    st.binary(max_size=40),
    st.text(max_size=20),
)


def ready_client(decode: bool) -> ClientProtocol:
    p = ClientProtocol(decode_data=decode, max_size=4096)
    p.send_connect()
    p.receive_text(orjson.dumps({"msg": "connected", "session": "S"}))
    assert p.events_received() == [Connected("S")]
    p.send_sub("pub", id="s1")
    p.send_sub("pub", id="s2")
    p.send_method("m", [1])
    p.send_method("m", [2], decode_result=False)
    p.data_to_send()
    return p


@settings(max_examples=400, deadline=None)
@given(st.lists(frames, max_size=15), st.booleans())
def test_any_server_input_yields_events_never_an_exception(
    inputs: list[bytes | str], decode: bool
) -> None:
    p = ready_client(decode)
    for data in inputs:
        before = p.state
        p.receive_text(data)  # must not raise, whatever the input
        for ev in p.events_received():
            assert isinstance(ev, EVENTS), ev
            if isinstance(ev, InvalidMessage):
                assert isinstance(ev.error, RemoteProtocolError)
        for out in p.data_to_send():
            assert orjson.loads(out)["msg"] == "pong"  # the only thing input makes it send
        if before is not CONNECTED:
            assert p.state is before  # nothing brings a failed or closed connection back
        assert p.state in (CONNECTED, FAILED, CLOSED)
    if p.state is CONNECTED:
        # Not wedged: a well-formed message after the noise is understood.
        p.receive_text(orjson.dumps({"msg": "removed", "collection": "c", "id": "z"}))
        assert p.events_received() == [Removed("c", "z")]
        p.receive_text(orjson.dumps({"msg": "ping", "id": "k"}))
        assert p.events_received() == [Ping("k")]
        assert [orjson.loads(f) for f in p.data_to_send()] == [{"msg": "pong", "id": "k"}]


@settings(max_examples=300, deadline=None)
@given(st.lists(messages, max_size=15))
def test_method_and_subscription_bookkeeping_follows_the_messages(
    msgs: list[dict[str, Any]],
) -> None:
    """Each outstanding method ends at most once; a sub ends only through its own nosub."""
    p = ready_client(decode=True)
    done: list[str] = []
    results: list[str] = []
    for msg in msgs:
        p.receive_text(dumps(msg))
        for ev in p.events_received():
            if isinstance(ev, MethodDone):
                done.append(ev.id)
            elif isinstance(ev, Result):
                results.append(ev.id)
            elif isinstance(ev, NoSub):
                assert ev.id == msg["id"]
        if p.state is not CONNECTED:
            break
    assert len(done) == len(set(done)) and set(done) <= {"1", "2"}
    assert len(results) == len(set(results)) and set(results) <= {"1", "2"}
    ended = {m["id"] for m in msgs if m["msg"] == "nosub" and isinstance(m.get("id"), str)}
    assert set(p.active_subs()) >= {"s1", "s2"} - ended


# --------------------------------------------------------------------------- well-formed input

ids = st.text(min_size=1, max_size=8)
names = st.text(max_size=6).filter(lambda k: not k.startswith("$") and k != "_id")
plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=10,
)
INF_NAN = {"NaN": 0, "Infinity": 1, "-Infinity": -1}
ejson_values = st.one_of(
    plain,
    st.integers(-62135596800000, 253402300799999).map(lambda ms: {"$date": ms}),  # years 1-9999
    st.sampled_from(["", "AAAA", "3q2+7w=="]).map(lambda b: {"$binary": b}),
    st.sampled_from(sorted(INF_NAN)).map(lambda v: {"$InfNaN": INF_NAN[v]}),
    st.dictionaries(st.sampled_from(["$date", "$x", "a"]), plain, max_size=2).map(
        lambda d: {"$escape": d}
    ),
    st.text(alphabet="0123456789abcdef", min_size=24, max_size=24).map(
        lambda h: {"$type": "oid", "$value": h}
    ),
)
doc_fields = st.dictionaries(names, ejson_values, max_size=4)
befores = st.none() | ids
nosub_errors = st.fixed_dictionaries(
    {"error": st.integers(400, 500) | ids, "reason": st.text(max_size=8)}
)


def doc_msg(kind: str, **parts: Any) -> Any:
    """A strategy for a ``kind`` message on collection and id, with ``parts`` as more fields."""
    return st.fixed_dictionaries({"msg": st.just(kind), "collection": ids, "id": ids, **parts})


valid = st.one_of(
    doc_msg("added", fields=doc_fields),
    doc_msg("added"),
    doc_msg("changed", fields=doc_fields, cleared=st.lists(names, max_size=3)),
    doc_msg("removed"),
    doc_msg("addedBefore", fields=doc_fields, before=befores),
    doc_msg("movedBefore", before=befores),
    st.fixed_dictionaries({"msg": st.just("ready"), "subs": st.lists(ids, max_size=3)}),
    st.fixed_dictionaries({"msg": st.just("nosub"), "id": ids}),
    st.fixed_dictionaries({"msg": st.just("nosub"), "id": ids, "error": nosub_errors}),
    st.fixed_dictionaries(
        {"msg": st.just("updated"), "methods": st.lists(st.sampled_from(["1", "2"]) | ids)}
    ),
    st.fixed_dictionaries({"msg": st.just("ping"), "id": ids}),
    st.just({"msg": "ping"}),
    st.fixed_dictionaries({"msg": st.just("pong"), "id": ids}),
)
EXPECTED = {
    "added": Added, "changed": Changed, "removed": Removed, "addedBefore": AddedBefore,
    "movedBefore": MovedBefore, "ready": Ready, "nosub": NoSub, "ping": Ping, "pong": Pong,
}  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(valid, min_size=1, max_size=12), st.booleans())
def test_well_formed_messages_are_always_understood(
    msgs: list[dict[str, Any]], decode: bool
) -> None:
    p = ready_client(decode)
    for msg in msgs:
        p.receive_text(dumps(msg))
        events = p.events_received()
        if msg["msg"] == "updated":  # an event only for methods outstanding and not yet updated
            assert all(isinstance(ev, Updated | MethodDone) for ev in events), (msg, events)
            continue
        assert [type(ev) for ev in events] == [EXPECTED[msg["msg"]]], (msg, events)
        ev = events[0]
        if isinstance(ev, Added | Changed | Removed | AddedBefore | MovedBefore):
            assert (ev.collection, ev.id) == (msg["collection"], msg["id"])
        if isinstance(ev, Added | Changed) and not decode:
            assert ev.fields == msg.get("fields", {})  # the wire form, kept as received
    assert p.state is CONNECTED and p.last_protocol_error is None


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["1", "2"]), ejson_values)
def test_a_well_formed_result_ends_its_method(mid: str, value: Any) -> None:
    p = ready_client(decode=True)
    p.receive_text(dumps({"msg": "result", "id": mid, "result": value}))
    p.receive_text(dumps({"msg": "updated", "methods": [mid]}))
    events = p.events_received()
    assert [type(ev) for ev in events] == [Result, Updated, MethodDone], events
    assert events[0].error is None and p.last_protocol_error is None
    if mid == "2":  # sent with decode_result=False: the wire form, as received
        assert events[0].result == value

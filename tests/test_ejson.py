"""Meteor EJSON: every example of ddp-facts §6, the orjson pitfalls, and round trips."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from bson import Decimal128, Int64, ObjectId, Regex
from hypothesis import given, settings
from hypothesis import strategies as st

from aioserversync import ejson
from aioserversync.ejson import EJSONCustom, RegExp
from aioserversync.ejson_types import DATE_MAX_MS, DATE_MIN_MS
from aioserversync.exceptions import EJSONError

D = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
D_MS = 1704164645678
OID = "5f1d7a0b2c3e4f5a6b7c8d9e"


# --------------------------------------------------------------------------- the wire forms (§6)


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (D, {"$date": D_MS}),
        (datetime(1970, 1, 1, tzinfo=UTC), {"$date": 0}),
        (datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), {"$date": -1}),
        (bytes([0, 1, 2, 250, 251]), {"$binary": "AAEC+vs="}),
        (b"", {"$binary": ""}),
        (RegExp("ab+c", "gimuy"), {"$regexp": "ab+c", "$flags": "gimuy"}),
        (float("inf"), {"$InfNaN": 1}),
        (float("-inf"), {"$InfNaN": -1}),
        (ObjectId(OID), {"$type": "oid", "$value": OID}),
        (Decimal("1.5"), {"$type": "Decimal", "$value": "1.5"}),
        (EJSONCustom("foo", {"a": [1]}), {"$type": "foo", "$value": {"a": [1]}}),
        ({"$date": 5}, {"$escape": {"$date": 5}}),
        ({"$type": "foo", "$value": 1}, {"$escape": {"$type": "foo", "$value": 1}}),
        ({"$regexp": "a", "$flags": ""}, {"$escape": {"$regexp": "a", "$flags": ""}}),
        ({"$escape": 1}, {"$escape": {"$escape": 1}}),
        ({"$InfNaN": 1}, {"$escape": {"$InfNaN": 1}}),
        ({"$binary": "x"}, {"$escape": {"$binary": "x"}}),
        # the DDP.md example: a key literally named $date whose value is a Date
        (
            {"$date": datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=32491)},
            {"$escape": {"$date": {"$date": 32491}}},
        ),
        ({"$foo": 1}, {"$foo": 1}),
        ({"$date": 5, "a": 1}, {"$date": 5, "a": 1}),
        ({"a": {"$date": 1, "b": 2, "c": 3}}, {"a": {"$date": 1, "b": 2, "c": 3}}),
        ([D, {"x": b"\x00"}], [{"$date": D_MS}, {"x": {"$binary": "AA=="}}]),
    ],
)
def test_wire_forms_both_ways(value: Any, wire: Any) -> None:
    assert ejson.encode(value) == wire
    assert ejson.decode(wire) == value
    assert ejson.loads(ejson.dumps(value)) == value


def test_nan_both_ways() -> None:
    assert ejson.encode(float("nan")) == {"$InfNaN": 0}
    assert math.isnan(ejson.decode({"$InfNaN": 0}))
    assert ejson.dumps([float("nan"), float("inf")]) == b'[{"$InfNaN":0},{"$InfNaN":1}]'


def test_nan_literals_are_refused_on_input() -> None:
    with pytest.raises(EJSONError):
        ejson.loads(b"[NaN]")
    with pytest.raises(EJSONError):
        ejson.loads(b"{not json")


def test_escape_covers_one_level_only() -> None:
    wire = {"$escape": {"$date": {"$date": 0}, "$x": {"$binary": "AA=="}}}
    assert ejson.decode(wire) == {"$date": datetime(1970, 1, 1, tzinfo=UTC), "$x": b"\x00"}


def test_decoding_needs_exact_keys() -> None:
    # two keys: only $regexp+$flags and $type+$value are special
    assert ejson.decode({"$date": 1, "$binary": "AA=="}) == {"$date": 1, "$binary": "AA=="}
    assert ejson.decode({"$regexp": "a"}) == {"$regexp": "a"}
    assert ejson.decode({"$type": "oid"}) == {"$type": "oid"}
    assert ejson.decode({}) == {}


@pytest.mark.parametrize(
    ("flags", "clean"),
    [("gsd", "g"), ("gimsuy", "gimuy"), ("yggiim", "ygim"), ("", ""), ("x" * 60 + "g", "")],
)
def test_regexp_flags_are_cleaned_like_meteor(flags: str, clean: str) -> None:
    assert ejson.decode({"$regexp": "a.b", "$flags": flags}) == RegExp("a.b", clean)


def test_regexp_compile_and_python_patterns() -> None:
    assert RegExp("a.b", "ims").compile().flags & (re.I | re.M | re.S) == re.I | re.M | re.S
    assert ejson.encode(re.compile("x+", re.I | re.S)) == {"$regexp": "x+", "$flags": "is"}
    assert ejson.encode(Regex("y", re.M)) == {"$regexp": "y", "$flags": "m"}
    with pytest.raises(EJSONError):
        ejson.encode(re.compile(b"bytes"))


def test_unknown_type_is_kept_opaque_and_round_trips() -> None:
    wire = {"$type": "Mongo.Timestamp", "$value": {"t": 1, "i": 2}}
    value = ejson.decode(wire)
    assert value == EJSONCustom("Mongo.Timestamp", {"t": 1, "i": 2})
    assert ejson.encode(value) == wire


def test_registered_types() -> None:
    class Money:
        def __init__(self, cents: int) -> None:
            self.cents = cents

        def ejson_type(self) -> str:
            return "money"

        def ejson_value(self) -> Any:
            return self.cents

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Money) and other.cents == self.cents

    ejson.add_type("money", Money)
    try:
        assert ejson.encode({"m": Money(5)}) == {"m": {"$type": "money", "$value": 5}}
        assert ejson.decode({"$type": "money", "$value": 7}) == Money(7)
        with pytest.raises(EJSONError):
            ejson.add_type("money", Money)
        with pytest.raises(EJSONError):
            ejson.add_type("oid", Money)
    finally:
        ejson.remove_type("money")
    assert ejson.decode({"$type": "money", "$value": 7}) == EJSONCustom("money", 7)
    ejson.remove_type("oid")  # built-ins stay
    assert ejson.decode({"$type": "oid", "$value": OID}) == ObjectId(OID)


def test_failing_factory_becomes_ejson_error() -> None:
    ejson.add_type("boom", lambda v: 1 / 0)
    try:
        with pytest.raises(EJSONError, match="boom"):
            ejson.decode({"$type": "boom", "$value": 1})
    finally:
        ejson.remove_type("boom")


# --------------------------------------------------------------------------- dates


def test_dates_are_whole_milliseconds_in_utc() -> None:
    cet = timezone(timedelta(hours=1))
    assert ejson.encode(datetime(2024, 1, 2, 4, 4, 5, 678999, tzinfo=cet)) == {"$date": D_MS}
    assert ejson.encode(datetime(2024, 1, 2, 3, 4, 5, 678000)) == {"$date": D_MS}  # naive = UTC
    assert ejson.date_to_ms(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == -1
    decoded = ejson.decode({"$date": D_MS})
    assert decoded.tzinfo is UTC and decoded == D


def test_date_decoding_paths_agree() -> None:
    # the fast path (0 <= ms < 2**32 s) and the exact path give the same datetime
    for ms in (
        0,
        1,
        999,
        D_MS,
        2**32 * 1000 - 1,
        2**32 * 1000,
        -1,
        -62135596800000,
        253402300799999,
    ):
        assert ejson.ms_to_date(ms) == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    assert ejson.ms_to_date(1.5) == datetime(1970, 1, 1, 0, 0, 0, 1500, tzinfo=UTC)


def test_iso_date_strings_are_accepted() -> None:
    assert ejson.decode({"$date": "2024-01-02T03:04:05.678Z"}) == D
    assert ejson.decode({"$date": "2024-01-02T04:04:05.678+01:00"}) == D
    assert ejson.decode({"$date": "2024-01-02T03:04:05.678"}) == D


@pytest.mark.parametrize("bad", [True, None, "yesterday", [1], {"a": 1}, 1e300, 10**17])
def test_bad_dates(bad: Any) -> None:
    with pytest.raises(EJSONError):
        ejson.decode({"$date": bad})


def test_date_without_time_is_refused() -> None:
    with pytest.raises(EJSONError):
        ejson.encode(date(2024, 1, 2))


# --------------------------------------------------------------------------- numbers and types


def test_big_integers() -> None:
    with pytest.raises(EJSONError):
        ejson.dumps(2**64)
    with pytest.raises(EJSONError):
        ejson.dumps(-(2**63) - 1)
    assert ejson.dumps(2**64 - 1) == b"18446744073709551615"
    assert ejson.loads(b"123456789012345678901234567890") == pytest.approx(1.2345678901234568e29)
    assert isinstance(ejson.loads(b"123456789012345678901234567890"), float)
    assert ejson.encode(2**53) == 2**53
    with pytest.raises(EJSONError):
        ejson.encode(2**53 + 1, strict_integers=True)
    assert ejson.encode(-(2**53), strict_integers=True) == -(2**53)


def test_subclasses_of_json_types() -> None:
    from collections import OrderedDict
    from enum import StrEnum

    class Color(StrEnum):
        RED = "red"

    assert ejson.encode({"n": Int64(5), "c": Color.RED, "o": OrderedDict(a=1), "t": (1, 2)}) == {
        "n": 5,
        "c": "red",
        "o": {"a": 1},
        "t": [1, 2],
    }
    assert type(ejson.encode(Int64(5))) is int
    assert ejson.encode(Decimal128("2.50")) == {"$type": "Decimal", "$value": "2.50"}
    assert ejson.encode(bytearray(b"\x01")) == {"$binary": "AQ=="}
    assert ejson.encode(memoryview(b"\x01")) == {"$binary": "AQ=="}


@pytest.mark.parametrize("bad", [{1: "a"}, {1, 2}, object(), frozenset(), 1j])
def test_values_ejson_cannot_carry(bad: Any) -> None:
    with pytest.raises(EJSONError):
        ejson.encode(bad)


def test_lone_surrogates_are_refused_by_dumps() -> None:
    with pytest.raises(EJSONError):
        ejson.dumps("\udcff")


def test_key_order_is_kept() -> None:
    value = {"z": 1, "a": 2, "m": {"y": 1, "b": 2}}
    assert ejson.dumps(value) == b'{"z":1,"a":2,"m":{"y":1,"b":2}}'
    assert list(ejson.loads(ejson.dumps(value))) == ["z", "a", "m"]


@pytest.mark.parametrize(
    "wire",
    [
        {"$binary": "!!"},
        {"$binary": 3},
        {"$InfNaN": "x"},
        {"$InfNaN": True},
        {"$regexp": 1, "$flags": "g"},
        {"$type": 3, "$value": 1},
        {"$type": "oid", "$value": "xyz"},
        {"$type": "Decimal", "$value": "not a number"},
        {"$escape": [1]},
    ],
)
def test_malformed_specials(wire: Any) -> None:
    with pytest.raises(EJSONError):
        ejson.decode(wire)
    with pytest.raises(EJSONError):
        ejson.validate(wire)
    with pytest.raises(EJSONError):
        ejson.validate({"deep": [wire]})


def test_decode_leaves_its_input_alone_and_decode_inplace_reuses_it() -> None:
    wire = {"a": {"$date": 0}}
    assert ejson.decode(wire) == {"a": datetime(1970, 1, 1, tzinfo=UTC)}
    assert wire == {"a": {"$date": 0}}
    assert ejson.decode_inplace(wire) is wire
    assert wire == {"a": datetime(1970, 1, 1, tzinfo=UTC)}
    with pytest.raises(EJSONError):
        ejson.decode({"a": object()})


def test_validate_accepts_good_wire_data() -> None:
    ejson.validate(
        ejson.encode(
            {
                "d": D,
                "b": b"1",
                "r": RegExp("a"),
                "o": ObjectId(OID),
                "e": {"$date": 1},
                "n": float("nan"),
            }
        )
    )
    ejson.validate([1, "x", None, {"$foo": 1}])


# --------------------------------------------------------------------------- text-based shortcuts


def test_may_hold_special() -> None:
    assert not ejson.may_hold_special(b'{"a":1}')
    assert ejson.may_hold_special(b'{"a":"$5"}')
    assert ejson.may_hold_special(b'{"\\u0024date":1}')
    assert not ejson.may_hold_special('{"a":1}')
    assert ejson.may_hold_special('{"\\u0024date":1}')


@pytest.mark.parametrize(
    "text",
    [
        b'{"a":{"$date":5},"b":[{"$date":-7}]}',
        b'{"a":1}',
        '{"a":{"$date":5}}',
        b'{"a":{"$date":1.5}}',
        b'{"a":{"$binary":"!"}}',
        b'{"a":{"\\u0024binary":"!"}}',
        b'{"a":{ "$date" : true}}',
        b'{"a":"$","b":{"$date":1}}',
        b'{"a":{"$date":true}}',
    ],
)
def test_source_hints_never_change_answers(text: bytes | str) -> None:
    def outcome(fn: Any) -> Any:
        try:
            return ("ok", repr(fn()))
        except EJSONError:
            return ("error",)

    assert outcome(lambda: ejson.validate(orjson.loads(text), source=text)) == outcome(
        lambda: ejson.validate(orjson.loads(text))
    )
    assert outcome(lambda: ejson.decode_fields(orjson.loads(text), source=text)) == outcome(
        lambda: ejson.decode_fields(orjson.loads(text))
    )


def test_decode_fields_top_level() -> None:
    assert ejson.decode_fields({"$escape": {"$date": 1}}) == {"$date": 1}
    with pytest.raises(EJSONError):
        ejson.decode_fields({"$date": 1})
    fields = {"a": {"$date": 0}, "b": 1, "c": 2}
    assert ejson.decode_fields(fields) is fields


# --------------------------------------------------------------------------- round trips


def _aware_ms_dates() -> st.SearchStrategy[datetime]:
    return st.integers(-62135596800000, 253402300799999).map(ejson.ms_to_date)


_keys = st.one_of(
    st.text(max_size=8),
    st.sampled_from(
        ["$date", "$binary", "$InfNaN", "$escape", "$type", "$value", "$regexp", "$flags", "$x"]
    ),
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(),
    st.binary(max_size=16),
    _aware_ms_dates(),
    st.binary(min_size=12, max_size=12).map(ObjectId),
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: Decimal(str(d))),
    st.builds(RegExp, st.text(max_size=5), st.sampled_from(["", "g", "gi", "imuy", "gimuy"])),
    st.builds(
        EJSONCustom,
        st.sampled_from(["Mongo.Timestamp", "thing"]),
        st.integers(-(2**53), 2**53) | st.text(max_size=3),
    ),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=20,
)


def _normal(v: Any) -> Any:
    """Make NaN comparable (NaN != NaN) for the round-trip check."""
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    if isinstance(v, dict):
        return {k: _normal(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_normal(x) for x in v]
    return v


@settings(max_examples=400, deadline=None)
@given(_values)
def test_round_trip_through_json_text(value: Any) -> None:
    text = ejson.dumps(value)
    back = ejson.loads(text)  # orjson refuses NaN/Infinity literals, so none were written
    assert _normal(back) == _normal(value)
    ejson.validate(orjson.loads(text), source=text)
    ejson.validate(orjson.loads(text))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=5))
def test_round_trip_as_ddp_fields(fields: Any) -> None:
    frame = orjson.dumps(
        {"msg": "added", "collection": "c", "id": "x", "fields": ejson.encode(fields)}
    )
    parsed = orjson.loads(frame)["fields"]
    assert _normal(ejson.decode_fields(parsed, source=frame)) == _normal(fields)


# --------------------------------------------------------------------------- FieldsCodec


# Around the ends of the range a datetime holds, and of the text shortcut's digit bounds.
_edge_dates = [DATE_MIN_MS, DATE_MAX_MS, DATE_MIN_MS - 1, DATE_MAX_MS + 1, 10**14 - 1, 10**14,
               1 - 10**13, -(10**13), 1e20, -1e16, 0.5, DATE_MAX_MS + 0.5, 2**63 - 1]  # fmt: skip
_wire_date = st.one_of(
    st.integers(-(2**42), 2**42),
    st.integers(-(2**62), 2**62),
    st.sampled_from([True, "2024-01-02T03:04:05Z", "$bad", 1.5, None, *_edge_dates]),
).map(lambda v: {"$date": v})
_wire_leaf = st.one_of(
    st.integers(-5, 5),
    st.sampled_from(["x", "$5", "a\\b", "\u00e9"]),
    _wire_date,
    st.sampled_from(
        [{"$binary": "AA=="}, {"$binary": "!"}, {"$escape": {"$date": 1}}, {"$foo": 1}]
    ),
)
_wire_value = st.recursive(
    _wire_leaf,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "$date"]), inner, max_size=3)
    ),
    max_leaves=6,
)
_wire_fields = st.dictionaries(
    st.sampled_from(["at", "created", "n", "$escape", "$date", "x"]), _wire_value, max_size=4
)


@settings(max_examples=400, deadline=None)
@given(_wire_value)
def test_validate_accepts_exactly_what_decode_accepts(value: Any) -> None:
    """Wire data stored after :func:`validate` can always be decoded when read."""

    def outcome(fn: Any) -> bool:
        try:
            fn()
        except EJSONError:
            return False
        return True

    text = orjson.dumps(value)
    decodes = outcome(lambda: ejson.decode(value))
    assert outcome(lambda: ejson.validate(value)) == decodes, text
    assert outcome(lambda: ejson.validate(value, source=text)) == decodes, text
    assert outcome(lambda: ejson.validate([value] * 300)) == decodes, text  # the large-list path


def _full(decode: bool, fields: Any) -> Any:
    try:
        if decode:
            return ("ok", repr(ejson.decode_fields(fields)))
        ejson.validate(fields)
        return ("ok", repr(fields))
    except EJSONError:
        return ("error",)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["c1", "c2"]), _wire_fields), min_size=1, max_size=8),
    st.booleans(),
    st.booleans(),
)
def test_fields_codec_agrees_with_the_full_walk(frames: Any, decode: bool, as_text: bool) -> None:
    from aioserversync.ejson_fields import FieldsCodec

    codec = FieldsCodec(decode=decode)
    for collection, fields in frames:
        raw = orjson.dumps({"msg": "added", "collection": collection, "id": "i", "fields": fields})
        source: bytes | str = raw.decode() if as_text else raw
        expected = _full(decode, orjson.loads(raw)["fields"])
        try:
            got: Any = ("ok", repr(codec.process(collection, orjson.loads(raw)["fields"], source)))
        except EJSONError:
            got = ("error",)
        assert got == expected, raw


def test_fields_codec_learns_and_uses_top_level_date_keys() -> None:
    from aioserversync.ejson_fields import FieldsCodec

    codec = FieldsCodec(decode=True)
    first = b'{"msg":"added","collection":"c","id":"1","fields":{"at":{"$date":0},"m":{"x":1}}}'
    assert codec.process("c", orjson.loads(first)["fields"], first)["at"] == datetime(
        1970, 1, 1, tzinfo=UTC
    )
    # same shape: the dates at the learned key account for every "$"
    second = (
        b'{"msg":"added","collection":"c","id":"2","fields":{"at":{"$date":1000},"m":{"y":[1]}}}'
    )
    out = codec.process("c", orjson.loads(second)["fields"], second)
    assert out == {"at": datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC), "m": {"y": [1]}}
    # an extra special elsewhere: counted, so the full walk runs and finds it
    third = (
        b'{"msg":"added","collection":"c","id":"3",'
        b'"fields":{"at":{"$date":0},"m":{"b":{"$binary":"AA=="}}}}'
    )
    assert codec.process("c", orjson.loads(third)["fields"], third)["m"] == {"b": b"\x00"}
    # an escaped key: no literal "$" to count, so the full walk runs
    fourth = b'{"msg":"added","collection":"c","id":"4","fields":{"at":{"\\u0024date":0},"m":1}}'
    assert codec.process("c", orjson.loads(fourth)["fields"], fourth)["at"] == datetime(
        1970, 1, 1, tzinfo=UTC
    )
    raw = FieldsCodec(decode=False)
    raw.process("c", orjson.loads(first)["fields"], first)
    bad = b'{"msg":"added","collection":"c","id":"5","fields":{"at":{"$date":true},"m":1}}'
    with pytest.raises(EJSONError):
        raw.process("c", orjson.loads(bad)["fields"], bad)


def test_fields_codec_learns_dates_one_level_down() -> None:
    """The hub feed's shape: the document (and its date) under ``d``."""
    from aioserversync.ejson_fields import FieldsCodec

    def frame(i: int, extra: str = "") -> bytes:
        return (
            b'{"msg":"added","collection":"f","id":"%d","fields":{"i":"x","r":%d,'
            b'"d":{"at":{"$date":%d}%s}}}' % (i, i, i * 1000, extra.encode())
        )

    for decode in (True, False):
        codec = FieldsCodec(decode=decode)
        for i in range(3):
            raw = frame(i)
            got = codec.process("f", orjson.loads(raw)["fields"], raw)
            assert ("ok", repr(got)) == _full(decode, orjson.loads(raw)["fields"])
            if decode:
                assert got["d"]["at"] == datetime.fromtimestamp(i, UTC)
        assert codec._dates["f"] == ((), (("d", "at"),))
        # a second special under d is counted: the full walk runs and checks it
        bad = frame(9, ',"b":{"$binary":"!"}')
        with pytest.raises(EJSONError):
            codec.process("f", orjson.loads(bad)["fields"], bad)


# --------------------------------------------------------------------------- large values


def _envelope(docs: list[Any]) -> dict[str, Any]:
    # The shape of a hub pull result: a small dict holding a long list of documents.
    return {"docs": [[f"id{i}", i, d] for i, d in enumerate(docs)], "next": 1, "more": False}


@pytest.mark.parametrize(
    ("odd", "expected"),
    [
        ({"$binary": "!!"}, "error"),  # malformed
        ({"$date": True}, "error"),  # malformed
        ({"$binary": "AQI="}, "ok"),  # valid, not a date: the walk decides
        ("price: $5", "ok"),  # a $ in a string
        ({"k": "back\\slash"}, "ok"),  # a backslash in the text
        (None, "ok"),  # only integer dates
    ],
)
def test_large_values_get_the_same_answer_as_the_walk(odd: Any, expected: str) -> None:
    docs: list[Any] = [{"n": i, "at": {"$date": i}, "tags": ["a"]} for i in range(600)]
    if odd is not None:
        docs[417]["x"] = odd
    for value in (_envelope(docs), docs):
        text = orjson.dumps(value)
        assert _outcome(lambda v=value: ejson._validate_any(v)) == expected
        assert _outcome(lambda v=value: ejson.validate(v)) == expected
        assert _outcome(lambda v=value, t=text: ejson.validate(v, source=t)) == expected


def test_many_integer_dates_in_the_source_skip_the_walk() -> None:
    text = orjson.dumps([{"at": {"$date": i}} for i in range(50)])
    assert ejson.only_int_dates(text)
    assert ejson.only_int_dates(text.decode())
    assert not ejson.only_int_dates(text.replace(b'{"$date":7}', b'{"$date":"7"}'))
    assert not ejson.only_int_dates(text + b'{"$x":1}')


def _outcome(fn: Any) -> str:
    try:
        fn()
    except EJSONError:
        return "error"
    return "ok"

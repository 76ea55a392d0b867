"""The fast JSON check (simdjson) accepts only texts that orjson accepts, and counts them right.

A hub's pull page that the fast check accepts goes into the store unread by orjson, and the
store's readers parse it with orjson later: a text accepted here that orjson refuses would be an
unreadable document. So the property tested is the inclusion, on generated JSON and on mutated,
mostly broken texts: ``object_keys(t) is not None`` implies ``orjson.loads(t)`` is an object
with those member names.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioserversync import jsoncheck
from aioserversync.jsoncheck import object_keys

pytestmark = pytest.mark.skipif(
    not jsoncheck.available(), reason="pysimdjson (the [fast] extra) is not installed"
)

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
_TOKENS = [
    "\\ud800",
    "\\udc00",
    "\\ud83d\\ude00",
    "\\u0000",
    "\x01",
    "\x7f",
    "\xff",
    "\ud800",
    "NaN",
    "Infinity",
    "-0",
    "01",
    "1e999",
    "18446744073709551616",
    "-9223372036854775809",
    "1.",
    ".5",
    "1e",
    ",",
    ":",
    "}",
    "]",
    "{",
    "[",
    '"',
    "\\",
    "\\x",
    "'",
    " ",
    "\t",
    "\n",
    "true",
    "nul",
    "/*c*/",
]


def _orjson_keys(text: str) -> list[str] | None:
    try:
        parsed = orjson.loads(text)
    except ValueError:
        return None
    return list(parsed) if isinstance(parsed, dict) else None


def _check(text: str) -> None:
    keys = object_keys(text)
    if keys is not None:
        # A name given twice is listed twice; orjson keeps its first place.
        assert list(dict.fromkeys(keys)) == _orjson_keys(text), text


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.text(max_size=8), _VALUES, max_size=6),
    st.booleans(),
    st.lists(
        st.tuples(st.integers(min_value=0), st.sampled_from(_TOKENS), st.integers(0, 3)),
        max_size=3,
    ),
)
def test_what_the_fast_check_accepts_orjson_accepts(
    doc: dict[str, Any], ascii_only: bool, edits: Any
) -> None:
    # The stdlib writes integers beyond 64 bits and, ascii_only, lone surrogates as escapes.
    text = json.dumps(doc, ensure_ascii=ascii_only)
    _check(text)  # valid JSON: both agree (or simdjson declines)
    for pos, token, cut in edits:
        at = pos % (len(text) + 1)
        text = text[:at] + token + text[at + cut :]
        _check(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"a":"\\ud800"}',
        '{"a":"\\udc00\\ud800"}',
        '{"a":NaN}',
        '{"a":1,}',
        '{"a":1e999}',
        '{"a":01}',
        '{"a":1} x',
        '{"a":"\x01"}',
        '{"a":18446744073709551616}',  # orjson reads it (as a float); simdjson declines
        "{" * 1024 + "}" * 1024,  # orjson's depth limit is 1024
        '{"a":' * 1023 + "1" + "}" * 1023,
        '["not", "an", "object"]',
        '"text"',
        "",
    ],
)
def test_edge_cases_agree_with_orjson(text: str) -> None:
    _check(text)


def test_a_valid_object_is_listed_without_orjson() -> None:
    page = {f"{i}:id{i}": {"n": i, "s": "é\u2028", "d": {"$date": 1}} for i in range(1, 501)}
    assert object_keys(orjson.dumps(page).decode()) == list(page)
    assert object_keys('{"a":1,"a":2}') == ["a", "a"]  # a name given twice: listed, not refused
    assert object_keys('{"\\u00e9":1}') == ["é"]
    assert object_keys("[1, 2]") is None
    # A str that has no UTF-8 form (a lone surrogate, as a str, not escaped) is left to orjson.
    assert object_keys('{"a\ud800":1}') is None


def test_without_the_extra_every_text_is_left_to_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsoncheck, "_simdjson", None)
    assert not jsoncheck.available()
    assert object_keys('{"a":1}') is None

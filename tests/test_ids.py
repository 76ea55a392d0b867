"""Meteor ids: Random.id/secret/hexString, idStringify/idParse (§7), Alea streams (§5.2)."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId
from hypothesis import given
from hypothesis import strategies as st

from aioserversync.exceptions import EJSONError
from aioserversync.ids import (
    UNMISTAKABLE_CHARS,
    Alea,
    RandomStream,
    id_parse,
    id_stringify,
    insert_id_from_seed,
    random_hex,
    random_id,
    random_secret,
)

OID = "5f1d7a0b2c3e4f5a6b7c8d9e"
SEED = "0123456789abcdef0123"


def test_alphabet_has_no_look_alikes() -> None:
    assert len(UNMISTAKABLE_CHARS) == 55
    assert not set("01IOUVl") & set(UNMISTAKABLE_CHARS)


def test_random_id_secret_and_hex() -> None:
    ids = {random_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 17 and set(i) <= set(UNMISTAKABLE_CHARS) for i in ids)
    assert len(random_id(5)) == 5
    secret = random_secret()
    assert len(secret) == 43
    assert set(secret) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
    h = random_hex(24)
    assert len(h) == 24 and set(h) <= set("0123456789abcdef")


def test_random_id_characters_are_uniform() -> None:
    # 55 characters: rejection sampling must not favour the first 256 % 55 = 36 of them.
    # 110,000 draws, 2,000 expected per character; a chi-square over 54 degrees of freedom
    # exceeds 110 with probability about 1e-5, while a modulo bias (~27 % extra on 36 of them)
    # gives ~3,000.
    counts = dict.fromkeys(UNMISTAKABLE_CHARS, 0)
    for _ in range(10_000):
        for c in random_id(11):
            counts[c] += 1
    chi2 = sum((n - 2000) ** 2 / 2000 for n in counts.values())
    assert chi2 < 110, chi2


# --------------------------------------------------------------------------- §7.2 tables


@pytest.mark.parametrize(
    ("doc_id", "wire"),
    [
        ("abc", "abc"),
        ("", ""),
        ("-abc", "--abc"),
        ("~abc", "-~abc"),
        ("{x", "-{x"),
        (OID, "-" + OID),
        (OID.upper(), OID.upper()),
        (ObjectId(OID), OID),
        (42, "~42"),
        (True, "~true"),
        (None, "~null"),
        (1.5, "~1.5"),
        (42.0, "~42"),
        (-3, "~-3"),
    ],
)
def test_id_stringify(doc_id: Any, wire: str) -> None:
    assert id_stringify(doc_id) == wire


@pytest.mark.parametrize(
    ("wire", "doc_id"),
    [
        ("", ""),
        ("-", None),  # Meteor's undefined
        ("--abc", "-abc"),
        ("-~abc", "~abc"),
        ("-" + OID, OID),
        (OID, ObjectId(OID)),
        (OID.upper(), OID.upper()),
        ("~42", 42),
        ("~true", True),
        ("~null", None),
        ("~1.5", 1.5),
        ('~"s"', "s"),
        ("plain", "plain"),
    ],
)
def test_id_parse(wire: str, doc_id: Any) -> None:
    assert id_parse(wire) == doc_id
    assert type(id_parse(wire)) is type(doc_id)


def test_refused_ids() -> None:
    for bad in ({"a": 1}, [1], float("nan"), b"x"):
        with pytest.raises(EJSONError):
            id_stringify(bad)
    with pytest.raises(EJSONError):
        id_parse("~{not json")


@given(
    st.one_of(
        st.text(),
        st.integers(-(2**53), 2**53),
        st.booleans(),
        st.binary(min_size=12, max_size=12).map(ObjectId),
    )
)
def test_stringify_parse_round_trip(doc_id: Any) -> None:
    back = id_parse(id_stringify(doc_id))
    assert back == doc_id and type(back) is type(doc_id)


# --------------------------------------------------------------------------- §5.2 vectors


def test_alea_first_fraction() -> None:
    assert Alea("abc").fraction() == 0.4795641906093806


def test_insert_ids_from_a_method_seed() -> None:
    stream = RandomStream(SEED)
    assert stream.insert_id("tasks") == "devBuvC559TzDB3E9"
    assert stream.insert_id("tasks") == "MjBCWTC6R4Tr5jJ3h"
    assert insert_id_from_seed(SEED, "tasks") == "devBuvC559TzDB3E9"


def test_hex_string_from_the_same_seed() -> None:
    assert Alea(SEED, "/collection/tasks").hex_string(24) == "9ae2ee30127f320325b22773"
    assert RandomStream(SEED).insert_id("tasks", object_id=True) == ObjectId(
        "9ae2ee30127f320325b22773"
    )


def test_streams_are_independent_per_scope() -> None:
    stream = RandomStream(SEED)
    first_other = stream.insert_id("other")
    assert stream.insert_id("tasks") == "devBuvC559TzDB3E9"  # untouched by the other scope
    assert RandomStream(SEED).insert_id("other") == first_other
    assert stream.get("/collection/tasks") is stream.get("/collection/tasks")


def test_alea_is_deterministic_and_in_range() -> None:
    a, b = Alea("x", "y"), Alea("x", "y")
    values = [a.fraction() for _ in range(1000)]
    assert values == [b.fraction() for _ in range(1000)]
    assert all(0 <= v < 1 for v in values)
    assert Alea("x").id() != Alea("y").id()
    assert len(Alea("z").id(5)) == 5
    assert Alea("q").choice("ab") in "ab"

"""Decoding the fields carried by change events (``asyncio/resolve.py``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from aioserversync.asyncio.resolve import decode_fields

AT = datetime(1970, 1, 1, 0, 0, 0, 5000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("wire", "decoded"),
    [
        ({"counter": 7, "s": "x", "f": 1.5, "b": True, "n": None}, None),  # scalars: a copy
        ({"$a": 1, "$b": 2, "$c": 3}, None),  # three "$" keys cannot be a special object
        ({"$set": 1, "plain": 2}, None),
        ({"at": {"$date": 5}, "n": 1}, {"at": AT, "n": 1}),
        ({"l": [{"$date": 5}], "n": 1}, {"l": [AT], "n": 1}),
        ({"$escape": {"$date": 5}}, {"$date": 5}),  # an escaped object at the top level
    ],
)
def test_decode_fields_returns_a_new_decoded_dict(wire: dict[str, Any], decoded: Any) -> None:
    before = repr(wire)
    got = decode_fields(wire)
    assert got == (wire if decoded is None else decoded)
    assert got is not wire
    assert repr(wire) == before  # the input is left untouched


def test_decode_fields_of_none_is_none() -> None:
    assert decode_fields(None) is None

"""Meteor ids: ``Random.id()``, MongoID's wire form, and Alea random streams (ddp-facts §5.2, §7).

* :func:`random_id` is Meteor's ``Random.id()``: 17 characters from a 55-letter alphabet without
  look-alike characters, drawn from the operating system's CSPRNG.
* :func:`id_stringify` and :func:`id_parse` are ``MongoID.idStringify``/``idParse``: they give the
  ``id`` of ``added``/``changed``/``removed`` messages and back.
* :class:`RandomStream` reproduces ``DDP.randomStream``: seeded from a method's ``randomSeed`` and a
  scope name such as ``"/collection/tasks"``, it yields the same ids a Meteor client stub made, so
  a server can give an inserted document the ``_id`` the client already shows.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
from bson import ObjectId

from .exceptions import EJSONError

__all__ = [
    "UNMISTAKABLE_CHARS",
    "Alea",
    "RandomStream",
    "check_new_id",
    "id_parse",
    "id_stringify",
    "insert_id_from_seed",
    "random_hex",
    "random_id",
    "random_secret",
]

UNMISTAKABLE_CHARS = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
_BASE64URL = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
_HEX = "0123456789abcdef"
_HEXSET = frozenset(_HEX)


def _draw_table(alphabet: str) -> tuple[bytes, bytes]:
    """The ``bytes.translate`` table and deleted bytes that turn random bytes into ``alphabet``.

    Bytes at or above the largest multiple of ``len(alphabet)`` are deleted, so every character
    of the alphabet is equally likely.
    """
    n = len(alphabet)
    limit = 256 - 256 % n
    table = bytes(ord(alphabet[b % n]) if b < limit else 0 for b in range(256))
    return table, bytes(range(limit, 256))


_DRAW_TABLES: dict[str, tuple[bytes, bytes]] = {}


def _random_chars(alphabet: str, length: int) -> str:
    """``length`` characters drawn uniformly from an ASCII ``alphabet`` with the OS CSPRNG.

    One ``os.urandom`` call per id (rarely two) and one ``bytes.translate``, instead of a Python
    loop per character: about 10 times faster, which matters to bulk local inserts, where each
    document and each outbox record takes one id.
    """
    draw = _DRAW_TABLES.get(alphabet)
    if draw is None:
        draw = _DRAW_TABLES[alphabet] = _draw_table(alphabet)
    table, rejected = draw
    out = b""
    while len(out) < length:
        out += os.urandom(length - len(out) + 8).translate(table, rejected)
    return out[:length].decode("ascii")


def random_id(length: int = 17) -> str:
    """Return a Meteor ``Random.id()``: ``length`` characters from the unmistakable alphabet."""
    return _random_chars(UNMISTAKABLE_CHARS, length)


def random_secret(length: int = 43) -> str:
    """Return a Meteor ``Random.secret()``: base64url characters, as used for login tokens."""
    return _random_chars(_BASE64URL, length)


def random_hex(length: int) -> str:
    """Return ``length`` random lowercase hex characters."""
    return _random_chars(_HEX, length)


def _is_oid_hex(s: str) -> bool:
    return len(s) == 24 and all(c in _HEXSET for c in s)


def id_stringify(doc_id: Any) -> str:
    """Return the wire form of a document ``_id``, exactly as ``MongoID.idStringify``.

    Raises:
        EJSONError: For ids Meteor refuses (objects other than ObjectId, floats that are not JSON).
    """
    if isinstance(doc_id, ObjectId):
        return str(doc_id)
    if isinstance(doc_id, str):
        if doc_id == "":
            return doc_id
        first = doc_id[0]
        if first in "-~{" or _is_oid_hex(doc_id):
            return "-" + doc_id
        return doc_id
    if doc_id is None or isinstance(doc_id, bool | int | float):
        if isinstance(doc_id, float) and doc_id != doc_id:
            raise EJSONError("NaN cannot be a document id")
        if isinstance(doc_id, float) and doc_id.is_integer() and abs(doc_id) < 2**53:
            return "~" + str(int(doc_id))  # JSON.stringify(42.0) is "42"
        return "~" + orjson.dumps(doc_id).decode()
    raise EJSONError(f"Meteor does not support document ids of type {type(doc_id).__name__}")


def check_new_id(doc_id: Any) -> None:
    """Refuse ``None`` and ``""`` as the ``_id`` of a new document (Meteor requires ids).

    Raises:
        EJSONError: The id is ``None`` or ``""``.
    """
    if doc_id is None or doc_id == "":
        raise EJSONError(f"a document _id cannot be {doc_id!r}; leave it out for a new id")


_UNDEFINED: Any = None


def id_parse(wire_id: str) -> Any:
    """Reverse :func:`id_stringify`, exactly as ``MongoID.idParse``.

    ``"-"`` (Meteor's ``undefined``) parses as ``None``; a bare 24-character lowercase hex string
    is an ObjectId.

    Raises:
        EJSONError: If a ``~`` id does not hold valid JSON.
    """
    if wire_id == "":
        return wire_id
    if wire_id == "-":
        return _UNDEFINED
    first = wire_id[0]
    if first == "-":
        return wire_id[1:]
    if first == "~":
        try:
            return orjson.loads(wire_id[1:])
        except orjson.JSONDecodeError as exc:
            raise EJSONError(f"invalid '~' id {wire_id!r}") from exc
    if _is_oid_hex(wire_id):
        return ObjectId(wire_id)
    return wire_id


# --------------------------------------------------------------------------- Alea


class _Mash:
    """Johannes Baagøe's Mash hash, as in Meteor's ``AleaRandomGenerator``."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n: float = 0xEFC8249D

    def __call__(self, data: str) -> float:
        n: float = self.n
        raw = data.encode("utf-16-le", "surrogatepass")  # JavaScript's charCodeAt units
        for i in range(0, len(raw), 2):
            n += raw[i] | (raw[i + 1] << 8)
            h = 0.02519603282416938 * n
            n = int(h) & 0xFFFFFFFF  # h >>> 0 (h is never negative here)
            h -= n
            h *= n
            n = int(h) & 0xFFFFFFFF
            h -= n
            n += h * 0x100000000
        self.n = n
        return (int(n) & 0xFFFFFFFF) * 2.3283064365386963e-10


class Alea:
    """Meteor's seeded Alea generator: the same seeds give the same sequence as in JavaScript."""

    __slots__ = ("_c", "_s0", "_s1", "_s2")

    def __init__(self, *seeds: str) -> None:
        mash = _Mash()
        s0, s1, s2 = mash(" "), mash(" "), mash(" ")
        for seed in seeds:
            s0 -= mash(str(seed))
            if s0 < 0:
                s0 += 1
            s1 -= mash(str(seed))
            if s1 < 0:
                s1 += 1
            s2 -= mash(str(seed))
            if s2 < 0:
                s2 += 1
        self._s0, self._s1, self._s2, self._c = s0, s1, s2, 1

    def fraction(self) -> float:
        """Return the next number in [0, 1)."""
        t = 2091639 * self._s0 + self._c * 2.3283064365386963e-10
        self._s0 = self._s1
        self._s1 = self._s2
        self._c = int(t)  # t | 0 (t is positive and below 2**31)
        self._s2 = t - self._c
        return self._s2

    def choice(self, alphabet: str) -> str:
        """Return one character of ``alphabet``, as ``Random.choice``."""
        return alphabet[int(self.fraction() * len(alphabet))]

    def id(self, length: int = 17) -> str:
        """Return a Meteor id (``Random.id``) from this stream."""
        return "".join(self.choice(UNMISTAKABLE_CHARS) for _ in range(length))

    def hex_string(self, length: int) -> str:
        """Return ``length`` hex characters (``Random.hexString``) from this stream."""
        return "".join(self.choice(_HEX) for _ in range(length))


class RandomStream:
    """``DDP.randomStream``: independent named Alea sequences derived from one method seed.

    Args:
        seed: The method's ``randomSeed`` (20 hex characters from a Meteor client).
    """

    def __init__(self, seed: str) -> None:
        self.seed = seed
        self._sequences: dict[str, Alea] = {}

    def get(self, name: str) -> Alea:
        """Return the generator for ``name`` (created on first use, then continued)."""
        gen = self._sequences.get(name)
        if gen is None:
            gen = self._sequences[name] = Alea(self.seed, name)
        return gen

    def insert_id(self, collection: str, *, object_id: bool = False) -> str | ObjectId:
        """Return the next ``_id`` Meteor makes for an insert into ``collection``.

        Args:
            collection: The collection name (without slashes).
            object_id: For ``idGeneration: 'MONGO'`` collections, an ObjectId from 24 hex digits.
        """
        gen = self.get("/collection/" + collection)
        return ObjectId(gen.hex_string(24)) if object_id else gen.id()


def insert_id_from_seed(seed: str, collection: str) -> str:
    """Return the first ``_id`` a Meteor client stub makes for ``collection`` with ``seed``."""
    result = RandomStream(seed).insert_id(collection)
    assert isinstance(result, str)
    return result

"""Building blocks of the SQL translation: SQL fragments, JSON locations, special EJSON objects.

Documents are stored in EJSON *wire* form, so several BSON types are JSON objects:

==================  =============================================================  ============
type                wire form (exactly these keys, nothing else)                   bracket
==================  =============================================================  ============
date                ``{"$date": <ms>}``                                            date
NaN / ±Infinity     ``{"$InfNaN": 0 | 1 | -1}``                                    number
binary              ``{"$binary": "<base64>"}``                                    binary
regexp              ``{"$regexp": "<source>", "$flags": "<flags>"}``               regex
ObjectId            ``{"$type": "oid", "$value": "<hex>"}``                        ObjectId
Decimal             ``{"$type": "Decimal", "$value": "<text>"}``                   number
custom type         ``{"$type": "<name>", "$value": …}``                           object
escaped object      ``{"$escape": {…}}`` (a user object that looks special)        object
==================  =============================================================  ============

A user object with more keys is never special (EJSON only escapes objects of one or two keys), so
the checks below test the key count with ``json_remove(…) = '{}'``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from .paths import is_index

__all__ = [
    "FALSE",
    "NUM",
    "SPECIAL_KEYS",
    "TRUE",
    "Context",
    "Elem",
    "Frag",
    "Loc",
    "MissingLoc",
    "and_",
    "key_step",
    "lit",
    "not_",
    "or_",
    "parser_depth",
    "type_sql",
]

SPECIAL_KEYS: Final = frozenset(
    {"$date", "$InfNaN", "$binary", "$regexp", "$flags", "$type", "$value", "$escape"}
)
"""Keys that carry EJSON meaning in the wire form; a path using them cannot be translated."""


@dataclass(frozen=True, slots=True)
class Frag:
    """A piece of SQL: text with ``?`` placeholders, their values, and whether it is exact.

    A condition may evaluate to SQL ``NULL``, which counts as false; :func:`not_` maps it to true.
    An inexact condition is a superset of the exact one.
    """

    text: str
    params: tuple[Any, ...] = ()
    exact: bool = True


TRUE: Final = Frag("1")
FALSE: Final = Frag("0")
INEXACT: Final = Frag("1", (), False)


def and_(*frags: Frag) -> Frag:
    """Conjunction, folding constants."""
    items = [f for f in frags if f is not TRUE and not (f.text == "1" and f.exact)]
    if any(f.text == "0" and f.exact for f in items):
        return FALSE
    if not items:
        return TRUE
    if len(items) == 1:
        return items[0]
    return Frag(
        " AND ".join(f"({f.text})" for f in items),
        tuple(p for f in items for p in f.params),
        all(f.exact for f in items),
    )


def or_(*frags: Frag) -> Frag:
    """Disjunction, folding constants."""
    items = [f for f in frags if not (f.text == "0" and f.exact)]
    if any(f.text == "1" for f in items):
        return TRUE if all(f.exact for f in items if f.text == "1") else INEXACT
    if not items:
        return FALSE
    if len(items) == 1:
        return items[0]
    return Frag(
        " OR ".join(f"({f.text})" for f in items),
        tuple(p for f in items for p in f.params),
        all(f.exact for f in items),
    )


def not_(frag: Frag) -> Frag:
    """Negation; ``NULL`` (false) becomes true. The negation of an inexact condition is ``1``."""
    if not frag.exact:
        return INEXACT
    if frag.text == "1":
        return FALSE
    if frag.text == "0":
        return TRUE
    return Frag(f"NOT coalesce(({frag.text}), 0)", frag.params, True)


_TOKENS: Final = re.compile(r"'[^']*'|\(\s*SELECT\b|[()]|\bCASE\b|\bEND\b")
_WEIGHTS: Final = {"(": 3, "CASE": 2}


def parser_depth(sql: str) -> int:
    """Estimate how deep SQLite's parser stack goes for ``sql`` (it overflows near 90).

    Calibrated on generated selectors: a parenthesis costs about 3 entries, one that opens a
    sub-``SELECT`` about 8, an open ``CASE`` about 2.
    """
    bound = 3 * sql.count("(") + 5 * sql.count("SELECT") + 2 * sql.count("CASE")
    if bound <= 50:
        return bound  # an upper bound is enough for short statements
    stack: list[int] = []
    cur = best = 0
    for m in _TOKENS.finditer(sql):
        t = m.group(0)
        if t[0] == "'":
            continue
        if t == ")" or t == "END":
            cur -= stack.pop() if stack else 0
            continue
        w = _WEIGHTS.get(t, 8)
        stack.append(w)
        cur += w
        if cur > best:
            best = cur
    return best


def lit(s: str) -> str:
    """Quote a string as an SQL literal."""
    return "'" + s.replace("'", "''") + "'"


def key_step(key: str) -> str | None:
    r"""Return the JSON-path step for an object key, or ``None`` if SQLite cannot address it.

    Keys are double-quoted (``."a b"``). SQLite 3.40 matches keys against the raw JSON text and
    has no escapes in paths, so keys with ``"``, ``\`` or control characters are refused.
    """
    if '"' in key or "\\" in key or any(ord(c) < 0x20 for c in key):
        return None
    return f'."{key}"'


@dataclass
class Context:
    """Per-statement state: ``json_each`` aliases, ``$elemMatch`` nesting, size budget.

    Attributes:
        aliases: Aliases handed out so far.
        nesting: Current ``$elemMatch`` depth.
        emitted: Characters of field conditions produced so far.
    """

    aliases: int = 0
    nesting: int = 0
    emitted: int = 0

    def alias(self) -> str:
        """Return a fresh table alias."""
        self.aliases += 1
        return f"je{self.aliases}"


@dataclass(frozen=True, slots=True)
class Loc:
    """A JSON value at ``jp`` inside the JSON text given by the SQL expression ``root``.

    Attributes:
        root: SQL expression yielding JSON text (a column, or a guarded ``json_each`` value).
        jp: A JSON path such as ``$."a"."b"[0]``.
        array_doc: The location is an array being read as a document (keys ``"0"``, ``"1"`` …).
    """

    root: str
    jp: str = "$"
    array_doc: bool = False

    @property
    def type(self) -> str:
        """SQL for the JSON type name (``NULL`` when missing)."""
        return f"json_type({self.root},{lit(self.jp)})"

    @property
    def value(self) -> str:
        """SQL for ``json_extract`` of the location (JSON text for objects and arrays)."""
        return f"json_extract({self.root},{lit(self.jp)})"

    def each_source(self) -> str:
        """Arguments for ``json_each`` over this location (the root and a path).

        Measured faster than passing ``json_extract`` of the array: SQLite renders an extracted
        array back to text before ``json_each`` parses it again.
        """
        return f"{self.root},{lit(self.jp)}"

    def key(self, k: str) -> Loc | MissingLoc | None:
        """The location of field ``k`` (``None`` if it cannot be addressed)."""
        if self.array_doc:
            return Loc(self.root, f"{self.jp}[{int(k)}]") if is_index(k) else MISSING_LOC
        step = key_step(k)
        return None if step is None else Loc(self.root, self.jp + step)

    def index(self, i: int) -> Loc:
        """The location of array element ``i``."""
        return Loc(self.root, f"{self.jp}[{i}]")


@dataclass(frozen=True, slots=True)
class Elem:
    """The current row of ``json_each(...) AS alias``: an array element."""

    alias: str

    @property
    def type(self) -> str:
        """SQL for the element's JSON type name."""
        return f"{self.alias}.type"

    @property
    def value(self) -> str:
        """SQL for the element's value (JSON text for objects and arrays)."""
        return f"{self.alias}.value"

    def as_root(self, *, array_doc: bool = False) -> Loc:
        """The element as a JSON root, guarded so a scalar never reaches a JSON function."""
        kind = "array" if array_doc else "object"
        return Loc(
            f"CASE WHEN {self.alias}.type='{kind}' THEN {self.alias}.value END", "$", array_doc
        )

    def each_source(self) -> str:
        """Arguments for ``json_each`` over this element (no rows unless it is an array)."""
        return f"CASE WHEN {self.alias}.type='array' THEN {self.alias}.value END"

    def key(self, k: str) -> Loc | MissingLoc | None:
        """The location of field ``k`` inside the element (when it is an object)."""
        return self.as_root().key(k)

    def index(self, i: int) -> Loc:
        """The location of element ``i`` inside the element (when it is an array)."""
        return self.as_root(array_doc=True).index(i)


@dataclass(frozen=True, slots=True)
class MissingLoc:
    """A location that never exists (a named field of an array read as a document)."""

    type: str = "NULL"
    value: str = "NULL"

    def each_source(self) -> str:
        """No rows."""
        return "NULL"

    def key(self, k: str) -> MissingLoc:
        """Still missing."""
        return self

    def index(self, i: int) -> MissingLoc:
        """Still missing."""
        return self


MISSING_LOC: Final = MissingLoc()

AnyLoc = Loc | Elem | MissingLoc


# --------------------------------------------------------------------------- special objects


def _guarded_obj(loc: AnyLoc) -> str:
    return f"CASE WHEN {loc.type}='object' THEN {loc.value} END"


def only_keys(loc: AnyLoc, keys: Iterable[str]) -> str:
    """SQL: the object at ``loc`` has no keys other than ``keys``."""
    steps = ",".join(lit(f'$."{k}"') for k in keys)
    return f"json_remove({_guarded_obj(loc)},{steps})='{{}}'"


def sub(loc: AnyLoc, k: str) -> Loc | MissingLoc:
    """The location of a special key (always addressable)."""
    s = loc.key(k)
    assert s is not None
    return s


class Specials:
    """SQL conditions recognising each special object at one location."""

    __slots__ = ("loc",)

    def __init__(self, loc: AnyLoc) -> None:
        self.loc = loc

    def _one(self, key: str, types: str) -> str:
        s = sub(self.loc, key)
        return f"{s.type} IN ({types}) AND {only_keys(self.loc, [key])}"

    @property
    def date(self) -> str:
        """The value is a date."""
        return self._one("$date", "'integer','real'")

    @property
    def infnan(self) -> str:
        """The value is NaN or an infinity."""
        return self._one("$InfNaN", "'integer','real'")

    @property
    def binary(self) -> str:
        """The value is binary data."""
        return self._one("$binary", "'text'")

    @property
    def regexp(self) -> str:
        """The value is a regular expression."""
        r, f = sub(self.loc, "$regexp"), sub(self.loc, "$flags")
        return (
            f"{r.type}='text' AND {f.type}='text' AND {only_keys(self.loc, ['$regexp', '$flags'])}"
        )

    def typed(self, name: str | None = None) -> str:
        """The value is a ``$type``/``$value`` object (of type ``name`` when given)."""
        t, v = sub(self.loc, "$type"), sub(self.loc, "$value")
        head = f"{t.value}={lit(name)}" if name is not None else f"{t.type}='text'"
        return f"{head} AND {v.type} IS NOT NULL AND {only_keys(self.loc, ['$type', '$value'])}"

    @property
    def oid(self) -> str:
        """The value is an ObjectId."""
        return self.typed("oid")

    @property
    def decimal(self) -> str:
        """The value is a Decimal."""
        return self.typed("Decimal")

    def not_object(self) -> str:
        """The (object-typed) value is a special that is not an object for MongoDB."""
        v = self.loc.value
        return (
            f"substr({v},1,3)='{{\"$' AND "
            f"aioserversync_ejson_kind({v}) NOT IN ('plain','escape','custom')"
        )

    def traversable(self) -> str:
        """SQL: the value is a plain object a path can walk into.

        Special objects all start with ``{"$``, so ``aioserversync_ejson_kind`` only runs on the
        few objects whose first key starts with ``$``.
        """
        v = self.loc.value
        return (
            f"{self.loc.type}='object' AND (substr({v},1,3)<>'{{\"$' "
            f"OR aioserversync_ejson_kind({v}) IN ('plain','escape'))"
        )


NUM: Final = "'integer','real'"


def type_sql(codes: frozenset[int], loc: AnyLoc) -> Frag:
    """SQL for ``$type``: the value's BSON type number is in ``codes`` (``0``: any number)."""
    t, val = loc.type, loc.value
    sp = Specials(loc)
    int32 = f"{val} BETWEEN -2147483648 AND 2147483647"
    table = {
        1: f"{t}='real' OR ({sp.infnan})",
        2: f"{t}='text'",
        3: f"{t}='object' AND NOT coalesce(({sp.not_object()}), 0)",
        4: f"{t}='array'",
        5: sp.binary,
        7: sp.oid,
        8: f"{t} IN ('true','false')",
        9: sp.date,
        10: f"{t}='null'",
        11: sp.regexp,
        16: f"{t}='integer' AND {int32}",
        18: f"{t}='integer' AND NOT ({int32})",
        19: sp.decimal,
        0: f"{t} IN ({NUM}) OR ({sp.infnan}) OR ({sp.decimal})",
    }
    conds = [Frag(table[c]) for c in sorted(codes) if c in table]
    return or_(*conds)

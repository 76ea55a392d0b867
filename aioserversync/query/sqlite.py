"""SQLite JSON1 translation of selectors and sorts, for documents stored in EJSON wire form.

Storage layout assumed: one row per document, ``id`` holding the wire id
(:func:`~aioserversync.ids.id_stringify`) and ``fields`` the JSON text of the wire form without
``_id``, written by :func:`aioserversync.ejson.dumps` (keys unescaped, dates as ``{"$date": ms}``).

* :func:`compile_sql` gives an :class:`SQLPlan`. When ``exact`` is false the condition is a superset
  and rows must be post-filtered with the :class:`~.matcher.Matcher` of the same selector.
* :func:`sql_order_by` gives an ``ORDER BY`` body in MongoDB order.
* :func:`index_expressions` gives the expressions to index for a path, one index each.
* :func:`register_sqlite_functions` must be called on every connection that runs these
  statements; it registers ``aioserversync_*`` functions (regular expressions, exact Decimal
  comparison, sort keys of arrays and objects) on that connection only.
"""

from __future__ import annotations

import functools
import math
import re
import sqlite3
import threading
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import orjson

from ..ejson import date_to_ms, decode_inplace
from ..exceptions import EJSONError, QueryError
from ..ids import id_parse
from .matcher import single_value_test
from .paths import split_path
from .selector import Cmp, Eq, In, parse_selector
from .sort import field_sort_value, normalize_sort
from .sqlexpr import SPECIAL_KEYS, Context, Loc, Specials, lit, parser_depth
from .sqlpred import node_sql
from .values import (
    BOOL,
    DATE,
    NULL,
    NUMBER,
    OID,
    STRING,
    UNDEFINED,
    bracket,
    is_nan,
    sort_bytes,
)

__all__ = [
    "SQLPlan",
    "compile_sql",
    "index_expressions",
    "register_sqlite_functions",
    "sql_order_by",
]


@dataclass(frozen=True, slots=True)
class SQLPlan:
    """A selector translated to SQL.

    Attributes:
        where: A condition for a ``WHERE`` clause (``"1"`` matches everything).
        params: Values for the ``?`` placeholders, in order.
        exact: ``False`` when ``where`` is a superset: post-filter the rows with the matcher.
    """

    where: str
    params: list[Any] = field(default_factory=list)
    exact: bool = True


def _root(fields_col: str) -> Loc:
    return Loc(fields_col, "$")


def compile_sql(selector: Any, *, fields_col: str = "fields", id_col: str = "id") -> SQLPlan:
    """Translate a selector into an SQL condition over wire-form rows.

    ``_id`` equality and ``$in`` on string/ObjectId ids use ``id_col``; every other condition
    reads ``fields_col`` with JSON1 functions. The statement needs the functions registered by
    :func:`register_sqlite_functions`.

    Args:
        selector: A MongoDB selector over decoded values (as for
            :func:`~.matcher.compile_selector`).
        fields_col: SQL expression of the JSON column.
        id_col: SQL expression of the wire-id column.

    Raises:
        QueryError: For malformed selectors and unknown or unsupported operators.
    """
    try:
        key = (repr(selector), fields_col, id_col)
    except RecursionError as exc:
        raise QueryError("the selector is nested too deeply") from exc
    with _PLANS_LOCK:
        cached = _PLANS.get(key)
    if cached is None:
        cached = _compile_sql(selector, fields_col, id_col)
        if len(key[0]) > _PLAN_CACHE_MAX_KEY:
            return cached
        with _PLANS_LOCK:
            if len(_PLANS) >= _PLAN_CACHE_SIZE:
                _PLANS.pop(next(iter(_PLANS)))
            _PLANS[key] = cached
    return SQLPlan(cached.where, list(cached.params), cached.exact)


# Recent plans by the selector's repr (which tells 1, 1.0 and True apart). Stores call
# compile_sql from their own threads, hence the lock.
_PLANS: dict[tuple[str, str, str], SQLPlan] = {}
_PLANS_LOCK: Final = threading.Lock()
_PLAN_CACHE_SIZE: Final = 512
_PLAN_CACHE_MAX_KEY: Final = 4096


def _compile_sql(selector: Any, fields_col: str, id_col: str) -> SQLPlan:
    try:
        node = parse_selector(selector)
        frag = node_sql(node, _root(fields_col), Context(), id_col=id_col)
    except RecursionError as exc:
        raise QueryError("the selector is nested too deeply") from exc
    if parser_depth(frag.text) > _MAX_DEPTH:
        return SQLPlan("1", [], False)  # deeper than SQLite's parser accepts
    return SQLPlan(frag.text, list(frag.params), frag.exact)


_MAX_DEPTH: Final = 76


def index_expressions(path: str, *, fields_col: str = "fields") -> list[str]:
    """Return the SQL expressions to index for a field path, one index per expression.

    The first expression is the value (``json_extract``): it serves equality, ranges, null and
    missing tests, and finding arrays and special objects (by the first character of their JSON
    text). Use it alone for a unique index or as a column of a compound index. The others serve
    the rest of :func:`compile_sql`'s conditions and need an index each: the JSON type of each
    prefix of a dotted path (arrays met on the way), then the milliseconds of a date value.
    ``_id`` needs no expression (the id column is the key): the result is empty.

    Raises:
        QueryError: If the path is malformed or uses a key SQLite paths cannot address.
    """
    parts = split_path(path)
    if parts == ("_id",):
        return []
    if any(p in SPECIAL_KEYS for p in parts):
        raise QueryError(f"cannot index the path {path!r}")
    locs: list[Loc] = []
    cur = _root(fields_col)
    for p in parts:
        nxt = cur.key(p)
        if not isinstance(nxt, Loc):
            raise QueryError(f"cannot index the path {path!r}")
        cur = nxt
        locs.append(cur)
    full = locs[-1]
    out = [full.value]
    out += [loc.type for loc in locs[:-1]]
    date = full.key("$date")
    assert isinstance(date, Loc)
    out.append(date.value)
    return out


# --------------------------------------------------------------------------- ORDER BY

_INLINE_TYPES: Final = "'integer','real','text','true','false','null'"


def sql_order_by(sort: Any, *, fields_col: str = "fields", id_col: str = "id") -> str | None:
    """Return an ``ORDER BY`` body (without the keywords) giving MongoDB order, or ``None``.

    ``None`` means there is nothing to sort by. Scalars and dates are ordered by inline SQL;
    arrays, objects and other types go through ``aioserversync_sort_*`` functions, so this needs
    :func:`register_sqlite_functions`. A ``_id`` key orders by ``id_col`` when ids are strings.
    Decimal values and integers beyond 64 bits order by their nearest double.

    Raises:
        QueryError: If the sort is malformed (see :func:`~.sort.normalize_sort`).
    """
    spec = normalize_sort(sort)
    if not spec:
        return None
    terms: list[str] = []
    for path, direction in spec:
        d = "ASC" if direction > 0 else "DESC"
        if path == "_id":
            b, v = _id_order_terms(id_col)
        elif path.startswith("_id."):
            continue  # ids are never objects: the key is null for every document
        else:
            b, v = _order_terms(path, direction, fields_col)
        terms.append(f"{b} {d}")
        terms.append(f"{v} {d}")
    return ", ".join(terms) if terms else None


def _id_order_terms(id_col: str) -> tuple[str, str]:
    # Wire ids (MongoID.idStringify): plain strings as is, ObjectIds as 24 lowercase hex digits,
    # strings that would be ambiguous behind "-", numbers, booleans and null behind "~".
    oid = f"length({id_col})=24 AND {id_col} NOT GLOB '*[^0-9a-f]*'"
    tilde = f"(substr({id_col},1,1)='~' OR {id_col}='-')"
    b = (
        f"CASE WHEN {tilde} THEN aioserversync_id_sort({id_col},0) "
        f"WHEN {oid} THEN {OID} ELSE {STRING} END"
    )
    v = (
        f"CASE WHEN {tilde} THEN aioserversync_id_sort({id_col},1) WHEN {oid} THEN {id_col} "
        f"WHEN substr({id_col},1,1)='-' THEN substr({id_col},2) ELSE {id_col} END"
    )
    return b, v


def _order_terms(path: str, direction: int, fields_col: str) -> tuple[str, str]:
    parts = split_path(path, what="sort field")
    fn_args = f"{fields_col},{lit(path)},{direction}"
    fb = f"aioserversync_sort_bracket({fn_args})"
    fv = f"aioserversync_sort_value({fn_args})"
    cur: Any = _root(fields_col)
    addressable = not any(p in SPECIAL_KEYS for p in parts)
    if addressable:
        for p in parts:
            cur = cur.key(p)
            if cur is None:
                addressable = False
                break
    if not addressable:
        return fb, fv
    t, val = cur.type, cur.value
    d = cur.key("$date")
    date = f"{d.type}='integer' AND {Specials(cur).date}"
    missing_b = f"WHEN {t} IS NULL THEN {NULL} " if len(parts) == 1 else ""
    missing_v = f"WHEN {t} IS NULL THEN NULL " if len(parts) == 1 else ""
    b = (
        f"CASE WHEN {t} IN ('integer','real') THEN {NUMBER} WHEN {t}='text' THEN {STRING} "
        f"WHEN {t} IN ('true','false') THEN {BOOL} WHEN {t}='null' THEN {NULL} {missing_b}"
        f"WHEN {date} THEN {DATE} ELSE {fb} END"
    )
    v = (
        f"CASE WHEN {t} IN ('integer','real','text') THEN {val} WHEN {t}='true' THEN 1 "
        f"WHEN {t}='false' THEN 0 WHEN {t}='null' THEN NULL {missing_v}"
        f"WHEN {date} THEN {d.value} ELSE {fv} END"
    )
    return b, v


# --------------------------------------------------------------------------- SQL functions


@functools.lru_cache(maxsize=256)
def _compiled_regex(pattern: str, flags: str) -> re.Pattern[str] | None:
    bits = 0
    for c in flags:
        bits |= {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}.get(c, 0)
    try:
        return re.compile(pattern, bits)
    except (re.error, RecursionError, OverflowError, ValueError):
        return None


def _fn_regexp(pattern: Any, flags: Any, value: Any) -> int:
    if not isinstance(value, str) or not isinstance(pattern, str):
        return 0
    rx = _compiled_regex(pattern, flags if isinstance(flags, str) else "")
    return int(rx is not None and rx.search(value) is not None)


def _fn_regexp2(pattern: Any, value: Any) -> int:
    return _fn_regexp(pattern, "", value)


def _fn_sortchars(value: Any) -> Any:
    return "".join(sorted(value)) if isinstance(value, str) else None


def _decode_number(enc: str) -> Any:
    kind, _, body = enc.partition(":")
    if kind == "f":
        return float.fromhex(body)
    if kind == "d":
        return Decimal(body)
    return int(body)


@functools.lru_cache(maxsize=256)
def _num_predicate(op: str, enc: str) -> Any:
    if op == "in":
        return single_value_test(In(tuple(_decode_number(e) for e in enc.split("|"))))
    target = _decode_number(enc)
    return single_value_test(Eq(target) if op == "eq" else Cmp(op, target))


def _fn_num_test(value: Any, op: Any, enc: Any) -> int:
    if isinstance(value, str):
        try:
            value = Decimal(value)
        except (InvalidOperation, ValueError):
            return 0
    elif not isinstance(value, int | float) or value is None:
        return 0
    try:
        return int(bool(_num_predicate(str(op), str(enc))(value)))
    except (InvalidOperation, ValueError, TypeError):
        return 0


def _ejson_kind_of(obj: Any) -> str | None:
    """The kind of special EJSON object a parsed wire value is (``None`` if not an object)."""
    if type(obj) is not dict:
        return None
    n = len(obj)
    if n == 1:
        if "$date" in obj:
            v = obj["$date"]
            return (
                "date" if isinstance(v, int | float | str) and not isinstance(v, bool) else "plain"
            )
        if "$InfNaN" in obj:
            v = obj["$InfNaN"]
            return "infnan" if isinstance(v, int | float) and not isinstance(v, bool) else "plain"
        if "$binary" in obj:
            return "binary" if isinstance(obj["$binary"], str) else "plain"
        if "$escape" in obj:
            return "escape" if type(obj["$escape"]) is dict else "plain"
    elif n == 2:
        if "$regexp" in obj and "$flags" in obj:
            ok = isinstance(obj["$regexp"], str) and isinstance(obj["$flags"], str)
            return "regexp" if ok else "plain"
        if "$type" in obj and "$value" in obj:
            name = obj["$type"]
            if name == "oid":
                return "oid"
            if name == "Decimal":
                return "decimal"
            return "custom" if isinstance(name, str) else "plain"
    return "plain"


def _fn_ejson_kind(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    try:
        return _ejson_kind_of(orjson.loads(text))
    except orjson.JSONDecodeError:
        return None


def _fn_special_num(text: Any, op: Any, enc: Any) -> int:
    if not isinstance(text, str):
        return 0
    try:
        obj = orjson.loads(text)
        kind = _ejson_kind_of(obj)
        if kind == "infnan":
            s = obj["$InfNaN"]
            value: Any = math.inf if s > 0 else (-math.inf if s < 0 else math.nan)
        elif kind == "decimal" and isinstance(obj["$value"], str):
            value = Decimal(obj["$value"])
        else:
            return 0
        return int(bool(_num_predicate(str(op), str(enc))(value)))
    except (orjson.JSONDecodeError, InvalidOperation, ValueError, TypeError):
        return 0


class _SortCache:
    """Computes one row's sort value once for the bracket and value functions."""

    __slots__ = ("_key", "_result")

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._result: tuple[int, Any] = (NULL, None)

    def get(self, fields: Any, path: Any, direction: Any) -> tuple[int, Any]:
        key = (fields, path, direction)
        if key != self._key:
            self._result = _sort_terms(fields, path, direction)
            self._key = key
        return self._result

    def bracket(self, fields: Any, path: Any, direction: Any) -> int:
        return self.get(fields, path, direction)[0]

    def value(self, fields: Any, path: Any, direction: Any) -> Any:
        return self.get(fields, path, direction)[1]


def _sort_terms(fields: Any, path: Any, direction: Any) -> tuple[int, Any]:
    try:
        doc = decode_inplace(orjson.loads(fields)) if isinstance(fields, str | bytes) else None
        if not isinstance(doc, dict) or not isinstance(path, str):
            return NULL, None
        v = field_sort_value(doc, tuple(path.split(".")), 1 if direction == 1 else -1)
    except (orjson.JSONDecodeError, EJSONError, ValueError, TypeError):
        return NULL, None
    return _sql_sort_terms(v)


def _sql_sort_terms(v: Any) -> tuple[int, Any]:
    """The ``(bracket, value)`` ORDER BY terms of a sort value, matching the inline SQL."""
    br = bracket(v)
    if br == NUMBER:
        if is_nan(v):
            return br, None
        if isinstance(v, int) and -(2**63) <= v < 2**63:
            return br, int(v)
        return br, float(v)
    if br == STRING:
        return br, v
    if br == DATE:
        return br, date_to_ms(v)
    if br == BOOL:
        return br, int(v)
    if br == OID:
        return br, str(v)
    if br in (NULL, UNDEFINED):
        return br, None
    return br, sort_bytes(v)


def _fn_id_sort(wire_id: Any, which: Any) -> Any:
    try:
        v = id_parse(wire_id) if isinstance(wire_id, str) else None
    except (EJSONError, ValueError, TypeError):
        v = None
    br, val = _sql_sort_terms(v)
    return br if which == 0 else val


def register_sqlite_functions(conn: sqlite3.Connection) -> None:
    """Register the functions :func:`compile_sql` and :func:`sql_order_by` use, on ``conn`` only.

    ``aioserversync_regexp(pattern, flags, value)`` (Python regular expressions, as the matcher),
    ``regexp(pattern, value)`` (for ``value REGEXP pattern``), ``aioserversync_sortchars``,
    ``aioserversync_num_test`` and ``aioserversync_special_num`` (exact comparisons with Decimal,
    NaN and infinite values), ``aioserversync_ejson_kind`` (which special EJSON object a JSON
    object is), and ``aioserversync_sort_bracket`` /
    ``aioserversync_sort_value`` (sort keys of arrays, objects and other non-scalar values),
    ``aioserversync_id_sort`` (sort keys of numeric and boolean ids).
    """
    cache = _SortCache()
    conn.create_function("aioserversync_regexp", 3, _fn_regexp, deterministic=True)
    conn.create_function("regexp", 2, _fn_regexp2, deterministic=True)
    conn.create_function("aioserversync_sortchars", 1, _fn_sortchars, deterministic=True)
    conn.create_function("aioserversync_num_test", 3, _fn_num_test, deterministic=True)
    conn.create_function("aioserversync_special_num", 3, _fn_special_num, deterministic=True)
    conn.create_function("aioserversync_ejson_kind", 1, _fn_ejson_kind, deterministic=True)
    conn.create_function("aioserversync_sort_bracket", 3, cache.bracket, deterministic=True)
    conn.create_function("aioserversync_sort_value", 3, cache.value, deterministic=True)
    conn.create_function("aioserversync_id_sort", 2, _fn_id_sort, deterministic=True)

"""Translate parsed selectors into SQLite JSON1 conditions over wire-form documents.

A :class:`~.nodes.Field` holds when some value at its path passes its predicate. For a path
``p1.….pn`` the condition is an ``OR`` of independent, separately indexable terms:

1. the value at ``$.p1….pn`` passes (objects all the way down), or it is missing and the
   predicate accepts a missing value and no prefix is an array;
2. that value is an array with a passing element (``EXISTS … json_each``);
3. for each proper prefix that is an array, the rest of the path passes inside its elements
   (recursively, including numeric positions such as ``a.1``).

Every term starts with a condition an index can serve: the value compared with a parameter, the
value's JSON text bounded to ``[…`` (arrays) or ``{…`` (special numbers), the ``json_type`` of a
prefix, or the milliseconds of a date (``index_expressions`` lists those expressions). SQLite
then answers an equality or a range with a multi-index ``OR`` instead of a scan. Bounds that only
exclude other types are wrapped in ``likelihood(…, 0.99)`` so the planner does not count them.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from bson import ObjectId

from ..ejson import date_to_ms
from ..exceptions import EJSONError
from ..ids import id_stringify
from .matcher import single_value_test
from .paths import LEAF_BOTH, is_index
from .selector import (
    And,
    Cmp,
    ElemMatchDoc,
    ElemMatchValue,
    Eq,
    Exists,
    Field,
    In,
    Node,
    Not,
    Or,
    Regex,
    Size,
    Type,
    VAnd,
    VFalse,
    VNot,
    VPred,
)
from .sqlexpr import (
    FALSE,
    INEXACT,
    NUM,
    SPECIAL_KEYS,
    TRUE,
    AnyLoc,
    Context,
    Elem,
    Frag,
    MissingLoc,
    Specials,
    and_,
    lit,
    not_,
    only_keys,
    or_,
    parser_depth,
    sub,
    type_sql,
)
from .sqlrange import range_hints
from .values import (
    ARRAY,
    BINARY,
    BOOL,
    DATE,
    MAXKEY,
    MINKEY,
    MISSING,
    NULL,
    NUMBER,
    OBJECT,
    OID,
    REGEX,
    STRING,
    bracket,
    is_nan,
    is_number,
)

__all__ = ["encode_number", "node_sql"]

MAX_PARTS: Final = 8
MAX_NESTING: Final = 3
"""``$elemMatch`` levels translated; deeper ones are left to the matcher."""
MAX_EMITTED: Final = 100_000
"""Characters of SQL after which further field tests are left to the matcher."""
MAX_FIELD_DEPTH: Final = 50
"""Deepest estimated parser stack kept for one field test (SQLite's overflows near 90)."""
_SQL_OP: Final = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def encode_number(v: Any) -> str:
    """Encode a number as text for ``aioserversync_num_test`` (exact for every type)."""
    if isinstance(v, Decimal):
        return "d:" + str(v)
    if isinstance(v, float):
        return "f:" + v.hex()
    return "i:" + str(int(v))


def _bindable(v: Any) -> int | float | None:
    """The number as an SQLite value that compares exactly, or ``None``."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, Decimal):
        if not v.is_finite():
            return None
        if v == v.to_integral_value() and _INT64_MIN <= v <= _INT64_MAX:
            return int(v)
        f = float(v)
        return f if Decimal(f) == v else None
    iv = int(v)
    return iv if _INT64_MIN <= iv <= _INT64_MAX else None


# --------------------------------------------------------------------------- document nodes


def node_sql(node: Node, root: AnyLoc, ctx: Context, *, id_col: str | None = None) -> Frag:
    """Translate a document node evaluated against the JSON object at ``root``.

    Args:
        node: The parsed selector.
        root: The document's location.
        ctx: Alias counter.
        id_col: The id column, for ``_id`` conditions at the top level (``None`` inside
            ``$elemMatch``).
    """
    if isinstance(node, And):
        parts = [node_sql(c, root, ctx, id_col=id_col) for c in node.children]
        return and_(*parts, *range_hints(node.children, root))
    if isinstance(node, Or):
        return or_(*(node_sql(c, root, ctx, id_col=id_col) for c in node.children))
    if isinstance(node, Not):
        return not_(node_sql(node.child, root, ctx, id_col=id_col))
    if id_col is not None and node.parts[0] == "_id":
        return _id_sql(node, id_col)
    return field_sql(root, node.parts, node.pred, node.leaf, ctx)


def _id_sql(node: Field, id_col: str) -> Frag:
    pred = node.pred
    if len(node.parts) > 1:
        # Ids are strings, numbers or ObjectIds, never objects: a sub-path is always missing.
        return TRUE if single_value_test(pred)(MISSING) else FALSE
    if isinstance(pred, Exists):
        return TRUE
    values: tuple[Any, ...] = ()
    if isinstance(pred, Eq):
        values = (pred.value,)
    elif isinstance(pred, In) and not pred.regexes:
        values = pred.values
    else:
        return INEXACT
    if not all(isinstance(v, str | ObjectId) for v in values):
        return INEXACT
    try:
        ids = tuple(id_stringify(v) for v in values)
    except EJSONError:
        return INEXACT
    if not ids:
        return FALSE
    if len(ids) == 1:
        return Frag(f"{id_col}=?", ids)
    return Frag(f"{id_col} IN ({','.join('?' * len(ids))})", ids)


def field_sql(root: AnyLoc, parts: tuple[str, ...], pred: VPred, leaf: int, ctx: Context) -> Frag:
    """SQL for "some value at ``parts`` under the object ``root`` passes ``pred``"."""
    if len(parts) > MAX_PARTS or any(p in SPECIAL_KEYS for p in parts):
        return INEXACT
    if ctx.emitted > MAX_EMITTED:
        return INEXACT  # the statement is already large: leave the rest to the matcher
    missing = single_value_test(pred)(MISSING)
    frag = _any_at(root, parts, pred, leaf, missing, ctx)
    if parser_depth(frag.text) > MAX_FIELD_DEPTH:
        return INEXACT  # too deep for SQLite's parser: the matcher decides
    ctx.emitted += len(frag.text)
    return frag


def _any_at(
    obj: AnyLoc, parts: tuple[str, ...], pred: VPred, leaf: int, missing: bool, ctx: Context
) -> Frag:
    locs: list[AnyLoc] = []
    cur: AnyLoc = obj
    for p in parts:
        nxt = cur.key(p)
        if nxt is None:
            return INEXACT
        cur = nxt
        locs.append(cur)
    full = locs[-1]
    if isinstance(full, MissingLoc):
        return TRUE if missing else FALSE
    terms = [pred_sql(pred, full, ctx)]
    if missing:
        conds = [Frag(f"{full.value} IS NULL AND {full.type} IS NULL")]
        conds += [Frag(f"{loc.type} IS NOT 'array'") for loc in locs[:-1]]
        terms.append(and_(*conds))
    if leaf == LEAF_BOTH:
        terms.append(_exists_elem(full, ctx, lambda e: pred_sql(pred, e, ctx), ranged=True))
    for i, loc in enumerate(locs[:-1]):
        inner = _any_in_array(loc, parts[i + 1 :], pred, leaf, missing, ctx)
        terms.append(and_(Frag(f"{loc.type}='array'"), inner))
    return or_(*terms)


def _exists_elem(arr: AnyLoc, ctx: Context, body: Any, *, ranged: bool = False) -> Frag:
    """``arr`` is an array with an element for which ``body(elem)`` holds.

    With ``ranged``, the condition also bounds the value's JSON text to ``[…``, which lets SQLite
    find arrays through an index on the value.
    """
    alias = ctx.alias()
    inner: Frag = body(Elem(alias))
    if inner.text == "0" and inner.exact:
        return FALSE
    head = f"{arr.value}>='[' AND {arr.value}<'\\' AND " if ranged else ""
    text = (
        f"{head}{arr.type}='array' AND EXISTS (SELECT 1 FROM json_each({arr.each_source()}) "
        f"AS {alias} WHERE {inner.text})"
    )
    return Frag(text, inner.params, inner.exact)


def _any_in_array(
    arr: AnyLoc, rest: tuple[str, ...], pred: VPred, leaf: int, missing: bool, ctx: Context
) -> Frag:
    """Some value at ``rest`` inside the elements of the array ``arr`` passes."""

    def in_object(e: Elem) -> Frag:
        return and_(
            Frag(Specials(e).traversable()),
            _any_at(e.as_root(), rest, pred, leaf, missing, ctx),
        )

    terms = [_exists_elem(arr, ctx, in_object)]
    if is_index(rest[0]) and not isinstance(arr, MissingLoc):
        el = arr.index(int(rest[0]))
        if len(rest) == 1:
            terms.append(and_(Frag(f"{el.type} IS NOT NULL"), pred_sql(pred, el, ctx)))
        else:
            terms.append(
                and_(
                    Frag(Specials(el).traversable()),
                    _any_at(el, rest[1:], pred, leaf, missing, ctx),
                )
            )
            terms.append(
                and_(
                    Frag(f"{el.type}='array'"),
                    _any_in_array(el, rest[1:], pred, leaf, missing, ctx),
                )
            )
    return or_(*terms)


# --------------------------------------------------------------------------- value predicates


def pred_sql(pred: VPred, loc: AnyLoc, ctx: Context) -> Frag:
    """SQL for "the value present at ``loc`` passes ``pred``" (false when missing)."""
    if isinstance(pred, Eq):
        return _eq_sql(pred.value, loc)
    if isinstance(pred, Cmp):
        return _cmp_sql(pred.op, pred.value, loc)
    if isinstance(pred, Regex):
        return _regex_sql(pred, loc)
    if isinstance(pred, In):
        return _in_sql(pred, loc)
    if isinstance(pred, Exists):
        return Frag(f"{loc.type} IS NOT NULL")
    if isinstance(pred, Type):
        return type_sql(pred.codes, loc)
    if isinstance(pred, Size):
        return Frag(
            f"{loc.type}='array' AND json_array_length(CASE WHEN {loc.type}='array' "
            f"THEN {loc.value} END)=?",
            (pred.n,),
        )
    if isinstance(pred, ElemMatchValue | ElemMatchDoc):
        if ctx.nesting >= MAX_NESTING:
            return Frag(f"{loc.type}='array'", (), False)
        ctx.nesting += 1
        try:
            return _elem_match_sql(pred, loc, ctx)
        finally:
            ctx.nesting -= 1
    if isinstance(pred, VNot):
        return not_(pred_sql(pred.pred, loc, ctx))
    if isinstance(pred, VAnd):
        return and_(*(pred_sql(p, loc, ctx) for p in pred.preds))
    if isinstance(pred, VFalse):
        return FALSE
    raise AssertionError(f"unknown predicate {pred!r}")


def _elem_match_sql(pred: ElemMatchValue | ElemMatchDoc, loc: AnyLoc, ctx: Context) -> Frag:
    if isinstance(pred, ElemMatchValue):
        return _exists_elem(loc, ctx, lambda e: and_(*(pred_sql(p, e, ctx) for p in pred.preds)))
    node = pred.node

    def elem_doc(e: Elem) -> Frag:
        as_obj = and_(Frag(Specials(e).traversable()), node_sql(node, e.as_root(), ctx))
        as_arr = and_(Frag(f"{e.type}='array'"), node_sql(node, e.as_root(array_doc=True), ctx))
        return or_(as_obj, as_arr)

    return _exists_elem(loc, ctx, elem_doc)


def _eq_sql(v: Any, loc: AnyLoc) -> Frag:
    t, val = loc.type, loc.value
    if v is None:
        return Frag(f"{val} IS NULL AND {t}='null'")
    if isinstance(v, bool):
        return Frag(f"{val}={int(v)} AND {t}='{'true' if v else 'false'}'")
    if isinstance(v, str):
        return Frag(f"{val}=? AND {t}='text'", (v,))
    if is_number(v):
        return _num_sql("eq", v, loc)
    br = bracket(v)
    sp = Specials(loc)
    if br == DATE:
        return _date_sql("eq", v, loc)
    if br == OID:
        return Frag(f"lower({sub(loc, '$value').value})=? AND {sp.oid}", (str(v),))
    if br == OBJECT:
        return Frag(f"{t}='object'", (), False)
    if br == ARRAY:
        return Frag(f"{t}='array'", (), False)
    if br == BINARY:
        return Frag(sp.binary, (), False)
    if br == REGEX:
        return Frag(sp.regexp, (), False)
    return FALSE  # timestamps, MinKey and MaxKey cannot be stored in EJSON


def _num_sql(op: str, target: Any, loc: AnyLoc) -> Frag:
    """Numbers in all their wire forms: JSON numbers, ``$InfNaN`` and ``Decimal`` objects."""
    t, val = loc.type, loc.value
    test = single_value_test(Eq(target) if op == "eq" else Cmp(op, target))
    enc = encode_number(target)
    if is_nan(target):
        finite = FALSE
    elif isinstance(target, float | Decimal) and math.isinf(target):
        finite = Frag(f"{t} IN ({NUM})") if test(0) else FALSE
    else:
        b = _bindable(target)
        if b is None:
            finite = Frag(f"{t} IN ({NUM}) AND aioserversync_num_test({val},?,?)", (op, enc))
        else:
            bound = " AND " + _below_text(val) if op in ("gt", "gte") else ""
            finite = Frag(f"{val}{_SQL_OP[op]}?{bound} AND {t} IN ({NUM})", (b,))
    return or_(finite, _special_numbers(loc, op, enc))


def _special_numbers(loc: AnyLoc, op: str, enc: str) -> Frag:
    """NaN, infinities and Decimals, stored as objects, tested by ``aioserversync_special_num``."""
    val = loc.value
    text = (
        f"{val}>='{{' AND {val}<'|' AND {loc.type}='object' AND substr({val},1,3)='{{\"$' "
        f"AND aioserversync_special_num({val},?,?)"
    )
    return Frag(text, (op, enc))


def _below_text(expr: str) -> str:
    """``expr < ''``: numbers only (SQLite orders every number below every text).

    The bound keeps an index range off text values; ``likelihood`` tells the planner it hardly
    narrows anything, so a real two-sided range on the same index (a range hint) wins.
    """
    return f"likelihood({expr}<'', 0.99)"


def _text_only(expr: str) -> str:
    """``expr >= ''``: text only; see :func:`_below_text`."""
    return f"likelihood({expr}>='', 0.99)"


def _date_sql(op: str, v: datetime, loc: AnyLoc) -> Frag:
    # A stored $date may carry a fraction; decoding floors it to whole milliseconds.
    ms = date_to_ms(v)
    d = sub(loc, "$date").value
    conds = {
        "eq": (f"{d}>=? AND {d}<?", (ms, ms + 1)),
        "gt": (f"{d}>=? AND {_below_text(d)}", (ms + 1,)),
        "gte": (f"{d}>=? AND {_below_text(d)}", (ms,)),
        "lt": (f"{d}<?", (ms,)),
        "lte": (f"{d}<?", (ms + 1,)),
    }
    text, params = conds[op]
    return Frag(f"{text} AND {Specials(loc).date}", params)


def _cmp_sql(op: str, v: Any, loc: AnyLoc) -> Frag:
    t, val = loc.type, loc.value
    br = bracket(v)
    if br == NULL:
        return Frag(f"{val} IS NULL AND {t}='null'") if op in ("gte", "lte") else FALSE
    if br == NUMBER:
        return _num_sql(op, v, loc)
    if br == STRING:
        bound = " AND " + _text_only(val) if op in ("lt", "lte") else ""
        return Frag(f"{val}{_SQL_OP[op]}?{bound} AND {t}='text'", (v,))
    if br == DATE:
        return _date_sql(op, v, loc)
    if br == BOOL:
        single = single_value_test(Cmp(op, v))
        names = [n for n, b in (("true", True), ("false", False)) if single(b)]
        if not names:
            return FALSE
        return Frag(f"{t} IN ({','.join(lit(n) for n in names)})")
    if br == OID:
        return Frag(
            f"lower({sub(loc, '$value').value}){_SQL_OP[op]}? AND {Specials(loc).oid}", (str(v),)
        )
    if br == MINKEY:
        return Frag(f"{t} IS NOT NULL") if op in ("gt", "gte") else FALSE
    if br == MAXKEY:
        return Frag(f"{t} IS NOT NULL") if op in ("lt", "lte") else FALSE
    if br == OBJECT:
        return Frag(f"{t}='object'", (), False)
    if br == ARRAY:
        return Frag(f"{t}='array'", (), False)
    if br == BINARY:
        return Frag(Specials(loc).binary, (), False)
    if br == REGEX:
        return Frag(Specials(loc).regexp, (), False)
    return FALSE  # timestamps cannot be stored in EJSON


def _regex_sql(r: Regex, loc: AnyLoc) -> Frag:
    t, val = loc.type, loc.value
    text = Frag(f"{t}='text' AND aioserversync_regexp(?,?,{val})", (r.pattern, r.flags))
    rx, fl = sub(loc, "$regexp"), sub(loc, "$flags")
    stored = Frag(
        f"{t}='object' AND {rx.value}=? AND aioserversync_sortchars({fl.value})=? "
        f"AND {only_keys(loc, ['$regexp', '$flags'])}",
        (r.pattern, r.flags),
    )
    return or_(text, stored)


def _in_sql(pred: In, loc: AnyLoc) -> Frag:
    t, val = loc.type, loc.value
    terms: list[Frag] = []
    strings = [v for v in pred.values if isinstance(v, str)]
    numbers = [v for v in pred.values if is_number(v)]
    if strings:
        terms.append(
            Frag(f"{val} IN ({','.join('?' * len(strings))}) AND {t}='text'", tuple(strings))
        )
    if numbers:
        bound = [b for b in map(_bindable, numbers) if b is not None]
        if bound:
            terms.append(
                Frag(f"{val} IN ({','.join('?' * len(bound))}) AND {t} IN ({NUM})", tuple(bound))
            )
        enc = "|".join(encode_number(n) for n in numbers)
        if len(bound) < len(numbers):
            finite = [n for n in numbers if _bindable(n) is None and not _special(n)]
            if finite:
                fenc = "|".join(encode_number(n) for n in finite)
                terms.append(
                    Frag(f"{t} IN ({NUM}) AND aioserversync_num_test({val},'in',?)", (fenc,))
                )
        terms.append(_special_numbers(loc, "in", enc))
    for v in pred.values:
        if not isinstance(v, str) and not is_number(v):
            terms.append(_eq_sql(v, loc))
    terms.extend(_regex_sql(r, loc) for r in pred.regexes)
    return or_(*terms)


def _special(n: Any) -> bool:
    return is_nan(n) or (isinstance(n, float | Decimal) and math.isinf(n))

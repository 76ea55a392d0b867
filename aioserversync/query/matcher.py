"""The Python matcher: a parsed selector compiled to closures over decoded documents.

Semantics are MongoDB's (checked differentially against mongomock in the tests):

* ``{a: null}`` matches a missing ``a``; ``{a: {$ne: null}}`` needs ``a`` present and not null;
* a field test holds when *any* value at the path passes (array elements and the array itself);
* comparisons only hold within one BSON type bracket; numbers compare across int/float/Decimal;
* NaN equals NaN and nothing else; ``$gte``/``$lte`` NaN match NaN only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..ejson import RegExp, date_to_ms
from ..exceptions import QueryError
from ..typing import Document
from .paths import LEAF_BOTH, array_as_doc, iter_values
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
    Or,
    Regex,
    Size,
    Type,
    VAnd,
    VFalse,
    VNot,
    VPred,
    parse_selector,
)
from .values import (
    MAXKEY,
    MINKEY,
    MISSING,
    NULL,
    NUMBER,
    REGEX,
    STRING,
    bracket,
    compare,
    is_nan,
    is_number,
    regex_parts,
    type_code,
)

__all__ = ["Matcher", "compile_selector", "single_value_test"]

DocTest = Callable[[dict[str, Any]], bool]
ValueTest = Callable[[Any], bool]


class Matcher:
    """A compiled selector.

    Build one with :func:`compile_selector`; it is immutable and safe to share.

    Attributes:
        selector: The selector it was compiled from.
        node: The parsed selector tree.
    """

    __slots__ = ("_test", "node", "selector")

    def __init__(self, selector: Any, node: Node) -> None:
        self.selector = selector
        self.node = node
        self._test = _compile_node(node)

    def matches(self, doc: Document) -> bool:
        """Whether a decoded document matches the selector."""
        return self._test(doc)

    def __call__(self, doc: Document) -> bool:
        """Same as :meth:`matches`, so a matcher can be passed to ``filter``."""
        return self._test(doc)

    def __repr__(self) -> str:
        return f"Matcher({self.selector!r})"


def compile_selector(selector: Any) -> Matcher:
    """Parse, validate and compile a selector.

    Args:
        selector: A MongoDB selector over decoded values, ``None`` (match all), or a string or
            ObjectId (Meteor's shorthand for ``{"_id": value}``).

    Raises:
        QueryError: For malformed selectors and unknown or unsupported operators.
    """
    try:
        return Matcher(selector, parse_selector(selector))
    except RecursionError as exc:
        raise QueryError("the selector is nested too deeply") from exc


# --------------------------------------------------------------------------- document level


def _compile_node(node: Node) -> DocTest:
    if isinstance(node, Field):
        return _compile_field(node)
    if isinstance(node, And):
        tests = [_compile_node(c) for c in node.children]
        if not tests:
            return lambda doc: True
        if len(tests) == 1:
            return tests[0]
        if len(tests) == 2:
            t1, t2 = tests
            return lambda doc: t1(doc) and t2(doc)
        return lambda doc: all(t(doc) for t in tests)
    if isinstance(node, Or):
        tests = [_compile_node(c) for c in node.children]
        if not tests:
            return lambda doc: False
        return lambda doc: any(t(doc) for t in tests)
    inner = _compile_node(node.child)
    return lambda doc: not inner(doc)


def _compile_field(node: Field) -> DocTest:
    single = single_value_test(node.pred)
    parts, leaf = node.parts, node.leaf
    if len(parts) == 1:
        key = parts[0]
        if leaf == LEAF_BOTH:

            def test_flat(doc: dict[str, Any]) -> bool:
                v = doc.get(key, MISSING)
                if isinstance(v, list):
                    for e in v:
                        if single(e):
                            return True
                return single(v)

            return test_flat
        return lambda doc: single(doc.get(key, MISSING))

    def test_path(doc: dict[str, Any]) -> bool:
        return any(single(v) for v in iter_values(doc, parts, 0, leaf))

    return test_path


# --------------------------------------------------------------------------- single values


def single_value_test(pred: VPred) -> ValueTest:
    """Compile a value predicate into a test of one value (which may be ``MISSING``)."""
    if isinstance(pred, Eq):
        return _eq_test(pred.value)
    if isinstance(pred, Cmp):
        return _cmp_test(pred.op, pred.value)
    if isinstance(pred, Regex):
        return _regex_test(pred)
    if isinstance(pred, In):
        return _in_test(pred)
    if isinstance(pred, Exists):
        return lambda v: v is not MISSING
    if isinstance(pred, Type):
        return _type_test(pred.codes)
    if isinstance(pred, Size):
        n = pred.n
        return lambda v: isinstance(v, list) and len(v) == n
    if isinstance(pred, ElemMatchValue):
        return _elem_match_value_test(pred)
    if isinstance(pred, ElemMatchDoc):
        return _elem_match_doc_test(pred)
    if isinstance(pred, VNot):
        inner = single_value_test(pred.pred)
        return lambda v: not inner(v)
    if isinstance(pred, VAnd):
        tests = [single_value_test(p) for p in pred.preds]
        return lambda v: all(t(v) for t in tests)
    if isinstance(pred, VFalse):
        return lambda v: False
    raise AssertionError(f"unknown predicate {pred!r}")


def _eq_test(target: Any) -> ValueTest:
    if target is None:
        return lambda v: v is None or v is MISSING
    t = type(target)
    if t is str:
        return lambda v: v == target and isinstance(v, str)
    if t is bool:
        return lambda v: v is target
    if is_number(target):
        if is_nan(target):
            return lambda v: is_number(v) and is_nan(v)

        def num_eq(v: Any) -> bool:
            if type(v) is int or type(v) is float:
                return bool(v == target)
            return is_number(v) and not is_nan(v) and bool(v == target)

        return num_eq
    if isinstance(target, datetime):
        ms = date_to_ms(target)
        return lambda v: isinstance(v, datetime) and date_to_ms(v) == ms
    br = bracket(target)

    def eq_general(v: Any) -> bool:
        return v is not MISSING and bracket(v) == br and compare(v, target) == 0

    return eq_general


def _cmp_test(op: str, target: Any) -> ValueTest:
    br = bracket(target)
    if br == NULL:
        # Missing counts as null: $gte/$lte null match null and missing; $gt/$lt nothing.
        if op in ("gte", "lte"):
            return lambda v: v is None or v is MISSING
        return lambda v: False
    if br in (MINKEY, MAXKEY):
        return _minmax_cmp_test(op, br)
    if br == NUMBER and is_nan(target):
        if op in ("gte", "lte"):
            return lambda v: is_number(v) and is_nan(v)
        return lambda v: False
    accept = _ACCEPT[op]
    if br == NUMBER:

        def num_cmp(v: Any) -> bool:
            if not is_number(v) or is_nan(v):
                return False
            return accept((v > target) - (v < target))

        return num_cmp
    if br == STRING:

        def str_cmp(v: Any) -> bool:
            if not isinstance(v, str):
                return False
            return accept((v > target) - (v < target))

        return str_cmp

    def general(v: Any) -> bool:
        if v is MISSING or bracket(v) != br:
            return False
        return accept(compare(v, target))

    return general


_ACCEPT: dict[str, Callable[[int], bool]] = {
    "gt": (0).__lt__,
    "gte": (0).__le__,
    "lt": (0).__gt__,
    "lte": (0).__ge__,
}


def _minmax_cmp_test(op: str, br: int) -> ValueTest:
    # Every present value is above MinKey and below MaxKey.
    def test(v: Any) -> bool:
        if v is MISSING:
            return False
        vb = bracket(v)
        if vb == br:
            return op in ("gte", "lte")
        if br == MINKEY:
            return op in ("gt", "gte")
        return op in ("lt", "lte")

    return test


def _regex_test(pred: Regex) -> ValueTest:
    search = pred.compiled.search
    parts = (pred.pattern, pred.flags)

    def test(v: Any) -> bool:
        if isinstance(v, str):
            return search(v) is not None
        if v is MISSING or (not isinstance(v, RegExp) and bracket(v) != REGEX):
            return False
        return regex_parts(v) == parts

    return test


def _in_test(pred: In) -> ValueTest:
    strings: set[str] = set()
    numbers: set[Any] = set()
    others: list[ValueTest] = []
    null = False
    nan = False
    for x in pred.values:
        if type(x) is str:
            strings.add(x)
        elif is_number(x) and not isinstance(x, Decimal):
            if is_nan(x):
                nan = True
            else:
                numbers.add(x)
        elif x is None:
            null = True
        else:
            others.append(_eq_test(x))
    others.extend(_regex_test(r) for r in pred.regexes)

    def test(v: Any) -> bool:
        t = type(v)
        if t is str:
            if v in strings:
                return True
        elif t is int or t is float:
            if v in numbers:
                return True
            if nan and v != v:
                return True
        elif v is None or v is MISSING:
            if null:
                return True
        elif is_number(v):
            if is_nan(v):
                if nan:
                    return True
            elif v in numbers:
                return True
        return any(o(v) for o in others)

    return test


def _type_test(codes: frozenset[int]) -> ValueTest:
    number = 0 in codes

    def test(v: Any) -> bool:
        if v is MISSING:
            return False
        if number and is_number(v):
            return True
        return type_code(v) in codes

    return test


def _elem_match_value_test(pred: ElemMatchValue) -> ValueTest:
    tests = [single_value_test(p) for p in pred.preds]

    def test(v: Any) -> bool:
        if not isinstance(v, list):
            return False
        return any(all(t(e) for t in tests) for e in v)

    return test


def _elem_match_doc_test(pred: ElemMatchDoc) -> ValueTest:
    inner = _compile_node(pred.node)

    def test(v: Any) -> bool:
        if not isinstance(v, list):
            return False
        for e in v:
            if isinstance(e, dict):
                if inner(e):
                    return True
            elif isinstance(e, list) and inner(array_as_doc(e)):
                return True
        return False

    return test

"""Differential tests: the Python matcher and the SQLite translation against mongomock 4.3.0.

For every generated (document, selector) pair:

* the SQL translation (run on a real in-memory SQLite table holding the wire form, post-filtered
  by the matcher when the plan is inexact) must select exactly what the Python matcher selects;
* the matcher must agree with ``mongomock.filtering.filter_applies``, except on pairs that one of
  the named detectors in ``oracle_bugs.py`` recognises as a known mongomock divergence from
  MongoDB (each is asserted against MongoDB's documented answers in ``test_matcher.py``).
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any

import mongomock.filtering
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioserversync.exceptions import QueryError
from aioserversync.query import compile_selector
from tests.query.oracle_bugs import known_bug
from tests.query.sqlhelp import Table
from tests.query.strategies import documents, selectors

MIN_PAIRS = 2000


def _oracle(selector: dict[str, Any], doc: dict[str, Any]) -> bool | None:
    """mongomock's answer, or ``None`` when it cannot evaluate the selector at all."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return bool(mongomock.filtering.filter_applies(selector, doc))
        except (mongomock.OperationFailure, NotImplementedError):
            # mongomock refuses numeric $type codes and some $type aliases ("null").
            return None


def test_matcher_and_sql_agree_with_mongomock() -> None:
    table = Table(indexed=["a", "b", "a.b", "a.0"])  # results must not depend on indexes
    stats: Counter[str] = Counter()
    unexplained: list[tuple[Any, Any, bool, bool]] = []

    @settings(
        max_examples=900,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(documents, min_size=2, max_size=5), selectors)
    def check(docs: list[dict[str, Any]], selector: dict[str, Any]) -> None:
        try:
            matcher = compile_selector(selector)
        except QueryError:
            stats["rejected"] += 1
            return
        docs = [{"_id": str(i), **d} for i, d in enumerate(docs)]
        table.load(docs)
        sql_ids, _exact = table.find_ids(selector)
        py_ids = {d["_id"] for d in docs if matcher.matches(d)}
        assert sql_ids == py_ids, (selector, docs)
        for d in docs:
            body = {k: v for k, v in d.items() if k != "_id"}
            expected = _oracle(selector, body)
            if expected is None:
                stats["oracle_cannot_evaluate"] += 1
                continue
            got = matcher.matches(d)
            if got == expected:
                stats["agree"] += 1
                continue
            bug = known_bug(selector, body)
            if bug is None:
                unexplained.append((selector, body, got, expected))
            else:
                stats[f"excluded:{bug}"] += 1

    check()
    assert not unexplained, unexplained[:5]
    assert stats["agree"] >= MIN_PAIRS, stats
    excluded = sum(v for k, v in stats.items() if k.startswith("excluded:"))
    assert excluded < stats["agree"] * 0.1, stats


@pytest.mark.parametrize(
    ("selector", "doc"),
    [
        ({"a": {}}, {}),
        ({"a": 1}, {"a": True}),
        ({"a": {"$gte": None}}, {}),
        ({"a.b": None}, {"a": 4}),
        ({"a": {"$size": 1}}, {"a": "x"}),
        ({"a": {"$all": [None]}}, {}),
        ({"a": {"$elemMatch": {"b": None}}}, {"a": [[]]}),
        ({"c": {"$eq": []}}, {"c": [[]]}),
        ({"a": {"$type": "long"}}, {"a": 2**31}),
    ],
)
def test_each_exclusion_is_a_real_mongomock_divergence(selector: dict[str, Any], doc: Any) -> None:
    # Guards the detectors: each names a case where mongomock really answers differently.
    assert known_bug(selector, doc) is not None
    assert _oracle(selector, doc) != compile_selector(selector).matches(doc)

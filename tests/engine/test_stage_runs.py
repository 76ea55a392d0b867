"""How received ``added`` reach the store during a resync round: runs of StageDocs, joined."""

from __future__ import annotations

import orjson

from aioserversync.asyncio.ingest import _JOIN_MAX, _join_stage_docs
from aioserversync.stores.base import PutDoc, StageDocs, StagePatch


def docs(**fields: int) -> str:
    return orjson.dumps({k: {"v": v} for k, v in fields.items()}).decode()


def test_consecutive_runs_of_one_collection_join_in_order() -> None:
    ops = [
        StageDocs("R", "a", docs(x=1)),
        StageDocs("R", "a", docs(y=2, z=3)),
        StagePatch("R", "a", "x", {"w": 1}),
        StageDocs("R", "a", docs(x=4)),
        StageDocs("R", "b", docs(x=5)),
        StageDocs("S", "b", docs(x=6)),
        PutDoc("c", "x", {"v": 7}),
        StageDocs("S", "b", docs(y=8)),
        StageDocs("S", "b", docs(y=9)),
    ]
    out = _join_stage_docs(ops)
    assert [type(op).__name__ for op in out] == [
        "StageDocs",
        "StagePatch",
        "StageDocs",
        "StageDocs",
        "StageDocs",
        "PutDoc",
        "StageDocs",
    ]
    assert out[1] is ops[2] and out[5] is ops[6]
    joined = [(op.scope, op.collection, op.docs) for op in out if type(op) is StageDocs]
    assert joined == [
        ("R", "a", '{"x":{"v":1},"y":{"v":2},"z":{"v":3}}'),
        ("R", "a", '{"x":{"v":4}}'),
        ("R", "b", '{"x":{"v":5}}'),
        ("S", "b", '{"x":{"v":6}}'),
        # An id staged twice stays twice, in order: the store keeps the later one.
        ("S", "b", '{"y":{"v":8},"y":{"v":9}}'),
    ]


def test_joining_stops_at_the_cap_and_keeps_every_document() -> None:
    n = _JOIN_MAX * 2 + 5
    out = _join_stage_docs([StageDocs("R", "a", docs(**{f"d{i}": i})) for i in range(n)])
    assert [len(orjson.loads(op.docs)) for op in out] == [_JOIN_MAX, _JOIN_MAX, 5]
    ids = [k for op in out for k in orjson.loads(op.docs)]
    assert ids == [f"d{i}" for i in range(n)]

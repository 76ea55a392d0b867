"""The stores agree with each other on random batches (seeded).

The contract suite pins each operation down with examples; this test looks for what examples
miss. Each run builds random batches of every operation (documents, revisions, bases,
tombstones, the outbox, metadata and resync rounds), over a few ids, some of them odd, and
applies each batch to a MemoryStore, the reference, and to the store under test. After every
batch both must have answered the same (the same ``BatchResult``, or both a ``StoreError``) and
must read back the same: documents, per-document metadata, revision feed, outbox, metadata and
staging.

SQLiteStore runs in CI; MongoStore (through PyMongo to nx-27017) runs on fewer seeds.
``AIOSERVERSYNC_STORE_DIFF_RUNS`` and ``AIOSERVERSYNC_SEED_BASE`` explore more.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from aioserversync import ejson
from aioserversync.exceptions import StoreError
from aioserversync.stores import MemoryStore, MongoStore, SQLiteStore
from aioserversync.stores.base import (
    ClearBase,
    DeleteDoc,
    MetaSet,
    OutboxAppend,
    OutboxDelete,
    OutboxRecord,
    OutboxUpdate,
    PatchDoc,
    PurgeTombstones,
    PutDoc,
    PutDocs,
    SetBase,
    SetRev,
    StageClear,
    StageCommit,
    StageDelete,
    StageDocs,
    StagePatch,
    StagePut,
    Store,
    Tombstone,
)
from tests.engine.conftest import seeds
from tests.mongo_server import mongo_uri_from_env

COLLS = ["items", "tasks"]
IDS = ["a", "b", "c", "d", "x:y", "\u00e9", "a b", 'q"\\', "12:3"]
ORIGINS = [None, "o1", "o2"]
SCOPES = ["s1", "s2"]
NAMES = ["n", "s", "t", "nested"]
VALUES: list[Any] = [
    0, 1, -2.5, "x", "", None, True, False, [], [1, "a"], {"k": 1}, {"k": {"j": [1, 2]}},
    {"$date": 1704164645678}, {"$date": 0}, {"$binary": "AAAA"}, {"$escape": {"$date": 1}},
    {"$type": "oid", "$value": "0123456789abcdef01234567"}, {"$InfNaN": 1}, 10**15, 2**53,
]  # fmt: skip
NX_SAFE = [
    v
    for v in VALUES
    if not isinstance(v, bool)
    and not (isinstance(v, dict) and ({"$InfNaN", "$escape", "$date", "$binary"} & set(v)))
]
"""The values nx-27017 stores faithfully (see NX_DIVERGENCES in test_mongo.py)."""


class Gen:
    """Random operations over a small world, so that they collide often."""

    def __init__(self, rng: random.Random, values: list[Any] = VALUES) -> None:
        self.rng = rng
        self.values = values
        self.seqs: list[int] = []
        self.rev = 0

    def fields(self) -> dict[str, Any]:
        rng = self.rng
        return {rng.choice(NAMES): rng.choice(self.values) for _ in range(rng.randrange(4))}

    def next_rev(self) -> int:
        self.rev += self.rng.choice([1, 1, 2])
        return self.rev

    def rev_or_none(self) -> int | None:
        return self.next_rev() if self.rng.random() < 0.5 else None

    def op(self) -> Any:
        rng = self.rng
        coll, doc_id = rng.choice(COLLS), rng.choice(IDS)
        origin = rng.choice(ORIGINS)
        kind = rng.randrange(22)
        if kind < 3:
            return PutDoc(coll, doc_id, self.fields(), origin, self.rev_or_none())
        if kind == 3:
            entries = {}
            for _ in range(rng.randrange(1, 4)):
                rev = self.rev_or_none()
                entries[f"{'' if rev is None else rev}:{rng.choice(IDS)}"] = self.fields()
            return PutDocs(coll, orjson.dumps(entries).decode(), origin)
        if kind < 6:
            cleared = rng.sample(NAMES, rng.randrange(3))
            return PatchDoc(coll, doc_id, self.fields(), cleared, origin, self.rev_or_none())
        if kind == 6:
            return DeleteDoc(coll, doc_id)
        if kind == 7:
            return SetRev(coll, doc_id, self.next_rev())
        if kind == 8:
            base = self.fields() if rng.random() < 0.7 else None
            return SetBase(coll, doc_id, base, self.rev_or_none())
        if kind == 9:
            return ClearBase(coll, doc_id)
        if kind == 10:
            return Tombstone(coll, doc_id, self.next_rev())
        if kind == 11:
            return PurgeTombstones(coll, rng.randrange(self.rev + 2))
        if kind < 14:
            record = OutboxRecord(
                collection=coll,
                doc_id=doc_id,
                op=rng.choice(["insert", "update", "remove", "call"]),
                payload=rng.choice([None, self.fields(), [1, {"$date": 5}], "p"]),
                origin=origin,
                state=rng.choice(["pending", "in_flight", "unknown", "failed"]),
                mutation_id=f"m{rng.randrange(10**6)}",
                base_rev=self.rev_or_none(),
                attempts=rng.randrange(3),
                error=rng.choice([None, "boom", {"error": 409, "reason": "x"}]),
                created_at=rng.randrange(10**12),
                updated_at=rng.randrange(10**12),
                extra=rng.choice([{}, {"k": [1, None]}]),
            )
            return OutboxAppend(record)
        if kind == 14:
            seq = rng.choice([*self.seqs, 999]) if self.seqs else 999
            changes: dict[str, Any] = {}
            for name, value in [
                ("state", rng.choice(["pending", "in_flight", "unknown", "failed"])),
                ("payload", rng.choice([None, self.fields()])),
                ("op", rng.choice(["insert", "update"])),
                ("attempts", rng.randrange(5)),
                ("error", rng.choice([None, "e"])),
                ("base_rev", self.rev_or_none()),
                ("updated_at", rng.randrange(10**12)),
                ("extra", {"n": rng.randrange(9)}),
            ]:
                if rng.random() < 0.4:
                    changes[name] = value
            return OutboxUpdate(seq, **changes)
        if kind == 15:
            return OutboxDelete(rng.choice([*self.seqs, 999]) if self.seqs else 999)
        if kind == 16:
            return MetaSet(rng.choice(["k1", "k2", "cp:items"]), rng.choice([None, 1, "v", {}]))
        scope = rng.choice(SCOPES)
        if kind == 17:
            return StagePut(scope, coll, doc_id, self.fields(), self.rev_or_none())
        if kind == 18:
            if rng.random() < 0.5:  # with revisions: "<rev>:<id>" keys, as a hub page
                revs = {}
                for _ in range(rng.randrange(1, 4)):
                    rev = self.rev_or_none()
                    revs[f"{'' if rev is None else rev}:{rng.choice(IDS)}"] = self.fields()
                return StageDocs(scope, coll, orjson.dumps(revs).decode(), revs=True)
            docs = {rng.choice(IDS): self.fields() for _ in range(rng.randrange(1, 4))}
            return StageDocs(scope, coll, orjson.dumps(docs).decode())
        if kind == 19:
            cleared = rng.sample(NAMES, rng.randrange(3))
            return StagePatch(scope, coll, doc_id, self.fields(), cleared)
        if kind == 20:
            return StageDelete(scope, coll, doc_id)
        if rng.random() < 0.3:
            return StageClear(scope)
        return StageCommit(
            scope,
            coll,
            rng.choice(["o1", "o2"]),
            keep=frozenset(rng.sample(IDS, rng.randrange(3))),
            sweep=rng.random() < 0.7,
            diff_limit=rng.choice([0, 2, 100]),
        )

    def bad_op(self) -> Any:
        """An operation every store must refuse (the whole batch then changes nothing)."""
        rng = self.rng
        coll = rng.choice(COLLS)
        return rng.choice(
            [
                PutDocs(coll, '{"x1:a":{"n":1}}', "o1"),  # a revision that is not digits
                PutDocs(coll, '{"1:a":[1]}', "o1"),  # fields that are not an object
                PutDocs(coll, "[]", "o1"),
                PutDocs(coll, '{"1:a":{"n":1}', "o1"),  # not JSON
            ]
        )


def canonical(value: Any) -> Any:
    """Wire-form values compared as Meteor's ``EJSON.equals`` does (key order ignored)."""
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))


async def snapshot(store: Store) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for coll in COLLS:
        docs = {d["_id"]: canonical(ejson.encode(d)) for d in await store.find(coll, {})}
        metas = await store.get_meta_many(coll, IDS)
        out[coll] = {
            "docs": docs,
            "ids": sorted([i async for i in store.iter_ids(coll)]),
            "by_origin": {
                str(o): sorted([i async for i in store.iter_ids(coll, origin=o)]) for o in ORIGINS
            },
            "meta": {
                i: (m.origin, m.rev, m.has_base, canonical(m.base), m.base_rev)
                for i, m in sorted(metas.items())
            },
            "based": sorted(await store.based_ids(coll)),
            "feed": sorted(
                (e.rev, e.id, e.fields_json and canonical(orjson.loads(e.fields_json)))
                for e in await store.changes_since(coll, 0, 10_000)
            ),
            "max_rev": await store.max_rev(coll),
            "min_tombstone": await store.min_tombstone_rev(coll),
            "staged": {
                s: (
                    await store.stage_count(s, coll),
                    canonical(await store.stage_get(s, coll, IDS)),
                )
                for s in SCOPES
            },
        }  # fmt: skip
    records = await store.outbox_peek(
        states=("pending", "in_flight", "unknown", "failed"), limit=10_000
    )
    out["outbox"] = [canonical(ejson.encode(vars_of(r))) for r in records]
    out["meta"] = canonical(await store.get_meta_prefix(""))
    return out


def vars_of(record: OutboxRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in OutboxRecord.__dataclass_fields__}


def result_of(result: Any) -> Any:
    commits = [
        (
            c.collection,
            c.added,
            c.changed,
            c.removed,
            None
            if c.changes is None
            else sorted(repr(canonical(ejson.encode(vars_of_change(ch)))) for ch in c.changes),
        )
        for c in result.commits
    ]
    return (list(result.seqs), commits)


def vars_of_change(change: Any) -> dict[str, Any]:
    return {name: getattr(change, name) for name in type(change).__dataclass_fields__}


async def run_against(store: Store, seed: int, batches: int, values: list[Any] = VALUES) -> None:
    rng = random.Random(seed)
    gen = Gen(rng, values)
    ref = MemoryStore()
    async with ref, store:
        for step in range(batches):
            batch = [gen.op() for _ in range(rng.randrange(1, 8))]
            if rng.random() < 0.08:
                batch.insert(rng.randrange(len(batch) + 1), gen.bad_op())
            answers = []
            for s in (ref, store):
                try:
                    answers.append(result_of(await s.apply(batch)))
                except StoreError:
                    answers.append("StoreError")
            assert answers[0] == answers[1], (step, batch, answers)
            if answers[0] != "StoreError":
                gen.seqs.extend(answers[0][0])
            want, got = await snapshot(ref), await snapshot(store)
            for key in want:
                assert got[key] == want[key], (step, key, batch)


@pytest.mark.parametrize("seed", seeds("AIOSERVERSYNC_STORE_DIFF_RUNS", 12))
async def test_sqlite_store_agrees_with_memory_store(seed: int, tmp_path: Path) -> None:
    await run_against(SQLiteStore(tmp_path / "diff.sqlite3"), seed, batches=60)


@pytest.mark.parametrize("seed", seeds("AIOSERVERSYNC_STORE_DIFF_RUNS", 3))
async def test_mongo_store_agrees_with_memory_store(seed: int, mongo_uri: str) -> None:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_uri)
    try:
        values = VALUES if mongo_uri_from_env() else NX_SAFE
        await run_against(MongoStore(client[f"diff_{seed}"]), seed, batches=40, values=values)
    finally:
        await client.close()

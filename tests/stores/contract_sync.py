"""Store contract, part 2: sync metadata, bases, outbox, store metadata, staging, revisions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from aioserversync.exceptions import StoreError
from aioserversync.stores import (
    ClearBase,
    DeleteDoc,
    EncodedFields,
    MetaSet,
    OutboxAppend,
    OutboxDelete,
    OutboxRecord,
    OutboxUpdate,
    PatchDoc,
    PurgeTombstones,
    PutDoc,
    SetBase,
    StageClear,
    StageCommit,
    StageDelete,
    StageDocs,
    StagePatch,
    StagePut,
    Store,
    Tombstone,
)


def rec(doc_id: str, *, coll: str = "items", origin: str | None = "R", **kw: Any) -> OutboxRecord:
    return OutboxRecord(coll, doc_id, kw.pop("op", "insert"), origin=origin, **kw)


async def append(store: Store, *records: OutboxRecord) -> list[int]:
    return (await store.apply([OutboxAppend(r) for r in records])).seqs


async def ids(store: Store, coll: str, **kw: Any) -> set[str]:
    return {i async for i in store.iter_ids(coll, **kw)}


class SyncContract:
    """Sync bookkeeping; a subclass provides a ``store`` fixture (an open, empty store)."""

    async def test_origin_and_rev_metadata(self, store: Store) -> None:
        await store.apply(
            [
                PutDoc("items", "a", {"n": 1}, origin="A", rev=5),
                PutDoc("items", "l", {"n": 2}),
            ]
        )
        meta = await store.get_meta_many("items", ["a", "l", "zz"])
        assert set(meta) == {"a", "l"}
        assert (meta["a"].origin, meta["a"].rev, meta["a"].has_base) == ("A", 5, False)
        assert (meta["l"].origin, meta["l"].rev) == (None, None)
        await store.apply([PutDoc("items", "a", {"n": 1})])  # PutDoc always writes both
        meta = await store.get_meta_many("items", ["a"])
        assert (meta["a"].origin, meta["a"].rev) == (None, None)

    async def test_iter_ids_by_origin(self, store: Store) -> None:
        await store.apply(
            [PutDoc("items", f"a{i}", {"i": i}, origin="A") for i in range(5)]
            + [PutDoc("items", "b0", {}, origin="B"), PutDoc("items", "l0", {})]
        )
        assert await ids(store, "items") == {"a0", "a1", "a2", "a3", "a4", "b0", "l0"}
        assert await ids(store, "items", origin="A", batch_size=2) == {f"a{i}" for i in range(5)}
        assert await ids(store, "items", origin="B") == {"b0"}
        assert await ids(store, "items", origin=None, batch_size=1) == {"l0"}
        assert await ids(store, "nothing") == set()

    async def test_bases(self, store: Store) -> None:
        await store.apply(
            [
                PutDoc("items", "a", {"n": 2}, origin="A"),
                SetBase("items", "a", {"n": 1}, rev=3),
                SetBase("items", "ins", None),
                SetBase("items", "b", {"n": 1}),
                PutDoc("items", "b", {"n": 5}),
            ]
        )
        assert sorted(await store.based_ids("items")) == ["a", "b", "ins"]
        meta = await store.get_meta_many("items", ["a", "ins"])
        assert (meta["a"].has_base, meta["a"].base, meta["a"].base_rev) == (True, {"n": 1}, 3)
        assert (meta["ins"].has_base, meta["ins"].base, meta["ins"].origin) == (True, None, None)
        await store.apply([ClearBase("items", "a"), DeleteDoc("items", "b")])
        assert sorted(await store.based_ids("items")) == ["ins"]
        assert (await store.get_meta_many("items", ["a"]))["a"].has_base is False

    async def test_outbox_seq_increases_and_is_never_reused(self, store: Store) -> None:
        first = await append(store, rec("a"), rec("b"))
        assert first[1] > first[0] > 0
        await store.apply([OutboxDelete(first[1])])
        second = await append(store, rec("c"))
        assert second[0] > first[1]
        got = await store.outbox_peek(limit=0)
        assert [r.seq for r in got] == [first[0], second[0]]
        assert [r.doc_id for r in got] == ["a", "c"]

    async def test_outbox_record_round_trips(self, store: Store) -> None:
        r = rec(
            "a",
            op="update",
            payload={"$set": {"n": {"$date": 5}}},
            mutation_id="m1",
            base_rev=4,
            attempts=2,
            error={"error": 409, "reason": "x"},
            created_at=1000,
            updated_at=2000,
            extra={"k": [1, 2]},
        )
        (seq,) = await append(store, r)
        (got,) = await store.outbox_peek()
        r.seq = seq
        assert got == r

    async def test_outbox_peek_filters(self, store: Store) -> None:
        s = await append(
            store,
            rec("a"),
            rec("b", coll="other"),
            rec("c", origin="S"),
            rec("d", state="in_flight"),
            rec("e", state="failed"),
            rec("f"),
        )
        peek = store.outbox_peek
        assert [r.doc_id for r in await peek()] == ["a", "b", "c", "f"]
        assert [r.doc_id for r in await peek(collection="items")] == ["a", "c", "f"]
        assert [r.doc_id for r in await peek(origin="R")] == ["a", "b", "f"]
        assert [r.doc_id for r in await peek(states=("in_flight", "failed"))] == ["d", "e"]
        assert [r.doc_id for r in await peek(after_seq=s[2])] == ["f"]
        assert [r.doc_id for r in await peek(limit=2)] == ["a", "b"]
        assert await store.outbox_count() == 5
        assert await store.outbox_count(states=("failed",)) == 1
        assert await store.outbox_count(collection="items", origin="R") == 3

    async def test_outbox_update_delete_and_for_docs(self, store: Store) -> None:
        s = await append(store, rec("a"), rec("b"), rec("a", op="update"))
        await store.apply(
            [
                OutboxUpdate(s[0], state="in_flight", attempts=1, error={"e": 1}, updated_at=9),
                OutboxUpdate(s[1], payload=[1, 2], extra={"x": True}),
                OutboxUpdate(999_999, state="failed"),
                OutboxDelete(999_999),
            ]
        )
        a0, b, a1 = await store.outbox_for_docs("items", ["a", "b"])
        assert [a0.seq, b.seq, a1.seq] == s
        assert (a0.state, a0.attempts, a0.error, a0.updated_at) == ("in_flight", 1, {"e": 1}, 9)
        assert (b.payload, b.extra, b.state) == ([1, 2], {"x": True}, "pending")
        assert [r.seq for r in await store.outbox_for_docs("items", ["a"])] == [s[0], s[2]]
        await store.apply([OutboxDelete(s[0])])
        assert [r.seq for r in await store.outbox_for_docs("items", ["a", "b"])] == s[1:]
        assert await store.outbox_count(states=("pending", "in_flight")) == 2

    async def test_metadata(self, store: Store) -> None:
        await store.apply(
            [
                MetaSet("ckpt/items", {"ts": 5, "ids": ["a"]}),
                MetaSet("ckpt/other", 3),
                MetaSet("last_sync", "x"),
                MetaSet("ckpt/zz", True),
            ]
        )
        assert await store.get_meta("ckpt/items") == {"ts": 5, "ids": ["a"]}
        assert await store.get_meta("missing") is None
        assert await store.get_meta_prefix("ckpt/") == {
            "ckpt/items": {"ts": 5, "ids": ["a"]},
            "ckpt/other": 3,
            "ckpt/zz": True,
        }
        await store.apply([MetaSet("ckpt/zz", None), MetaSet("ckpt/other", 4)])
        assert await store.get_meta_prefix("ckpt/") == {
            "ckpt/items": {"ts": 5, "ids": ["a"]},
            "ckpt/other": 4,
        }
        assert set(await store.get_meta_prefix("")) == {"ckpt/items", "ckpt/other", "last_sync"}

    async def test_staging_put_patch_delete(self, store: Store) -> None:
        await store.apply(
            [
                StagePut("R", "items", "a", {"n": 1, "x": 1}),
                StagePut("R", "items", "b", {"n": 2}),
                StagePatch("R", "items", "a", {"n": 5}, cleared=["x"]),
                StagePatch("R", "items", "c", {"n": 3}, cleared=["q"]),
                StagePut("S", "items", "a", {"other": True}),
                StageDelete("R", "items", "b"),
            ]
        )
        assert await store.stage_count("R", "items") == 2
        got = await store.stage_get("R", "items", ["a", "b", "c"])
        assert got == {"a": {"n": 5}, "c": {"n": 3}}
        assert await store.stage_get("S", "items", ["a"]) == {"a": {"other": True}}
        await store.apply([StageClear("R")])
        assert await store.stage_count("R", "items") == 0
        assert await store.stage_count("S", "items") == 1

    async def test_staging_takes_encoded_fields_among_other_operations(self, store: Store) -> None:
        await store.apply(
            [
                StagePut("R", "items", "a", EncodedFields({"n": 1, "x": 1})),
                StagePut("R", "items", "b", EncodedFields({"n": 2})),
                StagePut("R", "items", "d", EncodedFields({"at": {"$date": 0}, "l": [1, "two"]})),
                StagePatch("R", "items", "a", {"n": 5}, cleared=["x"]),
                StageDelete("R", "items", "b"),
            ]
        )
        assert await store.stage_get("R", "items", ["a", "b", "d"]) == {
            "a": {"n": 5},
            "d": {"at": {"$date": 0}, "l": [1, "two"]},
        }
        await store.apply([StageCommit("R", "items", "A")])
        assert await store.get("items", "d") == {
            "_id": "d",
            "at": datetime(1970, 1, 1, tzinfo=UTC),
            "l": [1, "two"],
        }
        assert await store.get_fields("items", ["a", "b"]) == {"a": {"n": 5}}

    async def test_stage_docs_stage_like_puts_in_order(self, store: Store) -> None:
        """StageDocs (a run of puts as one JSON object text) mixes in order with the other
        staging operations: a later operation on one of its ids applies on top, a later
        StageDocs replaces a put (and its revision), an id given twice keeps its last fields."""
        docs = orjson.dumps({"a": {"n": 1, "x": 1}, "b": {"n": 2}, "d": {"at": {"$date": 0}}})
        await store.apply(
            [
                StagePut("R", "items", "r", {"v": 1}, 5),
                StageDocs("R", "items", docs.decode()),
                StagePatch("R", "items", "a", {"n": 5}, cleared=["x"]),
                StageDelete("R", "items", "b"),
                StageDocs("R", "items", '{"r": {"v": 2}, "e": {"v": 1}, "e": {"v": 3}}'),
                StageDocs("S", "items", '{"a": {"other": true}}'),
            ]
        )
        assert await store.stage_get("R", "items", ["a", "b", "d", "e", "r"]) == {
            "a": {"n": 5},
            "d": {"at": {"$date": 0}},
            "e": {"v": 3},
            "r": {"v": 2},
        }
        assert await store.stage_get("S", "items", ["a"]) == {"a": {"other": True}}
        await store.apply([StageCommit("R", "items", "A")])
        assert await store.get("items", "d") == {"_id": "d", "at": datetime(1970, 1, 1, tzinfo=UTC)}
        assert await store.get_fields("items", ["a", "b", "e", "r"]) == {
            "a": {"n": 5},
            "e": {"v": 3},
            "r": {"v": 2},
        }
        metas = await store.get_meta_many("items", ["a", "r"])
        assert {i: (m.origin, m.rev) for i, m in metas.items()} == {
            "a": ("A", None),
            "r": ("A", None),
        }

    async def test_stage_docs_keep_any_wire_id(self, store: Store) -> None:
        ids = ['a"b', "c\\d", "é€😀", "x\ny", "", " sp ", "a.b", "$x"]
        want = {i: {"v": n} for n, i in enumerate(ids)}
        await store.apply(
            [
                StageDocs("R", "items", orjson.dumps(want).decode()),
                StageCommit("R", "items", "A"),
            ]
        )
        assert await store.get_fields("items", ids) == want

    @pytest.mark.parametrize(
        "docs",
        [
            '[{"n": 1}]',
            ' {"a": {"n": 1}}',
            '{"a": {"n": 1}',
            '{"a": {"n": 1}, "b": 2}',
            '{"a": {"n": 1}, "b": [1]}',
            "{not json}",
            b'{"a": {"n": 1}}',
        ],
        ids=["array", "space", "truncated", "number", "list", "garbage", "bytes"],
    )
    async def test_stage_docs_refuses_what_is_not_an_object_of_objects(
        self, store: Store, docs: Any
    ) -> None:
        await store.apply([StagePut("R", "items", "kept", {"v": 1})])
        with pytest.raises(StoreError, match="StageDocs"):
            await store.apply(
                [StagePut("R", "items", "new", {"v": 2}), StageDocs("R", "items", docs)]
            )
        assert await store.stage_get("R", "items", ["kept", "new", "a", "b"]) == {"kept": {"v": 1}}
        assert await store.stage_count("R", "items") == 1

    async def test_stage_revs_follow_the_staged_operations(self, store: Store) -> None:
        """A put brings its revision, a patch keeps it (or has none when nothing was staged),
        a delete forgets it, a put without one drops it; other scopes are apart."""
        await store.apply(
            [
                StagePut("R", "items", "a", {"v": 1}, 3),
                StagePatch("R", "items", "a", {"w": 1}),
                StagePut("R", "items", "b", {"v": 1}, 4),
                StageDelete("R", "items", "b"),
                StagePut("R", "items", "c", {"v": 1}, 5),
                StagePut("R", "items", "c", {"v": 2}),
                StagePatch("R", "items", "d", {"w": 1}),
                StagePut("R", "items", "e", {"v": 1}, 6),
                StagePut("S", "items", "a", {"v": 1}, 9),
            ]
        )
        revs = await store.stage_revs("R", "items", ["a", "b", "c", "d", "e", "e", "z"])
        assert revs == {"a": 3, "e": 6}
        assert await store.stage_revs("S", "items", ["a", "e"]) == {"a": 9}
        assert await store.stage_revs("R", "items", []) == {}

    async def test_stage_docs_with_revs_stage_each_revision(self, store: Store) -> None:
        """StageDocs with ``revs`` (a hub page as it came): each key is "<rev>:<id>", split at
        its first colon (ids may hold colons), and the commit stores each revision; an empty
        revision stages none, and a later StageDocs without revisions drops the staged one."""
        docs = {"5:a": {"n": 1}, ":b": {"n": 2}, "7:x:y": {"n": 3}, "9:c": {"n": 4}}
        await store.apply(
            [
                StageDocs("R", "items", orjson.dumps(docs).decode(), revs=True),
                StageDocs("R", "items", '{"c": {"n": 5}}'),
            ]
        )
        assert await store.stage_get("R", "items", ["a", "b", "x:y", "c", "7:x:y"]) == {
            "a": {"n": 1},
            "b": {"n": 2},
            "x:y": {"n": 3},
            "c": {"n": 5},
        }
        assert await store.stage_revs("R", "items", ["a", "b", "x:y", "c", "nope"]) == {
            "a": 5,
            "x:y": 7,
        }
        await store.apply([StageCommit("R", "items", "A")])
        metas = await store.get_meta_many("items", ["a", "b", "x:y", "c"])
        assert {i: (m.origin, m.rev) for i, m in metas.items()} == {
            "a": ("A", 5),
            "b": ("A", None),
            "x:y": ("A", 7),
            "c": ("A", None),
        }
        assert await store.get("items", "x:y") == {"_id": "x:y", "n": 3}

    async def test_stage_docs_with_checked_keys_stage_the_same(self, store: Store) -> None:
        """``keys_checked`` (every key proven "<rev>:<id>") stages what the unchecked form
        stages; fields that are not an object are still refused."""
        docs = orjson.dumps({"5:a": {"n": 1}, "7:x:y": {"n": 3}, "9:a": {"n": 4}}).decode()
        await store.apply(
            [
                StageDocs("R", "items", docs, revs=True),
                StageDocs("S", "items", docs, revs=True, keys_checked=True),
            ]
        )
        for scope in ("R", "S"):
            got = await store.stage_get(scope, "items", ["a", "x:y", "7:x:y"])
            assert got == {"a": {"n": 4}, "x:y": {"n": 3}}
            assert await store.stage_revs(scope, "items", ["a", "x:y"]) == {"a": 9, "x:y": 7}
        with pytest.raises(StoreError, match="StageDocs"):
            await store.apply([StageDocs("T", "items", '{"1:a": 2}', revs=True, keys_checked=True)])
        assert await store.stage_count("T", "items") == 0

    @pytest.mark.parametrize(
        "docs",
        [
            '{"a": {"n": 1}}',
            '{"x1:a": {"n": 1}}',
            '{"-1:a": {"n": 1}}',
            '{"1234567890123456789:a": {"n": 1}}',
            '{"1:a": [1]}',
        ],
        ids=["no-colon", "letters", "negative", "19-digits", "not-object"],
    )
    async def test_stage_docs_with_revs_refuse_keys_that_are_not_rev_and_id(
        self, store: Store, docs: str
    ) -> None:
        await store.apply([StagePut("R", "items", "kept", {"v": 1}, 3)])
        with pytest.raises(StoreError, match="StageDocs"):
            await store.apply(
                [
                    StagePut("R", "items", "new", {"v": 2}),
                    StageDocs("R", "items", '{"2:ok": {"v": 1}}', revs=True),
                    StageDocs("R", "items", docs, revs=True),
                ]
            )
        assert await store.stage_get("R", "items", ["kept", "new", "ok", "a"]) == {"kept": {"v": 1}}
        assert await store.stage_count("R", "items") == 1

    async def _round(self, store: Store, *, encode: bool | str = False, **commit: Any) -> Any:
        await store.apply(
            [
                PutDoc("items", "same", {"v": 1, "w": [1, {"a": 2}]}, origin="A"),
                PutDoc("items", "order", {"p": 1, "q": {"r": 1, "s": 2}}, origin="A"),
                PutDoc("items", "chg", {"v": 1}, origin="A"),
                PutDoc("items", "gone", {"v": 1}, origin="A"),
                PutDoc("items", "kept", {"v": 1}, origin="A"),
                PutDoc("items", "keptstaged", {"v": 1}, origin="A"),
                PutDoc("items", "otherorigin", {"v": 1}, origin="B"),
                PutDoc("items", "local", {"v": 1}),
                PutDoc("items", "adopt", {"v": 7}),
            ]
        )
        staged = {
            "same": {"v": 1, "w": [1, {"a": 2}]},
            "order": {"q": {"s": 2, "r": 1}, "p": 1},
            "chg": {"v": 2},
            "new": {"v": 3},
            "keptstaged": {"v": 99},
            "adopt": {"v": 7},
        }
        batch: list[Any] = [StageClear("A")]
        if encode == "docs":
            batch.append(StageDocs("A", "items", orjson.dumps(staged).decode()))
        else:
            batch += [
                StagePut("A", "items", i, EncodedFields(f) if encode else f)
                for i, f in staged.items()
            ]
        batch.append(
            StageCommit("A", "items", "A", keep=frozenset({"kept", "keptstaged"}), **commit)
        )
        return (await store.apply(batch)).commits[0]

    @pytest.mark.parametrize("encode", [False, True, "docs"], ids=["dicts", "encoded", "docs"])
    async def test_stage_commit_writes_diff_and_sweeps(self, store: Store, encode: bool) -> None:
        res = await self._round(store, encode=encode, diff_limit=10)
        assert (res.collection, res.added, res.changed, res.removed) == ("items", 1, 1, 1)
        assert sorted((c.op, c.id, c.old, c.new) for c in res.changes) == [
            ("added", "new", None, {"v": 3}),
            ("changed", "chg", {"v": 1}, {"v": 2}),
            ("removed", "gone", {"v": 1}, None),
        ]
        fields = await store.get_fields("items", ["chg", "new", "gone", "kept", "keptstaged"])
        assert fields == {
            "chg": {"v": 2},
            "new": {"v": 3},
            "kept": {"v": 1},
            "keptstaged": {"v": 1},
        }
        assert await ids(store, "items", origin="B") == {"otherorigin"}
        assert await ids(store, "items", origin=None) == {"local"}
        assert await ids(store, "items", origin="A") == {
            "same", "order", "chg", "new", "kept", "keptstaged", "adopt"
        }  # fmt: skip
        assert (await store.get("items", "order")) == {
            "_id": "order",
            "p": 1,
            "q": {"r": 1, "s": 2},
        }
        assert await store.stage_count("A", "items") == 6  # staged rows stay until StageClear

    @pytest.mark.parametrize("encode", [False, True], ids=["dicts", "encoded"])
    async def test_stage_commit_stores_staged_revisions(self, store: Store, encode: bool) -> None:
        """A hub's full pull stages each document with its revision: added, changed and
        identical documents all end with the hub's revision (later pushes compare-and-set
        against it); a put without one (the stock path) leaves none."""
        await store.apply(
            [
                PutDoc("items", "same", {"v": 1}, origin="A", rev=3),
                PutDoc("items", "chg", {"v": 1}, origin="A", rev=4),
                PutDoc("items", "plain", {"v": 1}, origin="A"),
            ]
        )

        def put(doc_id: str, fields: dict[str, Any], rev: int | None) -> StagePut:
            return StagePut("A", "items", doc_id, EncodedFields(fields) if encode else fields, rev)

        await store.apply(
            [
                put("same", {"v": 1}, 30),
                put("chg", {"v": 2}, 40),
                put("new", {"v": 3}, 50),
                put("plain", {"v": 1}, None),
                put("twice", {"v": 1}, 60),
                put("twice", {"v": 2}, 61),  # in one run: the later put wins
                StageCommit("A", "items", "A"),
            ]
        )
        metas = await store.get_meta_many("items", ["same", "chg", "new", "plain", "twice"])
        assert {i: m.rev for i, m in metas.items()} == {
            "same": 30,
            "chg": 40,
            "new": 50,
            "plain": None,
            "twice": 61,
        }
        assert await store.get_fields("items", ["chg", "twice"]) == {
            "chg": {"v": 2},
            "twice": {"v": 2},
        }
        with pytest.raises(StoreError):
            await store.apply([StagePut("A", "items", "bad", {"v": 1}, -1)])
        with pytest.raises(StoreError):
            await store.apply([StagePut("A", "items", "bad", {"v": 1}, "7")])  # type: ignore[arg-type]

    async def test_first_commit_stores_staged_revisions(self, store: Store) -> None:
        await store.apply(
            [
                StagePut("A", "items", "a", {"v": 1}, 7),
                StagePut("A", "items", "b", {"v": 2}),
                StagePatch("A", "items", "b", {"w": 1}),
                StagePut("A", "items", "c", {"v": 3}, 9),
                StageCommit("A", "items", "A"),
            ]
        )
        metas = await store.get_meta_many("items", ["a", "b", "c"])
        assert {i: m.rev for i, m in metas.items()} == {"a": 7, "b": None, "c": 9}
        assert await store.get_fields("items", ["b"]) == {"b": {"v": 2, "w": 1}}

    async def test_a_staged_patch_keeps_the_staged_revision(self, store: Store) -> None:
        await store.apply(
            [
                StagePut("A", "items", "a", {"v": 1}, 7),
                StagePatch("A", "items", "a", {"w": 1}, ["v"]),
                # Deleted, then created again by a patch: the revision went with the delete.
                StagePut("A", "items", "b", {"v": 1}, 8),
                StageDelete("A", "items", "b"),
                StagePatch("A", "items", "b", {"w": 2}),
            ]
        )
        await store.apply([StageCommit("A", "items", "A")])
        metas = await store.get_meta_many("items", ["a", "b"])
        assert {i: m.rev for i, m in metas.items()} == {"a": 7, "b": None}
        assert await store.get_fields("items", ["a", "b"]) == {"a": {"w": 1}, "b": {"w": 2}}

    async def test_stage_commit_over_diff_limit_reports_counts_only(self, store: Store) -> None:
        res = await self._round(store, diff_limit=2)
        assert (res.added, res.changed, res.removed, res.changes) == (1, 1, 1, None)
        assert await store.get("items", "gone") is None

    async def test_stage_commit_without_sweep(self, store: Store) -> None:
        res = await self._round(store, sweep=False)
        assert (res.added, res.changed, res.removed, res.changes) == (1, 1, 0, None)
        assert await store.get("items", "gone") is not None

    async def test_second_commit_reports_only_what_differs(self, store: Store) -> None:
        await self._round(store)
        res = (await store.apply([StageCommit("A", "items", "A", diff_limit=5)])).commits[0]
        assert (res.added, res.changed, res.removed) == (0, 1, 1)
        assert sorted((c.op, c.id) for c in res.changes) == [
            ("changed", "keptstaged"),
            ("removed", "kept"),
        ]
        assert await store.get_fields("items", ["keptstaged", "kept"]) == {"keptstaged": {"v": 99}}

    async def test_tombstones_and_changes_since(self, store: Store) -> None:
        await store.apply([PutDoc("items", f"d{r}", {"r": r}, rev=r) for r in (1, 2, 3, 4)])
        await store.apply([PutDoc("items", "norev", {"x": 1}), Tombstone("items", "d2", 5)])
        await store.apply([PatchDoc("items", "d3", {"r": 6}, rev=6)])
        got = await store.changes_since("items", 0, 100)
        assert [(e.id, e.rev) for e in got] == [("d1", 1), ("d4", 4), ("d2", 5), ("d3", 6)]
        assert orjson.loads(got[0].fields_json or b"") == {"r": 1}
        assert got[2].fields_json is None
        assert [(e.id, e.rev) for e in await store.changes_since("items", 4, 2)] == [
            ("d2", 5),
            ("d3", 6),
        ]
        assert await store.get("items", "d2") is None
        assert await store.max_rev("items") == 6
        assert await store.min_tombstone_rev("items") == 5
        await store.apply([Tombstone("items", "d4", 7), PurgeTombstones("items", 5)])
        assert await store.min_tombstone_rev("items") == 7
        assert await store.max_rev("items") == 7
        await store.apply([PutDoc("items", "d4", {"back": True}, rev=8)])
        assert [(e.id, e.rev) for e in await store.changes_since("items", 6, 10)] == [("d4", 8)]
        assert await store.min_tombstone_rev("items") is None
        assert await store.max_rev("empty") == 0
        assert await store.changes_since("empty", 0, 10) == []

    async def test_put_takes_encoded_fields(self, store: Store) -> None:
        # A hub pull page: puts with revisions, as one run (the batch path of every store).
        await store.apply([Tombstone("items", "p2", 3)])
        await store.apply(
            [
                PutDoc("items", f"p{r}", EncodedFields.from_json(f'{{"r": {r}}}'), "H", rev=r)
                for r in (1, 2, 4)
            ]
            + [PutDoc("items", "d", EncodedFields({"at": {"$date": 0}, "l": [1, "two"]}), "H")]
        )
        assert await store.get("items", "d") == {
            "_id": "d",
            "at": datetime(1970, 1, 1, tzinfo=UTC),
            "l": [1, "two"],
        }
        assert await store.get_fields("items", ["p1", "p2", "p4"]) == {
            "p1": {"r": 1},
            "p2": {"r": 2},
            "p4": {"r": 4},
        }
        assert await ids(store, "items", origin="H") == {"p1", "p2", "p4", "d"}
        got = await store.changes_since("items", 0, 10)
        assert [(e.id, e.rev) for e in got] == [("p1", 1), ("p2", 2), ("p4", 4)]  # tomb gone
        assert await store.count("items", {"r": {"$gte": 2}}) == 2

    async def test_puts_with_and_without_revisions_in_one_run(self, store: Store) -> None:
        # One run of puts, some revised: the last put of an id decides its fields and revision,
        # whatever its id holds (colons, digits, quotes, non-ASCII).
        odd = ["7:x", ":", "12", 'a"b\\c', "ü:1"]
        await store.apply(
            [
                PutDoc("items", "a", EncodedFields({"v": 1}), "H", rev=5),
                PutDoc("items", "b", {"v": 2}, "H"),
                *[PutDoc("items", k, {"k": k}, "H", rev=10 + n) for n, k in enumerate(odd)],
                PutDoc("items", "a", {"v": 3}, "H"),  # no revision now
                PutDoc("items", "b", {"v": 4}, "H", rev=9),
                PutDoc("items", "12", {"k": "again"}, "H", rev=20),
            ]
        )
        assert await store.get_fields("items", ["a", "b", *odd]) == {
            "a": {"v": 3},
            "b": {"v": 4},
            **{k: {"k": k} for k in odd if k != "12"},
            "12": {"k": "again"},
        }
        got = await store.changes_since("items", 0, 100)
        assert [(e.id, e.rev) for e in got] == [
            ("b", 9),
            ("7:x", 10),
            (":", 11),
            ('a"b\\c', 13),
            ("ü:1", 14),
            ("12", 20),
        ]

    async def test_put_of_encoded_fields_among_patches_and_deletes(self, store: Store) -> None:
        await store.apply([PutDoc("items", "old", {"v": 0})])
        await store.apply(
            [
                PutDoc("items", "a", EncodedFields({"n": 1, "x": 1}), "H", rev=1),
                PatchDoc("items", "a", {"n": 5}, cleared=["x"]),
                PutDoc("items", "b", EncodedFields({"n": 2}), "H", rev=2),
                DeleteDoc("items", "old"),
                PutDoc("items", "c", EncodedFields({"n": 3}), "H", rev=3),
                DeleteDoc("items", "c"),
            ]
        )
        assert await store.get_fields("items", ["a", "b", "c", "old"]) == {
            "a": {"n": 5},
            "b": {"n": 2},
        }
        assert await ids(store, "items", origin="H") == {"a", "b"}

    async def test_collections_lists_what_holds_data(self, store: Store) -> None:
        await store.apply(
            [
                PutDoc("items", "a", {}),
                SetBase("based", "x", None),
                Tombstone("tombed", "y", 1),
                PutDoc("emptied", "z", {}),
                DeleteDoc("emptied", "z"),
            ]
        )
        got = set(await store.collections())
        assert {"items", "based", "tombed"} <= got
        assert "emptied" not in got

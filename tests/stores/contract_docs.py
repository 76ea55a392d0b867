"""Store contract, part 1: documents, patches, reads, queries, indexes and EJSON round trips."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from bson import ObjectId

from aioserversync import ejson
from aioserversync.ejson import EJSONCustom, RegExp
from aioserversync.exceptions import StoreError
from aioserversync.stores import DeleteDoc, PatchDoc, PutDoc, SetRev, Store, Tombstone

DATE_MS = 1704164645678
DATE = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
OID = "5f1d7a0b2c3e4f5a6b7c8d9e"


async def put(
    store: Store, coll: str, doc_id: str, origin: str | None = None, **fields: Any
) -> None:
    await store.apply([PutDoc(coll, doc_id, fields, origin=origin)])


async def seed_items(store: Store, n: int = 12) -> None:
    await store.apply(
        [
            PutDoc(
                "items",
                f"id{i:02d}",
                {
                    "n": i,
                    "name": f"item {i}",
                    "color": ["red", "green", "blue"][i % 3],
                    "at": {"$date": DATE_MS + i * 1000},
                    "sub": {"x": i % 4},
                },
            )
            for i in range(n)
        ]
    )


# Each case: wire fields, and the decoded value of field "v".
EJSON_CASES: dict[str, tuple[Any, Any]] = {
    "date": ({"$date": DATE_MS}, DATE),
    "binary": ({"$binary": "AAEC+vs="}, b"\x00\x01\x02\xfa\xfb"),
    "oid": ({"$type": "oid", "$value": OID}, ObjectId(OID)),
    "decimal": ({"$type": "Decimal", "$value": "1.50"}, Decimal("1.50")),
    "inf": ({"$InfNaN": 1}, math.inf),
    "nan": ({"$InfNaN": 0}, "nan"),
    "regexp": ({"$regexp": "ab+c", "$flags": "i"}, RegExp("ab+c", "i")),
    "escape": ({"$escape": {"$date": 5}}, {"$date": 5}),
    "custom": ({"$type": "point", "$value": {"x": 1}}, EJSONCustom("point", {"x": 1})),
    "nested": (
        {"a": [1, {"when": {"$date": DATE_MS}}, None], "b": {"c": True, "d": 1.5}},
        {"a": [1, {"when": DATE}, None], "b": {"c": True, "d": 1.5}},
    ),
    "unicode": ("zß水🐍 \u00e9", "zß水🐍 \u00e9"),
    "bigint": (2**53 + 1, 2**53 + 1),
}

# wire id -> the parsed _id the document must come back with
ID_CASES: dict[str, Any] = {
    "abc": "abc",
    OID: ObjectId(OID),
    "-" + OID: OID,
    "--abc": "-abc",
    "~42": 42,
}


class DocsContract:
    """Documents and queries; a subclass provides a ``store`` fixture (an open, empty store)."""

    async def test_put_then_get_returns_decoded_doc_with_id_first(self, store: Store) -> None:
        await put(store, "items", "a1", name="pen", at={"$date": DATE_MS}, n=3)
        doc = await store.get("items", "a1")
        assert doc == {"_id": "a1", "name": "pen", "at": DATE, "n": 3}
        assert next(iter(doc)) == "_id"
        assert doc["at"].tzinfo is not None

    async def test_get_missing_and_unknown_collection(self, store: Store) -> None:
        await put(store, "items", "a1", n=1)
        assert await store.get("items", "nope") is None
        assert await store.get("never_written", "a1") is None
        assert await store.find("never_written") == []
        assert await store.count("never_written") == 0
        assert await store.get_many("never_written", ["a1"]) == {}
        assert [d async for d in store.iter_find("never_written")] == []

    async def test_put_replaces_the_whole_document(self, store: Store) -> None:
        await put(store, "items", "a1", a=1, b=2)
        await put(store, "items", "a1", c=3)
        assert await store.get("items", "a1") == {"_id": "a1", "c": 3}

    async def test_delete_and_delete_missing(self, store: Store) -> None:
        await put(store, "items", "a1", a=1)
        await store.apply([DeleteDoc("items", "a1"), DeleteDoc("items", "zz")])
        assert await store.get("items", "a1") is None
        assert await store.count("items") == 0

    async def test_patch_replaces_top_level_fields_without_deep_merge(self, store: Store) -> None:
        await put(store, "items", "a1", sub={"x": 1, "y": 2}, keep=True)
        await store.apply([PatchDoc("items", "a1", {"sub": {"x": 3}})])
        assert await store.get("items", "a1") == {"_id": "a1", "sub": {"x": 3}, "keep": True}

    async def test_patch_clears_fields(self, store: Store) -> None:
        await put(store, "items", "a1", a=1, b=2, c=3)
        await store.apply([PatchDoc("items", "a1", {"d": 4}, cleared=["a", "c", "missing"])])
        assert await store.get("items", "a1") == {"_id": "a1", "b": 2, "d": 4}

    async def test_patch_of_missing_doc_creates_it_and_ignores_cleared(self, store: Store) -> None:
        await store.apply(
            [
                PatchDoc("items", "new", {"a": 1}, cleared=["b"], origin="R", rev=7),
                PatchDoc("items", "empty"),
            ]
        )
        assert await store.get("items", "new") == {"_id": "new", "a": 1}
        assert await store.get("items", "empty") == {"_id": "empty"}
        meta = await store.get_meta_many("items", ["new"])
        assert (meta["new"].origin, meta["new"].rev) == ("R", 7)

    async def test_patch_writes_origin_and_rev_only_when_given(self, store: Store) -> None:
        await store.apply([PutDoc("items", "a1", {"a": 1}, origin="R", rev=3)])
        await store.apply([PatchDoc("items", "a1", {"a": 2})])
        meta = (await store.get_meta_many("items", ["a1"]))["a1"]
        assert (meta.origin, meta.rev) == ("R", 3)
        await store.apply([PatchDoc("items", "a1", {"a": 3}, origin="S", rev=4)])
        meta = (await store.get_meta_many("items", ["a1"]))["a1"]
        assert (meta.origin, meta.rev) == ("S", 4)

    async def test_set_rev_changes_only_the_revision_of_existing_documents(
        self, store: Store
    ) -> None:
        await store.apply([PutDoc("items", "a1", {"a": 1}, origin="R", rev=3)])
        await store.apply([PutDoc("items", "local", {"b": 2})])
        await store.apply(
            [
                SetRev("items", "a1", 9),
                SetRev("items", "local", 4),
                SetRev("items", "missing", 5),
                SetRev("nocoll", "x", 1),
            ]
        )
        metas = await store.get_meta_many("items", ["a1", "local", "missing"])
        assert (metas["a1"].origin, metas["a1"].rev) == ("R", 9)
        assert (metas["local"].origin, metas["local"].rev) == (None, 4)
        assert "missing" not in metas
        assert await store.get("items", "missing") is None
        assert await store.get("items", "a1") == {"_id": "a1", "a": 1}
        assert await store.count("items") == 2

    async def test_set_rev_runs_see_the_batch_before_them(self, store: Store) -> None:
        """A run of SetRev (an outbox drain's acknowledgements) sees documents put and deleted
        earlier in its batch, over two collections, and a later SetRev of an id wins."""
        await store.apply([PutDoc("items", "old", {"a": 1}), PutDoc("tasks", "t", {"a": 1})])
        await store.apply(
            [
                PutDoc("items", "new", {"b": 2}),
                DeleteDoc("items", "old"),
                SetRev("items", "new", 3),
                SetRev("tasks", "t", 4),
                SetRev("items", "old", 5),
                SetRev("items", "new", 6),
            ]
        )
        items = await store.get_meta_many("items", ["new", "old"])
        assert {i: m.rev for i, m in items.items()} == {"new": 6}
        assert (await store.get_meta_many("tasks", ["t"]))["t"].rev == 4

    async def test_a_put_without_rev_after_one_with_rev_in_one_batch(self, store: Store) -> None:
        # The later put wins whole: no rev, and an id holding a colon stays one id.
        await store.apply(
            [
                PutDoc("items", "x:y", {"a": 1}, origin="R", rev=4),
                PutDoc("items", "x:y", {"b": 2}, origin="R"),
                PutDoc("items", "p", {"c": 3}, origin="R", rev=5),
                PutDoc("items", "p", {"c": 4}, origin="R"),
            ]
        )
        assert sorted(d["_id"] for d in await store.find("items", {})) == ["p", "x:y"]
        assert await store.get("items", "x:y") == {"_id": "x:y", "b": 2}
        metas = await store.get_meta_many("items", ["x:y", "p", "y"])
        assert {i: (m.origin, m.rev) for i, m in metas.items()} == {
            "x:y": ("R", None),
            "p": ("R", None),
        }

    async def test_a_rev_drops_the_tombstone_of_its_id(self, store: Store) -> None:
        # A tombstone never outlives a document given a rev: by PutDoc, PatchDoc or SetRev.
        for doc_id in ("put", "patch", "setrev", "norev", "gone"):
            await store.apply([Tombstone("items", doc_id, 1)])
        await store.apply([PutDoc("items", "setrev", {}), PutDoc("items", "norev", {})])
        await store.apply(
            [
                PutDoc("items", "put", {}, rev=2),
                PatchDoc("items", "patch", {"a": 1}, rev=3),
                SetRev("items", "setrev", 4),
                PatchDoc("items", "norev", {"a": 1}),
                PatchDoc("items", "gone", {"a": 1}, rev=5),
                DeleteDoc("items", "gone"),  # given a rev, then deleted: no tombstone left
            ]
        )
        feed = [
            (e.id, e.rev, e.fields_json is None) for e in await store.changes_since("items", 0, 10)
        ]
        assert feed == [
            ("norev", 1, True),
            ("put", 2, False),
            ("patch", 3, False),
            ("setrev", 4, False),
        ]

    async def test_set_rev_needs_an_int_revision(self, store: Store) -> None:
        await store.apply([PutDoc("items", "a1", {"a": 1}, rev=3)])
        for bad in (None, "7", True, 1.5):
            with pytest.raises(StoreError):
                await store.apply([PutDoc("items", "b", {}), SetRev("items", "a1", bad)])  # type: ignore[arg-type]
        assert (await store.get_meta_many("items", ["a1"]))["a1"].rev == 3
        assert await store.get("items", "b") is None  # the batch was rolled back

    async def test_ops_on_one_document_in_one_batch_apply_in_order(self, store: Store) -> None:
        await put(store, "items", "old", a=1)
        await store.apply(
            [
                PutDoc("items", "x", {"a": 1, "b": 1}),
                PatchDoc("items", "x", {"c": 1}, cleared=["a"]),
                PatchDoc("items", "x", {"c": 2}),
                PatchDoc("items", "old", {"b": 5}),
                DeleteDoc("items", "old"),
                PutDoc("items", "old", {"z": 9}),
                PatchDoc("items", "gone", {"a": 1}),
                DeleteDoc("items", "gone"),
            ]
        )
        assert await store.get("items", "x") == {"_id": "x", "b": 1, "c": 2}
        assert await store.get("items", "old") == {"_id": "old", "z": 9}
        assert await store.get("items", "gone") is None

    async def test_many_patches_in_one_batch_match_a_model(self, store: Store) -> None:
        model: dict[str, dict[str, Any]] = {}
        origins: dict[str, str | None] = {}
        for i in range(0, 37, 2):  # half the documents exist before the batch
            await put(store, "items", f"d{i}", counter=-1)
            model[f"d{i}"] = {"counter": -1}
            origins[f"d{i}"] = None
        ops: list[Any] = []
        for i in range(600):
            doc_id = f"d{i % 37}"
            fields = {"counter": i, f"f{i % 5}": i}
            cleared = [f"f{(i + 2) % 5}"] if i % 3 == 0 else None
            origin = f"R{i % 2}" if i % 4 < 2 else None  # live changes carry their remote's
            ops.append(PatchDoc("items", doc_id, fields, cleared=cleared, origin=origin))
            if doc_id not in model:
                model[doc_id] = dict(fields)
                origins[doc_id] = origin
            else:
                for c in cleared or ():
                    model[doc_id].pop(c, None)
                model[doc_id].update(fields)
                origins[doc_id] = origin or origins[doc_id]
        await store.apply(ops)
        got = await store.get_many("items", list(model))
        assert {k: {f: v for f, v in d.items() if f != "_id"} for k, d in got.items()} == model
        meta = await store.get_meta_many("items", list(model))
        assert {k: m.origin for k, m in meta.items()} == origins

    async def test_patched_values_of_every_kind_match_a_model(self, store: Store) -> None:
        await put(store, "items", "a", keep=1, n=0)
        await put(store, "items", "b", n=0)
        values = [
            {"$date": DATE_MS},
            {"x": [1, {"y": None}], "z": "é水🐍"},
            2**62 + 5,
            -1.5e-7,
            True,
            None,
            'quote " back\\slash',
            [],
        ]
        ops = [PatchDoc("items", "a", {f"f{i}": v, "n": i}) for i, v in enumerate(values)]
        ops += [PatchDoc("items", "b", {"n": 1}, cleared=["nope"]), PatchDoc("items", "b", {})]
        ops += [PatchDoc("items", "a", {'k"ey': 1, "dot.ted": 3})]
        await store.apply(ops)
        expected = {"keep": 1, "n": len(values) - 1, **{f"f{i}": v for i, v in enumerate(values)}}
        expected.update({'k"ey': 1, "dot.ted": 3})
        got = await store.get_fields("items", ["a", "b"])
        assert got == {"a": expected, "b": {"n": 1}}
        assert list(got["a"])[:2] == ["keep", "n"]  # replaced fields keep their position

    async def test_get_many_and_get_fields(self, store: Store) -> None:
        await put(store, "items", "a", at={"$date": DATE_MS})
        await put(store, "items", "b", n=2)
        many = await store.get_many("items", ["b", "zz", "a", "b"])
        assert set(many) == {"a", "b"}
        assert many["a"] == {"_id": "a", "at": DATE}
        fields = await store.get_fields("items", ["a", "b", "zz"])
        assert fields == {"a": {"at": {"$date": DATE_MS}}, "b": {"n": 2}}

    @pytest.mark.parametrize("case", list(EJSON_CASES))
    async def test_ejson_values_round_trip(self, store: Store, case: str) -> None:
        wire, decoded = EJSON_CASES[case]
        await put(store, "items", "e", v=wire)
        doc = await store.get("items", "e")
        assert doc is not None
        if decoded == "nan":
            assert isinstance(doc["v"], float) and math.isnan(doc["v"])
        else:
            assert doc["v"] == decoded
            assert type(doc["v"]) is type(decoded)
        assert (await store.get_fields("items", ["e"]))["e"] == {"v": ejson.encode(doc["v"])}

    @pytest.mark.parametrize("wire_id", list(ID_CASES))
    async def test_wire_ids_round_trip(self, store: Store, wire_id: str) -> None:
        await put(store, "items", wire_id, n=1)
        doc = await store.get("items", wire_id)
        assert doc is not None and doc["_id"] == ID_CASES[wire_id]
        assert type(doc["_id"]) is type(ID_CASES[wire_id])
        assert [i async for i in store.iter_ids("items")] == [wire_id]
        assert set(await store.get_many("items", [wire_id])) == {wire_id}
        await store.apply([DeleteDoc("items", wire_id)])
        assert await store.get("items", wire_id) is None

    async def test_find_by_selectors(self, store: Store) -> None:
        await seed_items(store)
        names = lambda docs: sorted(d["_id"] for d in docs)  # noqa: E731
        assert names(await store.find("items", {"color": "red"})) == [
            "id00",
            "id03",
            "id06",
            "id09",
        ]
        assert names(await store.find("items", {"n": {"$gte": 10}})) == ["id10", "id11"]
        assert names(await store.find("items", {"n": {"$in": [1, 2, 99]}})) == ["id01", "id02"]
        assert names(await store.find("items", {"sub.x": 3})) == ["id03", "id07", "id11"]
        assert names(await store.find("items", {"_id": "id04"})) == ["id04"]
        sel = {"$or": [{"n": 0}, {"color": "blue", "n": {"$lt": 6}}]}
        assert names(await store.find("items", sel)) == ["id00", "id02", "id05"]
        assert await store.find("items", {"nope": {"$exists": True}}) == []

    async def test_find_compares_dates(self, store: Store) -> None:
        await seed_items(store)
        after = datetime.fromtimestamp((DATE_MS + 9500) / 1000, UTC)
        got = await store.find("items", {"at": {"$gt": after}}, sort=[("n", 1)])
        assert [d["_id"] for d in got] == ["id10", "id11"]
        until = datetime.fromtimestamp((DATE_MS + 2000) / 1000, UTC)
        got = await store.find("items", {"at": {"$lte": until}}, sort=[("n", 1)])
        assert [d["_id"] for d in got] == ["id00", "id01", "id02"]

    async def test_find_sort_skip_limit_projection(self, store: Store) -> None:
        await seed_items(store)
        docs = await store.find("items", {}, sort=[("n", -1)], skip=2, limit=3)
        assert [d["n"] for d in docs] == [9, 8, 7]
        docs = await store.find("items", {"color": "green"}, sort={"n": 1}, projection={"name": 1})
        assert docs == [{"_id": f"id{i:02d}", "name": f"item {i}"} for i in (1, 4, 7, 10)]
        docs = await store.find("items", {"n": 5}, projection={"sub": 0, "at": 0, "_id": 0})
        assert docs == [{"n": 5, "name": "item 5", "color": "blue"}]
        docs = await store.find("items", sort=[("color", 1), ("n", -1)], limit=2)
        assert [d["_id"] for d in docs] == ["id11", "id08"]

    async def test_sub_document_equality_with_sort_skip_limit(self, store: Store) -> None:
        await seed_items(store)
        sel = {"sub": {"x": 1}}
        assert [d["n"] for d in await store.find("items", sel, sort=[("n", 1)])] == [1, 5, 9]
        got = await store.find("items", sel, sort=[("n", -1)], skip=1, limit=1)
        assert [d["n"] for d in got] == [5]
        got = await store.find("items", sel, skip=2)
        assert len(got) == 1 and got[0]["n"] in (1, 5, 9)
        assert await store.count("items", sel) == 3
        assert sorted([d["n"] async for d in store.iter_find("items", sel, batch_size=2)]) == [
            1,
            5,
            9,
        ]

    async def test_count(self, store: Store) -> None:
        await seed_items(store)
        assert await store.count("items") == 12
        assert await store.count("items", {"color": "blue"}) == 4
        assert await store.count("items", {"n": {"$lt": 3}, "color": {"$ne": "red"}}) == 2

    async def test_iter_find_pages_through_everything(self, store: Store) -> None:
        await seed_items(store, 25)
        got = [d async for d in store.iter_find("items", {"n": {"$gte": 3}}, batch_size=4)]
        assert sorted(d["n"] for d in got) == list(range(3, 25))
        got = [d async for d in store.iter_find("items", sort=[("n", -1)], batch_size=7)]
        assert [d["n"] for d in got] == list(range(24, -1, -1))
        got = [
            d
            async for d in store.iter_find(
                "items", {"color": "red"}, sort={"n": 1}, projection={"n": 1}, batch_size=2
            )
        ]
        assert got == [{"_id": f"id{i:02d}", "n": i} for i in range(0, 25, 3)]

    async def test_create_index_is_idempotent_and_queries_still_answer(self, store: Store) -> None:
        await seed_items(store)
        await store.create_index("items", ["color"])
        await store.create_index("items", ["color"])
        await store.create_index("items", [("sub.x", -1), ("n", 1)])
        await store.create_index("items", ["_id"])
        assert await store.count("items", {"color": "green"}) == 4
        assert [d["n"] for d in await store.find("items", {"sub.x": 1}, sort={"n": 1})] == [1, 5, 9]

    async def test_unique_index_refuses_duplicates(self, store: Store) -> None:
        await store.create_index("users", ["email"], unique=True)
        await put(store, "users", "u1", email="a@x")
        with pytest.raises(StoreError):
            await put(store, "users", "u2", email="a@x")
        assert await store.get("users", "u2") is None
        await put(store, "users", "u1", email="b@x")  # replacing the same document is fine
        await put(store, "users", "u2", email="a@x")
        assert await store.count("users") == 2

    async def test_unique_index_over_existing_duplicates_fails(self, store: Store) -> None:
        await put(store, "users", "u1", email="a@x")
        await put(store, "users", "u2", email="a@x")
        with pytest.raises(StoreError):
            await store.create_index("users", ["email"], unique=True)
        await put(store, "users", "u3", email="a@x")  # no index was left behind
        assert await store.count("users", {"email": "a@x"}) == 3

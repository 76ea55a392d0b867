"""Store contract, part 3: ``PutDocs``, a page of documents as one JSON object text."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from aioserversync.exceptions import StoreError
from aioserversync.stores import DeleteDoc, PatchDoc, PutDoc, PutDocs, Store, Tombstone
from tests.stores.contract_sync import ids


def page(entries: dict[str, Any]) -> str:
    return orjson.dumps(entries).decode()


class PagesContract:
    """``PutDocs``; a subclass provides a ``store`` fixture (an open, empty store)."""

    async def test_put_docs_put_like_puts_in_order(self, store: Store) -> None:
        """Each entry is a PutDoc with the key's revision (none for an empty one) and the op's
        origin; the entries and the operations around them apply in order, an id given twice
        keeps its last entry, and a revision drops the id's tombstone."""
        await store.apply([PutDoc("items", "old", {"v": 0}), Tombstone("items", "t", 3)])
        await store.apply(
            [
                PutDoc("items", "a", {"v": 0}, "H", rev=1),
                PutDocs(
                    "items",
                    page(
                        {
                            "5:a": {"v": 1, "x": 1},
                            ":b": {"v": 2},
                            "7:t": {"at": {"$date": 0}},
                            "8:c": {"v": 3},
                            "9:c": {"v": 4},
                        }
                    ),
                    "H",
                ),
                PatchDoc("items", "a", {"v": 5}, cleared=["x"]),
                DeleteDoc("items", "old"),
                PutDocs("items", page({"10:b": {"v": 6}}), "G"),
            ]
        )
        assert await store.get_fields("items", ["a", "b", "c", "old"]) == {
            "a": {"v": 5},
            "b": {"v": 6},
            "c": {"v": 4},
        }
        assert await store.get("items", "t") == {"_id": "t", "at": datetime(1970, 1, 1, tzinfo=UTC)}
        metas = await store.get_meta_many("items", ["a", "b", "c", "t"])
        assert {i: (m.origin, m.rev) for i, m in metas.items()} == {
            "a": ("H", 5),
            "b": ("G", 10),
            "c": ("H", 9),
            "t": ("H", 7),
        }
        got = await store.changes_since("items", 0, 100)
        assert [(e.id, e.rev) for e in got] == [("a", 5), ("t", 7), ("c", 9), ("b", 10)]
        assert await store.min_tombstone_rev("items") is None
        assert await ids(store, "items", origin="H") == {"a", "c", "t"}

    async def test_put_docs_keep_any_wire_id(self, store: Store) -> None:
        odd = ["7:x", ":", "", "12", 'a"b\\c', "é€😀", "x\ny", "$x", "a.b"]
        want = {i: {"v": n} for n, i in enumerate(odd)}
        text = page({f"{n + 1}:{i}": f for n, (i, f) in enumerate(want.items())})
        await store.apply([PutDocs("items", text, "H")])
        assert await store.get_fields("items", odd) == want
        got = await store.changes_since("items", 0, 100)
        assert [(e.id, e.rev) for e in got] == [(i, n + 1) for n, i in enumerate(odd)]
        await store.apply([PutDocs("items", "{}", "H")])
        assert await store.count("items") == len(odd)

    async def test_put_docs_with_checked_keys_put_the_same(self, store: Store) -> None:
        """``keys_checked`` (the caller proved every key "<rev>:<id>") writes exactly what the
        unchecked form writes: ids holding colons, an id given twice, dates."""
        entries = {"5:a": {"v": 1}, "7:x:y": {"n": [1]}, "9:é": {"at": {"$date": 3}}, "11:a": {}}
        await store.apply(
            [
                PutDocs("one", page(entries), "H"),
                PutDocs("two", page(entries), "H", keys_checked=True),
            ]
        )
        want = {"a": {}, "x:y": {"n": [1]}, "é": {"at": {"$date": 3}}}
        for coll in ("one", "two"):
            assert await store.get_fields(coll, ["a", "x:y", "é", "7:x:y"]) == want
            got = await store.changes_since(coll, 0, 100)
            assert [(e.id, e.rev) for e in got] == [("x:y", 7), ("é", 9), ("a", 11)]
            assert await ids(store, coll, origin="H") == {"a", "x:y", "é"}

    @pytest.mark.parametrize("docs", ['{"1:a": {"n": 1}, "2:b": 2}', '{"1:a": [1]}', "{x}"])
    async def test_put_docs_with_checked_keys_still_refuse_what_is_not_an_object(
        self, store: Store, docs: str
    ) -> None:
        await store.apply([PutDoc("items", "kept", {"v": 1})])
        with pytest.raises(StoreError, match="PutDocs"):
            await store.apply([PutDocs("items", docs, "H", keys_checked=True)])
        assert await ids(store, "items") == {"kept"}

    @pytest.mark.parametrize(
        "docs",
        [
            '[{"n": 1}]',
            ' {"1:a": {"n": 1}}',
            '{"1:a": {"n": 1}',
            '{"1:a": {"n": 1}, "2:b": 2}',
            '{"1:a": {"n": 1}, "2:b": [1]}',
            '{"1:a": {"n": 1}, "b": {"n": 2}}',
            '{"x1:a": {"n": 1}}',
            '{"-1:a": {"n": 1}}',
            '{"1 :a": {"n": 1}}',
            '{"\u0661:a": {"n": 1}}',  # ARABIC-INDIC DIGIT ONE
            '{"1234567890123456789:a": {"n": 1}}',
            "{not json}",
            b'{"1:a": {"n": 1}}',
        ],
        ids=[
            "array",
            "space",
            "truncated",
            "number",
            "list",
            "no-colon",
            "letter-rev",
            "negative-rev",
            "space-rev",
            "arabic-digit-rev",
            "long-rev",
            "garbage",
            "bytes",
        ],
    )
    async def test_put_docs_refuses_what_is_not_a_page(self, store: Store, docs: Any) -> None:
        await store.apply([PutDoc("items", "kept", {"v": 1})])
        with pytest.raises(StoreError, match="PutDocs"):
            await store.apply([PutDoc("items", "new", {"v": 2}), PutDocs("items", docs, "H")])
        assert await ids(store, "items") == {"kept"}
        assert await store.get_fields("items", ["kept"]) == {"kept": {"v": 1}}

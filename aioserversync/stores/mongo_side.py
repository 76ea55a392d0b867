"""Side-collection reads of :class:`~aioserversync.stores.mongo.MongoStore`.

:class:`MongoSideReads` holds the collection handles and the reads of everything the store keeps
beside the user's documents: per-document metadata, bases, the outbox, store metadata, staging and
hub revisions. :class:`~aioserversync.stores.mongo.MongoStore` adds the lifecycle, writes and
document queries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import orjson
from pymongo.errors import OperationFailure, PyMongoError

from ..exceptions import ConfigurationError, InvalidState, QueryError, StoreError
from ..typing import JSONValue, WireFields
from .base import _UNSET, DocMeta, OutboxRecord, OutboxState, RevEntry
from .mongo_codec import CODEC_OPTIONS, key, parse_id, wire_from_bson, wire_id_of
from .wireform import check_collection, dedupe, load_fields, load_json

__all__ = ["QUERY_ERROR_CODES", "MongoSideReads"]

SIDES = ("docmeta", "bases", "tombstones", "outbox", "meta", "staging", "counters")
QUERY_ERROR_CODES = frozenset((2, 9, 17287, 31253, 31254))  # BadValue, FailedToParse, projections


class MongoSideReads:
    """Handles and side-collection reads; see the module docstring."""

    name: str
    collection_name: str | None
    _db: Any
    _single: Any
    _prefix: str
    _state: str
    _handles: dict[str, Any]

    def _check_open(self) -> None:
        if self._state != "open":
            raise InvalidState(
                f"{self.name} is {'closed' if self._state == 'closed' else 'not open'}"
            )

    # ------------------------------------------------------------------ names and handles

    def check_name(self, name: str) -> str:
        """Validate a local collection name for this store.

        Raises:
            ConfigurationError: The name is invalid for MongoDB, reserved, or (single-collection
                store) not the store's collection.
        """
        check_collection(name)
        if self.collection_name is not None:
            if name != self.collection_name:
                raise ConfigurationError(
                    f"this MongoStore holds only collection {self.collection_name!r}, not {name!r}"
                )
            return name
        if "$" in name or name.startswith(("system.", self._prefix)):
            raise ConfigurationError(f"invalid MongoDB collection name {name!r}")
        return name

    def user_collection(self, name: str) -> Any:
        """The handle of a local collection (checked by :meth:`check_name`)."""
        return self.target_collection(f"u:{self.check_name(name)}")

    def target_collection(self, target: str) -> Any:
        """The handle for a write target: ``"u:<name>"`` or a side collection part."""
        handle = self._handles.get(target)
        if handle is None:
            if target.startswith("u:"):
                if self._single is not None:
                    handle = self._single.with_options(codec_options=CODEC_OPTIONS)
                else:
                    handle = self._db.get_collection(target[2:], codec_options=CODEC_OPTIONS)
            elif target in SIDES:
                handle = self._db.get_collection(
                    f"{self._prefix}_{target}", codec_options=CODEC_OPTIONS
                )
            else:
                raise StoreError(f"unknown target {target!r}")
            self._handles[target] = handle
        return handle

    async def _find_raw(self, target: str, flt: Mapping[str, Any], **kw: Any) -> list[Any]:
        try:
            docs: list[Any] = await self.target_collection(target).find(flt, **kw).to_list(None)
        except OperationFailure as exc:
            if exc.code in QUERY_ERROR_CODES:
                raise QueryError(f"MongoDB refused the query: {exc}") from exc
            raise StoreError(f"MongoDB read failed: {exc}") from exc
        except PyMongoError as exc:
            raise StoreError(f"MongoDB read failed: {exc}") from exc
        return docs

    async def _by_ids(self, collection: str, doc_ids: Sequence[str]) -> dict[str, Any]:
        self._check_open()
        name = self.check_name(collection)
        ids = dedupe(doc_ids)
        if not ids:
            return {}
        raw = await self._find_raw(f"u:{name}", {"_id": {"$in": [parse_id(i) for i in ids]}})
        found = {wire_id_of(d): d for d in raw}
        return {i: found[i] for i in ids if i in found}

    # ------------------------------------------------------------------ sync metadata

    async def get_meta_many(self, collection: str, doc_ids: Sequence[str]) -> dict[str, DocMeta]:
        """Return :class:`DocMeta` for the documents (or bases) that exist among ``doc_ids``."""
        self._check_open()
        name = self.check_name(collection)
        ids = dedupe(doc_ids)
        if not ids:
            return {}
        present = set(
            wire_id_of(d)
            for d in await self._find_raw(
                f"u:{name}", {"_id": {"$in": [parse_id(i) for i in ids]}}, projection={"_id": 1}
            )
        )
        keys = [key(name, i) for i in ids]
        metas = {m["i"]: m for m in await self._find_raw("docmeta", {"_id": {"$in": keys}})}
        bases = {b["i"]: b for b in await self._find_raw("bases", {"_id": {"$in": keys}})}
        out: dict[str, DocMeta] = {}
        for i in ids:
            b = bases.get(i)
            if i not in present and b is None:
                continue
            m = metas.get(i) if i in present else None
            out[i] = DocMeta(
                origin=None if m is None else m.get("o"),
                rev=None if m is None else m.get("r"),
                has_base=b is not None,
                base=None if b is None or b.get("f") is None else load_fields(b["f"]),
                base_rev=None if b is None else b.get("r"),
            )
        return out

    async def iter_ids(
        self, collection: str, *, origin: str | None = _UNSET, batch_size: int = 1000
    ) -> AsyncIterator[str]:
        """Stream the wire ids of a collection, optionally only those of one origin.

        ``origin=None`` selects local-only documents (no origin recorded); leaving it out selects
        all. Ids come in no particular order.
        """
        self._check_open()
        name = self.check_name(collection)
        size = max(int(batch_size), 1)
        try:
            if origin is not _UNSET and origin is not None:
                cursor = self.target_collection("docmeta").find(
                    {"c": name, "o": origin}, projection={"i": 1}, batch_size=size
                )
                async for m in cursor:
                    yield m["i"]
                return
            cursor = self.target_collection(f"u:{name}").find(
                {}, projection={"_id": 1}, batch_size=size
            )
            page: list[str] = []
            async for raw in cursor:
                page.append(wire_id_of(raw))
                if len(page) >= size:
                    for i in await self._local_filter(name, page, origin is _UNSET):
                        yield i
                    page = []
            for i in await self._local_filter(name, page, origin is _UNSET):
                yield i
        except PyMongoError as exc:
            raise StoreError(f"MongoDB read failed: {exc}") from exc

    async def _local_filter(self, name: str, ids: list[str], everything: bool) -> list[str]:
        if everything or not ids:
            return ids
        keys = [key(name, i) for i in ids]
        remote = {
            m["i"]
            for m in await self._find_raw("docmeta", {"_id": {"$in": keys}})
            if m.get("o") is not None
        }
        return [i for i in ids if i not in remote]

    async def based_ids(self, collection: str) -> list[str]:
        """Return the wire ids that have a base recorded."""
        self._check_open()
        name = self.check_name(collection)
        rows = await self._find_raw("bases", {"c": name}, projection={"i": 1})
        return sorted(r["i"] for r in rows)

    # ------------------------------------------------------------------ outbox

    @staticmethod
    def _outbox_filter(
        collection: str | None, origin: str | None, states: Sequence[str]
    ) -> dict[str, Any]:
        flt: dict[str, Any] = {"s": {"$in": list(states)}}
        if collection is not None:
            flt["c"] = collection
        if origin is not None:
            flt["o"] = origin
        return flt

    @staticmethod
    def _record(d: Mapping[str, Any]) -> OutboxRecord:
        return OutboxRecord(
            seq=d["_id"],
            collection=d["c"],
            doc_id=d["d"],
            op=d["op"],
            payload=load_json(d["p"]),
            origin=d.get("o"),
            state=d["s"],
            mutation_id=d["m"],
            base_rev=d.get("br"),
            attempts=d["a"],
            error=load_json(d["e"]),
            created_at=d["ca"],
            updated_at=d["ua"],
            extra=load_json(d["x"]),
        )

    async def outbox_peek(
        self,
        *,
        collection: str | None = None,
        origin: str | None = None,
        states: Sequence[OutboxState] = ("pending",),
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[OutboxRecord]:
        """Return records in ``seq`` order, filtered by collection, origin and state."""
        self._check_open()
        flt = self._outbox_filter(collection, origin, states)
        flt["_id"] = {"$gt": int(after_seq)}
        kw: dict[str, Any] = {"sort": [("_id", 1)]}
        if limit > 0:
            kw["limit"] = int(limit)
        return [self._record(d) for d in await self._find_raw("outbox", flt, **kw)]

    async def outbox_for_docs(self, collection: str, doc_ids: Sequence[str]) -> list[OutboxRecord]:
        """Return every record (any state) for the given documents, in ``seq`` order."""
        self._check_open()
        flt = {"c": collection, "d": {"$in": dedupe(doc_ids)}}
        return [self._record(d) for d in await self._find_raw("outbox", flt, sort=[("_id", 1)])]

    async def outbox_count(
        self,
        *,
        collection: str | None = None,
        origin: str | None = None,
        states: Sequence[OutboxState] = ("pending", "in_flight", "unknown"),
    ) -> int:
        """Count records."""
        self._check_open()
        try:
            n: int = await self.target_collection("outbox").count_documents(
                self._outbox_filter(collection, origin, states)
            )
        except PyMongoError as exc:
            raise StoreError(f"MongoDB count failed: {exc}") from exc
        return n

    # ------------------------------------------------------------------ metadata

    async def get_meta(self, key: str) -> JSONValue:
        """Return a metadata value, or ``None``."""
        self._check_open()
        rows = await self._find_raw("meta", {"_id": key})
        return load_json(rows[0]["v"]) if rows else None

    async def get_meta_prefix(self, prefix: str) -> dict[str, JSONValue]:
        """Return every metadata key starting with ``prefix``."""
        self._check_open()
        rows = await self._find_raw("meta", {"_id": {"$gte": prefix}}, sort=[("_id", 1)])
        return {r["_id"]: load_json(r["v"]) for r in rows if r["_id"].startswith(prefix)}

    # ------------------------------------------------------------------ staging

    async def stage_get(
        self, scope: str, collection: str, doc_ids: Sequence[str]
    ) -> dict[str, WireFields]:
        """Return the staged fields of the given ids that are staged."""
        ids, rows = await self._staged_rows(scope, collection, doc_ids)
        found = {r["i"]: r["f"] for r in rows}
        return {i: load_fields(found[i]) for i in ids if i in found}

    async def stage_revs(
        self, scope: str, collection: str, doc_ids: Sequence[str]
    ) -> dict[str, int]:
        """Return the hub revisions of the given staged ids that carry one."""
        _, rows = await self._staged_rows(scope, collection, doc_ids)
        return {r["i"]: r["r"] for r in rows if type(r.get("r")) is int}

    async def _staged_rows(
        self, scope: str, collection: str, doc_ids: Sequence[str]
    ) -> tuple[list[str], list[dict[str, Any]]]:
        """The distinct ids asked for, and the staging rows of those that are staged."""
        self._check_open()
        name = self.check_name(collection)
        ids = dedupe(doc_ids)
        rows = await self._find_raw("staging", {"_id": {"$in": [key(scope, name, i) for i in ids]}})
        return ids, rows

    async def stage_count(self, scope: str, collection: str) -> int:
        """Count staged documents."""
        self._check_open()
        name = self.check_name(collection)
        try:
            n: int = await self.target_collection("staging").count_documents(
                {"s": scope, "c": name}
            )
        except PyMongoError as exc:
            raise StoreError(f"MongoDB count failed: {exc}") from exc
        return n

    # ------------------------------------------------------------------ hub revisions

    async def changes_since(self, collection: str, since: int, limit: int) -> list[RevEntry]:
        """Return up to ``limit`` documents and tombstones with ``rev > since``, by ``rev``."""
        self._check_open()
        name = self.check_name(collection)
        if limit <= 0:
            return []
        order = [("r", 1), ("i", 1)]
        flt = {"c": name, "r": {"$gt": int(since)}}
        metas = await self._find_raw("docmeta", flt, sort=order, limit=int(limit))
        docs = await self._by_ids(name, [m["i"] for m in metas])
        entries: list[tuple[int, str, bytes | None]] = [
            (m["r"], m["i"], orjson.dumps(wire_from_bson(docs[m["i"]])))
            for m in metas
            if m["i"] in docs
        ]
        tombs = await self._find_raw("tombstones", flt, sort=order, limit=int(limit))
        entries += [(t["r"], t["i"], None) for t in tombs]
        entries.sort(key=lambda e: (e[0], e[1]))
        return [RevEntry(i, r, f) for r, i, f in entries[: int(limit)]]

    async def _top_rev(self, side: str, name: str, direction: int) -> int | None:
        rows = await self._find_raw(
            side, {"c": name, "r": {"$ne": None}}, sort=[("r", direction)], limit=1
        )
        return rows[0].get("r") if rows else None  # a row from an earlier version may lack it

    async def max_rev(self, collection: str) -> int:
        """Return the largest revision of any document or tombstone (0 if none)."""
        self._check_open()
        name = self.check_name(collection)
        revs = [
            await self._top_rev("docmeta", name, -1),
            await self._top_rev("tombstones", name, -1),
        ]
        return max((r for r in revs if r is not None), default=0)

    async def min_tombstone_rev(self, collection: str) -> int | None:
        """Hub side: the smallest tombstone revision still kept, or ``None``."""
        self._check_open()
        return await self._top_rev("tombstones", self.check_name(collection), 1)

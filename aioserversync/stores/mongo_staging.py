"""The staging steps of a MongoDB batch: ``StagePatch`` and ``StageCommit``.

Both read before they write, so :class:`~.mongo_apply.MongoWriter` runs them as steps of their
own, after flushing what the batch buffered before them. A commit walks the staged documents of
its round in pages (never the whole collection in memory), writes the added and changed ones
with their origin and hub revision, gives identical ones the round's origin and revision, and
sweeps the origin's documents the round did not stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pymongo import DeleteMany, ReplaceOne, UpdateOne
from pymongo.errors import PyMongoError

from ..exceptions import StoreError
from .base import DocChange, StageCommit, StageCommitResult, StagePatch
from .mongo_codec import fields_to_bson, key, parse_id, wire_from_bson, wire_id_of
from .wireform import dump_fields, load_fields, patch_fields, wire_equal

if TYPE_CHECKING:
    from .mongo import MongoStore

__all__ = ["StagingSteps"]

_PAGE = 500


class StagingSteps:
    """Staging reads and commits, mixed into :class:`~.mongo_apply.MongoWriter`."""

    store: MongoStore
    session: Any

    if TYPE_CHECKING:

        def _buffer(self, target: str, model: Any) -> None: ...

        async def _find(self, target: str, flt: dict[str, Any], **kw: Any) -> list[Any]: ...

        async def flush(self, *, final: bool = False) -> None:
            """Send the buffered writes (see :meth:`.mongo_apply.MongoWriter.flush`)."""

    async def _stage_patch(self, op: StagePatch) -> None:
        k = key(op.scope, op.collection, op.id)
        found = await self._find("staging", {"_id": k})
        current = load_fields(found[0]["f"]) if found else None
        merged = patch_fields(current, op.fields, None if current is None else op.cleared)
        doc = {"_id": k, "s": op.scope, "c": op.collection, "i": op.id, "f": dump_fields(merged)}
        if current is not None and found[0].get("r") is not None:
            doc["r"] = found[0]["r"]  # a patch changes the fields only: the staged rev stays
        self._buffer("staging", ReplaceOne({"_id": k}, doc, upsert=True))

    async def _stage_commit(self, op: StageCommit) -> StageCommitResult:
        res = StageCommitResult(op.collection)
        limit = max(int(op.diff_limit), 0)
        details: list[DocChange] = []
        keep = op.keep
        coll, origin = op.collection, op.origin
        user = f"u:{coll}"
        staging = self.store.target_collection("staging")
        cursor = staging.find(
            {"s": op.scope, "c": coll}, sort=[("_id", 1)], batch_size=_PAGE, session=self.session
        )
        page: list[Any] = []
        try:
            async for row in cursor:
                if row["i"] not in keep:
                    page.append(row)
                if len(page) >= _PAGE:
                    await self._commit_page(user, coll, origin, page, res, details, limit)
                    page = []
            if page:
                await self._commit_page(user, coll, origin, page, res, details, limit)
            if op.sweep:
                await self._sweep(op, res, details, limit)
        except PyMongoError as exc:
            raise StoreError(f"MongoDB stage commit of {coll!r} failed: {exc}") from exc
        total = res.added + res.changed + res.removed
        res.changes = details if total <= limit else None
        return res

    async def _commit_page(
        self,
        user: str,
        coll: str,
        origin: str,
        page: list[Any],
        res: StageCommitResult,
        details: list[DocChange],
        limit: int,
    ) -> None:
        parsed = {row["i"]: parse_id(row["i"]) for row in page}
        stored = {
            wire_id_of(d): d
            for d in await self._find(user, {"_id": {"$in": list(parsed.values())}})
        }
        keys = [key(coll, i) for i in parsed]
        metas = {m["i"]: m for m in await self._find("docmeta", {"_id": {"$in": keys}})}
        for row in page:
            doc_id = row["i"]
            new = load_fields(row["f"])
            cur = stored.get(doc_id)
            k = key(coll, doc_id)
            rev = row.get("r")
            if cur is not None:
                old = wire_from_bson(cur)
                if wire_equal(old, new):
                    meta = metas.get(doc_id)
                    stale = rev is not None and (meta is None or meta.get("r") != rev)
                    if meta is None or meta.get("o") != origin or stale:
                        put: dict[str, Any] = {"o": origin}
                        if rev is not None:
                            put["r"] = rev
                        upd = {"$set": put, "$setOnInsert": {"c": coll, "i": doc_id}}
                        self._buffer("docmeta", UpdateOne({"_id": k}, upd, upsert=True))
                    continue
                res.changed += 1
                if len(details) < limit:
                    details.append(DocChange("changed", doc_id, old, new))
            else:
                res.added += 1
                if len(details) < limit:
                    details.append(DocChange("added", doc_id, None, new))
            _id = parsed[doc_id]
            self._buffer(user, ReplaceOne({"_id": _id}, fields_to_bson(_id, new), upsert=True))
            meta_doc = {"_id": k, "c": coll, "i": doc_id, "o": origin, "r": rev}
            self._buffer("docmeta", ReplaceOne({"_id": k}, meta_doc, upsert=True))
        await self.flush()

    async def _sweep(
        self, op: StageCommit, res: StageCommitResult, details: list[DocChange], limit: int
    ) -> None:
        coll = op.collection
        docmeta = self.store.target_collection("docmeta")
        cursor = docmeta.find(
            {"c": coll, "o": op.origin},
            projection={"i": 1},
            sort=[("_id", 1)],
            batch_size=_PAGE,
            session=self.session,
        )
        ids: list[str] = []
        async for m in cursor:
            if m["i"] not in op.keep:
                ids.append(m["i"])
            if len(ids) >= _PAGE:
                await self._sweep_page(op, ids, res, details, limit)
                ids = []
        if ids:
            await self._sweep_page(op, ids, res, details, limit)

    async def _sweep_page(
        self,
        op: StageCommit,
        ids: list[str],
        res: StageCommitResult,
        details: list[DocChange],
        limit: int,
    ) -> None:
        coll = op.collection
        staged_keys = [key(op.scope, coll, i) for i in ids]
        staged = {
            r["i"]
            for r in await self._find("staging", {"_id": {"$in": staged_keys}}, projection={"i": 1})
        }
        gone = [i for i in ids if i not in staged]
        if not gone:
            return
        parsed = [parse_id(i) for i in gone]
        if len(details) < limit:
            old = {
                wire_id_of(d): d for d in await self._find(f"u:{coll}", {"_id": {"$in": parsed}})
            }
            for i in gone:
                if len(details) < limit:
                    raw = old.get(i)
                    details.append(
                        DocChange("removed", i, None if raw is None else wire_from_bson(raw), None)
                    )
        res.removed += len(gone)
        keys = [key(coll, i) for i in gone]
        self._buffer(f"u:{coll}", DeleteMany({"_id": {"$in": parsed}}))
        self._buffer("docmeta", DeleteMany({"_id": {"$in": keys}}))
        self._buffer("bases", DeleteMany({"_id": {"$in": keys}}))
        await self.flush()

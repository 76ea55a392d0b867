"""Applying a batch to MongoDB for :class:`~aioserversync.stores.mongo.MongoStore`.

Every operation is validated and converted first, so a malformed batch writes nothing. Writes are
then buffered per collection and sent with ordered ``bulk_write`` calls in this order: the user's
collections, document metadata, bases, tombstones, staging, then the outbox and the store
metadata (checkpoints) last. Inside a transaction (replica sets) the batch is all or nothing; on a
standalone server a failure part-way leaves a prefix applied, and because checkpoints come last
that is at worst an at-least-once replay, never a checkpoint ahead of its data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pymongo import DeleteMany, DeleteOne, InsertOne, ReplaceOne, ReturnDocument, UpdateOne
from pymongo.errors import PyMongoError

from ..ejson import decode
from ..exceptions import EJSONError, StoreError
from .base import (
    BatchResult,
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
    Tombstone,
)
from .mongo_codec import fields_to_bson, key, parse_id, to_bson, wire_from_bson
from .mongo_staging import StagingSteps
from .wireform import (
    check_id,
    check_origin_rev,
    check_outbox_state,
    dump_fields,
    dump_json,
    patch_fields,
    split_put_docs,
    split_stage_docs,
)

if TYPE_CHECKING:
    from .mongo import MongoStore

__all__ = ["MongoWriter", "outbox_doc"]

_SIDE_ORDER = ("docmeta", "bases", "tombstones", "staging")
_LOOKUP_CHUNK = 1000  # ids per "$in" lookup
_OUTBOX_FIELDS = {
    "state": "s",
    "payload": "p",
    "op": "op",
    "attempts": "a",
    "error": "e",
    "base_rev": "br",
    "updated_at": "ua",
    "extra": "x",
}
_JSON_FIELDS = frozenset(("payload", "error", "extra"))


def outbox_doc(seq: int, rec: OutboxRecord) -> dict[str, Any]:
    """The stored form of an outbox record (JSON members as text)."""
    return {
        "_id": seq,
        "c": rec.collection,
        "d": rec.doc_id,
        "op": rec.op,
        "p": dump_json(rec.payload),
        "o": rec.origin,
        "s": rec.state,
        "m": rec.mutation_id,
        "br": rec.base_rev,
        "a": rec.attempts,
        "e": dump_json(rec.error),
        "ca": rec.created_at,
        "ua": rec.updated_at,
        "x": dump_json(rec.extra),
    }


def _staged(scope: str, coll: str, doc_id: str, text: str, rev: int | None) -> tuple[str, Any]:
    """The staging collection's upsert of one staged put."""
    k = key(scope, coll, doc_id)
    doc: dict[str, Any] = {"_id": k, "s": scope, "c": coll, "i": doc_id, "f": text}
    if rev is not None:
        doc["r"] = rev
    return ("staging", ReplaceOne({"_id": k}, doc, upsert=True))


def _plain_keys(fields: dict[str, Any]) -> bool:
    # Keys $set can address directly: not empty, no dots, no leading "$".
    return all(k and "." not in k and k[0] != "$" for k in fields)


@dataclass
class _Prepared:
    """One validated operation: write models per target, or a step needing reads."""

    op: Any
    models: list[tuple[str, Any]] = field(default_factory=list)
    step: str = ""


@dataclass
class MongoWriter(StagingSteps):
    """Applies one batch; see the module docstring."""

    store: MongoStore
    session: Any = None
    buffers: dict[str, list[Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ preparation

    def prepare(self, op: Any) -> _Prepared:
        """Validate and convert one operation (no I/O).

        Raises:
            StoreError: The operation is malformed.
            ConfigurationError: Its collection name is invalid.
        """
        s = self.store
        kind = type(op)
        p = _Prepared(op)
        if kind is PutDoc:
            s.user_collection(op.collection)
            check_origin_rev(op.origin, op.rev)
            _id = parse_id(op.id)
            k = key(op.collection, op.id)
            p.models.append(
                (
                    f"u:{op.collection}",
                    ReplaceOne({"_id": _id}, fields_to_bson(_id, op.fields), upsert=True),
                )
            )
            meta = {"_id": k, "c": op.collection, "i": op.id, "o": op.origin, "r": op.rev}
            p.models.append(("docmeta", ReplaceOne({"_id": k}, meta, upsert=True)))
            if op.rev is not None:
                p.models.append(("tombstones", DeleteOne({"_id": k})))
        elif kind is PutDocs:
            s.user_collection(op.collection)
            for doc_id, fields, rev in split_put_docs(op.docs):
                put = PutDoc(op.collection, doc_id, fields, op.origin, rev)
                p.models += self.prepare(put).models
        elif kind is PatchDoc:
            self._prepare_patch(op, p)
        elif kind is DeleteDoc or kind is Tombstone:
            s.user_collection(op.collection)
            _id = parse_id(op.id)
            k = key(op.collection, op.id)
            p.models.append((f"u:{op.collection}", DeleteOne({"_id": _id})))
            p.models.append(("docmeta", DeleteOne({"_id": k})))
            p.models.append(("bases", DeleteOne({"_id": k})))
            if kind is Tombstone:
                if type(op.rev) is not int:
                    raise StoreError(f"tombstone rev must be an int, got {op.rev!r}")
                doc = {"_id": k, "c": op.collection, "i": op.id, "r": op.rev}
                p.models.append(("tombstones", ReplaceOne({"_id": k}, doc, upsert=True)))
        elif kind is SetRev:
            s.user_collection(op.collection)
            if op.rev is None:
                raise StoreError("SetRev needs an int rev")
            check_origin_rev(None, op.rev)
            parse_id(op.id)
            p.step = "set_rev"
        elif kind is SetBase:
            s.check_name(op.collection)
            check_origin_rev(None, op.rev)
            k = key(op.collection, check_id(op.id))
            text = None if op.fields is None else dump_fields(op.fields)
            doc = {"_id": k, "c": op.collection, "i": op.id, "f": text, "r": op.rev}
            p.models.append(("bases", ReplaceOne({"_id": k}, doc, upsert=True)))
        elif kind is ClearBase:
            s.check_name(op.collection)
            p.models.append(("bases", DeleteOne({"_id": key(op.collection, check_id(op.id))})))
        elif kind is PurgeTombstones:
            s.check_name(op.collection)
            flt = {"c": op.collection, "r": {"$lte": op.upto_rev}}
            p.models.append(("tombstones", DeleteMany(flt)))
        elif kind is StageClear:
            p.models.append(("staging", DeleteMany({"s": op.scope})))
        elif kind is StagePut:
            s.check_name(op.collection)
            if op.rev is not None and (type(op.rev) is not int or op.rev < 0):
                raise StoreError(f"a staged revision must be an int >= 0, got {op.rev!r}")
            text = dump_fields(op.fields)
            p.models.append(_staged(op.scope, op.collection, check_id(op.id), text, op.rev))
        elif kind is StageDocs:
            s.check_name(op.collection)
            for doc_id, text, rev in split_stage_docs(op.docs, op.revs):
                p.models.append(_staged(op.scope, op.collection, doc_id, text, rev))
        elif kind is StageDelete:
            s.check_name(op.collection)
            p.models.append(
                ("staging", DeleteOne({"_id": key(op.scope, op.collection, check_id(op.id))}))
            )
        elif kind is StagePatch:
            s.check_name(op.collection)
            check_id(op.id)
            patch_fields({}, op.fields, op.cleared)  # validates
            p.step = "stage_patch"
        elif kind is StageCommit:
            s.user_collection(op.collection)
            if type(op.scope) is not str or type(op.origin) is not str:
                raise StoreError("StageCommit needs a string scope and a string origin")
            p.step = "stage_commit"
        elif kind is OutboxAppend:
            rec = op.record
            if not isinstance(rec, OutboxRecord):
                raise StoreError(f"OutboxAppend needs an OutboxRecord, got {rec!r}")
            check_outbox_state(rec.state)
            s.check_name(rec.collection)
            check_id(rec.doc_id)
            outbox_doc(0, rec)  # validates the JSON members
            p.step = "outbox_append"
        elif kind is OutboxUpdate:
            changes = op.changes()
            if "state" in changes:
                check_outbox_state(changes["state"])
            sets = {
                _OUTBOX_FIELDS[n]: dump_json(v) if n in _JSON_FIELDS else v
                for n, v in changes.items()
            }
            if sets:
                p.models.append(("outbox", UpdateOne({"_id": op.seq}, {"$set": sets})))
        elif kind is OutboxDelete:
            p.models.append(("outbox", DeleteOne({"_id": op.seq})))
        elif kind is MetaSet:
            if type(op.key) is not str:
                raise StoreError(f"metadata keys must be strings, got {op.key!r}")
            if op.value is None:
                p.models.append(("meta", DeleteOne({"_id": op.key})))
            else:
                doc = {"_id": op.key, "v": dump_json(op.value)}
                p.models.append(("meta", ReplaceOne({"_id": op.key}, doc, upsert=True)))
        else:
            raise StoreError(f"unknown store operation {op!r}")
        return p

    def _prepare_patch(self, op: PatchDoc, p: _Prepared) -> None:
        self.store.user_collection(op.collection)
        check_origin_rev(op.origin, op.rev)
        _id = parse_id(op.id)
        fields = op.fields or {}
        if type(fields) is not dict:
            raise StoreError(
                f"fields must be a dict in EJSON wire form, got {type(fields).__name__}"
            )
        cleared = list(op.cleared or ())
        if any(type(c) is not str for c in cleared) or isinstance(op.cleared, str):
            raise StoreError("cleared must be a sequence of field names")
        if not _plain_keys(fields) or not all(c and "." not in c and c[0] != "$" for c in cleared):
            patch_fields({}, op.fields, op.cleared)  # validates
            p.step = "patch_rmw"  # read, merge as wire form, replace
        else:
            decoded = fields_to_bson(_id, fields)
            sets = {k: v for k, v in decoded.items() if k != "_id"}
            unsets = {c: "" for c in cleared if c not in sets}
            update: dict[str, Any] = {}
            if sets:
                update["$set"] = sets
            if unsets:
                update["$unset"] = unsets
            if not update:
                update["$setOnInsert"] = {"_id": _id}
            p.models.append((f"u:{op.collection}", UpdateOne({"_id": _id}, update, upsert=True)))
        k = key(op.collection, op.id)
        meta_set: dict[str, Any] = {}
        if op.origin is not None:
            meta_set["o"] = op.origin
        if op.rev is not None:
            meta_set["r"] = op.rev
            p.models.append(("tombstones", DeleteOne({"_id": k})))
        if meta_set:
            fresh = {"c": op.collection, "i": op.id, "o": None, "r": None}
            for name in meta_set:
                del fresh[name]  # a new row has every field (nx-27017 mis-sorts missing ones)
            upd = {"$set": meta_set, "$setOnInsert": fresh}
            p.models.append(("docmeta", UpdateOne({"_id": k}, upd, upsert=True)))

    # ------------------------------------------------------------------ execution

    def _buffer(self, target: str, model: Any) -> None:
        buf = self.buffers.get(target)
        if buf is None:
            buf = self.buffers[target] = []
            self.order.append(target)
        buf.append(model)

    async def _write(self, target: str, models: list[Any]) -> None:
        coll = self.store.target_collection(target)
        try:
            await coll.bulk_write(models, ordered=True, session=self.session)
        except PyMongoError as exc:
            raise StoreError(f"MongoDB write to {coll.name!r} failed: {exc}") from exc

    async def flush(self, *, final: bool = False) -> None:
        """Send the buffered writes: user collections, then side collections in a fixed order."""
        users = [t for t in self.order if t.startswith("u:")]
        sides = [t for t in _SIDE_ORDER if t in self.buffers]
        if final:
            sides += [t for t in ("outbox", "meta") if t in self.buffers]
        for target in users + sides:
            await self._write(target, self.buffers.pop(target))
        self.order = [t for t in self.order if t in self.buffers]

    async def run(self, prepared: Sequence[_Prepared]) -> BatchResult:
        """Execute prepared operations.

        Raises:
            StoreError: MongoDB refused a write.
        """
        result = BatchResult()
        appends: list[OutboxRecord] = []
        i, n = 0, len(prepared)
        while i < n:
            p = prepared[i]
            i += 1
            if p.step == "":
                for target, model in p.models:
                    self._buffer(target, model)
            elif p.step == "outbox_append":
                appends.append(p.op.record)
            else:
                await self.flush()
                if p.step == "patch_rmw":
                    await self._patch_rmw(p.op)
                elif p.step == "stage_patch":
                    await self._stage_patch(p.op)
                elif p.step == "set_rev":
                    # A run of SetRev (an outbox drain's acknowledgements): one lookup for all.
                    run = [p.op]
                    while i < n and prepared[i].step == "set_rev":
                        run.append(prepared[i].op)
                        i += 1
                    await self._set_revs(run)
                else:
                    result.commits.append(await self._stage_commit(p.op))
                for target, model in p.models:
                    self._buffer(target, model)
        await self.flush()
        if appends:
            result.seqs = await self._append_outbox(appends)
        await self.flush(final=True)
        return result

    async def _find(self, target: str, flt: dict[str, Any], **kw: Any) -> list[Any]:
        coll = self.store.target_collection(target)
        try:
            docs: list[Any] = await coll.find(flt, session=self.session, **kw).to_list(None)
        except PyMongoError as exc:
            raise StoreError(f"MongoDB read of {coll.name!r} failed: {exc}") from exc
        return docs

    async def _patch_rmw(self, op: PatchDoc) -> None:
        _id = parse_id(op.id)
        found = await self._find(f"u:{op.collection}", {"_id": _id})
        current = wire_from_bson(found[0]) if found else None
        merged = patch_fields(current, op.fields, op.cleared)
        try:
            decoded = decode(merged)
        except EJSONError as exc:
            raise StoreError(f"invalid EJSON in patch: {exc}") from exc
        doc = {"_id": _id, **{k: to_bson(v) for k, v in decoded.items() if k != "_id"}}
        self._buffer(f"u:{op.collection}", ReplaceOne({"_id": _id}, doc, upsert=True))

    async def _set_revs(self, ops: list[SetRev]) -> None:
        """SetRev of documents that exist (they may have no docmeta row yet), in order."""
        by_coll: dict[str, list[Any]] = {}
        for op in ops:
            by_coll.setdefault(op.collection, []).append(parse_id(op.id))
        present: set[tuple[str, Any]] = set()
        for coll, ids in by_coll.items():
            for start in range(0, len(ids), _LOOKUP_CHUNK):
                chunk = ids[start : start + _LOOKUP_CHUNK]
                flt = {"_id": {"$in": chunk}}
                found = await self._find(f"u:{coll}", flt, projection={"_id": 1})
                present.update((coll, doc["_id"]) for doc in found)
        for op in ops:
            if (op.collection, parse_id(op.id)) in present:
                k = key(op.collection, op.id)
                fresh = {"c": op.collection, "i": op.id, "o": None}
                upd = {"$set": {"r": op.rev}, "$setOnInsert": fresh}
                self._buffer("docmeta", UpdateOne({"_id": k}, upd, upsert=True))
                self._buffer("tombstones", DeleteOne({"_id": k}))

    async def _append_outbox(self, records: list[OutboxRecord]) -> list[int]:
        counters = self.store.target_collection("counters")
        try:
            doc = await counters.find_one_and_update(
                {"_id": "outbox_seq"},
                {"$inc": {"v": len(records)}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
                session=self.session,
            )
        except PyMongoError as exc:
            raise StoreError(f"MongoDB outbox sequence update failed: {exc}") from exc
        first = int(doc["v"]) - len(records) + 1
        seqs = list(range(first, first + len(records)))
        models = [InsertOne(outbox_doc(seq, rec)) for seq, rec in zip(seqs, records, strict=True)]
        # Appends go before the batch's other outbox writes, which can only name older seqs.
        self.buffers["outbox"] = models + self.buffers.get("outbox", [])
        if "outbox" not in self.order:
            self.order.append("outbox")
        return seqs

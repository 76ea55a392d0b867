"""The write side of :class:`~aioserversync.stores.memory.MemoryStore`: data and batch application.

:meth:`MemoryData.apply` runs without awaiting, records every change in an undo log, and rolls the
log back if any operation fails, so a batch is all or nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import orjson

from ..exceptions import ServerSyncError, StoreError
from ..typing import WireFields
from .base import (
    Batch,
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
from .fast_ops import put_doc
from .memory_rows import MISSING, BaseRow, Row, Undo
from .memory_staging import StagingSteps
from .wireform import (
    EncodedFields,
    check_collection,
    check_id,
    check_origin_rev,
    check_outbox_state,
    dump_fields,
    dump_json,
    fold_patches,
    load_fields,
    load_json,
    patch_fields,
    split_put_docs,
)

__all__ = ["BaseRow", "MemoryData", "Row"]


_DUMP_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _path_value(fields: WireFields, path: str) -> Any:
    value: Any = fields
    for part in path.split("."):
        if type(value) is not dict or part not in value:
            return None
        value = value[part]
    return value


class MemoryData(StagingSteps):
    """The data of a :class:`~aioserversync.stores.memory.MemoryStore` and its write path."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Row]] = {}
        self.bases: dict[str, dict[str, BaseRow]] = {}
        self.tombs: dict[str, dict[str, int]] = {}
        self.outbox: dict[int, OutboxRecord] = {}
        self.seq = [0]
        self.meta: dict[str, str] = {}
        self.staging: dict[tuple[str, str], dict[str, str]] = {}
        self.staged_revs: dict[tuple[str, str], dict[str, int | None]] = {}
        """Hub revisions of staged puts that carry one, per (scope, collection)."""
        self.unique: dict[str, list[tuple[str, ...]]] = {}
        self.undo = Undo()
        self.dispatch: dict[type[Any], Callable[[Any, BatchResult], None]] = {
            PutDoc: self._put,
            PutDocs: self._put_docs,
            PatchDoc: self._patch,
            DeleteDoc: self._delete,
            SetRev: self._set_rev,
            SetBase: self._set_base,
            ClearBase: self._clear_base,
            Tombstone: self._tombstone,
            PurgeTombstones: self._purge,
            OutboxAppend: self._ob_append,
            OutboxUpdate: self._ob_update,
            OutboxDelete: self._ob_delete,
            MetaSet: self._meta_set,
            StageClear: self._stage_clear,
            StagePut: self._stage_put,
            StageDocs: self._stage_docs,
            StagePatch: self._stage_patch,
            StageDelete: self._stage_delete,
            StageCommit: self._stage_commit,
        }
        self.runs: dict[type[Any], Callable[[list[Any]], None]] = {
            PutDoc: self._put_run,
            PatchDoc: self._patch_run,
            StagePut: self._stage_put_run,
        }

    def apply(self, batch: Batch) -> BatchResult:
        """Apply every operation of ``batch`` in order; on any failure undo everything.

        Raises:
            StoreError: An operation was invalid or violated a unique index.
            ConfigurationError: A collection name is invalid.
        """
        result = BatchResult()
        undo = self.undo
        seq_before = self.seq[0]
        touched: set[str] = set()
        ops: list[Any] = batch if isinstance(batch, list) else list(batch)
        n = len(ops)
        try:
            i = 0
            while i < n:
                op = ops[i]
                kind = type(op)
                handler = self.dispatch.get(kind)
                if handler is None:
                    raise StoreError(f"unknown store operation {op!r}")
                coll = getattr(op, "collection", None)
                if coll is not None:
                    touched.add(check_collection(coll))
                run = self.runs.get(kind)
                if run is None:
                    handler(op, result)
                    i += 1
                    continue
                # A run of puts or patches of one collection (the sync engine's hot path).
                j = i + 1
                while j < n and type(ops[j]) is kind and ops[j].collection == coll:
                    j += 1
                run(ops[i:j])
                i = j
            for coll in touched & self.unique.keys():
                self.check_unique(coll)
        except BaseException as exc:
            undo.rollback()
            self.seq[0] = seq_before
            if isinstance(exc, ServerSyncError) or not isinstance(exc, Exception):
                raise
            raise StoreError(f"batch failed: {exc!r}") from exc
        undo.entries.clear()
        return result

    def _coll(self, table: dict[str, dict[str, Any]], coll: str) -> dict[str, Any]:
        d = table.get(coll)
        if d is None:
            d = table[coll] = {}
        return d

    def _drop_tomb(self, coll: str, doc_id: str) -> None:
        tombs = self.tombs.get(coll)
        if tombs and doc_id in tombs:
            self.undo.delete(tombs, doc_id)

    def _put(self, op: PutDoc, _: BatchResult) -> None:
        doc_id = check_id(op.id)
        check_origin_rev(op.origin, op.rev)
        self.undo.set(
            self._coll(self.docs, op.collection),
            doc_id,
            Row(dump_fields(op.fields), op.origin, op.rev),
        )
        if op.rev is not None:
            self._drop_tomb(op.collection, doc_id)

    def _put_docs(self, op: PutDocs, _: BatchResult) -> None:
        coll, origin = op.collection, op.origin
        puts = [put_doc(coll, i, f, origin, r) for i, f, r in split_put_docs(op.docs)]
        if puts:
            self._put_run(puts)

    def _put_run(self, ops: list[PutDoc]) -> None:
        coll = ops[0].collection
        docs = self._coll(self.docs, coll)
        tombs = self.tombs.get(coll)
        dumps = orjson.dumps
        entries = self.undo.entries
        try:
            for op in ops:
                doc_id = op.id
                fields = op.fields
                origin = op.origin
                rev = op.rev
                if type(fields) is EncodedFields and type(doc_id) is str:
                    text = fields.text
                elif type(doc_id) is not str or type(fields) is not dict:
                    self._put(op, None)  # type: ignore[arg-type]
                    continue
                else:
                    text = dumps(fields, option=_DUMP_OPTS).decode()
                if (origin is not None and type(origin) is not str) or (
                    rev is not None and type(rev) is not int
                ):
                    check_origin_rev(origin, rev)
                entries.append((docs, doc_id, docs.get(doc_id, MISSING)))
                docs[doc_id] = Row(text, origin, rev)
                if rev is not None and tombs:
                    self._drop_tomb(coll, doc_id)
        except TypeError as exc:  # orjson.JSONEncodeError
            raise StoreError(f"fields are not EJSON wire form (plain JSON): {exc}") from exc

    def _patch_run(self, ops: list[PatchDoc]) -> None:
        # Compose each document's patches of the run, then parse and write it once.
        docs = self._coll(self.docs, ops[0].collection)
        composed: dict[str, list[PatchDoc]] = {}
        for op in ops:
            doc_id = check_id(op.id)
            check_origin_rev(op.origin, op.rev)
            group = composed.get(doc_id)
            if group is None:
                composed[doc_id] = [op]
            else:
                group.append(op)
        for doc_id, group in composed.items():
            row = docs.get(doc_id)
            origin = None if row is None else row.origin
            rev = None if row is None else row.rev
            fields = fold_patches(None if row is None else load_fields(row.fields), group)
            for op in group:
                if op.origin is not None:
                    origin = op.origin
                if op.rev is not None:
                    rev = op.rev
                    self._drop_tomb(op.collection, doc_id)
            self.undo.set(docs, doc_id, Row(dump_fields(fields), origin, rev))

    def _patch(self, op: PatchDoc, _: BatchResult) -> None:
        doc_id = check_id(op.id)
        check_origin_rev(op.origin, op.rev)
        docs = self._coll(self.docs, op.collection)
        row = docs.get(doc_id)
        if row is None:
            new = Row(dump_fields(patch_fields(None, op.fields, None)), op.origin, op.rev)
        else:
            merged = patch_fields(load_fields(row.fields), op.fields, op.cleared)
            new = Row(
                dump_fields(merged),
                row.origin if op.origin is None else op.origin,
                row.rev if op.rev is None else op.rev,
            )
        self.undo.set(docs, doc_id, new)
        if op.rev is not None:
            self._drop_tomb(op.collection, doc_id)

    def _set_rev(self, op: SetRev, _: BatchResult) -> None:
        doc_id = check_id(op.id)
        if op.rev is None:
            raise StoreError("SetRev needs an int rev")
        check_origin_rev(None, op.rev)
        docs = self.docs.get(op.collection)
        row = docs.get(doc_id) if docs is not None else None
        if docs is not None and row is not None:
            self.undo.set(docs, doc_id, Row(row.fields, row.origin, op.rev))
            self._drop_tomb(op.collection, doc_id)

    def _delete(self, op: DeleteDoc, _: BatchResult) -> None:
        doc_id = check_id(op.id)
        for table in (self.docs, self.bases):
            d = table.get(op.collection)
            if d is not None:
                self.undo.delete(d, doc_id)

    def _set_base(self, op: SetBase, _: BatchResult) -> None:
        text = None if op.fields is None else dump_fields(op.fields)
        self.undo.set(self._coll(self.bases, op.collection), check_id(op.id), BaseRow(text, op.rev))

    def _clear_base(self, op: ClearBase, _: BatchResult) -> None:
        d = self.bases.get(op.collection)
        if d is not None:
            self.undo.delete(d, check_id(op.id))

    def _tombstone(self, op: Tombstone, result: BatchResult) -> None:
        self._delete(DeleteDoc(op.collection, op.id), result)
        if type(op.rev) is not int:
            raise StoreError(f"tombstone rev must be an int, got {op.rev!r}")
        self.undo.set(self._coll(self.tombs, op.collection), op.id, op.rev)

    def _purge(self, op: PurgeTombstones, _: BatchResult) -> None:
        tombs = self.tombs.get(op.collection)
        if tombs:
            for doc_id in [i for i, rev in tombs.items() if rev <= op.upto_rev]:
                self.undo.delete(tombs, doc_id)

    def _ob_append(self, op: OutboxAppend, result: BatchResult) -> None:
        rec = op.record
        if not isinstance(rec, OutboxRecord):
            raise StoreError(f"OutboxAppend needs an OutboxRecord, got {rec!r}")
        check_collection(rec.collection)
        check_id(rec.doc_id)
        check_outbox_state(rec.state)
        # Round-trip the JSON members so stored records never alias the caller's objects.
        payload = load_json(dump_json(rec.payload))
        error = load_json(dump_json(rec.error))
        extra = load_json(dump_json(rec.extra))
        self.seq[0] += 1
        seq = self.seq[0]
        stored = dataclasses.replace(rec, payload=payload, error=error, extra=extra, seq=seq)
        self.undo.set(self.outbox, seq, stored)
        result.seqs.append(seq)

    def _ob_update(self, op: OutboxUpdate, _: BatchResult) -> None:
        rec = self.outbox.get(op.seq)
        if rec is None:
            return
        changes = op.changes()
        if "state" in changes:
            check_outbox_state(changes["state"])
        for key in ("payload", "error", "extra"):
            if key in changes:
                changes[key] = load_json(dump_json(changes[key]))
        self.undo.set(self.outbox, op.seq, dataclasses.replace(rec, **changes))

    def _ob_delete(self, op: OutboxDelete, _: BatchResult) -> None:
        self.undo.delete(self.outbox, op.seq)

    def _meta_set(self, op: MetaSet, _: BatchResult) -> None:
        if type(op.key) is not str:
            raise StoreError(f"metadata keys must be strings, got {op.key!r}")
        if op.value is None:
            self.undo.delete(self.meta, op.key)
        else:
            self.undo.set(self.meta, op.key, dump_json(op.value))

    def check_unique(self, coll: str) -> None:
        """Raise StoreError if ``coll`` violates one of its unique indexes."""
        docs = self.docs.get(coll, {})
        for keys in self.unique[coll]:
            seen: dict[tuple[str, ...], str] = {}
            for doc_id, row in docs.items():
                fields = load_fields(row.fields)
                values = []
                for path in keys:
                    v = doc_id if path == "_id" else _path_value(fields, path)
                    if v is None:
                        break
                    values.append(dump_json(v))
                else:
                    key = tuple(values)
                    if key in seen:
                        raise StoreError(
                            f"unique index {keys!r} on {coll!r} violated by {doc_id!r} "
                            f"and {seen[key]!r}"
                        )
                    seen[key] = doc_id

"""The staging steps of :class:`~aioserversync.stores.memory.MemoryStore` (resync rounds).

A mixin of :class:`~aioserversync.stores.memory_apply.MemoryData`: staged documents are kept as
JSON text per (scope, collection), with the hub revisions of the puts that carry one, and a
``StageCommit`` diffs them against the stored documents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ..exceptions import StoreError
from .base import (
    BatchResult,
    DocChange,
    StageClear,
    StageCommit,
    StageCommitResult,
    StageDelete,
    StageDocs,
    StagePatch,
    StagePut,
)
from .memory_rows import MISSING, BaseRow, Row, Undo
from .wireform import (
    EncodedFields,
    check_collection,
    check_id,
    dump_fields,
    load_fields,
    patch_fields,
    split_stage_docs,
    wire_equal,
)

__all__ = ["StagingSteps"]

_DUMP_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class StagingSteps:
    """The staging operations of a memory store batch (see the module docstring)."""

    undo: Undo
    docs: dict[str, dict[str, Row]]
    bases: dict[str, dict[str, BaseRow]]
    staging: dict[tuple[str, str], dict[str, str]]
    staged_revs: dict[tuple[str, str], dict[str, int | None]]

    if TYPE_CHECKING:

        def _coll(self, table: dict[str, dict[str, Any]], coll: str) -> dict[str, Any]: ...

        def _drop_tomb(self, coll: str, doc_id: str) -> None: ...

    def _stage_put_run(self, ops: list[StagePut]) -> None:
        dumps = orjson.dumps
        entries = self.undo.entries
        staged: dict[str, str] | None = None
        scope = None
        try:
            for op in ops:
                doc_id = op.id
                fields = op.fields
                if op.scope != scope or staged is None:
                    scope = op.scope
                    staged = self._staged(scope, op.collection)
                if type(fields) is EncodedFields and type(doc_id) is str:
                    text = fields.text
                elif type(doc_id) is not str or type(fields) is not dict:
                    self._stage_put(op, None)  # type: ignore[arg-type]
                    continue
                else:
                    text = dumps(fields, option=_DUMP_OPTS).decode()
                entries.append((staged, doc_id, staged.get(doc_id, MISSING)))
                staged[doc_id] = text
                if op.rev is not None or self.staged_revs:
                    self._stage_rev(op.scope, op.collection, doc_id, op.rev)
        except TypeError as exc:  # orjson.JSONEncodeError
            raise StoreError(f"fields are not EJSON wire form (plain JSON): {exc}") from exc

    def _stage_clear(self, op: StageClear, _: BatchResult) -> None:
        for key in [k for k in self.staging if k[0] == op.scope]:
            self.undo.delete(self.staging, key)
        for key in [k for k in self.staged_revs if k[0] == op.scope]:
            self.undo.delete(self.staged_revs, key)

    def _stage_rev(self, scope: str, coll: str, doc_id: str, rev: int | None) -> None:
        """Record (or forget) the hub revision of a staged put."""
        if rev is not None and (type(rev) is not int or rev < 0):
            raise StoreError(f"a staged revision must be an int >= 0, got {rev!r}")
        key = (scope, coll)
        revs = self.staged_revs.get(key)
        if revs is None:
            if rev is None:
                return
            revs = {}
            self.undo.set(self.staged_revs, key, revs)
        if rev is None:
            if doc_id in revs:
                self.undo.delete(revs, doc_id)
        else:
            self.undo.set(revs, doc_id, rev)

    def _staged(self, scope: str, coll: str) -> dict[str, str]:
        key = (scope, check_collection(coll))
        d = self.staging.get(key)
        if d is None:
            d = {}
            self.undo.set(self.staging, key, d)
        return d

    def _stage_put(self, op: StagePut, _: BatchResult) -> None:
        doc_id = check_id(op.id)
        self.undo.set(self._staged(op.scope, op.collection), doc_id, dump_fields(op.fields))
        self._stage_rev(op.scope, op.collection, doc_id, op.rev)

    def _stage_docs(self, op: StageDocs, _: BatchResult) -> None:
        staged = self._staged(op.scope, op.collection)
        for doc_id, text, rev in split_stage_docs(op.docs, op.revs):
            self.undo.set(staged, doc_id, text)
            if rev is not None or self.staged_revs:
                self._stage_rev(op.scope, op.collection, doc_id, rev)

    def _stage_patch(self, op: StagePatch, _: BatchResult) -> None:
        staged = self._staged(op.scope, op.collection)
        doc_id = check_id(op.id)
        cur = staged.get(doc_id)
        current = None if cur is None else load_fields(cur)
        self.undo.set(staged, doc_id, dump_fields(patch_fields(current, op.fields, op.cleared)))

    def _stage_delete(self, op: StageDelete, _: BatchResult) -> None:
        staged = self.staging.get((op.scope, op.collection))
        if staged is not None:
            self.undo.delete(staged, check_id(op.id))
            self._stage_rev(op.scope, op.collection, op.id, None)

    def _stage_commit(self, op: StageCommit, result: BatchResult) -> None:
        staged = self.staging.get((op.scope, op.collection), {})
        revs = self.staged_revs.get((op.scope, op.collection), {})
        docs = self._coll(self.docs, op.collection)
        keep = op.keep
        origin = op.origin
        res = StageCommitResult(op.collection)
        details: list[DocChange] = []
        limit = op.diff_limit
        for doc_id, text in staged.items():
            if doc_id in keep:
                continue
            row = docs.get(doc_id)
            if row is None:
                res.added += 1
                if len(details) < limit:
                    details.append(DocChange("added", doc_id, None, load_fields(text)))
                self.undo.set(docs, doc_id, Row(text, origin, revs.get(doc_id)))
            elif row.fields != text and not wire_equal(load_fields(row.fields), load_fields(text)):
                res.changed += 1
                if len(details) < limit:
                    details.append(
                        DocChange("changed", doc_id, load_fields(row.fields), load_fields(text))
                    )
                self.undo.set(docs, doc_id, Row(text, origin, revs.get(doc_id)))
            elif row.origin != origin or (doc_id in revs and row.rev != revs[doc_id]):
                rev = revs.get(doc_id, row.rev)
                self.undo.set(docs, doc_id, row._replace(origin=origin, rev=rev))
        if op.sweep:
            bases = self.bases.get(op.collection, {})
            gone = [
                (i, r)
                for i, r in docs.items()
                if r.origin == origin and i not in staged and i not in keep
            ]
            for doc_id, row in gone:
                res.removed += 1
                if len(details) < limit:
                    details.append(DocChange("removed", doc_id, load_fields(row.fields), None))
                self.undo.delete(docs, doc_id)
                if doc_id in bases:
                    self.undo.delete(bases, doc_id)
        total = res.added + res.changed + res.removed
        res.changes = details if total <= limit else None
        result.commits.append(res)

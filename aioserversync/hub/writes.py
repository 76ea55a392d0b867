"""Document writes of a hub: the local API and the stock mutator methods share these.

Each function runs one :meth:`HubCollection.write` per transaction: read the current document,
decide, record the new state (stamped with the next revision), then the hub applies and publishes
it. With ``check=True`` (the mutator methods) the collection's write rule sees the document after
the change (the current one for a remove), as Meteor's allow/deny validators do.

Multi-document updates and removes by an arbitrary selector (local API only) first collect the
matching ids, then apply in chunks of :data:`CHUNK` documents, each chunk one transaction, so a
large update never holds the documents of the whole collection in memory. Each document is
matched again inside its chunk's transaction, so a document changed meanwhile is judged on its
current state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bson import ObjectId

from .. import ejson
from ..exceptions import DuplicateKeyError, EJSONError, MeteorError, ModifierError
from ..ids import id_parse, id_stringify
from ..query import apply_update, compile_selector
from ..typing import Document, WireFields
from .auth import access_denied
from .collection import Commit, HubCollection

__all__ = [
    "CHUNK",
    "check_insert_doc",
    "duplicate_key_error",
    "id_of_selector",
    "insert_doc",
    "insert_docs",
    "mongo_error",
    "remove_by_id",
    "remove_where",
    "update_by_id",
    "update_where",
]

CHUNK = 500
"""Documents per transaction in multi-document updates and removes."""

_ID_TYPES = (str, int, float)


def _is_plain_id(value: Any) -> bool:
    return (isinstance(value, _ID_TYPES) and not isinstance(value, bool)) or isinstance(
        value, ObjectId
    )


def id_of_selector(selector: Any) -> tuple[bool, Any]:
    """Return ``(True, _id)`` when ``selector`` names one document by id only.

    That is a string, number or ObjectId, or an object whose only key is ``_id`` holding one of
    those (Meteor's ``_selectorIsIdPerhapsAsObject``, ddp-facts §5.4).
    """
    if _is_plain_id(selector):
        return True, selector
    if isinstance(selector, dict) and len(selector) == 1 and "_id" in selector:
        value = selector["_id"]
        if _is_plain_id(value):
            return True, value
    return False, None


def duplicate_key_error(collection: str, wid: str) -> DuplicateKeyError:
    """The error of an insert whose ``_id`` exists (its text is MongoDB's)."""
    return DuplicateKeyError(
        f"E11000 duplicate key error collection: {collection} index: _id_ dup key: "
        f"{{ _id: {ejson.dumps(id_parse(wid)).decode()} }}"
    )


def _decoded(wid: str, fields: WireFields) -> Document:
    doc: Document = {"_id": id_parse(wid)}
    doc.update(ejson.decode(fields))
    return doc


def _wire(doc: Mapping[str, Any]) -> WireFields:
    fields: WireFields = ejson.encode({k: v for k, v in doc.items() if k != "_id"})
    return fields


async def insert_doc(
    coll: HubCollection, doc: Document, *, identity: Any = None, check: bool = False
) -> Any:
    """Insert a document that carries its ``_id``; return the ``_id``.

    Raises:
        DuplicateKeyError: A document with this ``_id`` exists.
        EJSONError: A value cannot be encoded, or the ``_id`` is not a Meteor id.
        MeteorError: 403 when ``check`` and the write rule refuses.
    """
    _id = doc["_id"]
    wid = id_stringify(_id)
    fields = _wire(doc)
    store = coll.hub.store
    name = coll.name

    async def decide(commit: Commit) -> Any:
        if await store.get_fields(name, [wid]):
            raise duplicate_key_error(name, wid)
        if check and not await coll.permissions.may_write(identity, name, "insert", _id, doc):
            raise access_denied()
        commit.put(wid, fields)
        return _id

    return await coll.write(decide)


async def insert_docs(coll: HubCollection, docs: list[Document]) -> list[Any]:
    """Insert documents that carry their ``_id`` in one transaction; return the ``_id`` values.

    All or nothing (the local API's ``insert_many``).

    Raises:
        DuplicateKeyError: An ``_id`` exists or repeats; nothing was written.
        EJSONError: A value cannot be encoded, or an ``_id`` is not a Meteor id.
    """
    wids = [id_stringify(doc["_id"]) for doc in docs]
    fields = [_wire(doc) for doc in docs]
    seen: set[str] = set()
    for wid in wids:
        if wid in seen:
            raise duplicate_key_error(coll.name, wid)
        seen.add(wid)
    store = coll.hub.store
    name = coll.name

    async def decide(commit: Commit) -> list[Any]:
        taken = await store.get_fields(name, wids)
        if taken:
            raise duplicate_key_error(name, next(w for w in wids if w in taken))
        for wid, wire in zip(wids, fields, strict=True):
            commit.put(wid, wire)
        return [doc["_id"] for doc in docs]

    return await coll.write(decide)


async def _update_one(
    coll: HubCollection,
    commit: Commit,
    wid: str,
    current: WireFields,
    modifier: dict[str, Any],
    identity: Any,
    check: bool,
) -> bool:
    old = _decoded(wid, current)
    new = apply_update(old, modifier)
    if check and not await coll.permissions.may_write(
        identity, coll.name, "update", old["_id"], new
    ):
        raise access_denied()
    fields = _wire(new)
    if fields != current:
        commit.put(wid, fields, prev=current)
    return True


async def update_by_id(
    coll: HubCollection,
    _id: Any,
    modifier: dict[str, Any],
    *,
    identity: Any = None,
    check: bool = False,
) -> int:
    """Apply a modifier (or replacement) to one document; return 1, or 0 if it does not exist.

    An update that changes nothing counts as matched and writes nothing.

    Raises:
        ModifierError: The modifier is invalid or does not fit the document.
        MeteorError: 403 when ``check`` and the write rule refuses.
    """
    wid = id_stringify(_id)
    store = coll.hub.store

    async def decide(commit: Commit) -> int:
        current = (await store.get_fields(coll.name, [wid])).get(wid)
        if current is None:
            return 0
        await _update_one(coll, commit, wid, current, modifier, identity, check)
        return 1

    return await coll.write(decide)


async def remove_by_id(
    coll: HubCollection, _id: Any, *, identity: Any = None, check: bool = False
) -> int:
    """Remove one document (leaving a tombstone); return 1, or 0 if it does not exist.

    Raises:
        MeteorError: 403 when ``check`` and the write rule refuses.
    """
    wid = id_stringify(_id)
    store = coll.hub.store

    async def decide(commit: Commit) -> int:
        current = (await store.get_fields(coll.name, [wid])).get(wid)
        if current is None:
            return 0
        if check and not await coll.permissions.may_write(
            identity, coll.name, "remove", _id, _decoded(wid, current)
        ):
            raise access_denied()
        commit.remove(wid)
        return 1

    return await coll.write(decide)


async def _matching_ids(coll: HubCollection, selector: Any, multi: bool) -> list[str]:
    store = coll.hub.store
    if not multi:
        docs = await store.find(coll.name, selector, limit=1, projection={"_id": 1})
        return [id_stringify(d["_id"]) for d in docs]
    return [
        id_stringify(d["_id"])
        async for d in store.iter_find(coll.name, selector, projection={"_id": 1})
    ]


async def update_where(
    coll: HubCollection, selector: Any, modifier: dict[str, Any], *, multi: bool = False
) -> int:
    """Update the documents matching a selector (one unless ``multi``); return how many matched.

    Raises:
        QueryError: The selector is invalid.
        ModifierError: The modifier is invalid or does not fit a document (the chunks before
            it stay applied).
    """
    by_id, _id = id_of_selector(selector)
    if by_id:
        return await update_by_id(coll, _id, modifier)
    matcher = compile_selector(selector)
    ids = await _matching_ids(coll, selector, multi)
    store = coll.hub.store
    matched = 0
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]

        async def decide(commit: Commit, chunk: list[str] = chunk) -> int:
            current = await store.get_fields(coll.name, chunk)
            n = 0
            for wid in chunk:
                fields = current.get(wid)
                if fields is None or not matcher.matches(_decoded(wid, fields)):
                    continue
                await _update_one(coll, commit, wid, fields, modifier, None, False)
                n += 1
            return n

        matched += await coll.write(decide)
    return matched


async def remove_where(coll: HubCollection, selector: Any) -> int:
    """Remove every document matching a selector; return how many were removed.

    Raises:
        QueryError: The selector is invalid.
    """
    by_id, _id = id_of_selector(selector)
    if by_id:
        return await remove_by_id(coll, _id)
    matcher = compile_selector(selector)
    ids = await _matching_ids(coll, selector, True)
    store = coll.hub.store
    removed = 0
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]

        async def decide(commit: Commit, chunk: list[str] = chunk) -> int:
            current = await store.get_fields(coll.name, chunk)
            n = 0
            for wid in chunk:
                fields = current.get(wid)
                if fields is not None and matcher.matches(_decoded(wid, fields)):
                    commit.remove(wid)
                    n += 1
            return n

        removed += await coll.write(decide)
    return removed


def mongo_error(exc: DuplicateKeyError | ModifierError) -> MeteorError:
    """A storage error as Meteor's mutators report it: 409 ``"<ErrorName>: <message>"``."""
    return MeteorError(409, f"MongoServerError: {exc}")


def check_insert_doc(doc: Any) -> None:
    """Refuse what cannot be inserted (400, as Meteor's ``check``).

    Raises:
        MeteorError: 400 "Match failed".
    """
    if not isinstance(doc, dict):
        raise MeteorError(400, "Match failed")
    if "_id" in doc:
        try:
            id_stringify(doc["_id"])
        except EJSONError:
            raise MeteorError(400, "Match failed") from None

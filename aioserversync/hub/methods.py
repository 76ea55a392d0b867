"""The hub's DDP methods: login, ``serversync/*`` and the stock collection mutators.

* ``login`` with ``{"resume": token}`` and ``logout`` (ddp-facts §9);
* ``serversync/capabilities``, ``serversync/pull`` and ``serversync/push`` (docs/protocol.md);
* ``/<collection>/insert|update|remove`` and Meteor 3's ``…Async`` names, with Meteor's rules for
  untrusted callers of a restricted collection (ddp-facts §5.4): ``_id``-only selectors for update
  and remove, no upserts, operator modifiers only (``$inc $set $unset $addToSet $pop $pullAll
  $pull $pushAll $push $bit``), the exact 403 texts, 409 ``"MongoServerError: …"`` for a
  duplicate ``_id`` or a modifier that does not fit the document, an insert without ``_id``
  getting the id the client's stub made from ``randomSeed``, and 0 for an update or remove of a
  missing document.

A pull answers with the stored JSON of the documents spliced into the ``result`` frame
(:class:`~aioserversync.asyncio.method_context.WireResult`), never decoding it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ..asyncio.method_context import MethodContext, WireResult
from ..exceptions import DuplicateKeyError, MeteorError, ModifierError
from .auth import access_denied
from .collection import HubCollection
from .publications import checkpoint_expired
from .push import push
from .writes import (
    check_insert_doc,
    id_of_selector,
    insert_doc,
    mongo_error,
    remove_by_id,
    update_by_id,
)

if TYPE_CHECKING:
    from .server import ServerSyncServer

__all__ = ["MAX_PULL_BYTES", "PROTOCOL_VERSION", "register_collection", "register_methods"]

PROTOCOL_VERSION = 1
FEATURES = ("pull", "pull-text", "pull-page", "pull-full", "changes", "push")
MAX_PULL_BYTES = 8 * 2**20
"""A pull result stops growing past this size (``more`` is then true), so it stays far below
clients' message size limits (32 MiB for aioserversync, websockets' default is 1 MiB)."""

RESTRICTED_OPERATORS = frozenset(
    {
        "$inc",
        "$set",
        "$unset",
        "$addToSet",
        "$pop",
        "$pullAll",
        "$pull",
        "$pushAll",
        "$push",
        "$bit",
    }
)
REPLACE_REFUSED = (
    "Access denied. In a restricted collection you can only update documents, not replace "
    "them. Use a Mongo update operator, such as '$set'."
)
UPSERT_REFUSED = "Access denied. Upserts not allowed in a restricted collection."


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def register_methods(hub: ServerSyncServer) -> None:
    """Register ``login``, ``logout`` and the ``serversync/*`` methods on the hub's DDP server."""
    ddp = hub.ddp

    async def login(ctx: MethodContext, params: Any = None, *_: Any) -> Any:
        identity, result = await hub.auth.login(params)
        await ctx.set_user_id(identity)
        return result

    async def logout(ctx: MethodContext, *_: Any) -> None:
        await ctx.set_user_id(None)

    async def capabilities(ctx: MethodContext, *_: Any) -> dict[str, Any]:
        names = [
            c.name
            for c in hub.collections.values()
            if await c.permissions.may_read(ctx.user_id, c.name)
        ]
        return {
            "protocol": PROTOCOL_VERSION,
            "collections": names,
            "maxPull": hub.max_pull,
            "features": list(FEATURES),
        }

    async def pull(
        ctx: MethodContext,
        collection: Any = None,
        since: Any = None,
        limit: Any = None,
        options: Any = None,
        *_: Any,
    ) -> WireResult:
        coll = await hub.readable_collection(ctx.user_id, collection)
        if not _int(since) or since < 0:
            raise MeteorError(400, "since must be a revision (an integer >= 0)")
        if limit is None:
            limit = hub.max_pull
        elif not _int(limit) or limit < 1:
            raise MeteorError(400, "limit must be a positive integer")
        form = _pull_form(options)
        full = _pull_full(options)
        if coll.checkpoint_expired(since, full):
            raise checkpoint_expired()
        n = min(limit, hub.max_pull)
        key = (since, n, form, coll.rev, coll.purged)
        cached = coll.pull_cache.get(key)
        if cached is not None:
            return WireResult(cached)
        result = await _page_by_store(hub.store, coll.name, since, n, coll.purged, form)
        if result is None:
            entries = await hub.store.changes_since(coll.name, since, n + 1)
            result = pull_result(entries, since, n, coll.purged, form=form)
        if coll.checkpoint_expired(since, full):
            raise checkpoint_expired()  # a purge ran while reading
        if (coll.rev, coll.purged) == key[3:]:  # nothing committed meanwhile
            coll.pull_cache.put(key, result)
        return WireResult(result)

    async def push_method(
        ctx: MethodContext, collection: Any = None, changes: Any = None, *_: Any
    ) -> WireResult:
        coll = hub.admitted_collection(ctx.user_id, collection)
        return WireResult(await push(coll, ctx.user_id, changes))

    ddp.add_method("login", login)
    ddp.add_method("logout", logout)
    ddp.add_method("serversync/capabilities", capabilities)
    ddp.add_method("serversync/pull", pull)
    # Push params stay in wire form: the documents are stored exactly as they came.
    ddp.add_method("serversync/push", push_method, raw_params=True)


def _pull_form(options: Any) -> int:
    """The form a pull's ``options`` ask for: 0 object, 1 text, 2 page (docs/protocol.md)."""
    if options is None:
        return FORM_OBJECT
    if isinstance(options, dict):
        text, page = options.get("text", False), options.get("page", False)
        if isinstance(text, bool) and isinstance(page, bool):
            return FORM_PAGE if page else FORM_TEXT if text else FORM_OBJECT
    raise MeteorError(400, 'options must be an object such as {"text": true} or {"page": true}')


FORM_OBJECT, FORM_TEXT, FORM_PAGE = 0, 1, 2


def _pull_full(options: Any) -> int | None:
    """The ``full`` option of a pull: the purge mark a full pull's first page reported."""
    full = options.get("full") if isinstance(options, dict) else None
    if full is not None and (not _int(full) or full < 0):
        raise MeteorError(400, "options.full must be a revision (an integer >= 0)")
    return full


async def _page_by_store(
    store: Any, coll: str, since: int, limit: int, purged: int, form: int
) -> bytes | None:
    """A page-form result whose documents' text the store writes (SQLiteStore), or ``None``.

    The same result as :func:`pull_result` (stores/sqlite_pull.py says why it is faster);
    ``None`` for another form, another store, or a page over :data:`MAX_PULL_BYTES`.
    """
    changes_page = getattr(store, "changes_page", None)
    if form != FORM_PAGE or changes_page is None:
        return None
    page = await changes_page(coll, since, limit, MAX_PULL_BYTES)
    if page is None:
        return None
    text, tombs, last, more = page
    docs = [[i, r, None] for i, r in tombs] if since else []
    return orjson.dumps({"docs": docs, "next": last, "more": more, "purged": purged, "page": text})


def pull_result(
    entries: list[Any], since: int, limit: int, purged: int, *, form: int = FORM_OBJECT
) -> bytes:
    """Build a pull result's JSON from store entries (``limit + 1`` read to learn ``more``).

    With ``since == 0`` tombstones are left out (the client has nothing to remove); ``next``
    still moves past them. In the text form each document's fields are sent as a JSON string
    holding their JSON text; in the page form the documents are one JSON string holding an
    object ``"<rev>:<id>"`` -> fields, and ``docs`` holds only tombstones (docs/protocol.md,
    sections 3.1 and 3.2).
    """
    rows: list[list[Any]] = []
    append = rows.append
    page: dict[str, Any] = {}
    size = 0
    last = since
    more = len(entries) > limit
    fragment = orjson.Fragment
    for i, e in enumerate(entries):
        if i == limit or (size > MAX_PULL_BYTES and (rows or page)):
            more = True
            break
        data = e.fields_json
        last = e.rev
        if data is None:
            if since == 0:
                continue
            append([e.id, e.rev, None])
            size += len(e.id) + 16
            continue
        # One dumps for the page below: the text and page forms' strings are escaped there, in
        # C. The size allows a quarter more for their escapes (a quote takes two bytes);
        # counting them exactly doubled the cost of building a page.
        if form == FORM_PAGE:
            page[f"{e.rev}:{e.id}"] = fragment(data)
            size += len(e.id) + (len(data) * 5 >> 2) + 16
        elif form == FORM_TEXT:
            append([e.id, e.rev, data.decode()])
            size += len(e.id) + (len(data) * 5 >> 2) + 16
        else:
            append([e.id, e.rev, fragment(data)])
            size += len(e.id) + len(data) + 16
    result: dict[str, Any] = {"docs": rows, "next": last, "more": more, "purged": purged}
    if form == FORM_PAGE:
        result["page"] = orjson.dumps(page).decode()
    return orjson.dumps(result)


def register_collection(hub: ServerSyncServer, coll: HubCollection) -> None:
    """Register a collection's mutator methods (plain and Meteor 3 ``…Async`` names)."""
    name = coll.name

    async def insert(ctx: MethodContext, doc: Any = None, *_: Any) -> Any:
        if not coll.permissions.admitted(ctx.user_id):
            raise access_denied()
        check_insert_doc(doc)
        if "_id" not in doc:
            doc = {"_id": ctx.random_stream().insert_id(name), **doc}
        try:
            return await insert_doc(coll, doc, identity=ctx.user_id, check=True)
        except DuplicateKeyError as exc:
            raise mongo_error(exc) from None

    async def update(
        ctx: MethodContext,
        selector: Any = None,
        modifier: Any = None,
        options: Any = None,
        *_: Any,
    ) -> int:
        if not coll.permissions.admitted(ctx.user_id):
            raise access_denied()
        by_id, _id = id_of_selector(selector)
        if not by_id:
            method = ctx.name.rsplit("/", 1)[-1]
            raise MeteorError(
                403, f"Not permitted. Untrusted code may only {method} documents by ID."
            )
        if not isinstance(modifier, dict) or (
            options is not None and not isinstance(options, dict)
        ):
            raise MeteorError(400, "Match failed")
        if options and options.get("upsert"):
            raise MeteorError(403, UPSERT_REFUSED)
        if not modifier or any(not str(k).startswith("$") for k in modifier):
            raise MeteorError(403, REPLACE_REFUSED)
        for op in modifier:
            if op not in RESTRICTED_OPERATORS:
                raise MeteorError(
                    403, f"Access denied. Operator {op} not allowed in a restricted collection."
                )
        try:
            return await update_by_id(coll, _id, modifier, identity=ctx.user_id, check=True)
        except (ModifierError, DuplicateKeyError) as exc:
            raise mongo_error(exc) from None

    async def remove(ctx: MethodContext, selector: Any = None, *_: Any) -> int:
        if not coll.permissions.admitted(ctx.user_id):
            raise access_denied()
        by_id, _id = id_of_selector(selector)
        if not by_id:
            method = ctx.name.rsplit("/", 1)[-1]
            raise MeteorError(
                403, f"Not permitted. Untrusted code may only {method} documents by ID."
            )
        return await remove_by_id(coll, _id, identity=ctx.user_id, check=True)

    for suffix, handler in (("insert", insert), ("update", update), ("remove", remove)):
        hub.ddp.add_method(f"/{name}/{suffix}", handler)
        hub.ddp.add_method(f"/{name}/{suffix}Async", handler)

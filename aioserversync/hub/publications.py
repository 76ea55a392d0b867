"""The hub's publications: the plain one per collection, and ``serversync/changes``.

Both start the same way: read the collection's changes in revision order, page by page, without
holding the writer lock (a large initial load must not stall writes), then take the lock, read
the few changes committed meanwhile, and register the subscription for live changes before the
lock is released. Writes publish under that lock, so nothing is missed and nothing is sent twice
out of order. Paging by revision is a consistent scan: a document written during the load moves
to a higher revision and is met again later in the scan, and a removal leaves a tombstone there.

* **Plain publication** (named like the collection; what stock Meteor clients, simpleddp,
  ddp.js and edges in ``read``/``online-write`` mode subscribe to): every document as ``added``,
  then ``ready``, then live ``added``/``changed``/``removed`` with top-level diffs. Stored JSON
  is spliced into the ``added`` frames.
* **Change feed** ``serversync/changes(collection, since)`` (docs/protocol.md §4): every change
  with ``revision > since`` as an ``added`` in ``serversync.changes/<collection>`` (stored JSON
  spliced, no mutation id), then ``ready``, then live entries, each encoded once for all
  sessions. Errors come as ``nosub``: 400 malformed arguments, 403 not readable, 404 unknown
  collection, 410 ``checkpoint-expired``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from ..asyncio.publication import Publication
from ..exceptions import LocalProtocolError, MeteorError
from ..stores.base import RevEntry
from .auth import access_denied
from .collection import HubCollection

if TYPE_CHECKING:
    from .server import ServerSyncServer

__all__ = ["PAGE", "changes_publication", "checkpoint_expired", "plain_publication"]

PAGE = 2000
"""Changes read per store call while a subscription catches up."""


def checkpoint_expired() -> MeteorError:
    """The 410 a client gets when its checkpoint cannot be caught up from."""
    return MeteorError(410, "checkpoint-expired")


def _stopped(pub: Publication) -> bool:
    return not pub.active


async def _catch_up(
    coll: HubCollection,
    pub: Publication,
    since: int,
    send: Callable[[list[RevEntry]], None],
    register: Callable[[Publication], None],
    check: Callable[[], None] | None = None,
) -> bool:
    """Send every change after ``since``, then register ``pub``; False if it stopped meanwhile."""
    store = coll.hub.store
    name = coll.name
    while True:
        entries = await store.changes_since(name, since, PAGE)
        if _stopped(pub):
            return False
        if entries:
            send(entries)
            since = entries[-1].rev
        if len(entries) < PAGE:
            break
        await pub.drain()
    async with coll.lock:
        if check is not None:
            check()
        while True:
            entries = await store.changes_since(name, since, PAGE)
            if _stopped(pub):
                return False
            if entries:
                send(entries)
                since = entries[-1].rev
            if len(entries) < PAGE:
                break
        register(pub)
    return True


def plain_publication(coll: HubCollection) -> Callable[..., Any]:
    """Build the publish handler of a collection's plain publication (arguments are ignored)."""
    name = coll.name
    prefix = b'{"msg":"added","collection":' + orjson.dumps(name) + b',"id":'

    async def publish(pub: Publication, *params: Any) -> None:
        if not await coll.permissions.may_read(pub.user_id, name):
            raise access_denied()
        start_rev = coll.rev
        loads = orjson.loads
        dumps = orjson.dumps

        def send(entries: list[RevEntry]) -> None:
            for entry in entries:
                data = entry.fields_json
                if data is None:
                    # A removal before the load began concerns a document never sent.
                    if entry.rev > start_rev:
                        with contextlib.suppress(LocalProtocolError):
                            pub.removed_wire(name, entry.id)
                    continue
                fields = loads(data)
                if fields:
                    frame = prefix + dumps(entry.id) + b',"fields":' + data + b"}"
                else:
                    frame = prefix + dumps(entry.id) + b"}"
                pub.added_wire(name, entry.id, fields, frame=frame)

        if await _catch_up(coll, pub, 0, send, coll.add_plain):
            pub.ready()

    return publish


def changes_publication(hub: ServerSyncServer) -> Callable[..., Any]:
    """Build the publish handler of ``serversync/changes(collection, since)``."""

    async def publish(pub: Publication, collection: Any = None, since: Any = 0, *_: Any) -> None:
        coll = await hub.readable_collection(pub.user_id, collection)
        if not isinstance(since, int) or isinstance(since, bool) or since < 0:
            raise MeteorError(400, "since must be a revision (an integer >= 0)")
        if coll.checkpoint_expired(since):
            raise checkpoint_expired()
        head = b'{"msg":"added","collection":' + orjson.dumps(coll.feed_collection) + b',"id":"'
        dumps = orjson.dumps

        def send(entries: list[RevEntry]) -> None:
            pub.send_wire(
                [
                    b'%s%d","fields":{"i":%s,"r":%d,"d":%s}}'
                    % (head, e.rev, dumps(e.id), e.rev, e.fields_json or b"null")
                    for e in entries
                ]
            )

        def check() -> None:
            if coll.checkpoint_expired(since):
                raise checkpoint_expired()

        if await _catch_up(coll, pub, since, send, coll.add_feed, check):
            pub.ready()

    return publish

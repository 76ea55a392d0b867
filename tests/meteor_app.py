"""A DDPServer that behaves like a stock Meteor app, for the engine's loopback tests.

It publishes in-memory collections (all documents, then live changes, as a Meteor cursor
publication does) and serves the standard mutator methods with Meteor's rules for untrusted
callers (ddp-facts §5): ``update`` and ``remove`` need an ``_id``-only selector, an insert without
``_id`` gets the id a Meteor client stub made from the method's ``randomSeed``, a duplicate ``_id``
is a 409, a deny rule gives 403 "Access denied", updates and removes of a missing document return
``0``. It also counts every applied write so tests can assert "exactly once".
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from typing import Any

from bson import ObjectId

from aioserversync import ejson
from aioserversync.asyncio.server import DDPServer, MethodContext, Publication, serve
from aioserversync.exceptions import MeteorError
from aioserversync.ids import id_stringify, random_id
from aioserversync.query import apply_update
from aioserversync.replication.diff import top_level_diff

Deny = Callable[[str, Any, dict[str, Any] | None], bool]
"""``deny(op, _id, doc_after) -> True`` refuses the write with 403."""


def _id_only(selector: Any) -> Any:
    if isinstance(selector, str | int | float | ObjectId) and not isinstance(selector, bool):
        return selector
    if isinstance(selector, dict) and list(selector) == ["_id"]:
        value = selector["_id"]
        if isinstance(value, str | int | float | ObjectId) and not isinstance(value, bool):
            return value
    raise MeteorError(403, "Not permitted. Untrusted code may only update documents by ID.")


class MeteorApp:
    """In-memory collections served over DDP with Meteor's publication and mutator behaviour.

    Args:
        strategy: The publication strategy (``merge``, ``no_merge``, ``no_merge_no_history``).
        heartbeat_interval: Server heartbeat (seconds).
    """

    def __init__(self, *, strategy: str = "merge", heartbeat_interval: float = 15.0) -> None:
        self.server = DDPServer(heartbeat_interval=heartbeat_interval, compression=None)
        self.strategy = strategy
        self.docs: dict[str, dict[str, dict[str, Any]]] = {}
        self.deny: dict[str, Deny] = {}
        self.applied: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self.calls: collections.Counter[str] = collections.Counter()
        self._subs: dict[str, set[Publication]] = collections.defaultdict(set)
        self.running: Any = None
        # Fault injection (the server misbehaving is the thing under test, not a mock):
        self.fail_next: dict[str, list[MeteorError]] = collections.defaultdict(list)
        """method name -> errors to raise on its next calls, one per call, before applying."""
        self.drop_after_apply: set[str] = set()
        """method names whose session is cut right after the write applied, before ``result``."""
        self.hang_after_apply: set[str] = set()
        """method names that apply the write and then never answer (the session stays up)."""
        self.method_delay = 0.0
        """seconds every mutator takes (a slow server)."""
        self.before_ready: Callable[[str], Awaitable[None]] | None = None
        """awaited with the collection name by each subscription between its ``added`` and its
        ``ready``: writes made then reach the subscriber as changes within its round."""

    # ------------------------------------------------------------------ setup

    def add_collection(self, name: str, docs: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]
        """Create a collection with its publication (same name) and mutator methods."""
        self.docs[name] = {}
        for doc in docs:
            self.docs[name][id_stringify(doc["_id"])] = dict(doc)

        async def publish(pub: Publication, *args: Any) -> None:
            self.calls[f"sub:{name}"] += 1
            for doc in list(self.docs[name].values()):
                pub.added(name, doc["_id"], {k: v for k, v in doc.items() if k != "_id"})
            self._subs[name].add(pub)
            pub.on_stop(lambda: self._subs[name].discard(pub))
            if self.before_ready is not None:
                await self.before_ready(name)
            pub.ready()

        self.server.add_publication(name, publish, strategy=self.strategy)  # type: ignore[arg-type]
        self.server.add_method(f"/{name}/insert", self._mutator(name, "insert"))
        self.server.add_method(f"/{name}/update", self._mutator(name, "update"))
        self.server.add_method(f"/{name}/remove", self._mutator(name, "remove"))

    async def _before(self, method: str) -> None:
        self.calls[method] += 1
        if self.method_delay:
            await asyncio.sleep(self.method_delay)
        if self.fail_next[method]:
            raise self.fail_next[method].pop(0)

    async def _after(self, method: str, ctx: MethodContext) -> None:
        if method in self.drop_after_apply:
            ctx.connection.close(1011, "fault injection")
        if method in self.hang_after_apply:
            await asyncio.Event().wait()  # ends when the session does (the task is cancelled)

    def _mutator(self, name: str, op: str) -> Callable[..., Any]:
        async def insert(ctx: MethodContext, doc: Any = None) -> Any:
            method = f"/{name}/insert"
            await self._before(method)
            if not isinstance(doc, dict):
                raise MeteorError(400, "Match failed")
            if "_id" not in doc:
                doc = {"_id": ctx.random_stream().insert_id(name), **doc}
            result = self.insert(name, doc, check=True)
            await self._after(method, ctx)
            return result

        async def update(
            ctx: MethodContext, selector: Any = None, modifier: Any = None, options: Any = None
        ) -> int:
            method = f"/{name}/update"
            await self._before(method)
            _id = _id_only(selector)
            if not isinstance(modifier, dict):
                raise MeteorError(400, "Match failed")
            result = self.update(name, _id, modifier, check=True)
            await self._after(method, ctx)
            return result

        async def remove(ctx: MethodContext, selector: Any = None) -> int:
            method = f"/{name}/remove"
            await self._before(method)
            result = self.remove(name, _id_only(selector), check=True)
            await self._after(method, ctx)
            return result

        return {"insert": insert, "update": update, "remove": remove}[op]

    async def start(self) -> str:
        """Serve on a free loopback port; return the ``http://`` URL clients use."""
        self.running = await serve(self.server, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.running.port}"

    @property
    def port(self) -> int:
        """The listening port."""
        return int(self.running.port)

    async def stop(self) -> None:
        """Stop serving (graceful)."""
        if self.running is not None:
            await self.running.aclose()
            self.running = None

    # ------------------------------------------------------------------ server-side writes

    def get(self, name: str, _id: Any) -> dict[str, Any] | None:
        """A document by ``_id``."""
        return self.docs[name].get(id_stringify(_id))

    def insert(self, name: str, doc: dict[str, Any], *, check: bool = False) -> Any:
        """Insert (and publish) a document; return its ``_id``."""
        doc = dict(doc)
        doc.setdefault("_id", random_id())
        wid = id_stringify(doc["_id"])
        ejson.encode(doc)
        if wid in self.docs[name]:
            raise MeteorError(409, "MongoServerError: E11000 duplicate key error")
        if check and self._denied(name, "insert", doc["_id"], doc):
            raise MeteorError(403, "Access denied")
        self.docs[name][wid] = doc
        self.applied[(name, "insert", wid)] += 1
        fields = {k: v for k, v in doc.items() if k != "_id"}
        for pub in list(self._subs[name]):
            pub.added(name, doc["_id"], fields)
        return doc["_id"]

    def update(self, name: str, _id: Any, modifier: dict[str, Any], *, check: bool = False) -> int:
        """Apply a modifier to one document (and publish the change); return 0 or 1."""
        wid = id_stringify(_id)
        old = self.docs[name].get(wid)
        if old is None:
            return 0
        new = apply_update(old, modifier)
        if check and self._denied(name, "update", _id, new):
            raise MeteorError(403, "Access denied")
        self.docs[name][wid] = new
        self.applied[(name, "update", wid)] += 1
        changed, cleared = top_level_diff(
            {k: v for k, v in old.items() if k != "_id"},
            {k: v for k, v in new.items() if k != "_id"},
        )
        if changed or cleared:
            for pub in list(self._subs[name]):
                pub.changed(name, _id, changed, cleared)
        return 1

    def remove(self, name: str, _id: Any, *, check: bool = False) -> int:
        """Remove one document (and publish it); return 0 or 1."""
        wid = id_stringify(_id)
        if wid not in self.docs[name]:
            return 0
        if check and self._denied(name, "remove", _id, None):
            raise MeteorError(403, "Access denied")
        del self.docs[name][wid]
        self.applied[(name, "remove", wid)] += 1
        for pub in list(self._subs[name]):
            pub.removed(name, _id)
        return 1

    def _denied(self, name: str, op: str, _id: Any, doc: dict[str, Any] | None) -> bool:
        rule = self.deny.get(name)
        return bool(rule is not None and rule(op, _id, doc))

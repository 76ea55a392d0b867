"""The per-session merge box of a DDP server (Meteor's ``SessionCollectionView``, ddp-facts §3.3).

A client holds one copy of each document per collection, however many subscriptions publish it.
The merge box sits between the publications of one session and the wire: publications report
``added``/``changed``/``removed`` for their own view of a document, and the merge box answers with
the wire operation (if any) that keeps the client's single copy right.

Rules of the default ``"merge"`` strategy:

* the first subscription to publish a document produces ``added``; a later one produces a
  ``changed`` holding only the fields whose visible value changed, never a second ``added``;
* for each top-level field the subscription that set it first wins; the values of the others are
  kept in line, and promoted (as ``changed``, or ``cleared`` when nobody else has the field) when
  the winner clears the field or stops;
* ``removed`` goes out only when the last subscription drops the document;
* values equal to what the client already has are suppressed. Equality is EJSON equality on wire
  values: key order is ignored, ``1`` equals ``1.0``, ``true`` does not equal ``1``.

Two lighter strategies (Meteor 2.4+ ``setPublicationStrategy``) trade correctness guarantees for
memory, which matters for a hub serving many sessions:

* ``"no_merge"``: no field tracking; the ids each subscription published are remembered so they
  can be removed when it stops. The client may see a second ``added`` or a ``removed`` for a
  document another subscription still shows.
* ``"no_merge_no_history"``: nothing is remembered; nothing is removed when the subscription stops.

Everything here works on EJSON *wire* values (plain JSON) and wire ids (``id_stringify`` form), so a
caller holding encoded data never pays a decode. Field dicts handed to the merge box are treated
as immutable and are stored by reference (not copied): a hub can publish the same dict to many
sessions for the memory cost of one. The merge box copies a dict before changing it.

The merge path keeps, per document, only the publishing subscription and a reference to its fields
while a single subscription holds it; full precedence lists are built only for documents shared by
several subscriptions. That per-document state and its merge rules are in
:mod:`aioserversync.protocol.mergebox_doc`; :class:`WireOp` and :func:`ejson_equal` come from
:mod:`aioserversync.protocol.wireops` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final, Literal, TypeAlias

from ..exceptions import ConfigurationError, LocalProtocolError
from .mergebox_doc import _Doc
from .wireops import _MISSING, WireOp, _op, ejson_equal

__all__ = [
    "MERGE",
    "NO_MERGE",
    "NO_MERGE_NO_HISTORY",
    "STRATEGIES",
    "Mergebox",
    "Strategy",
    "WireOp",
    "ejson_equal",
]

Strategy: TypeAlias = Literal["merge", "no_merge", "no_merge_no_history"]
MERGE: Final = "merge"
NO_MERGE: Final = "no_merge"
NO_MERGE_NO_HISTORY: Final = "no_merge_no_history"
STRATEGIES: Final[tuple[Strategy, ...]] = (MERGE, NO_MERGE, NO_MERGE_NO_HISTORY)


def _without_id(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k != "_id"}


class _SubState:
    __slots__ = ("collections", "ids", "strategy")

    def __init__(self, strategy: Strategy) -> None:
        self.strategy: Strategy = strategy
        # merge: the collections this subscription touched (its documents are found by scanning
        # those views when it stops, which costs no memory per document).
        self.collections: set[str] = set()
        # no_merge: collection -> wire ids this subscription published.
        self.ids: dict[str, set[str]] = {}


class Mergebox:
    """The merge box of one DDP session: publications' data in, wire operations out.

    Register each subscription with :meth:`add_sub` (naming its strategy), report its data with
    :meth:`added`, :meth:`changed` and :meth:`removed` (each returns the one :class:`WireOp` to
    send, or ``None``), and end it with :meth:`remove_sub` (returns the operations to send).

    Ids are wire ids; fields are wire (EJSON-encoded) values and are not copied, so callers must
    not mutate a dict after handing it over.
    """

    __slots__ = ("_subs", "_views")

    def __init__(self) -> None:
        self._views: dict[str, dict[str, _Doc]] = {}
        self._subs: dict[str, _SubState] = {}

    # ------------------------------------------------------------------ subscriptions

    def add_sub(self, sub_id: str, strategy: Strategy = MERGE) -> None:
        """Register a subscription and the strategy of its publication.

        Raises:
            ConfigurationError: If ``strategy`` is unknown.
            LocalProtocolError: If the subscription is already registered.
        """
        if strategy not in STRATEGIES:
            raise ConfigurationError(f"unknown publication strategy {strategy!r}")
        if sub_id in self._subs:
            raise LocalProtocolError(f"subscription {sub_id!r} is already registered")
        self._subs[sub_id] = _SubState(strategy)

    def has_sub(self, sub_id: str) -> bool:
        """Whether ``sub_id`` is registered."""
        return sub_id in self._subs

    def strategy_of(self, sub_id: str) -> Strategy:
        """Return the strategy of a registered subscription.

        Raises:
            LocalProtocolError: If the subscription is not registered.
        """
        return self._state(sub_id).strategy

    def remove_sub(self, sub_id: str) -> list[WireOp]:
        """Drop a subscription and every document it published.

        Returns:
            The operations that bring the client up to date: ``removed`` for documents no other
            subscription holds, ``changed`` for documents whose visible fields changed. Nothing
            for the ``no_merge_no_history`` strategy, and nothing for unknown subscriptions.
        """
        st = self._subs.pop(sub_id, None)
        if st is None:
            return []
        ops: list[WireOp] = []
        if st.strategy == MERGE:
            for collection in st.collections:
                view = self._views.get(collection)
                if not view:
                    continue
                held = [(wid, doc) for wid, doc in view.items() if doc.holds(sub_id)]
                for wire_id, doc in held:
                    op = self._drop(view, doc, sub_id, collection, wire_id)
                    if op is not None:
                        ops.append(op)
                if not view:
                    del self._views[collection]
        elif st.strategy == NO_MERGE:
            for collection, ids in st.ids.items():
                ops.extend(WireOp("removed", collection, wire_id) for wire_id in ids)
        return ops

    # ------------------------------------------------------------------ data

    def added(
        self, sub_id: str, collection: str, wire_id: str, fields: dict[str, Any]
    ) -> WireOp | None:
        """Record that a subscription publishes a document.

        A repeated ``added`` of a document the subscription already holds updates its fields
        (it does not clear the ones left out).

        Returns:
            ``added`` for a document new to the client, ``changed`` with the fields whose
            visible value changed, or ``None`` when the client already sees it all.

        Raises:
            LocalProtocolError: If the subscription is not registered.
        """
        st = self._subs.get(sub_id)
        if st is None:
            raise LocalProtocolError(f"unknown subscription {sub_id!r}")
        if "_id" in fields:
            fields = _without_id(fields)
        if st.strategy != MERGE:
            if st.strategy == NO_MERGE:
                ids = st.ids.get(collection)
                if ids is None:
                    ids = st.ids[collection] = set()
                ids.add(wire_id)
            return _op(("added", collection, wire_id, fields, None))
        view = self._views.get(collection)
        if view is None:
            view = self._views[collection] = {}
            st.collections.add(collection)
        elif collection not in st.collections:
            st.collections.add(collection)
        doc = view.get(wire_id)
        if doc is None:
            view[wire_id] = _Doc(sub_id, fields)
            return _op(("added", collection, wire_id, fields, None))
        if doc.holds(sub_id):
            return doc.change(sub_id, collection, wire_id, fields, ())
        if doc.prec is None:
            doc.make_shared()
        assert doc.prec is not None and type(doc.subs) is list
        doc.subs.append(sub_id)
        prec = doc.prec
        visible = doc.fields
        out: dict[str, Any] = {}
        for key, value in fields.items():
            entries = prec.get(key)
            if entries is None:
                prec[key] = [(sub_id, value)]
                visible[key] = value
                out[key] = value
            else:
                entries.append((sub_id, value))
        if not out:
            return None
        return WireOp("changed", collection, wire_id, fields if len(out) == len(fields) else out)

    def changed(
        self,
        sub_id: str,
        collection: str,
        wire_id: str,
        fields: dict[str, Any] | None = None,
        cleared: Sequence[str] = (),
    ) -> WireOp | None:
        """Record that a subscription changed (``fields``) or removed (``cleared``) fields.

        A key should not be in both ``fields`` and ``cleared``; if it is, the clear wins.

        Returns:
            The ``changed`` to send, holding only what the client sees change, or ``None``.

        Raises:
            LocalProtocolError: If the subscription is not registered or (``merge`` strategy)
                does not hold the document.
        """
        st = self._state(sub_id)
        if fields is None:
            fields = {}
        elif "_id" in fields:
            fields = _without_id(fields)
        if cleared and fields and any(k in fields for k in cleared):
            fields = {k: v for k, v in fields.items() if k not in cleared}
        if st.strategy != MERGE:
            if not fields and not cleared:
                return None
            return WireOp("changed", collection, wire_id, fields or None, cleared or None)
        view = self._views.get(collection)
        doc = view.get(wire_id) if view is not None else None
        if doc is None or not doc.holds(sub_id):
            raise LocalProtocolError(
                f"changed for document {wire_id!r} of {collection!r} that subscription "
                f"{sub_id!r} did not add"
            )
        return doc.change(sub_id, collection, wire_id, fields, cleared)

    def removed(self, sub_id: str, collection: str, wire_id: str) -> WireOp | None:
        """Record that a subscription no longer publishes a document.

        Returns:
            ``removed`` when no other subscription holds the document, else the ``changed`` that
            promotes the values of the others, or ``None``.

        Raises:
            LocalProtocolError: If the subscription is not registered or (``merge`` strategy)
                does not hold the document.
        """
        st = self._state(sub_id)
        if st.strategy != MERGE:
            if st.strategy == NO_MERGE:
                ids = st.ids.get(collection)
                if ids is not None:
                    ids.discard(wire_id)
            return WireOp("removed", collection, wire_id)
        view = self._views.get(collection)
        doc = view.get(wire_id) if view is not None else None
        if view is None or doc is None or not doc.holds(sub_id):
            raise LocalProtocolError(
                f"removed for document {wire_id!r} of {collection!r} that subscription "
                f"{sub_id!r} did not add"
            )
        op = self._drop(view, doc, sub_id, collection, wire_id)
        if not view:
            del self._views[collection]
        return op

    # ------------------------------------------------------------------ inspection

    def get(self, collection: str, wire_id: str) -> dict[str, Any] | None:
        """Return the fields the client sees for a document of the merge views, or ``None``.

        The dict must not be modified.
        """
        view = self._views.get(collection)
        doc = view.get(wire_id) if view is not None else None
        return None if doc is None else doc.fields

    def holders(self, collection: str, wire_id: str) -> tuple[str, ...]:
        """Return the subscriptions (``merge`` strategy) holding a document, in arrival order."""
        view = self._views.get(collection)
        doc = view.get(wire_id) if view is not None else None
        if doc is None:
            return ()
        return (doc.subs,) if type(doc.subs) is str else tuple(doc.subs)

    def documents(self, collection: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Iterate ``(wire_id, visible fields)`` over a collection of the merge views."""
        for wire_id, doc in self._views.get(collection, {}).items():
            yield wire_id, doc.fields

    def collections(self) -> list[str]:
        """Return the collections that have documents in the merge views."""
        return list(self._views)

    def __len__(self) -> int:
        """The number of documents in the merge views."""
        return sum(len(v) for v in self._views.values())

    def diff(self, new: Mergebox) -> list[WireOp]:
        """Return the operations turning what the client sees of ``self`` into ``new``.

        Used when a session's subscriptions are re-run (a login or logout): the new runs fill a
        fresh merge box and the client receives only the difference (ddp-facts §3.4). Only the
        merge views take part; ``no_merge`` strategies keep no views.
        """
        ops: list[WireOp] = []
        for collection in _ordered_union(self._views, new._views):
            old_view = self._views.get(collection, {})
            new_view = new._views.get(collection, {})
            for wire_id, doc in old_view.items():
                ndoc = new_view.get(wire_id)
                if ndoc is None:
                    ops.append(WireOp("removed", collection, wire_id))
                    continue
                op = _fields_diff(collection, wire_id, doc.fields, ndoc.fields)
                if op is not None:
                    ops.append(op)
            for wire_id, ndoc in new_view.items():
                if wire_id not in old_view:
                    ops.append(WireOp("added", collection, wire_id, ndoc.fields))
        return ops

    # ------------------------------------------------------------------ internals

    def _state(self, sub_id: str) -> _SubState:
        st = self._subs.get(sub_id)
        if st is None:
            raise LocalProtocolError(f"unknown subscription {sub_id!r}")
        return st

    def _drop(
        self, view: dict[str, _Doc], doc: _Doc, sub_id: str, collection: str, wire_id: str
    ) -> WireOp | None:
        if doc.prec is None:
            del view[wire_id]
            return WireOp("removed", collection, wire_id)
        subs = doc.subs
        assert type(subs) is list
        subs.remove(sub_id)
        out: dict[str, Any] = {}
        out_cleared: list[str] = []
        for key in list(doc.prec):
            doc.clear_field(sub_id, key, out, out_cleared)
        if len(subs) == 1:
            doc.make_single()
        if not out and not out_cleared:
            return None
        return WireOp("changed", collection, wire_id, out or None, out_cleared or None)


def _ordered_union(a: Iterable[str], b: Iterable[str]) -> list[str]:
    seen = dict.fromkeys(a)
    seen.update(dict.fromkeys(b))
    return list(seen)


def _fields_diff(
    collection: str, wire_id: str, old: dict[str, Any], new: dict[str, Any]
) -> WireOp | None:
    out = {k: v for k, v in new.items() if not ejson_equal(old.get(k, _MISSING), v)}
    cleared = [k for k in old if k not in new]
    if not out and not cleared:
        return None
    return WireOp("changed", collection, wire_id, out or None, cleared or None)

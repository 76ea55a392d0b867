"""The client side of the sans-I/O DDP core (ddp-facts §1 to §4).

:class:`ClientProtocol` turns received text frames into events and queues the frames a client
sends. It owns the per-connection bookkeeping a DDP client needs: the handshake state, the
subscriptions requested on this connection, and the methods that have not yet received both
``result`` and ``updated``.

Usage (the I/O layer owns the socket)::

    proto = ClientProtocol()
    proto.send_connect()
    send_all(proto.data_to_send())
    for frame in incoming:
        proto.receive_text(frame)
        for event in proto.events_received():
            ...                                   # Connected, Added, Result, MethodDone, ...
        send_all(proto.data_to_send())            # pongs

Rules it follows (ddp-facts §10):

* A frame without ``msg`` whose only key is ``server_id`` (servers up to Meteor 2.2), or the test
  frame ``{"testMessageOnConnect": true}``, is ignored silently; any other object without ``msg``,
  and any unknown ``msg`` type, is logged and reported as an
  :class:`~aioserversync.protocol.events.InvalidMessage` event, never raised.
* Only ``fields`` and ``result`` are decoded as EJSON (§0). With ``decode_data=False`` the
  ``fields`` of ``added``/``changed``/``addedBefore`` stay in wire form, checked with
  :func:`aioserversync.ejson.validate`, so a store can keep them without a decode/encode round trip.
* A method is finished when both ``result`` and ``updated`` have arrived, in either order
  (``updated`` usually comes first, §4.4); a synthetic
  :class:`~aioserversync.protocol.events.MethodDone` reports it. ``result`` and ``updated`` for
  unknown ids are ignored (§4.6).
* ``send_method``, ``send_sub``, ``send_unsub`` and ``send_ping`` need an open session
  (``connected``); before it they raise :class:`~aioserversync.exceptions.LocalProtocolError`. The
  I/O layer sends queued work once :class:`~aioserversync.protocol.events.Connected` arrives.
* Method ids are ``"1"``, ``"2"``, … counted per protocol object unless given explicitly, so an I/O
  layer that opens a new protocol object per connection passes its own ids to keep them unique
  across reconnects, as Meteor does (§4.1).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from .. import ejson
from ..ejson_fields import FieldsCodec
from ..exceptions import (
    ConfigurationError,
    LocalProtocolError,
    RemoteProtocolError,
    VersionMismatch,
    meteor_error_from_wire,
)
from ..ids import random_id
from .client_methods import (
    MethodCalls,
    PendingMethod,
    optional_before,
    require_str,
    str_list,
)
from .connection import (
    CONNECTED,
    CONNECTING,
    DEFAULT_MAX_SIZE,
    FAILED,
    RECEIVE_ERRORS,
    SUPPORTED_VERSIONS,
)
from .events import (
    Added,
    AddedBefore,
    Changed,
    Connected,
    Failed,
    MovedBefore,
    NoSub,
    Ready,
    Removed,
    ServerError,
)

__all__ = ["ClientProtocol", "PendingMethod"]

logger = logging.getLogger("aioserversync.protocol.client")


# Event construction on the data hot path: the events are frozen dataclasses, whose generated
# __init__ sets each slot through object.__setattr__. Setting the slots through their member
# descriptors builds an identical (equal, immutable) object at about half the cost.
_new = object.__new__
_ADDED_SET = tuple(Added.__dict__[f].__set__ for f in ("collection", "id", "fields"))
_CHANGED_SET = tuple(Changed.__dict__[f].__set__ for f in ("collection", "id", "fields", "cleared"))
_REMOVED_SET = tuple(Removed.__dict__[f].__set__ for f in ("collection", "id"))
_EMPTY: tuple[str, ...] = ()
_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError


class ClientProtocol(MethodCalls):
    """Sans-I/O DDP client for one connection (one WebSocket).

    Args:
        version: The DDP version to request (``"1"``, ``"pre2"`` or ``"pre1"``).
        support: The versions offered, in order of preference; must contain ``version``.
        decode_data: Decode the ``fields`` of data messages from EJSON (``False``: keep the
            validated wire form, for stores that keep wire data).
        max_size: Largest accepted frame, in bytes or characters (``None``: no limit).
        logger: Where protocol problems are logged.

    Attributes:
        state: ``CONNECTING``, ``CONNECTED``, ``FAILED`` or ``CLOSED``.
        session: The session id from ``connected``.
        version: The negotiated version once connected.
        handshake_exc: A :class:`~aioserversync.exceptions.VersionMismatch` after ``failed``.
        last_protocol_error: The last malformed input (sticky).

    Raises:
        ConfigurationError: If ``version`` is not in ``support`` or the versions are not strings.
    """

    def __init__(
        self,
        *,
        version: str = "1",
        support: Sequence[str] = SUPPORTED_VERSIONS,
        decode_data: bool = True,
        max_size: int | None = DEFAULT_MAX_SIZE,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> None:
        super().__init__(max_size=max_size, logger=logger or globals()["logger"])
        support = tuple(support)
        if not support or not all(isinstance(v, str) for v in support):
            raise ConfigurationError("support must be a non-empty sequence of version strings")
        if version not in support:
            raise ConfigurationError(f"version {version!r} is not in support {support!r}")
        self.requested_version = version
        self.support = support
        self.decode_data = decode_data
        self._codec = FieldsCodec(decode=decode_data)
        self.session: str | None = None
        self.handshake_exc: VersionMismatch | None = None
        self._connect_sent = False
        self._next_method_id = 1
        self._methods: dict[str, PendingMethod] = {}
        self._subs: dict[str, str] = {}
        self._handlers.update(
            {
                "added": self._handle_added,
                "changed": self._handle_changed,
                "removed": self._handle_removed,
                "ready": self._handle_ready,
                "nosub": self._handle_nosub,
                "result": self._handle_result,
                "updated": self._handle_updated,
                "addedBefore": self._handle_added_before,
                "movedBefore": self._handle_moved_before,
                "connected": self._handle_connected,
                "failed": self._handle_failed,
                "error": self._handle_error,
            }
        )

    # ------------------------------------------------------------------ requests

    def send_connect(self, session: str | None = None) -> None:
        """Queue the ``connect`` message (once per connection).

        Args:
            session: A previous session id to mention (Meteor does; servers ignore it, §1.3).

        Raises:
            LocalProtocolError: If ``connect`` was already sent or the connection is not new.
        """
        if self._connect_sent or self.state is not CONNECTING:
            raise LocalProtocolError("connect was already sent on this connection")
        msg: dict[str, Any] = {"msg": "connect"}
        if session is not None:
            msg["session"] = session
        msg["version"] = self.requested_version
        msg["support"] = list(self.support)
        self._send(msg)
        self._connect_sent = True

    def send_sub(self, name: str, params: Iterable[Any] = (), *, id: str | None = None) -> str:
        """Queue a ``sub`` (``params`` always sent, ``[]`` when empty, as Meteor does).

        Args:
            name: The publication name.
            params: The parameters as Python values; they are EJSON-encoded here.
            id: The subscription id (default: a fresh ``Random.id()``).

        Returns:
            The subscription id.

        Raises:
            LocalProtocolError: Not connected.
            EJSONError: A parameter cannot be encoded (nothing is queued).
        """
        self._require_connected("sub")
        if not isinstance(name, str):
            raise LocalProtocolError("publication name must be a string")
        wire_params = ejson.encode(list(params))
        if id is None:
            id = random_id()
        self._send({"msg": "sub", "id": id, "name": name, "params": wire_params})
        self._subs[id] = name
        return id

    def send_unsub(self, id: str) -> None:
        """Queue an ``unsub`` (the server answers with ``nosub``, even for unknown ids).

        Raises:
            LocalProtocolError: Not connected.
        """
        self._require_connected("unsub")
        self._send({"msg": "unsub", "id": id})

    def active_subs(self) -> dict[str, str]:
        """Return the subscriptions sent on this connection and not yet ended (id -> name)."""
        return dict(self._subs)

    # ------------------------------------------------------------------ input

    def receive_text(self, data: str | bytes) -> None:
        """Feed one received WebSocket text message. Never raises for bad input."""
        self._events = self.receive_events(data)

    def receive_events(self, data: str | bytes) -> list[Any]:
        """Feed one text message and return (and forget) the events produced so far.

        The same as :meth:`receive_text` followed by :meth:`events_received`, with the
        ``added`` and ``changed`` messages, the bulk of an initial sync and of live traffic,
        handled inline. Never raises for bad input.
        """
        try:
            if self.max_size is not None and len(data) > self.max_size:
                raise RemoteProtocolError(
                    f"frame of {len(data)} bytes exceeds max_size {self.max_size}"
                )
            try:
                msg = _loads(data)
            except _JSONDecodeError as exc:
                raise RemoteProtocolError(f"invalid JSON: {exc}") from exc
            if type(msg) is not dict:
                raise RemoteProtocolError("DDP message is not a JSON object")
            kind = msg.get("msg")
            if kind == "added":
                collection = msg.get("collection")
                id_ = msg.get("id")
                fields = msg.get("fields")
                if (
                    type(collection) is str
                    and type(id_) is str
                    and type(fields) is dict
                    and "_id" not in fields
                ):
                    fields = self._codec.process(collection, fields, data)
                    ev = _new(Added)
                    sc, si, sf = _ADDED_SET
                    sc(ev, collection)
                    si(ev, id_)
                    sf(ev, fields)
                    if not self._events:
                        return [ev]
                    self._events.append(ev)
                else:
                    self._frame = data
                    self._handle_added(msg)
            elif kind == "changed":  # the bulk of live traffic
                collection = msg.get("collection")
                id_ = msg.get("id")
                fields = msg.get("fields")
                if (
                    type(collection) is str
                    and type(id_) is str
                    and type(fields) is dict
                    and "cleared" not in msg
                    and "_id" not in fields
                ):
                    fields = self._codec.process(collection, fields, data)
                    cev = _new(Changed)
                    sc, si, sf, sx = _CHANGED_SET
                    sc(cev, collection)
                    si(cev, id_)
                    sf(cev, fields)
                    sx(cev, _EMPTY)
                    if not self._events:
                        return [cev]
                    self._events.append(cev)
                else:
                    self._frame = data
                    self._handle_changed(msg)
            elif kind is None:
                self._on_no_msg(msg, data)
            else:
                handler = self._handlers.get(kind) if type(kind) is str else None
                if handler is None:
                    self._on_unknown(msg, data)
                else:
                    self._frame = data
                    handler(msg)
        except RECEIVE_ERRORS as exc:
            self._receive_failed(exc, data)
        events, self._events = self._events, []
        return events

    # ------------------------------------------------------------------ handshake

    def _on_no_msg(self, msg: dict[str, Any], data: str | bytes) -> None:
        # Meteor ignores {"server_id": ...} (servers up to 2.2) and the test-mode frame (§1.2).
        if len(msg) == 1 and ("server_id" in msg or "testMessageOnConnect" in msg):
            return
        super()._on_no_msg(msg, data)

    def _handle_connected(self, msg: dict[str, Any]) -> None:
        session = require_str(msg, "session")
        if self.state is not CONNECTING:
            raise RemoteProtocolError(f"'connected' in state {self.state.value}")
        self.session = session
        self.version = self.requested_version
        self.state = CONNECTED
        self._events.append(Connected(session))

    def _handle_failed(self, msg: dict[str, Any]) -> None:
        version = msg.get("version")
        if type(version) is not str:
            version = str(version)
        if self.state is not CONNECTING:
            raise RemoteProtocolError(f"'failed' in state {self.state.value}")
        self.state = FAILED
        self.handshake_exc = VersionMismatch(version)
        self._events.append(Failed(version))

    def _handle_error(self, msg: dict[str, Any]) -> None:
        reason = msg.get("reason")
        if not isinstance(reason, str):
            reason = "" if reason is None else str(reason)
        offending = msg.get("offendingMessage")
        self.logger.warning(
            "DDP server rejected a message: %s (offending: %.200r)", reason, offending
        )
        self._events.append(ServerError(reason, offending))

    # ------------------------------------------------------------------ data (hot path)

    def _handle_added(self, msg: dict[str, Any]) -> None:
        collection = msg["collection"]
        id_ = msg["id"]
        if type(collection) is not str or type(id_) is not str:
            raise RemoteProtocolError("added needs string 'collection' and 'id'")
        fields = msg.get("fields")
        if fields is None:
            fields = {}
        elif type(fields) is not dict:
            raise RemoteProtocolError("added 'fields' must be an object")
        else:
            if "_id" in fields:
                fields = self._without_id("added", fields)
            fields = self._codec.process(collection, fields, self._frame)
        ev = _new(Added)
        sc, si, sf = _ADDED_SET
        sc(ev, collection)
        si(ev, id_)
        sf(ev, fields)
        self._events.append(ev)

    def _handle_changed(self, msg: dict[str, Any]) -> None:
        collection = msg["collection"]
        id_ = msg["id"]
        if type(collection) is not str or type(id_) is not str:
            raise RemoteProtocolError("changed needs string 'collection' and 'id'")
        fields = msg.get("fields")
        if fields is None:
            fields = {}
        elif type(fields) is not dict:
            raise RemoteProtocolError("changed 'fields' must be an object")
        else:
            if "_id" in fields:
                fields = self._without_id("changed", fields)
            fields = self._codec.process(collection, fields, self._frame)
        cleared = msg.get("cleared")
        cleared = _EMPTY if cleared is None else str_list(cleared, "changed 'cleared'")
        if "_id" in cleared:
            self._report("changed 'cleared' names '_id'; that entry was ignored")
            cleared = tuple(c for c in cleared if c != "_id")
        ev = _new(Changed)
        sc, si, sf, sx = _CHANGED_SET
        sc(ev, collection)
        si(ev, id_)
        sf(ev, fields)
        sx(ev, cleared)
        self._events.append(ev)

    def _without_id(self, what: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Fields that carry ``_id``: the document id is the message's ``id``, never a field.

        A server that sends one anyway would give the cached document two ids (the one it is
        stored under and the one a read shows). The member is dropped and the frame reported
        as a protocol error; the rest of the message applies.
        """
        self._report(f"{what} 'fields' carry '_id'; that member was ignored")
        return {k: v for k, v in fields.items() if k != "_id"}

    def _report(self, problem: str) -> None:
        """Report a protocol error in a frame that is still applied (what is wrong, dropped)."""
        frame = self._frame
        self._invalid(RemoteProtocolError(problem, frame=frame[:200]), frame)

    def _handle_removed(self, msg: dict[str, Any]) -> None:
        collection = msg["collection"]
        id_ = msg["id"]
        if type(collection) is not str or type(id_) is not str:
            raise RemoteProtocolError("removed needs string 'collection' and 'id'")
        ev = _new(Removed)
        sc, si = _REMOVED_SET
        sc(ev, collection)
        si(ev, id_)
        self._events.append(ev)

    def _handle_added_before(self, msg: dict[str, Any]) -> None:
        collection = require_str(msg, "collection")
        id_ = require_str(msg, "id")
        fields = msg.get("fields")
        if fields is None:
            fields = {}
        elif type(fields) is not dict:
            raise RemoteProtocolError("addedBefore 'fields' must be an object")
        else:
            if "_id" in fields:
                fields = self._without_id("addedBefore", fields)
            fields = self._codec.process(collection, fields, self._frame)
        self._events.append(AddedBefore(collection, id_, fields, optional_before(msg)))

    def _handle_moved_before(self, msg: dict[str, Any]) -> None:
        collection = require_str(msg, "collection")
        id_ = require_str(msg, "id")
        self._events.append(MovedBefore(collection, id_, optional_before(msg)))

    def _handle_ready(self, msg: dict[str, Any]) -> None:
        subs = str_list(msg.get("subs"), "ready 'subs'")
        self._events.append(Ready(subs))

    def _handle_nosub(self, msg: dict[str, Any]) -> None:
        id_ = require_str(msg, "id")
        err = msg.get("error")
        error = None if err is None else meteor_error_from_wire(err, context="sub")
        self._subs.pop(id_, None)
        self._events.append(NoSub(id_, error))

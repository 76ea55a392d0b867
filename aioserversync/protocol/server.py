"""The server side of the sans-I/O DDP core (Meteor's ``livedata_server.js`` message handling).

Feed client frames to :meth:`ServerProtocol.receive_text`; collect
:class:`~aioserversync.protocol.events.Connect`, ``Ping``, ``Pong``, ``Sub``, ``Unsub``, ``Method``
and ``InvalidMessage`` events (plus :class:`ConnectFailed`) from ``events_received()``; send data
with the ``send_*`` methods and write ``data_to_send()`` to the socket, one text frame each.

Bad input is answered exactly as Meteor answers it (ddp-facts §8) and never raises:

================================================  ==============================================
input                                             reply
================================================  ==============================================
invalid JSON, JSON that is not an object, a       ``{"msg":"error","reason":"Bad request"}``
frame over ``max_size``
an object or array without ``msg``                ``"Bad request"`` with ``offendingMessage``
an unknown EJSON ``$type`` (or a malformed        ``{"msg":"error","reason":"Parse error"}``
special object) in ``params``/``fields``/
``result``
any message before ``connect``                    ``"Must connect first"`` + ``offendingMessage``
a second ``connect``                              ``"Already connected"`` + ``offendingMessage``
an unknown ``msg`` (and ``ping``/``pong`` under   ``"Bad request"`` + ``offendingMessage``
``pre1``), an ``unsub`` whose id is not a string
a malformed ``sub`` / ``method``                  ``"Malformed subscription"`` /
                                                  ``"Malformed method invocation"`` + offending
a bad ``connect``                                 ``{"msg":"failed","version":…}``; the state
                                                  becomes ``FAILED`` and the I/O layer closes
================================================  ==============================================

``offendingMessage`` is the client's message in its wire form (Meteor re-serialises its decoded
copy, which turns Dates into ISO strings; the wire form is what the client sent). Every refused
frame also yields an :class:`~aioserversync.protocol.events.InvalidMessage` event and a log line.

Ids passed to ``send_added``/``send_changed``/``send_removed`` are **wire** ids: already in
``MongoID.idStringify`` form (:func:`aioserversync.ids.id_stringify`, ddp-facts §7.2).

The module-level ``*_frame`` functions build the same frames without queuing them, for callers that
encode a message once and send the bytes to many sessions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .. import ejson
from ..ejson import EJSONCustom
from ..exceptions import EJSONError, LocalProtocolError, MeteorError, RemoteProtocolError
from ..ids import random_id
from .connection import (
    CLOSED,
    CONNECTED,
    DEFAULT_MAX_SIZE,
    FAILED,
    SUPPORTED_VERSIONS,
    DDPProtocol,
    parse_frame,
)
from .events import Connect, Method, Sub, Unsub
from .mergebox import WireOp
from .server_frames import (
    MISSING,
    SERVER_ID_FRAME,
    added_frame,
    changed_frame,
    error_frame,
    nosub_frame,
    op_frame,
    ready_frame,
    removed_frame,
    result_frame,
    updated_frame,
)

__all__ = [
    "SERVER_ID_FRAME",
    "ConnectFailed",
    "ServerProtocol",
    "added_frame",
    "changed_frame",
    "error_frame",
    "nosub_frame",
    "op_frame",
    "ready_frame",
    "removed_frame",
    "result_frame",
    "updated_frame",
]

_EJSON_MEMBERS = ("params", "fields", "result")


@dataclass(frozen=True, slots=True)
class ConnectFailed:
    """A ``connect`` was refused with ``failed``: the I/O layer must close the connection.

    Attributes:
        version: The version suggested to the client.
    """

    version: str


class _Refused(RemoteProtocolError):
    """Bad input with the Meteor ``error`` reply it deserves."""

    def __init__(self, reason: str, message: str, *, offending: bool = True) -> None:
        super().__init__(message)
        self.reason = reason
        self.offending = offending


def _has_custom(value: Any) -> bool:
    t = type(value)
    if t is EJSONCustom:
        return True
    if t is dict:
        return any(_has_custom(v) for v in value.values())
    if t is list:
        return any(_has_custom(v) for v in value)
    return False


# --------------------------------------------------------------------------- protocol


class ServerProtocol(DDPProtocol):
    """The DDP server core for one connection.

    Args:
        max_size: Largest accepted frame in bytes or characters (``None``: no limit).
        logger: Where protocol errors are logged (default ``aioserversync.protocol``).
        server_id: Queue Meteor's pre-2.3 ``{"server_id":"0"}`` welcome frame at once.
        versions: DDP versions this server speaks, preferred first.
        session_id_factory: Makes session ids (default: Meteor's 17-character ``Random.id()``).
        raw_params: Names of methods whose ``params`` are only validated, not decoded: their
            handlers receive EJSON wire form (``{"$date": ms}`` …), e.g. to store it as is.
            Unknown custom types are refused with "Parse error" all the same.

    Attributes:
        session: The session id once connected, else ``None``.
        version: The negotiated DDP version once connected.
    """

    def __init__(
        self,
        *,
        max_size: int | None = DEFAULT_MAX_SIZE,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        server_id: bool = False,
        versions: Sequence[str] = SUPPORTED_VERSIONS,
        session_id_factory: Callable[[], str] = random_id,
        raw_params: Container[str] = frozenset(),
    ) -> None:
        super().__init__(max_size=max_size, logger=logger)
        self.raw_params = raw_params
        if not versions:
            raise LocalProtocolError("a DDP server needs at least one protocol version")
        self.versions = tuple(versions)
        self.session: str | None = None
        self._session_id_factory = session_id_factory
        self._handlers.update(
            {
                "sub": self._handle_sub,
                "unsub": self._handle_unsub,
                "method": self._handle_method,
            }
        )
        if server_id:
            self._out.append(SERVER_ID_FRAME)

    @property
    def pending_frames(self) -> int:
        """How many frames are queued and not yet collected by ``data_to_send()``."""
        return len(self._out)

    # ------------------------------------------------------------------ input

    def receive_text(self, data: str | bytes) -> None:
        """Feed one received WebSocket message. Never raises for bad input.

        After a refused ``connect`` (state ``FAILED``) or the end of the link, input is ignored,
        as Meteor ignores what a client sent optimistically before ``failed`` (ddp-facts §1.3).
        """
        if self.state is FAILED or self.state is CLOSED:
            return
        try:
            msg = parse_frame(data, self.max_size)
        except RemoteProtocolError as exc:
            self._refuse(_Refused("Bad request", str(exc), offending=False), data)
            return
        if type(msg) is not dict:
            if type(msg) is list:
                self._refuse(_Refused("Bad request", "DDP message without 'msg'"), data)
            else:
                self._refuse(
                    _Refused("Bad request", "DDP message is not an object", offending=False), data
                )
            return
        kind = msg.get("msg")
        if not kind:
            self._refuse(_Refused("Bad request", "DDP message without 'msg'"), data)
            return
        try:
            raw = kind == "method" and bool(self.raw_params) and self._is_raw(msg, data)
            # Meteor decodes the EJSON members before looking at anything else.
            for key in _EJSON_MEMBERS:
                if key in msg and not (raw and key == "params"):
                    value = ejson.decode_inplace(msg[key])
                    if _has_custom(value):
                        raise EJSONError(f"unknown EJSON $type in {key!r}")
                    msg[key] = value
        except EJSONError as exc:
            refusal = _Refused("Parse error", f"invalid EJSON: {exc}", offending=False)
            refusal.__cause__ = exc
            self._refuse(refusal, data)
            return
        try:
            if kind == "connect":
                if self.state is CONNECTED:
                    raise _Refused("Already connected", "second connect")
                self._handle_connect(msg, data)
                return
            if self.state is not CONNECTED:
                raise _Refused("Must connect first", f"{kind!r} before connect")
            handler = self._handlers.get(kind) if type(kind) is str else None
            if handler is None:
                raise _Refused("Bad request", f"unknown DDP message {kind!r}")
            handler(msg)
        except _Refused as exc:
            self._refuse(exc, data)
        except RemoteProtocolError as exc:
            self._refuse(_Refused("Bad request", str(exc)), data)

    def _is_raw(self, msg: dict[str, Any], data: str | bytes) -> bool:
        # Wire-form params for a raw method: checked as decoding would check them, left as is.
        name = msg.get("method")
        params = msg.get("params")
        if type(name) is not str or name not in self.raw_params or type(params) is not list:
            return False
        ejson.validate(params, source=data)
        marker = '"$type"' if isinstance(data, str) else b'"$type"'
        if marker in data and _has_custom(ejson.decode(params)):  # type: ignore[operator]
            raise EJSONError("unknown EJSON $type in 'params'")
        return True

    def _refuse(self, exc: _Refused, data: str | bytes) -> None:
        if exc.frame is None:
            exc.frame = data[:200]
        if exc.offending:
            try:
                offending = orjson.loads(data)
            except orjson.JSONDecodeError:  # pragma: no cover - the frame parsed once already
                offending = None
            self._out.append(error_frame(exc.reason, offending))
        else:
            self._out.append(error_frame(exc.reason))
        self._invalid(exc, data)

    def _handle_connect(self, msg: dict[str, Any], data: str | bytes) -> None:
        version = msg.get("version")
        support = msg.get("support")
        if (
            not isinstance(version, str)
            or type(support) is not list
            or not all(isinstance(v, str) for v in support)
            or version not in support
        ):
            self._fail(self.versions[0])
            self._invalid(RemoteProtocolError("malformed connect"), data)
            return
        negotiated = next((v for v in support if v in self.versions), self.versions[0])
        if negotiated != version:
            self.logger.info(
                "DDP connect refused: client version %r, suggesting %r", version, negotiated
            )
            self._fail(negotiated)
            return
        self.session = self._session_id_factory()
        self.version = version
        self.state = CONNECTED
        self._send({"msg": "connected", "session": self.session})
        self._events.append(Connect(version, self.session))

    def _fail(self, version: str) -> None:
        self._send({"msg": "failed", "version": version})
        self.state = FAILED
        self._events.append(ConnectFailed(version))

    def _handle_ping(self, msg: dict[str, Any]) -> None:
        if self.version == "pre1":
            raise _Refused("Bad request", "ping under DDP pre1")
        super()._handle_ping(msg)

    def _handle_pong(self, msg: dict[str, Any]) -> None:
        if self.version == "pre1":
            raise _Refused("Bad request", "pong under DDP pre1")
        super()._handle_pong(msg)

    def _handle_sub(self, msg: dict[str, Any]) -> None:
        id_ = msg.get("id")
        name = msg.get("name")
        params = msg.get("params", [])
        if type(id_) is not str or type(name) is not str or type(params) is not list:
            raise _Refused("Malformed subscription", "malformed sub")
        self._events.append(Sub(id_, name, params))

    def _handle_unsub(self, msg: dict[str, Any]) -> None:
        id_ = msg.get("id")
        if type(id_) is not str:
            raise _Refused("Bad request", "unsub without a string id")
        self._events.append(Unsub(id_))

    def _handle_method(self, msg: dict[str, Any]) -> None:
        id_ = msg.get("id")
        name = msg.get("method")
        params = msg.get("params", [])
        seed = msg.get("randomSeed")
        if (
            type(id_) is not str
            or type(name) is not str
            or type(params) is not list
            or ("randomSeed" in msg and type(seed) is not str)
        ):
            raise _Refused("Malformed method invocation", "malformed method")
        self._events.append(Method(id_, name, params, seed))

    # ------------------------------------------------------------------ output

    def send_frame(self, frame: bytes) -> None:
        """Queue one pre-serialised DDP frame (UTF-8 JSON) as is."""
        self._out.append(frame)

    def send_frames(self, frames: Iterable[bytes]) -> None:
        """Queue pre-serialised DDP frames as they are."""
        self._out.extend(frames)

    def send_added(
        self, collection: str, id: str, fields: dict[str, Any] | None = None, *, wire: bool = False
    ) -> None:
        """Queue ``added``. ``id`` is a wire id; see :func:`added_frame`.

        Raises:
            LocalProtocolError: If the session is not connected.
            EJSONError: If a field value cannot be encoded.
        """
        self._require_connected("added")
        self._out.append(added_frame(collection, id, fields, wire=wire))

    def send_changed(
        self,
        collection: str,
        id: str,
        fields: dict[str, Any] | None = None,
        cleared: Sequence[str] | None = None,
        *,
        wire: bool = False,
    ) -> None:
        """Queue ``changed`` (nothing when both ``fields`` and ``cleared`` are empty).

        Raises:
            LocalProtocolError: If the session is not connected.
            EJSONError: If a field value cannot be encoded.
        """
        self._require_connected("changed")
        frame = changed_frame(collection, id, fields, cleared, wire=wire)
        if frame is not None:
            self._out.append(frame)

    def send_removed(self, collection: str, id: str) -> None:
        """Queue ``removed`` (``id`` in wire form).

        Raises:
            LocalProtocolError: If the session is not connected.
        """
        self._require_connected("removed")
        self._out.append(removed_frame(collection, id))

    def send_op(self, op: WireOp) -> None:
        """Queue the frame of a merge box operation.

        Raises:
            LocalProtocolError: If the session is not connected.
        """
        self._require_connected(op.kind)
        frame = op_frame(op)
        if frame is not None:
            self._out.append(frame)

    def send_ready(self, sub_ids: Iterable[str]) -> None:
        """Queue ``ready`` for these subscriptions.

        Raises:
            LocalProtocolError: If the session is not connected.
        """
        self._require_connected("ready")
        self._out.append(ready_frame(sub_ids))

    def send_nosub(self, sub_id: str, error: MeteorError | None = None) -> None:
        """Queue ``nosub``, with the error when the subscription failed.

        Raises:
            LocalProtocolError: If the session is not connected.
        """
        self._require_connected("nosub")
        self._out.append(nosub_frame(sub_id, error))

    def send_result(
        self,
        method_id: str,
        result: Any = MISSING,
        *,
        error: MeteorError | None = None,
        wire: bool = False,
    ) -> None:
        """Queue ``result``; see :func:`result_frame`.

        Raises:
            LocalProtocolError: If the session is not connected.
            EJSONError: If ``result`` cannot be encoded.
        """
        self._require_connected("result")
        self._out.append(result_frame(method_id, result, error=error, wire=wire))

    def send_updated(self, method_ids: Iterable[str]) -> None:
        """Queue ``updated`` for these methods.

        Raises:
            LocalProtocolError: If the session is not connected.
        """
        self._require_connected("updated")
        self._out.append(updated_frame(method_ids))

    def send_error(self, reason: str, offending: Any = MISSING) -> None:
        """Queue a top-level ``error`` (allowed in any state)."""
        self._out.append(error_frame(reason, offending))

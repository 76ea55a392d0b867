"""The part of the sans-I/O DDP core shared by both sides: frames in, events and frames out.

Interface (as websockets' and h11's cores): feed whole WebSocket text messages with
:meth:`DDPProtocol.receive_text` (and :meth:`DDPProtocol.receive_eof` when the link ends), then
collect :meth:`DDPProtocol.events_received` and :meth:`DDPProtocol.data_to_send`. Nothing here
touches a socket, a clock or a task, and nothing raises out of ``receive_*``: malformed input
becomes an :class:`~aioserversync.protocol.events.InvalidMessage` event and is remembered in
:attr:`DDPProtocol.last_protocol_error`.

Requests that are illegal in the current state (``send_*``) raise
:class:`~aioserversync.exceptions.LocalProtocolError`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import Any

import orjson

from ..exceptions import EJSONError, LocalProtocolError, RemoteProtocolError
from .events import InvalidMessage, Ping, Pong

__all__ = [
    "DEFAULT_MAX_SIZE",
    "RECEIVE_ERRORS",
    "SUPPORTED_VERSIONS",
    "ConnState",
    "DDPProtocol",
    "encode_message",
    "parse_frame",
]

SUPPORTED_VERSIONS: tuple[str, ...] = ("1", "pre2", "pre1")
DEFAULT_MAX_SIZE = 32 * 2**20
_FRAME_EXCERPT = 200

logger = logging.getLogger("aioserversync.protocol")
_loads = orjson.loads

RECEIVE_ERRORS: tuple[type[Exception], ...] = (
    RemoteProtocolError,
    EJSONError,
    KeyError,
    TypeError,
    ValueError,
    AttributeError,
)
"""Errors a message handler may raise for malformed input; they become InvalidMessage events."""


class ConnState(enum.Enum):
    """The lifecycle of one DDP connection (one WebSocket)."""

    CONNECTING = "connecting"
    """Before the handshake completed."""
    CONNECTED = "connected"
    """Handshake done: a session exists."""
    FAILED = "failed"
    """The handshake was refused (``failed``)."""
    CLOSED = "closed"
    """The link ended (``receive_eof``) or was closed."""


CONNECTING = ConnState.CONNECTING
CONNECTED = ConnState.CONNECTED
FAILED = ConnState.FAILED
CLOSED = ConnState.CLOSED


def _excerpt(data: str | bytes) -> str | bytes:
    return data[:_FRAME_EXCERPT]


def parse_frame(data: str | bytes, max_size: int | None = None) -> dict[str, Any] | Any:
    """Parse one text frame into a JSON value.

    Args:
        data: The frame (``str``, or UTF-8 ``bytes``).
        max_size: Refuse frames longer than this many bytes/characters.

    Returns:
        The parsed JSON value (normally a dict).

    Raises:
        RemoteProtocolError: The frame is too large or not valid JSON.
    """
    if max_size is not None and len(data) > max_size:
        raise RemoteProtocolError(
            f"frame of {len(data)} bytes exceeds max_size {max_size}", frame=_excerpt(data)
        )
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RemoteProtocolError(f"invalid JSON: {exc}", frame=_excerpt(data)) from exc


def encode_message(msg: dict[str, Any]) -> bytes:
    """Serialise a DDP message whose EJSON members are already in wire form.

    Raises:
        LocalProtocolError: The message holds values JSON cannot carry.
    """
    try:
        return orjson.dumps(msg)
    except orjson.JSONEncodeError as exc:
        raise LocalProtocolError(f"cannot serialise DDP message: {exc}") from exc


class DDPProtocol:
    """Base of the client and server DDP cores.

    Subclasses register a handler per ``msg`` type in ``_handlers``; a handler receives the parsed
    dict and may raise :class:`RemoteProtocolError` or :class:`EJSONError`, which this class turns
    into an :class:`InvalidMessage` event (plus :meth:`_on_invalid` for side-specific replies).

    Args:
        max_size: Largest accepted frame, in bytes or characters (``None``: no limit).
        logger: Where protocol errors are logged (default ``aioserversync.protocol``).
    """

    def __init__(
        self,
        *,
        max_size: int | None = DEFAULT_MAX_SIZE,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> None:
        self.max_size = max_size
        self.logger = logger or globals()["logger"]
        self.state: ConnState = CONNECTING
        self.version: str | None = None
        self.last_protocol_error: RemoteProtocolError | None = None
        self._frame: str | bytes = b""
        """The frame being handled (handlers may use it as a hint, e.g. for EJSON walks)."""
        self._events: list[Any] = []
        self._out: list[bytes] = []
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "ping": self._handle_ping,
            "pong": self._handle_pong,
        }

    # ------------------------------------------------------------------ I/O interface

    def receive_text(self, data: str | bytes) -> None:
        """Feed one received WebSocket text message. Never raises for bad input."""
        try:
            if self.max_size is not None and len(data) > self.max_size:
                raise RemoteProtocolError(
                    f"frame of {len(data)} bytes exceeds max_size {self.max_size}",
                    frame=_excerpt(data),
                )
            try:
                msg = _loads(data)
            except orjson.JSONDecodeError as exc:
                raise RemoteProtocolError(f"invalid JSON: {exc}", frame=_excerpt(data)) from exc
            if type(msg) is not dict:
                raise RemoteProtocolError("DDP message is not a JSON object", frame=_excerpt(data))
            kind = msg.get("msg")
            if kind is None:
                self._on_no_msg(msg, data)
                return
            handler = self._handlers.get(kind) if type(kind) is str else None
            if handler is None:
                self._on_unknown(msg, data)
                return
            self._frame = data
            handler(msg)
        except RECEIVE_ERRORS as exc:
            self._receive_failed(exc, data)

    def receive_events(self, data: str | bytes) -> list[Any]:
        """Feed one text message and return the events produced so far.

        The same as :meth:`receive_text` followed by :meth:`events_received`, in one call (the
        client overrides it with a faster path for data messages). Never raises for bad input.
        """
        self.receive_text(data)
        return self.events_received()

    def _receive_failed(self, exc: Exception, data: str | bytes) -> None:
        """Turn an error raised while handling ``data`` into an InvalidMessage event."""
        if isinstance(exc, RemoteProtocolError):
            if exc.frame is None:
                exc.frame = _excerpt(data)
            err = exc
        elif isinstance(exc, EJSONError):
            err = RemoteProtocolError(f"invalid EJSON: {exc}", frame=_excerpt(data))
            err.__cause__ = exc
        else:
            err = RemoteProtocolError(f"malformed DDP message: {exc!r}", frame=_excerpt(data))
            err.__cause__ = exc
        self._invalid(err, data)

    def receive_eof(self) -> None:
        """Tell the core the link has ended."""
        self.state = CLOSED

    def events_received(self) -> list[Any]:
        """Return (and forget) the events produced since the last call."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[bytes]:
        """Return (and forget) the frames to send, one DDP message per text frame."""
        out, self._out = self._out, []
        return out

    # ------------------------------------------------------------------ heartbeats

    def send_ping(self, id: str | None = None) -> None:
        """Queue a ``ping`` (with an optional id)."""
        self._require_connected("ping")
        self._send({"msg": "ping", "id": id} if id is not None else {"msg": "ping"})

    def _handle_ping(self, msg: dict[str, Any]) -> None:
        id_ = msg.get("id")
        if id_ is not None and not isinstance(id_, str):
            raise RemoteProtocolError("ping id must be a string")
        if self.state is CONNECTED:
            self._send({"msg": "pong", "id": id_} if id_ is not None else {"msg": "pong"})
        self._events.append(Ping(id_))

    def _handle_pong(self, msg: dict[str, Any]) -> None:
        id_ = msg.get("id")
        if id_ is not None and not isinstance(id_, str):
            raise RemoteProtocolError("pong id must be a string")
        self._events.append(Pong(id_))

    # ------------------------------------------------------------------ helpers

    def _send(self, msg: dict[str, Any]) -> None:
        self._out.append(encode_message(msg))

    def _require_connected(self, what: str) -> None:
        if self.state is not CONNECTED:
            raise LocalProtocolError(f"cannot send {what} in state {self.state.value}")

    def _invalid(self, exc: RemoteProtocolError, data: str | bytes) -> None:
        self.last_protocol_error = exc
        self.logger.warning("DDP protocol error: %s (frame %.200r)", exc, exc.frame)
        self._events.append(InvalidMessage(exc))
        self._on_invalid(exc, data)

    def _on_invalid(self, exc: RemoteProtocolError, data: str | bytes) -> None:
        """Side-specific reaction to bad input (the server replies with an ``error``)."""

    def _on_no_msg(self, msg: dict[str, Any], data: str | bytes) -> None:
        """A JSON object without ``msg`` (e.g. ``{"server_id": "0"}``)."""
        raise RemoteProtocolError("DDP message without 'msg'", frame=_excerpt(data))

    def _on_unknown(self, msg: dict[str, Any], data: str | bytes) -> None:
        """A message whose ``msg`` has no handler on this side."""
        raise RemoteProtocolError(f"unknown DDP message {msg.get('msg')!r}", frame=_excerpt(data))

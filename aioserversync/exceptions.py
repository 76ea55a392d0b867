"""Every exception aioserversync raises, rooted at :class:`ServerSyncError`.

The tree::

    ServerSyncError
    ├── ProtocolError                     abstract: the DDP conversation went wrong
    │   ├── LocalProtocolError            we asked for something illegal in this state
    │   └── RemoteProtocolError           the peer sent bad JSON/EJSON or an illegal message
    ├── EJSONError (+ ValueError)         a value cannot be encoded or decoded as EJSON
    ├── HandshakeError                    the DDP ``connect`` was refused
    │   └── VersionMismatch               ``failed``: no mutually supported DDP version
    ├── ConnectionClosed                  the link closed; ``code`` and ``reason`` attached
    │   ├── ConnectionClosedOK            closed on purpose (iteration ends quietly)
    │   └── ConnectionClosedError         closed by a failure
    ├── NotConnected (+ ConnectionError)  the operation needs a live link; nothing changed
    │   └── OfflineError                  an online-write update/remove while offline
    ├── MeteorError                       a server error: ``error``, ``reason``, ``details``
    │   ├── MethodError                   a method call failed on the server
    │   │   └── MethodNotFound            404 for a method
    │   ├── SubscriptionError             the server stopped a subscription with an error
    │   │   └── SubscriptionNotFound      404 for a publication
    │   ├── NotAuthorized                 403
    │   └── ServerErrorMessage            a top-level ``error`` message (a frame was rejected)
    ├── WriteError                        the outcome of a queued local write
    │   ├── WriteRejected                 permanent refusal; the record is dead-lettered
    │   ├── WriteConflict                 the remote changed the document; the remote won
    │   └── WriteOutcomeUnknown           sent, then the link dropped before ``result``
    ├── StoreError                        a store backend failed
    │   ├── DuplicateKeyError (+ ValueError)  an insert of an ``_id`` that already exists
    │   ├── QueryError (+ ValueError)     an unsupported or malformed selector, sort or projection
    │   └── ModifierError (+ ValueError)  an unsupported, malformed or self-conflicting modifier
    ├── InvalidDocument (+ ValueError)    a document to write has a field name Meteor refuses
    ├── ConfigurationError (+ ValueError) unknown mode, bad URL, bad store, unsafe hub settings
    ├── InvalidState (+ RuntimeError)     used after close, context manager re-entered, …
    ├── ConcurrencyError (+ RuntimeError) two consumers on a single-consumer stream
    └── SyncTimeout (+ TimeoutError)      ``wait_ready``/``wait_drained``/``call`` timed out

Misuse errors also inherit the builtin they resemble, so ``except ValueError`` keeps working for
callers that do not know this library. Server errors become :class:`MeteorError` subclasses through
a registry keyed by the wire ``error`` code (a number or a string), never by matching text; see
:func:`meteor_error_from_wire`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConcurrencyError",
    "ConfigurationError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "DuplicateKeyError",
    "EJSONError",
    "HandshakeError",
    "InvalidDocument",
    "InvalidState",
    "LocalProtocolError",
    "MeteorError",
    "MethodError",
    "MethodNotFound",
    "ModifierError",
    "NotAuthorized",
    "NotConnected",
    "OfflineError",
    "ProtocolError",
    "QueryError",
    "RemoteProtocolError",
    "ServerErrorMessage",
    "ServerSyncError",
    "StoreError",
    "SubscriptionError",
    "SubscriptionNotFound",
    "SyncTimeout",
    "VersionMismatch",
    "WriteConflict",
    "WriteError",
    "WriteOutcomeUnknown",
    "WriteRejected",
    "meteor_error_from_wire",
]


class ServerSyncError(Exception):
    """Base class of every exception raised by aioserversync."""


# --------------------------------------------------------------------------- protocol


class ProtocolError(ServerSyncError):
    """The DDP conversation broke a rule. Abstract: raise a subclass."""


class LocalProtocolError(ProtocolError):
    """We asked the protocol core for something illegal in its current state."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something illegal: bad JSON or EJSON, or a malformed or unknown message.

    Attributes:
        frame: The offending frame (possibly truncated), when known.
    """

    def __init__(self, message: str, *, frame: str | bytes | None = None) -> None:
        super().__init__(message)
        self.frame = frame


class EJSONError(ServerSyncError, ValueError):
    """A value cannot be encoded to or decoded from Meteor EJSON."""


class HandshakeError(ServerSyncError):
    """The DDP handshake failed."""


class VersionMismatch(HandshakeError):
    """The server answered ``failed``: no DDP version both sides support.

    Attributes:
        suggested: The version the server suggested.
    """

    def __init__(self, suggested: str) -> None:
        super().__init__(f"DDP version negotiation failed; server requested version {suggested!r}")
        self.suggested = suggested


# --------------------------------------------------------------------------- connection


class ConnectionClosed(ServerSyncError):
    """The WebSocket link closed.

    Attributes:
        code: The close code, when known.
        reason: The close reason, when known.
    """

    def __init__(
        self, message: str = "connection closed", *, code: int | None = None, reason: str = ""
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class ConnectionClosedOK(ConnectionClosed):
    """The link was closed on purpose."""


class ConnectionClosedError(ConnectionClosed):
    """The link was closed by a failure."""


class NotConnected(ServerSyncError, ConnectionError):
    """The operation needs a live DDP link and there is none. Nothing was changed."""


class OfflineError(NotConnected):
    """An ``online-write`` update or remove was attempted while the remote is unreachable."""


# --------------------------------------------------------------------------- server errors


class MeteorError(ServerSyncError):
    """An error sent by the DDP server, shaped like ``Meteor.Error``.

    Also used on the server side: raise it from a method or publication handler and it reaches the
    client as Meteor sends it (``isClientSafe``, ``error``, ``reason``, ``details``, ``message``,
    ``errorType``).

    Attributes:
        error: The error code, a number (400, 403, 404, 409, 500) or a string.
        reason: A human-readable reason, or ``None``.
        details: Extra plain-JSON details, or ``None``.
    """

    def __init__(self, error: str | int, reason: str | None = None, details: Any = None) -> None:
        self.error = error
        self.reason = reason
        self.details = details
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The message Meteor builds: ``"reason [error]"``, or ``"[error]"`` without a reason."""
        return f"{self.reason} [{self.error}]" if self.reason else f"[{self.error}]"

    def to_wire(self) -> dict[str, Any]:
        """Return the error object as Meteor puts it on the wire, keys in Meteor's order."""
        out: dict[str, Any] = {"isClientSafe": True, "error": self.error}
        if self.reason is not None:
            out["reason"] = self.reason
        if self.details is not None:
            out["details"] = self.details
        out["message"] = self.message
        out["errorType"] = "Meteor.Error"
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.error!r}, {self.reason!r}, {self.details!r})"


class MethodError(MeteorError):
    """A method call failed on the server."""


class MethodNotFound(MethodError):
    """The server has no method of that name (404)."""


class SubscriptionError(MeteorError):
    """A subscription was stopped by the server with an error (``nosub`` with ``error``)."""


class SubscriptionNotFound(SubscriptionError):
    """The server has no publication of that name (404)."""


class NotAuthorized(MeteorError):
    """The server refused the operation (403)."""


class ServerErrorMessage(MeteorError):
    """A top-level DDP ``error`` message: the server rejected a frame we sent.

    Attributes:
        offending_message: The message the server quoted back, if any.
    """

    def __init__(self, reason: str, offending_message: Any = None) -> None:
        super().__init__("error", reason)
        self.offending_message = offending_message


# (code, context) -> class. Context is "method" or "sub". Codes may be numbers or strings.
_METHOD_CODES: dict[str | int, type[MeteorError]] = {404: MethodNotFound, 403: NotAuthorized}
_SUB_CODES: dict[str | int, type[MeteorError]] = {404: SubscriptionNotFound, 403: NotAuthorized}


def register_error_code(
    code: str | int, cls: type[MeteorError], *, context: str = "method"
) -> None:
    """Map a wire error code to an exception class.

    Args:
        code: The ``error`` value as sent by the server.
        cls: A :class:`MeteorError` subclass to raise for it.
        context: ``"method"`` or ``"sub"``.

    Raises:
        ConfigurationError: If ``context`` is unknown or ``cls`` is not a MeteorError.
    """
    if not (isinstance(cls, type) and issubclass(cls, MeteorError)):
        raise ConfigurationError("cls must be a MeteorError subclass")
    if context == "method":
        _METHOD_CODES[code] = cls
    elif context == "sub":
        _SUB_CODES[code] = cls
    else:
        raise ConfigurationError(f"unknown context {context!r}; use 'method' or 'sub'")


def meteor_error_from_wire(obj: Any, *, context: str = "method") -> MeteorError:
    """Build the matching :class:`MeteorError` subclass from a wire error object.

    Accepts a string or a number in ``error`` (ddp-facts §4.3) and tolerates missing keys.

    Args:
        obj: The ``error`` object of a ``result`` or ``nosub`` message.
        context: ``"method"`` or ``"sub"``, which picks the default class.
    """
    if not isinstance(obj, dict):
        return (MethodError if context == "method" else SubscriptionError)(
            500, f"malformed error object: {obj!r}"
        )
    code = obj.get("error", 500)
    if isinstance(code, bool) or not isinstance(code, str | int | float):
        code = str(code)
    if isinstance(code, float) and code.is_integer():
        code = int(code)
    reason = obj.get("reason")
    if reason is not None and not isinstance(reason, str):
        reason = str(reason)
    table = _METHOD_CODES if context == "method" else _SUB_CODES
    default: type[MeteorError] = MethodError if context == "method" else SubscriptionError
    cls = table.get(code, default)
    return cls(code, reason, obj.get("details"))


# --------------------------------------------------------------------------- writes


class WriteError(ServerSyncError):
    """The outcome of a queued local write, raised where the caller awaits it.

    Attributes:
        collection: The collection name.
        doc_id: The document id (wire form).
        seq: The outbox sequence number, when there was a record.
    """

    def __init__(
        self, message: str, *, collection: str = "", doc_id: str = "", seq: int | None = None
    ) -> None:
        super().__init__(message)
        self.collection = collection
        self.doc_id = doc_id
        self.seq = seq


class WriteRejected(WriteError):
    """The server refused the write for good (403, validation). The record is dead-lettered.

    Attributes:
        cause_error: The server's :class:`MeteorError`, when there was one.
    """

    def __init__(self, message: str, *, cause_error: MeteorError | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.cause_error = cause_error


class WriteConflict(WriteError):
    """The remote changed the document since the local change was made; the remote won.

    Attributes:
        local: The discarded local document (``None`` for a local remove).
        base: The remote version the local change was made against (``None`` for an insert).
        remote: The remote document that won (``None`` if the remote removed it).
    """

    def __init__(
        self,
        message: str,
        *,
        local: dict[str, Any] | None = None,
        base: dict[str, Any] | None = None,
        remote: dict[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.local = local
        self.base = base
        self.remote = remote


class WriteOutcomeUnknown(WriteError):
    """The write was sent but the link dropped before its ``result``: it may or may not apply."""


# --------------------------------------------------------------------------- stores


class StoreError(ServerSyncError):
    """A store backend failed; the original error is chained as ``__cause__``."""


class DuplicateKeyError(StoreError, ValueError):
    """An insert used an ``_id`` that already exists in the collection."""


class QueryError(StoreError, ValueError):
    """A selector, sort or projection is malformed or uses an unsupported operator."""


class ModifierError(StoreError, ValueError):
    """An update modifier is malformed, unsupported, or conflicts with itself."""


# --------------------------------------------------------------------------- misuse


class ConfigurationError(ServerSyncError, ValueError):
    """A setting is invalid: unknown mode, bad URL, unknown store scheme, unsafe hub settings."""


class InvalidDocument(ServerSyncError, ValueError):
    """A document to write has a field name Meteor's client refuses (``$`` first, ``.``, NUL)."""


class InvalidState(ServerSyncError, RuntimeError):
    """The object cannot do that in its current state (closed, not started, re-entered)."""


class ConcurrencyError(ServerSyncError, RuntimeError):
    """Two consumers used a single-consumer object at the same time."""


class SyncTimeout(ServerSyncError, TimeoutError):
    """A bounded wait (``wait_ready``, ``wait_drained``, ``call``) ran out of time."""

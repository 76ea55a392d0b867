"""Events produced by the sans-I/O DDP cores: one class per wire message, plus a few synthetic.

Events are frozen, slotted, keyword-friendly dataclasses. EJSON members (``fields``, ``params``,
``result``) are decoded Python values, unless the core was built with ``decode_data=False``, in
which case ``Added``/``Changed``/``AddedBefore`` ``fields`` stay in (validated) EJSON wire form.
Ids of ``added``/``changed``/``removed`` are kept in wire form (``id_stringify``; ddp-facts §7.2):
parse them with :func:`aioserversync.ids.id_parse` when the real ``_id`` is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from ..exceptions import MeteorError, RemoteProtocolError

__all__ = [
    "Added",
    "AddedBefore",
    "Changed",
    "ClientEvent",
    "Connect",
    "Connected",
    "DataEvent",
    "Failed",
    "InvalidMessage",
    "Method",
    "MethodDone",
    "MovedBefore",
    "NoSub",
    "Ping",
    "Pong",
    "Ready",
    "Removed",
    "Result",
    "ServerError",
    "ServerEvent",
    "Sub",
    "Unsub",
    "Updated",
]


# --------------------------------------------------------------------------- both directions


@dataclass(frozen=True, slots=True)
class Ping:
    """A ``ping`` arrived (already answered with ``pong`` by the core)."""

    id: str | None = None


@dataclass(frozen=True, slots=True)
class Pong:
    """A ``pong`` arrived."""

    id: str | None = None


@dataclass(frozen=True, slots=True)
class InvalidMessage:
    """The peer sent a frame the core refused; nothing was raised.

    The core keeps going (as Meteor does). On the server side the Meteor error reply has already
    been queued.
    """

    error: RemoteProtocolError


# --------------------------------------------------------------------------- server -> client


@dataclass(frozen=True, slots=True)
class Connected:
    """``connected``: a new DDP session (there is no session resumption, ddp-facts §1.3)."""

    session: str


@dataclass(frozen=True, slots=True)
class Failed:
    """``failed``: the server wants another protocol version."""

    version: str


@dataclass(frozen=True, slots=True)
class Added:
    """``added``: a document (``fields`` never holds ``_id``)."""

    collection: str
    id: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Changed:
    """``changed``: top-level fields replaced (``fields``) or removed (``cleared``)."""

    collection: str
    id: str
    fields: dict[str, Any]
    cleared: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Removed:
    """``removed``."""

    collection: str
    id: str


@dataclass(frozen=True, slots=True)
class AddedBefore:
    """``addedBefore`` (specified but never sent by Meteor, ddp-facts §3.2)."""

    collection: str
    id: str
    fields: dict[str, Any]
    before: str | None


@dataclass(frozen=True, slots=True)
class MovedBefore:
    """``movedBefore`` (specified but never sent by Meteor)."""

    collection: str
    id: str
    before: str | None


@dataclass(frozen=True, slots=True)
class Ready:
    """``ready`` for one or more subscriptions."""

    subs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NoSub:
    """``nosub``: the subscription ended, with the server's error if it failed."""

    id: str
    error: MeteorError | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """``result`` of a method we called (emitted when it arrives).

    ``error`` is the server's :class:`~aioserversync.exceptions.MeteorError`, or a
    :class:`~aioserversync.exceptions.RemoteProtocolError` when the result was not valid EJSON.
    """

    id: str
    result: Any = None
    error: MeteorError | RemoteProtocolError | None = None


@dataclass(frozen=True, slots=True)
class Updated:
    """``updated``: the writes of these methods are visible."""

    methods: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MethodDone:
    """Synthetic: both ``result`` and ``updated`` have arrived for a method (either order)."""

    id: str
    result: Any = None
    error: MeteorError | RemoteProtocolError | None = None


@dataclass(frozen=True, slots=True)
class ServerError:
    """A top-level ``error`` message: the server rejected something we sent."""

    reason: str
    offending_message: Any = None


# --------------------------------------------------------------------------- client -> server


@dataclass(frozen=True, slots=True)
class Connect:
    """``connect`` accepted: the session is open (``connected`` is already queued)."""

    version: str
    session: str


@dataclass(frozen=True, slots=True)
class Sub:
    """``sub``."""

    id: str
    name: str
    params: list[Any]


@dataclass(frozen=True, slots=True)
class Unsub:
    """``unsub``."""

    id: str


@dataclass(frozen=True, slots=True)
class Method:
    """``method``."""

    id: str
    method: str
    params: list[Any]
    random_seed: str | None = None


DataEvent: TypeAlias = Added | Changed | Removed | AddedBefore | MovedBefore | Ready | NoSub
ClientEvent: TypeAlias = (
    Connected
    | Failed
    | Ping
    | Pong
    | DataEvent
    | Result
    | Updated
    | MethodDone
    | ServerError
    | InvalidMessage
)
ServerEvent: TypeAlias = Connect | Ping | Pong | Sub | Unsub | Method | InvalidMessage

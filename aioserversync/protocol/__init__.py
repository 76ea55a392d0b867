"""The sans-I/O DDP core: text frames in, events and frames out.

* :class:`ClientProtocol` (:mod:`.client`) and :class:`ServerProtocol` (:mod:`.server`) are the
  two sides, both built on :class:`DDPProtocol` (:mod:`.connection`).
* :mod:`.events` holds one frozen event class per wire message.
* :class:`Heartbeat` (:mod:`.heartbeat`) is Meteor's liveness rule on given timestamps.

Nothing in this package imports ``asyncio`` or ``websockets`` (``tests/test_layering.py`` checks).
"""

from .client import ClientProtocol, PendingMethod
from .connection import (
    CLOSED,
    CONNECTED,
    CONNECTING,
    DEFAULT_MAX_SIZE,
    FAILED,
    SUPPORTED_VERSIONS,
    ConnState,
    DDPProtocol,
)
from .events import (
    Added,
    AddedBefore,
    Changed,
    ClientEvent,
    Connect,
    Connected,
    DataEvent,
    Failed,
    InvalidMessage,
    Method,
    MethodDone,
    MovedBefore,
    NoSub,
    Ping,
    Pong,
    Ready,
    Removed,
    Result,
    ServerError,
    ServerEvent,
    Sub,
    Unsub,
    Updated,
)
from .heartbeat import Heartbeat
from .server import ServerProtocol

__all__ = [
    "CLOSED",
    "CONNECTED",
    "CONNECTING",
    "DEFAULT_MAX_SIZE",
    "FAILED",
    "SUPPORTED_VERSIONS",
    "Added",
    "AddedBefore",
    "Changed",
    "ClientEvent",
    "ClientProtocol",
    "ConnState",
    "Connect",
    "Connected",
    "DDPProtocol",
    "DataEvent",
    "Failed",
    "Heartbeat",
    "InvalidMessage",
    "Method",
    "MethodDone",
    "MovedBefore",
    "NoSub",
    "PendingMethod",
    "Ping",
    "Pong",
    "Ready",
    "Removed",
    "Result",
    "ServerError",
    "ServerEvent",
    "ServerProtocol",
    "Sub",
    "Unsub",
    "Updated",
]

"""The hub: a DDP server with revisions, catch-up and compare-and-set writes (docs/protocol.md).

* :class:`ServerSyncServer`: the hub itself (:mod:`.server`);
* :class:`HubConfig` and :func:`run_hub`: build and run one from plain settings (:mod:`.run`);
* :func:`load_tokens`: read a tokens file (:mod:`.auth`).
"""

from __future__ import annotations

from .auth import LOGGED_OUT, check_bind, is_loopback, load_tokens
from .collection import FEED_COLLECTION_PREFIX, FEED_PUBLICATION, MUTATIONS_PREFIX, HubCollection
from .run import HubConfig, build_hub, run_hub, ssl_context
from .server import HubServing, ServerSyncServer

__all__ = [
    "FEED_COLLECTION_PREFIX",
    "FEED_PUBLICATION",
    "LOGGED_OUT",
    "MUTATIONS_PREFIX",
    "HubCollection",
    "HubConfig",
    "HubServing",
    "ServerSyncServer",
    "build_hub",
    "check_bind",
    "is_loopback",
    "load_tokens",
    "run_hub",
    "ssl_context",
]

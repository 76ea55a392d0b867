"""Build and run a hub from plain settings (what a command line gives).

::

    config = HubConfig(store="hub.sqlite3", collections=["items", "notes"], host="0.0.0.0",
                       port=3000, certfile="hub.pem", keyfile="hub.key",
                       tokens_file="tokens.txt")
    asyncio.run(run_hub(config))          # until SIGINT or SIGTERM, then a clean stop

``store`` is a SQLite path or a store URL (``sqlite:///…``, ``memory://``, ``mongodb://…/db``).
The tokens file format is described in :mod:`aioserversync.hub.auth`. With ``certfile`` the hub
serves ``wss://`` (``keyfile`` may be left out when the certificate file also holds the key).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from ..exceptions import ConfigurationError
from .auth import load_tokens
from .retention import RetentionSpec
from .server import HubServing, ServerSyncServer

__all__ = ["HubConfig", "build_hub", "run_hub", "ssl_context"]


@dataclass
class HubConfig:
    """Settings of a hub run by :func:`run_hub`.

    Attributes:
        store: SQLite file path or store URL.
        collections: The collections to expose (at least one).
        host: Address to listen on (a non-loopback one needs tokens or ``insecure_bind``).
        port: Port (0: a free one).
        certfile: PEM certificate (chain) for TLS; ``None`` for plain ``ws://``.
        keyfile: PEM private key, when not in ``certfile``.
        tokens_file: A tokens file (JSON object or ``<token> <identity>`` lines).
        tokens: Tokens given directly (merged with the file's).
        allow_anonymous: Let callers that did not log in read and write.
        insecure_bind: Allow a non-loopback address without authentication.
        max_pull: Largest pull page.
        tombstone_retention: ``timedelta`` (age), ``int`` (revisions) or ``None`` (forever).
        mutation_retention: Same forms; ``None``: as long as tombstones.
        compression: ``"deflate"`` or ``None`` (faster on a LAN).
        heartbeat_interval: DDP heartbeat interval in seconds (0 disables).
    """

    store: str = "hub.sqlite3"
    collections: Sequence[str] = ()
    host: str = "127.0.0.1"
    port: int = 3000
    certfile: str | None = None
    keyfile: str | None = None
    tokens_file: str | None = None
    tokens: Mapping[str, str] = field(default_factory=dict)
    allow_anonymous: bool = False
    insecure_bind: bool = False
    max_pull: int = 10000
    tombstone_retention: RetentionSpec = timedelta(days=30)
    mutation_retention: RetentionSpec = None
    compression: Literal["deflate"] | None = "deflate"
    heartbeat_interval: float = 15.0


def ssl_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """A server TLS context from PEM files.

    Raises:
        ConfigurationError: The files cannot be loaded.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"cannot load TLS certificate {certfile!r}: {exc}") from exc
    return ctx


def build_hub(config: HubConfig) -> ServerSyncServer:
    """Build (not start) the hub a config describes.

    Raises:
        ConfigurationError: For an invalid config (no collection, unreadable tokens file, …).
    """
    if not config.collections:
        raise ConfigurationError("name at least one collection to serve")
    if config.keyfile and not config.certfile:
        raise ConfigurationError("keyfile needs certfile")
    tokens: dict[str, Any] = {}
    if config.tokens_file:
        tokens.update(load_tokens(config.tokens_file))
    tokens.update(config.tokens)
    hub = ServerSyncServer(
        config.store,
        tokens=tokens or None,
        allow_anonymous=config.allow_anonymous,
        insecure_bind=config.insecure_bind,
        max_pull=config.max_pull,
        tombstone_retention=config.tombstone_retention,
        mutation_retention=config.mutation_retention,
        compression=config.compression,
        heartbeat_interval=config.heartbeat_interval,
    )
    for name in dict.fromkeys(config.collections):
        hub.collection(name)
    return hub


async def run_hub(
    config: HubConfig,
    *,
    started: Callable[[HubServing], Any] | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
) -> None:
    """Serve a hub until ``stop`` is set or SIGINT/SIGTERM arrives, then shut down cleanly.

    Args:
        config: The settings.
        started: Called with the serving hub (``.url``, ``.port``) once it listens.
        stop: Set it to stop the hub (one is made if not given).
        handle_signals: Install SIGINT and SIGTERM handlers that stop the hub (main thread
            only; elsewhere this is skipped).

    Raises:
        ConfigurationError: For an invalid config, or an unsafe bind.
        StoreError: The store cannot be opened.
        OSError: The address cannot be bound.
    """
    hub = build_hub(config)
    ctx = ssl_context(config.certfile, config.keyfile) if config.certfile else None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            installed.append(sig)
    try:
        async with hub.serve(config.host, config.port, ssl=ctx) as running:
            hub.logger.info(
                "hub serving %s from %s at %s",
                ", ".join(hub.collections),
                hub.store.name,
                running.url,
            )
            if started is not None:
                result = started(running)
                if asyncio.iscoroutine(result):
                    await result
            await stop.wait()
            hub.logger.info("hub stopping")
    finally:
        for sig in installed:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await hub.close()

"""``aioserversync hub``: serve collections from a store with :func:`aioserversync.hub.run_hub`.

It reports ``listening`` (``url``, ``port``, ``store``, ``collections``) once it accepts
connections, and ``stopped`` after SIGINT or SIGTERM and a clean shutdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .output import Output

__all__ = ["HubOptions", "run_hub"]


@dataclass(slots=True)
class HubOptions:
    """What ``hub`` serves.

    Attributes:
        store: The hub's store URL.
        collections: The collections to serve.
        host: Address to listen on.
        port: Port to listen on (0: a free one, reported in the ``listening`` event).
        tls_cert: PEM certificate chain for ``wss://``.
        tls_key: PEM private key (when not in ``tls_cert``).
        tokens: A tokens file (JSON object ``{token: identity}`` or ``<token> <identity>`` lines).
        allow_anonymous: Let callers that did not log in read and write.
        insecure_bind: Allow a non-loopback address without tokens.
    """

    store: str
    collections: Sequence[str]
    host: str = "127.0.0.1"
    port: int = 3000
    tls_cert: str | None = None
    tls_key: str | None = None
    tokens: str | None = None
    allow_anonymous: bool = False
    insecure_bind: bool = False


async def run_hub(opts: HubOptions, out: Output) -> int:
    """Serve until SIGINT or SIGTERM; return the exit code.

    Raises:
        ConfigurationError: Bad settings, unreadable TLS or tokens files, or an unsafe bind
            (exit code 2).
    """
    from ..hub import HubConfig
    from ..hub import run_hub as serve_hub

    config = HubConfig(
        store=opts.store,
        collections=list(opts.collections),
        host=opts.host,
        port=opts.port,
        certfile=opts.tls_cert,
        keyfile=opts.tls_key,
        tokens_file=opts.tokens,
        allow_anonymous=opts.allow_anonymous,
        insecure_bind=opts.insecure_bind,
    )

    def started(running: Any) -> None:
        out.event(
            "listening",
            url=running.url,
            port=running.port,
            store=opts.store,
            collections=list(dict.fromkeys(opts.collections)),
        )

    await serve_hub(config, started=started)
    out.event("stopped", exit_code=0)
    return 0

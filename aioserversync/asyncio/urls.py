"""Mapping the URLs a DDP client accepts to the raw WebSocket endpoint (ddp-facts §1.1).

====================================  =========================================================
given                                 connects to
====================================  =========================================================
``http://host:3000``                  ``ws://host:3000/websocket``
``https://host/app/?x=1``             ``wss://host/app/websocket?x=1``
``ddp+sockjs://host/path``            ``wss://host/path/websocket``
``ddpi+sockjs://host``                ``ws://host/websocket``
``ws://host/custom``, ``wss://…``     unchanged
====================================  =========================================================

As in Meteor's ``DDP.connect``, a ``*`` in the host of an ``http(s)``/``ddp(i)+sockjs`` URL is
replaced by a random digit.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit, urlunsplit

from ..exceptions import ConfigurationError

__all__ = ["websocket_url"]

_SCHEMES = {
    "http": "ws",
    "https": "wss",
    "ddp+sockjs": "wss",
    "ddpi+sockjs": "ws",
}


def websocket_url(url: str) -> str:
    """Return the raw DDP WebSocket URL for ``url``.

    Args:
        url: ``http(s)://host[:port][/path]`` (Meteor's ``DDP.connect`` form),
            ``ddp+sockjs://``/``ddpi+sockjs://``, or a full ``ws(s)://`` URL used as is.

    Raises:
        ConfigurationError: For any other scheme, a missing host, or a fragment.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"URL must be a string, not {type(url).__name__}")
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise ConfigurationError(f"invalid URL {url!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if not parts.hostname:
        raise ConfigurationError(f"URL {url!r} has no host")
    if parts.fragment:
        raise ConfigurationError(f"URL {url!r} must not have a fragment")
    if scheme in ("ws", "wss"):
        return urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, ""))
    new_scheme = _SCHEMES.get(scheme)
    if new_scheme is None:
        raise ConfigurationError(
            f"unsupported URL scheme {parts.scheme!r} in {url!r}; "
            "use http(s)://, ws(s)://, ddp+sockjs:// or ddpi+sockjs://"
        )
    netloc = "".join(str(secrets.randbelow(10)) if c == "*" else c for c in parts.netloc)
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((new_scheme, netloc, path + "websocket", parts.query, ""))

"""Who may use a hub: resume tokens, per-collection permissions, and the bind check.

Callers log in with DDP ``login`` and ``{"resume": "<token>"}`` (ddp-facts §9.2). A token maps to
an *identity* (any value; its ``str()`` is the user id sent back) through a table or a callback.
An unknown token gets Meteor's 403 "You've been logged out by the server. Please log in again."
(§9.3). A session that has not logged in is anonymous: it may read or write only when the hub was
built with ``allow_anonymous=True``.

Tokens file format (:func:`load_tokens`): either a JSON object ``{"<token>": "<identity>", …}``, or
a text file with one ``<token> <identity>`` pair per line (separated by whitespace; the identity
is the rest of the line); blank lines and lines starting with ``#`` are ignored.

Binding: :func:`check_bind` refuses a non-loopback address unless authentication is configured
(a token table or an ``authenticate`` callback) or ``insecure_bind=True`` is given explicitly.
``allow_anonymous`` alone is not enough: it is meant for development on one machine.
"""

from __future__ import annotations

import inspect
import ipaddress
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import orjson

from ..exceptions import ConfigurationError, MeteorError, NotAuthorized

__all__ = [
    "LOGGED_OUT",
    "Authenticator",
    "Permissions",
    "ReadRule",
    "WriteRule",
    "check_bind",
    "is_loopback",
    "load_tokens",
    "maybe_await",
]

LOGGED_OUT = "You've been logged out by the server. Please log in again."
"""Meteor's reason for a resume login with an unknown token (ddp-facts §9.3)."""

TOKEN_LIFETIME = timedelta(days=90)
"""``tokenExpires`` of a successful login is this far ahead (Meteor's default expiry)."""

Authenticate: TypeAlias = Callable[[str], Any]
"""``authenticate(token) -> identity | None`` (plain or async)."""
ReadRule: TypeAlias = Callable[[Any, str], Any]
"""``read(identity, collection) -> bool`` (plain or async)."""
WriteRule: TypeAlias = Callable[[Any, str, str, Any, Any], Any]
"""``write(identity, collection, op, doc_id, doc) -> bool`` (plain or async)."""


async def maybe_await(value: Any) -> Any:
    """Await ``value`` if it is awaitable, else return it."""
    if inspect.isawaitable(value):
        return await value
    return value


def access_denied() -> MeteorError:
    """The 403 every refused operation gets."""
    return NotAuthorized(403, "Access denied")


def load_tokens(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a tokens file: a JSON object, or ``<token> <identity>`` lines (module docstring).

    Raises:
        ConfigurationError: The file cannot be read, is malformed, or holds no token.
    """
    try:
        text = open(path, encoding="utf-8").read()  # noqa: SIM115 - read at once
    except OSError as exc:
        raise ConfigurationError(f"cannot read tokens file {os.fspath(path)!r}: {exc}") from exc
    stripped = text.strip()
    tokens: dict[str, str] = {}
    if stripped.startswith("{"):
        try:
            data = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise ConfigurationError(
                f"tokens file {os.fspath(path)!r}: invalid JSON: {exc}"
            ) from exc
        for token, identity in data.items():
            if not isinstance(identity, str | int) or isinstance(identity, bool) or not token:
                raise ConfigurationError(
                    f"tokens file {os.fspath(path)!r}: the identity of each token must be a "
                    "string or an integer"
                )
            tokens[token] = str(identity)
    else:
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 1)
            if len(parts) != 2:
                raise ConfigurationError(
                    f"tokens file {os.fspath(path)!r}, line {number}: expected '<token> <identity>'"
                )
            tokens[parts[0]] = parts[1].strip()
    if not tokens:
        raise ConfigurationError(f"tokens file {os.fspath(path)!r} holds no token")
    return tokens


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` names only the loopback interface (``None``/``""`` mean every interface)."""
    if not host:
        return False
    name = host.strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to any interface


def check_bind(host: str | None, *, authenticated: bool, insecure_bind: bool) -> None:
    """Refuse to listen beyond loopback without authentication.

    Raises:
        ConfigurationError: ``host`` is not a loopback address, no authentication is configured
            and ``insecure_bind`` is false.
    """
    if authenticated or insecure_bind or is_loopback(host):
        return
    where = host or "all interfaces"
    raise ConfigurationError(
        f"refusing to serve the hub on {where!r} without authentication: anyone who can reach "
        "it could read and write every collection. Configure tokens= (or a tokens file) or "
        "authenticate=, bind to 127.0.0.1, or pass insecure_bind=True to accept this "
        "deliberately."
    )


class Authenticator:
    """Resolves resume tokens to identities.

    Args:
        tokens: ``token -> identity``.
        authenticate: ``authenticate(token) -> identity | None`` (plain or async), asked when
            the token is not in ``tokens``.
    """

    def __init__(
        self, tokens: Mapping[str, Any] | None = None, authenticate: Authenticate | None = None
    ) -> None:
        if tokens is not None and not isinstance(tokens, Mapping):
            raise ConfigurationError("tokens must be a mapping of token -> identity")
        if authenticate is not None and not callable(authenticate):
            raise ConfigurationError("authenticate must be callable")
        self.tokens = dict(tokens) if tokens is not None else None
        self.authenticate = authenticate

    @property
    def configured(self) -> bool:
        """Whether any way to log in is configured."""
        return self.tokens is not None or self.authenticate is not None

    async def resolve(self, token: str) -> Any:
        """Return the identity of ``token``, or ``None`` when it is not valid."""
        if self.tokens is not None:
            identity = self.tokens.get(token)
            if identity is not None:
                return identity
        if self.authenticate is not None:
            return await maybe_await(self.authenticate(token))
        return None

    async def login(self, params: Any) -> tuple[Any, dict[str, Any]]:
        """Check a ``login`` method's first parameter; return ``(identity, result)``.

        Raises:
            MeteorError: 400 "Unrecognized options for login request" for anything but a
                resume login; 403 (:data:`LOGGED_OUT`) for an unknown token.
        """
        if not isinstance(params, dict) or not isinstance(params.get("resume"), str):
            raise MeteorError(400, "Unrecognized options for login request")
        token = params["resume"]
        identity = await self.resolve(token) if token else None
        if identity is None:
            raise NotAuthorized(403, LOGGED_OUT)
        result = {
            "id": str(identity),
            "token": token,
            "tokenExpires": datetime.now(UTC) + TOKEN_LIFETIME,
            "type": "resume",
        }
        return identity, result


class Permissions:
    """Read and write rules of one exposed collection.

    Args:
        allow_anonymous: Whether callers that did not log in are treated as allowed callers.
        read: ``read(identity, collection) -> bool``; ``None`` allows every allowed caller.
        write: ``write(identity, collection, op, doc_id, doc) -> bool``; ``None`` allows every
            allowed caller. ``op`` is ``"insert"``, ``"update"`` or ``"remove"``; ``doc`` the
            decoded document after the change (the current one for a remove), with ``_id``.
    """

    __slots__ = ("allow_anonymous", "read", "write")

    def __init__(
        self, allow_anonymous: bool, read: ReadRule | None, write: WriteRule | None
    ) -> None:
        for name, rule in (("read", read), ("write", write)):
            if rule is not None and not callable(rule):
                raise ConfigurationError(f"{name} must be callable or None")
        self.allow_anonymous = allow_anonymous
        self.read = read
        self.write = write

    def admitted(self, identity: Any) -> bool:
        """Whether the caller may use the collection at all (logged in, or anonymous allowed)."""
        return identity is not None or self.allow_anonymous

    async def may_read(self, identity: Any, collection: str) -> bool:
        """Apply the read rule."""
        if not self.admitted(identity):
            return False
        if self.read is None:
            return True
        return bool(await maybe_await(self.read(identity, collection)))

    @property
    def checks_writes(self) -> bool:
        """Whether a write rule must see each document."""
        return self.write is not None

    async def may_write(
        self, identity: Any, collection: str, op: str, doc_id: Any, doc: Any
    ) -> bool:
        """Apply the write rule to one change."""
        if not self.admitted(identity):
            return False
        if self.write is None:
            return True
        return bool(await maybe_await(self.write(identity, collection, op, doc_id, doc)))

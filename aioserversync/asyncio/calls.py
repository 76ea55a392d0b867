"""Method calls and logins of :class:`~aioserversync.asyncio.client.DDPClient`.

A call returns once both ``result`` and ``updated`` arrived (ddp-facts §4.4). When the link drops
before ``result``, a ``retry=True`` call is re-sent verbatim on the next session (same id, params
and ``randomSeed``, §4.6); any other call fails with
:class:`~aioserversync.exceptions.WriteOutcomeUnknown`. Logins remember the resume token, which the
connection part resumes first on every new session (§9.4).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Literal

from ..exceptions import NotConnected, ServerSyncError, SyncTimeout
from .client_core import ClientCore
from .client_state import ClientState

__all__ = ["CallsMixin"]

CONNECTED = ClientState.CONNECTED


class _Call:
    __slots__ = ("future", "id", "name", "retry")

    def __init__(self, id: str, name: str, retry: bool, fut: asyncio.Future[Any]) -> None:
        self.id = id
        self.name = name
        self.retry = retry
        self.future = fut


class CallsMixin(ClientCore):
    """``call``, ``login_with_token``, ``login_with_password`` and ``logout``."""

    async def call(
        self,
        name: str,
        *params: Any,
        timeout: float | None = None,
        retry: bool = False,
        random_seed: str | None = None,
        raw_result: bool | Literal["unchecked"] = False,
        raw_params: bool = False,
        wait_connected: bool = False,
    ) -> Any:
        """Call a method; return once both ``result`` and ``updated`` arrived.

        Args:
            name: The method name.
            *params: The parameters (Python values, EJSON-encoded here).
            timeout: Seconds to wait at most (``None``: no limit). The call is then forgotten:
                a late result is ignored.
            retry: Re-send the call verbatim (same id, params, ``randomSeed``) on the next
                session if the link drops before its ``result``. Only for calls that are safe
                to run twice (ddp-facts §4.6).
            random_seed: The ``randomSeed`` to send.
            raw_result: Return the result in EJSON wire form (validated, not decoded);
                ``"unchecked"``: as received, for a caller that validates it itself.
            raw_params: ``params`` are already in EJSON wire form; they are sent as they are
                (checked to be JSON only).
            wait_connected: Wait for a session instead of raising NotConnected.

        Returns:
            The method's result (``None`` when it returned nothing).

        Raises:
            MeteorError: The server's error (``MethodNotFound`` for 404, ``NotAuthorized`` for
                403, ``MethodError`` otherwise).
            NotConnected: No session (and ``wait_connected`` is false).
            WriteOutcomeUnknown: The link dropped before ``result`` and ``retry`` is false.
            SyncTimeout: ``timeout`` ran out.
            EJSONError: A parameter cannot be encoded.
            ConnectionClosedOK: The client was closed meanwhile.
        """
        self._check_usable()
        try:
            async with asyncio.timeout(timeout):
                if self._state is not CONNECTED:
                    if not wait_connected:
                        raise NotConnected(f"not connected to {self.url}")
                    await self.wait_connected()
                return await self._call(name, params, retry, random_seed, raw_result, raw_params)
        except TimeoutError as exc:
            if isinstance(exc, ServerSyncError):
                raise
            raise SyncTimeout(f"method {name!r} got no answer within {timeout}s") from None

    async def _call(
        self,
        name: str,
        params: tuple[Any, ...],
        retry: bool,
        random_seed: str | None,
        raw_result: bool | Literal["unchecked"],
        raw_params: bool = False,
    ) -> Any:
        proto = self._proto
        assert proto is not None
        id_ = str(self._next_method_id)
        proto.send_method(
            name,
            params,
            random_seed=random_seed,
            id=id_,
            decode_result=None if raw_result == "unchecked" else not raw_result,
            raw_params=raw_params,
        )
        self._next_method_id += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[id_] = _Call(id_, name, retry, fut)
        try:
            await self._flush()
            return await asyncio.shield(fut)
        finally:
            if not fut.done():
                self._forget_call(id_)

    def _forget_call(self, id_: str) -> None:
        call = self._calls.pop(id_, None)
        if call is not None and not call.future.done():
            call.future.cancel()
        self._resend.pop(id_, None)
        if self._proto is not None:
            self._proto.forget_method(id_)

    async def login_with_token(self, token: str, *, timeout: float | None = None) -> Any:
        """Log in with a resume token; it is remembered and resumed on every reconnect.

        Returns:
            The server's result (``{"id", "token", "tokenExpires", "type"}``).

        Raises:
            NotAuthorized: The token was refused (403).
            NotConnected: No session.
        """
        return await self._login({"resume": token}, timeout)

    async def login_with_password(
        self, user: str, password: str, *, timeout: float | None = None, keep: bool = False
    ) -> Any:
        """Log in with a password (sent as its SHA-256 digest, ddp-facts §9.1).

        Args:
            user: A username, or an email address (anything containing ``@``).
            password: The plain password; only its hex SHA-256 digest is sent.
            timeout: Seconds to wait at most.
            keep: Keep the digest in memory: when the server refuses the resume token at a
                reconnect (it expired, or was revoked), log in with it again before the
                subscriptions are sent, instead of dropping them.

        Returns:
            The server's result; its resume token is remembered for reconnects.

        Raises:
            NotAuthorized: Wrong credentials (403).
            NotConnected: No session.
        """
        digest = hashlib.sha256(password.encode("utf-8")).hexdigest()
        selector = {"email": user} if "@" in user else {"username": user}
        params = {"user": selector, "password": {"digest": digest, "algorithm": "sha-256"}}
        result = await self._login(params, timeout)
        self._password_login = params if keep else None
        return result

    async def _login(self, params: dict[str, Any], timeout: float | None) -> Any:
        result = await self.call("login", params, timeout=timeout, retry=True)
        self._remember_login(result)
        return result

    async def logout(self, *, timeout: float | None = None) -> None:
        """Forget the stored login and, when connected, call ``logout`` on the server.

        Raises:
            MeteorError: The server refused the logout.
        """
        self._token = None
        self._password_login = None
        self._user_id = None
        if self._state is CONNECTED:
            await self.call("logout", timeout=timeout)

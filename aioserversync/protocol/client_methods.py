"""Method bookkeeping of the DDP client core: ``method`` out, ``result`` and ``updated`` in.

A method is finished only when both ``result`` and ``updated`` have arrived, in either order
(``updated`` usually comes first, ddp-facts §4.4); a synthetic
:class:`~aioserversync.protocol.events.MethodDone` reports it. ``result`` and ``updated`` for ids
that are not outstanding are ignored (§4.6). :class:`PendingMethod` keeps a call's parameters in
wire form, so a new connection can re-send it verbatim.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from .. import ejson
from ..exceptions import (
    EJSONError,
    LocalProtocolError,
    MeteorError,
    RemoteProtocolError,
    meteor_error_from_wire,
)
from .connection import DDPProtocol
from .events import MethodDone, Result, Updated

__all__ = ["MethodCalls", "PendingMethod", "optional_before", "require_str", "str_list"]

_decode_inplace = ejson.decode_inplace
_validate = ejson.validate


@dataclass(slots=True)
class PendingMethod:
    """A method sent on a connection that has not yet received both ``result`` and ``updated``.

    ``params`` are kept in EJSON wire form, so :meth:`ClientProtocol.resend_method` puts exactly
    the same frame on a new connection (same id, params and ``randomSeed``, ddp-facts §4.6).

    Attributes:
        id: The method id.
        method: The method name.
        params: The parameters, EJSON-encoded.
        random_seed: The ``randomSeed`` sent with it, if any.
        decode_result: Whether the result is decoded (``False``: validated and kept in wire
            form; ``None``: kept as received, the caller checks it).
        has_result: Whether ``result`` arrived.
        result: The result (when ``has_result`` and no error).
        error: The server's error when the call failed, or a RemoteProtocolError when its
            result was not valid EJSON.
        has_updated: Whether ``updated`` arrived.
    """

    id: str
    method: str
    params: list[Any]
    random_seed: str | None = None
    decode_result: bool | None = True
    has_result: bool = False
    result: Any = None
    error: MeteorError | RemoteProtocolError | None = None
    has_updated: bool = False

    def to_wire(self) -> dict[str, Any]:
        """Return the ``method`` message as it goes on the wire."""
        msg: dict[str, Any] = {"msg": "method", "id": self.id, "method": self.method}
        msg["params"] = self.params
        if self.random_seed is not None:
            msg["randomSeed"] = self.random_seed
        return msg


def str_list(value: Any, what: str) -> tuple[str, ...]:
    """Return ``value`` as a tuple if it is a list of strings.

    Raises:
        RemoteProtocolError: Otherwise (``what`` names the member in the message).
    """
    if type(value) is not list:
        raise RemoteProtocolError(f"{what} must be a list of strings")
    for item in value:
        if type(item) is not str:
            raise RemoteProtocolError(f"{what} must be a list of strings")
    return tuple(value)


def require_str(msg: dict[str, Any], key: str) -> str:
    """Return ``msg[key]`` if it is a string.

    Raises:
        RemoteProtocolError: Otherwise.
    """
    value = msg.get(key)
    if type(value) is not str:
        raise RemoteProtocolError(f"{msg.get('msg')} needs a string {key!r}")
    return value


def optional_before(msg: dict[str, Any]) -> str | None:
    """Return the ``before`` member of ``addedBefore``/``movedBefore`` (a string or ``None``).

    Raises:
        RemoteProtocolError: If it is something else.
    """
    before = msg.get("before")
    if before is not None and type(before) is not str:
        raise RemoteProtocolError(f"{msg['msg']} 'before' must be a string or null")
    return before


class MethodCalls(DDPProtocol):
    """The method half of :class:`~aioserversync.protocol.client.ClientProtocol`."""

    _methods: dict[str, PendingMethod]
    _next_method_id: int

    def send_method(
        self,
        name: str,
        params: Iterable[Any] = (),
        *,
        random_seed: str | None = None,
        id: str | None = None,
        decode_result: bool | None = True,
        raw_params: bool = False,
    ) -> str:
        """Queue a ``method`` call and start tracking it.

        Args:
            name: The method name.
            params: The parameters as Python values; they are EJSON-encoded here.
            random_seed: A ``randomSeed`` to send (20 hex characters in Meteor, §4.1).
            id: The method id (default: the next counter value, ``"1"``, ``"2"``, …).
            decode_result: Decode the result from EJSON (``False``: validate it and keep the wire
                form; ``None``: keep it as received, unchecked, for a caller that checks it
                itself, such as the hub client, which checks a pull page's documents as it
                stores them).
            raw_params: ``params`` are already in EJSON wire form (values read from a store or
                received): they are only checked to be JSON, not encoded again.

        Returns:
            The method id.

        Raises:
            LocalProtocolError: Not connected, or ``id`` is already outstanding.
            EJSONError: A parameter cannot be encoded (nothing is queued).
        """
        self._require_connected("method")
        if not isinstance(name, str):
            raise LocalProtocolError("method name must be a string")
        if random_seed is not None and not isinstance(random_seed, str):
            raise LocalProtocolError("randomSeed must be a string")
        if raw_params:
            wire_params = list(params)
            try:
                orjson.dumps(wire_params)
            except TypeError as exc:
                raise EJSONError(f"method {name!r}: raw params are not JSON: {exc}") from None
        else:
            wire_params = ejson.encode(list(params))
        if id is None:
            id = str(self._next_method_id)
            self._next_method_id += 1
        elif id in self._methods:
            raise LocalProtocolError(f"method id {id!r} is already outstanding")
        pending = PendingMethod(id, name, wire_params, random_seed, decode_result)
        self._send(pending.to_wire())
        self._methods[id] = pending
        return id

    def resend_method(self, pending: PendingMethod) -> None:
        """Queue a method again exactly as it was first sent (same id, params, ``randomSeed``).

        Used on a new connection for calls that had no ``result`` before the link dropped. The
        answer state starts afresh.

        Raises:
            LocalProtocolError: Not connected, or the id is already outstanding here.
        """
        self._require_connected("method")
        if pending.id in self._methods:
            raise LocalProtocolError(f"method id {pending.id!r} is already outstanding")
        fresh = replace(pending, has_result=False, result=None, error=None, has_updated=False)
        self._send(fresh.to_wire())
        self._methods[fresh.id] = fresh

    def outstanding_methods(self) -> list[PendingMethod]:
        """Return the methods still waiting for ``result`` or ``updated``, in the order sent."""
        return list(self._methods.values())

    def forget_method(self, id: str) -> bool:
        """Stop tracking a method (a later ``result``/``updated`` for it is then ignored).

        Returns:
            Whether the method was being tracked.
        """
        return self._methods.pop(id, None) is not None

    def _handle_result(self, msg: dict[str, Any]) -> None:
        id_ = require_str(msg, "id")
        pending = self._methods.get(id_)
        if pending is None or pending.has_result:
            self.logger.debug("ignoring result for unknown method id %r", id_)
            return
        err = msg.get("error")
        bad: EJSONError | None = None
        if err is not None:
            error: MeteorError | RemoteProtocolError | None = meteor_error_from_wire(
                err, context="method"
            )
            result = None
        else:
            error = None
            result = msg.get("result")
            if type(result) is dict or type(result) is list:
                try:
                    if pending.decode_result:
                        result = _decode_inplace(result)
                    elif pending.decode_result is not None:
                        _validate(result, source=self._frame)
                except EJSONError as exc:
                    # The call fails rather than waiting for ever; the frame is still reported.
                    bad = exc
                    result = None
                    error = RemoteProtocolError(f"invalid EJSON in the result: {exc}")
                    error.__cause__ = exc
        pending.has_result = True
        pending.result = result
        pending.error = error
        self._events.append(Result(id_, result, error))
        if pending.has_updated:
            del self._methods[id_]
            self._events.append(MethodDone(id_, result, error))
        if bad is not None:
            raise bad

    def _handle_updated(self, msg: dict[str, Any]) -> None:
        ids = str_list(msg.get("methods"), "updated 'methods'")
        known: list[str] = []
        done: list[PendingMethod] = []
        for id_ in ids:
            pending = self._methods.get(id_)
            if pending is None or pending.has_updated:
                self.logger.debug("ignoring updated for unknown method id %r", id_)
                continue
            pending.has_updated = True
            known.append(id_)
            if pending.has_result:
                del self._methods[id_]
                done.append(pending)
        if known:
            self._events.append(Updated(tuple(known)))
        for p in done:
            self._events.append(MethodDone(p.id, p.result, p.error))

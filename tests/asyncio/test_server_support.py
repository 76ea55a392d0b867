"""A raw DDP test client over websockets (frames in, dicts out) for the DDPServer tests.

It depends on nothing but websockets, so the server is tested on the wire, independently of the
library's own client. No test lives here.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import MS

TIMEOUT = 5000 * MS
Msg = dict[str, Any]


class RawClient:
    """Send DDP messages as raw frames and read the server's replies."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.session: str | None = None
        self._ids = itertools.count(1)

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, **kwargs: Any) -> AsyncIterator[RawClient]:
        kwargs.setdefault("max_size", None)
        async with connect(url, proxy=None, open_timeout=TIMEOUT, **kwargs) as ws:
            yield cls(ws)

    async def send(self, msg: Msg | bytes | str) -> None:
        if isinstance(msg, dict | list):
            msg = orjson.dumps(msg)
        await self.ws.send(msg, text=True)

    async def recv(self, within: float = TIMEOUT) -> Msg:
        async with asyncio.timeout(within):
            data = await self.ws.recv()
        msg: Msg = orjson.loads(data)
        return msg

    async def until(self, pred: Callable[[Msg], bool], within: float = TIMEOUT) -> list[Msg]:
        """Receive messages up to and including the first one matching ``pred``."""
        got: list[Msg] = []
        async with asyncio.timeout(within):
            while True:
                msg = await self.recv(within)
                got.append(msg)
                if pred(msg):
                    return got

    async def connect(self, version: str = "1", support: list[str] | None = None) -> str:
        await self.send({"msg": "connect", "version": version, "support": support or [version]})
        msg = await self.recv()
        assert msg["msg"] == "connected", msg
        self.session = msg["session"]
        return msg["session"]

    def next_id(self) -> str:
        return str(next(self._ids))

    async def call(
        self, method: str, *params: Any, seed: str | None = None
    ) -> tuple[list[Msg], Msg, Msg]:
        """Call a method; return (messages before its result/updated, result, updated)."""
        mid = self.next_id()
        msg: Msg = {"msg": "method", "id": mid, "method": method, "params": list(params)}
        if seed is not None:
            msg["randomSeed"] = seed
        await self.send(msg)
        return await self.wait_method(mid)

    async def wait_method(self, mid: str) -> tuple[list[Msg], Msg, Msg]:
        other: list[Msg] = []
        result: Msg | None = None
        updated: Msg | None = None
        async with asyncio.timeout(TIMEOUT):
            while result is None or updated is None:
                msg = await self.recv()
                if msg["msg"] == "result" and msg["id"] == mid:
                    assert result is None, "second result"
                    result = msg
                elif msg["msg"] == "updated" and mid in msg["methods"]:
                    assert updated is None, "second updated"
                    updated = msg
                else:
                    other.append(msg)
        return other, result, updated

    async def barrier(self) -> list[Msg]:
        """Return what arrives before everything sent so far has been handled, in queue order.

        An unknown method is answered (404 result, then updated) in the session's queue order,
        so its reply follows the replies to every earlier message.
        """
        other, result, _ = await self.call("__barrier_no_such_method__")
        assert result["error"]["error"] == 404
        return other

    async def sub(self, name: str, *params: Any, sub_id: str | None = None) -> str:
        sid = sub_id or f"s{self.next_id()}"
        await self.send({"msg": "sub", "id": sid, "name": name, "params": list(params)})
        return sid

    async def sub_ready(
        self, name: str, *params: Any, sub_id: str | None = None
    ) -> tuple[str, list[Msg]]:
        """Subscribe and return (sub id, data messages before its ready)."""
        sid = await self.sub(name, *params, sub_id=sub_id)
        msgs = await self.until(
            lambda m: (
                m["msg"] in ("ready", "nosub") and (sid in m.get("subs", ()) or m.get("id") == sid)
            )
        )
        assert msgs[-1]["msg"] == "ready", msgs[-1]
        return sid, msgs[:-1]


def error_obj(code: Any, reason: str) -> Msg:
    """Meteor's wire error object (ddp-facts §4.3)."""
    return {
        "isClientSafe": True,
        "error": code,
        "reason": reason,
        "message": f"{reason} [{code}]",
        "errorType": "Meteor.Error",
    }

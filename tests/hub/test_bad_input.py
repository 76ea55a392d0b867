"""Bad input to the hub's methods and publications: a typed error, never a crash or a 500."""

from __future__ import annotations

from typing import Any

import pytest

from aioserversync.hub import HubServing, ServerSyncServer
from tests.hub.conftest import client

Hub = tuple[ServerSyncServer, HubServing]

WEIRD: list[Any] = [
    None,
    True,
    0,
    -1,
    2**62,
    1.5,
    "",
    "x",
    [],
    [None],
    {},
    {"$where": "1"},
    {"_id": None},
    {"_id": {"$gt": ""}},
    {"_id": [1]},
    {"$date": 5},
    {"$set": None},
    {"$set": {"": 1}},
    {"$inc": {"a": "x"}},
    {"$unknown": {}},
    [{"mid": None}],
    [{"mid": "m", "op": "insert", "id": "a", "doc": None}],
    [{"mid": "m", "op": "update", "id": "a", "base": -1}],
    [{"mid": "m", "op": "update", "id": "a", "base": 1, "set": [1]}],
    [{"mid": "m" * 500, "op": "remove", "id": "a"}],
]

CALLS: list[tuple[str, int]] = [
    ("login", 1),
    ("serversync/capabilities", 1),
    ("serversync/pull", 3),
    ("serversync/push", 2),
    ("/items/insert", 1),
    ("/items/update", 3),
    ("/items/remove", 1),
]


@pytest.mark.parametrize(("method", "arity"), CALLS)
async def test_methods_answer_bad_params_with_typed_errors(
    hub: Hub, method: str, arity: int
) -> None:
    h, running = hub
    await h.insert("items", {"_id": "a", "n": 1})
    async with client(running.url) as c:
        for value in WEIRD:
            for position in range(arity):
                params: list[Any] = (
                    ["items", 0, 10][:arity]
                    if "serversync" in method
                    else [
                        {"_id": "a"},
                        {"$set": {"n": 2}},
                        {},
                    ][:arity]
                )
                params[position] = value
                _, result, _ = await c.call(method, *params)
                error = result.get("error")
                if error is not None:
                    assert error["error"] in (400, 403, 404, 409, 410), (method, params, error)
        # Extra and missing params too.
        _, result, _ = await c.call(method, *(["items"] * (arity + 3)))
        assert result.get("error", {}).get("error") != 500
        _, result, _ = await c.call(method)
        assert result.get("error", {}).get("error") != 500
        assert await c.barrier() == []  # one result and one updated each, nothing else


async def test_publications_answer_bad_params_with_nosub(hub: Hub) -> None:
    _h, running = hub
    async with client(running.url) as c:
        for value in WEIRD:
            for params in ([value], [value, 0], ["items", value]):
                sid = await c.sub("serversync/changes", *params)
                msgs = await c.until(
                    lambda m, sid=sid: m.get("id") == sid or sid in m.get("subs", ())
                )
                last = msgs[-1]
                if last["msg"] == "nosub":
                    assert last["error"]["error"] in (400, 404, 410), (params, last)
                else:
                    await c.send({"msg": "unsub", "id": sid})
                    await c.until(lambda m, sid=sid: m["msg"] == "nosub" and m["id"] == sid)
        _, docs = await c.sub_ready("items", *WEIRD[:5])  # the plain publication ignores params
        assert docs == []

"""A client sending random frames to a hub over a real WebSocket (seeded).

Each run connects, logs in, subscribes, then sends a random run of frames: malformed JSON, JSON
that is not DDP, DDP messages with wrong types or unknown names, method calls and subscriptions
with random parameters, and a second ``connect``. Then:

* the session still answers (a ``ping`` gets its ``pong``), or the server closed it;
* every ``result`` and ``nosub`` carries a value or a 4xx error, never a 500;
* the hub still serves a new, well-behaved client, with its data intact.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from aioserversync.ids import id_stringify
from tests.engine.conftest import seeds
from tests.hub.conftest import MakeHub, call, client

METHODS = ["serversync/pull", "serversync/push", "serversync/capabilities", "/items/insert",
           "/items/update", "/items/remove", "login", "logout", "nosuch", ""]  # fmt: skip
PUBS = ["items", "serversync/changes", "nosuch", ""]


def _change(rng: random.Random) -> dict[str, Any]:
    op = rng.choice(["insert", "update", "remove"])
    ch: dict[str, Any] = {"mid": f"m{rng.randrange(20)}", "op": op, "id": f"d{rng.randrange(5)}"}
    ch["base"] = rng.choice([None, 1, 2, 3, 4, 99])
    ch["doc" if op == "insert" else "set"] = {"n": value(rng)}
    return ch


PLAUSIBLE: dict[str, Any] = {
    "serversync/pull": lambda rng: ["items", rng.randrange(5), rng.choice([1, 2, 50]),
                                    rng.choice([None, {"text": True}, {"page": True}])],
    "serversync/push": lambda rng: ["items", [_change(rng) for _ in range(rng.randrange(1, 4))]],
    "/items/insert": lambda rng: [{"n": value(rng)}],
    "/items/update": lambda rng: [{"_id": f"d{rng.randrange(5)}"}, {"$set": {"n": value(rng)}}],
    "/items/remove": lambda rng: [{"_id": f"d{rng.randrange(5)}"}],
}  # fmt: skip


def value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 2 or roll < 0.5:
        return rng.choice([None, True, 0, -1, 2**53, 1.5, "", "items", "x", 10**6])
    if roll < 0.7:
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if roll < 0.8:
        return rng.choice([{"$date": 5}, {"$binary": "AAAA"}, {"resume": "tok-alice"}])
    keys = ["mid", "op", "id", "base", "doc", "set", "unset", "_id", "$set", "page", "text"]
    return {rng.choice(keys): value(rng, depth + 1) for _ in range(rng.randrange(4))}


def frame(rng: random.Random, n: int) -> Any:
    roll = rng.random()
    if roll < 0.08:
        return rng.choice(["{", "nope", "[]", "null", "5", '{"msg":'])
    if roll < 0.15:
        return json.dumps(value(rng))
    kind = rng.choice(["method"] * 6 + ["sub"] * 3 + ["unsub", "ping", "pong", "connect", "x"])
    msg: dict[str, Any] = {"msg": kind}
    if kind == "method":
        msg["id"] = f"r{n}" if rng.random() < 0.85 else rng.choice([5, None])
        name = msg["method"] = rng.choice(METHODS) if rng.random() < 0.9 else 7
        if rng.random() < 0.1:
            msg["params"] = rng.choice([{}, "p", None])
        elif rng.random() < 0.5 and name in PLAUSIBLE:
            msg["params"] = PLAUSIBLE[name](rng)
        else:
            msg["params"] = [value(rng) for _ in range(rng.randrange(4))]
    elif kind in ("sub", "unsub"):
        msg["id"] = rng.choice([f"s{n}", "s0", 5])
        msg["name"] = rng.choice([*PUBS, 3])
        msg["params"] = rng.choice([[value(rng)], [], None])
    elif kind in ("ping", "pong") and rng.random() < 0.5:
        msg["id"] = rng.choice(["p", 4])
    elif kind == "connect":
        msg.update(version="1", support=["1"])
    if rng.random() < 0.2:
        msg[rng.choice(["extra", "randomSeed", "msg2"])] = value(rng)
    return json.dumps(msg)


@pytest.mark.parametrize("seed", seeds("AIOSERVERSYNC_SESSION_FUZZ_RUNS", 10))
async def test_a_hub_survives_a_session_of_random_frames(make_hub: MakeHub, seed: int) -> None:
    rng = random.Random(seed)
    h, running = await make_hub()
    for i in range(3):
        await h.insert("items", {"_id": f"d{i}", "n": i})
    async with client(running.url) as c:
        await c.sub_ready("items")
        frames = [frame(rng, n) for n in range(rng.randrange(10, 80))]
        closed = False
        try:
            for f in frames:
                await c.send(f)
            # Methods run in order within a session: once this one is answered, so is every
            # earlier call.
            replies = await c.barrier()
            await c.send({"msg": "ping", "id": "last"})
            replies += await c.until(lambda m: m.get("msg") == "pong" and m.get("id") == "last")
        except ConnectionClosed:
            closed = True  # the server may end a session it finds unusable; it must not crash
            replies = []
        for m in replies:
            if m.get("msg") in ("result", "nosub") and m.get("error") is not None:
                assert m["error"].get("error") in (400, 403, 404, 409, 410), m
        assert closed or replies[-1] == {"msg": "pong", "id": "last"}
    # The hub is still up and serves a well-behaved client what it holds (the random calls ran
    # as alice, who may write: the data changed only through the API).
    async with client(running.url) as c2:
        caps = await call(c2, "serversync/capabilities")
        assert "items" in caps["collections"]
        pulled = await call(c2, "serversync/pull", "items", 0, 100)
        assert {d[0] for d in pulled["docs"] if d[2] is not None} == {
            id_stringify(d["_id"]) for d in await h.store.find("items", {})
        }

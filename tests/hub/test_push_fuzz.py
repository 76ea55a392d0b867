"""Random pushes (seeded): whatever an edge sends, the hub stays consistent and readable.

One misbehaving edge must not be able to poison the hub for everyone else. Each run sends a few
dozen random ``serversync/push`` batches: real and unknown operations, repeated mutation ids,
stale, future and malformed base revisions, and fields with invalid names or invalid EJSON
(dates beyond what a ``datetime`` holds among them). Then:

* every answer is a typed one: an error with a 4xx code, or one entry per change, in order, each
  ``accepted`` (with a revision), ``conflict`` or ``rejected``;
* a repeated mutation id is answered with its first outcome, and accepted changes got strictly
  increasing revisions;
* every stored document reads back (decodes), and a pull from 0 in each form returns valid EJSON
  and exactly the stored documents.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from aioserversync import ejson
from aioserversync.exceptions import EJSONError
from aioserversync.stores import MemoryStore, SQLiteStore
from tests.engine.conftest import seeds
from tests.hub.conftest import MakeHub, call, client

NAMES = ["n", "s", "\u00e9", "", "$set", "a.b", "_id"]
VALUES: list[Any] = [
    1, -2.5, "x", None, True, [1, {"k": 2}], {"k": {"j": []}}, {"$date": 1704164645678},
    {"$date": "2024-01-02T03:04:05Z"}, {"$binary": "AAAA"}, {"$escape": {"$date": 1}},
    {"$type": "oid", "$value": "0" * 24}, {"$InfNaN": 1}, {"$foo": 1},
]  # fmt: skip
INVALID: list[Any] = [
    {"$date": 1e20}, {"$date": -(10**16)}, {"$date": "nope"}, {"$binary": "%%"},
    {"$type": "oid", "$value": "z"},
]  # fmt: skip
"""Not EJSON: a frame holding one is refused as it is read."""


def fields(rng: random.Random) -> Any:
    if rng.random() < 0.05:
        return rng.choice([None, [], "x", 3])
    names = NAMES if rng.random() < 0.2 else NAMES[:3]  # invalid names now and then
    values = VALUES + INVALID if rng.random() < 0.1 else VALUES
    return {rng.choice(names): rng.choice(values) for _ in range(rng.randrange(4))}


IDS = ["a", "b", "c", "d0", "d1", "x.y", "\u65e5"]


class Edge:
    """What a random edge remembers: its mutation ids, and each document's last revision seen."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.mids: list[str] = []
        self.revs: dict[str, int | None] = {}

    def change(self) -> Any:
        """A change, mostly well-formed but for its fields; otherwise malformed anywhere."""
        rng = self.rng
        if rng.random() < 0.03:
            return rng.choice([None, [], "x", {}])
        odd = rng.random() < 0.15
        if self.mids and rng.random() < 0.2:
            mid: Any = rng.choice(self.mids)  # sent again, maybe with another change
        else:
            mid = f"m{len(self.mids)}"
            self.mids.append(mid)
        doc_id: Any = rng.choice(IDS)
        op: Any = rng.choice(["insert", "update", "update", "remove"])
        base: Any = self.revs.get(doc_id) if rng.random() < 0.7 else rng.choice([None, 0, 10**6])
        if odd:
            mid, doc_id, op, base = rng.choice(
                [(rng.choice(["", None, 7, "m" * 200]), doc_id, op, base),
                 (mid, rng.choice(["", None, 5, "i" * 2000]), op, base),
                 (mid, doc_id, rng.choice(["upsert", None, 1]), base),
                 (mid, doc_id, op, rng.choice(["1", 1.5, -1, True]))]
            )  # fmt: skip
        ch: dict[str, Any] = {"mid": mid, "op": op, "id": doc_id, "base": base}
        if op == "insert" or rng.random() < 0.1:
            ch["doc"] = fields(rng)
        if op == "update" or rng.random() < 0.1:
            ch["set"] = fields(rng)
            if rng.random() < 0.4:
                ch["unset"] = rng.choice([["n"], ["_id"], [""], "n", [1], []])
        return ch

    def learn(self, ch: dict[str, Any], entry: dict[str, Any]) -> None:
        if entry["status"] == "accepted":
            self.revs[ch["id"]] = None if ch["op"] == "remove" else entry["rev"]
        elif entry["status"] == "conflict" and isinstance(ch.get("id"), str):
            self.revs[ch["id"]] = entry["rev"]


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
@pytest.mark.parametrize("seed", seeds("AIOSERVERSYNC_PUSH_FUZZ_RUNS", 8))
async def test_random_pushes_never_leave_the_hub_inconsistent_or_unreadable(
    make_hub: MakeHub, seed: int, kind: str, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    store = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "fuzz.sqlite3")
    h, running = await make_hub(store=store, allow_anonymous=True, tokens=None)
    for i in range(3):
        await h.insert("items", {"_id": f"d{i}", "n": i})
    outcomes: dict[str, Any] = {}
    revs: list[int] = []
    edge = Edge(rng)
    async with client(running.url, token=None) as c:
        for doc_id, rev, _fields in (await call(c, "serversync/pull", "items", 0, 10))["docs"]:
            edge.revs[doc_id] = rev  # what an edge knows after its first sync
        for _ in range(40):
            changes = [edge.change() for _ in range(rng.randrange(1, 6))]
            try:
                ejson.decode(changes)
            except EJSONError:
                # Not EJSON at all: refused as the frame is read, as Meteor does, with an
                # ``error`` message and no result (ddp-facts §8).
                mid = c.next_id()
                await c.send({"msg": "method", "id": mid, "method": "serversync/push",
                              "params": ["items", changes]})  # fmt: skip
                got = await c.until(lambda m: m["msg"] in ("error", "result"))
                assert got[-1] == {"msg": "error", "reason": "Parse error"}, got[-1]
                continue
            _, answer, _ = await c.call("serversync/push", "items", changes)
            if "error" in answer:
                assert answer["error"]["error"] in (400, 403, 404, 409), (changes, answer)
                continue
            result = answer["result"]
            assert isinstance(result, list) and len(result) == len(changes), (changes, result)
            for ch, entry in zip(changes, result, strict=True):
                assert entry["mid"] == ch["mid"]
                assert entry["status"] in ("accepted", "conflict", "rejected"), entry
                if entry["status"] == "accepted":
                    assert isinstance(entry["rev"], int) and entry["rev"] > 0
                    if ch["mid"] not in outcomes:
                        assert not revs or entry["rev"] > revs[-1], (revs, entry)
                        revs.append(entry["rev"])
                # A repeated mid gets its first outcome; a conflict with the current document.
                first = outcomes.setdefault(ch["mid"], entry)
                assert entry["status"] == first["status"], (ch, first, entry)
                assert entry == first or entry["status"] == "conflict", (ch, first, entry)
                edge.learn(ch, entry)

        assert revs, ("no change was accepted", outcomes)

        # Everything stored reads back, and each pull form hands out exactly that.
        stored = {d["_id"]: d for d in await h.store.find("items", {})}
        features = (await call(c, "serversync/capabilities"))["features"]
        forms = [None, {"text": True}] + ([{"page": True}] if "pull-page" in features else [])
        for form in forms:
            pulled: dict[str, Any] = {}
            since = 0
            while True:
                res = await call(c, "serversync/pull", "items", since, 7, form)
                entries = list(res["docs"])
                if res.get("page") is not None:
                    for key, value in orjson.loads(res["page"]).items():
                        rev, _, doc_id = key.partition(":")
                        entries.append([doc_id, int(rev), value])
                for doc_id, _rev, value in entries:
                    if isinstance(value, str):
                        value = orjson.loads(value)
                    if value is None:
                        pulled.pop(doc_id, None)
                    else:
                        pulled[doc_id] = {"_id": doc_id, **ejson.decode(value)}
                since = res["next"]
                if not res["more"]:
                    break
            assert pulled == stored, form

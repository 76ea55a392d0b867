"""Several remotes merged into one local collection, with random changes and cuts (seeded).

A stock Meteor-like app and a hub each publish ``items`` (with their own ids); one edge store
mirrors both into the local collection ``merged`` in ``read`` mode. Each round changes documents
on both remotes while links are up or down, some rounds also resync one remote in full (the
app changing a document within its rounds). Every run must end with ``merged`` equal to the
union of the two remotes, each document recording the remote it came from: a remote's resync or
catch-up never touches the other's documents.

CI runs seeds 0..14; ``AIOSERVERSYNC_MERGE_RUNS`` and ``AIOSERVERSYNC_SEED_BASE`` explore more.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from aioserversync.stores import SQLiteStore
from tests.conftest import MS
from tests.engine.conftest import edge, go_offline, seeds
from tests.engine.remotes import plain_hub
from tests.meteor_app import MeteorApp
from tests.proxy import FaultProxy
from tests.utils import wait_for_condition


@pytest.mark.parametrize("seed", seeds("AIOSERVERSYNC_MERGE_RUNS", 15))
async def test_two_remotes_merged_into_one_collection_converge(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    app = MeteorApp(strategy=rng.choice(["merge", "no_merge"]))
    app.add_collection("items", [{"_id": f"a{i}", "n": i} for i in range(5)])

    async def change_in_round(name: str) -> None:  # between a round's added and its ready
        ids = list(app.docs[name])
        if ids and rng.random() < 0.5:
            app.update(name, rng.choice(ids), {"$set": {"n": 100 + rng.randrange(99)}})

    app.before_ready = change_in_round
    await app.start()
    hub = plain_hub()
    hub.max_pull = 3  # a full resync through the hub takes several pages
    hub_port = (await hub.serve()).port
    for i in range(5):
        await hub.insert("items", {"_id": f"b{i}", "n": i})
    store = SQLiteStore(tmp_path / "edge.db")
    await store.open()
    proxies = [await FaultProxy(app.port).start(), await FaultProxy(hub_port).start()]
    remotes: list[Any] = []
    try:
        for name, proxy in zip("AB", proxies, strict=True):
            remotes.append(await edge(proxy.url(), store, name=name))
        colls = [await r.sync("items", mode="read", local="merged") for r in remotes]
        for c in colls:
            await c.wait_ready(timeout=5000 * MS)
        made = [5, 5]
        for _ in range(3):
            down = [i for i in range(2) if rng.random() < 0.5]
            for i in down:
                await go_offline(proxies[i], remotes[i])
            for _ in range(rng.randrange(1, 8)):
                side = rng.randrange(2)
                op = rng.random()
                prefix = "ab"[side]
                if side == 0:
                    ids = list(app.docs["items"])
                    if op < 0.4 or not ids:
                        app.insert("items", {"_id": f"a{made[0]}", "n": made[0]})
                        made[0] += 1
                    elif op < 0.8:
                        app.update("items", rng.choice(ids), {"$set": {"n": rng.randrange(99)}})
                    else:
                        app.remove("items", rng.choice(ids))
                else:
                    ids = [d["_id"] for d in await hub.store.find("items", {})]
                    if op < 0.4 or not ids:
                        await hub.insert("items", {"_id": f"{prefix}{made[1]}", "n": made[1]})
                        made[1] += 1
                    elif op < 0.8:
                        await hub.update(
                            "items", rng.choice(ids), {"$set": {"n": rng.randrange(99)}}
                        )
                    else:
                        await hub.remove("items", rng.choice(ids))
            for i in down:
                proxies[i].restore()
            if rng.random() < 0.3:  # a full resync of one remote (stock round, or hub pull)
                await remotes[rng.randrange(2)].resync("merged", timeout=5000 * MS)

        async def expected() -> dict[str, tuple[str, Any]]:
            out = {d["_id"]: ("A", d) for d in app.docs["items"].values()}
            out.update({d["_id"]: ("B", d) for d in await hub.store.find("items", {})})
            return out

        async def converged() -> bool:
            for r in remotes:
                if not r.status.connected:
                    return False
                await r._sync_barrier()
            want = await expected()
            have = {d["_id"]: d for d in await colls[0].find({})}
            if {i: d for i, (_o, d) in want.items()} != have:
                return False
            metas = await store.get_meta_many("merged", list(have))
            return all(metas[i].origin == o for i, (o, _d) in want.items())

        await wait_for_condition(converged, timeout=8000 * MS, message="merged == A + B")
    finally:
        for r in remotes:
            await r.close()
        for p in proxies:
            await p.close()
        await store.close()
        await hub.close()
        await app.stop()

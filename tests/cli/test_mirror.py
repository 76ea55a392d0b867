"""``aioserversync mirror`` and ``status`` as real subprocesses against a loopback DDP server."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from aioserversync.asyncio.sync import ServerSync
from aioserversync.exceptions import SyncTimeout
from aioserversync.stores import SQLiteStore
from tests.cli.conftest import CLIProcess, run_cli, start_cli
from tests.conftest import MS
from tests.meteor_app import MeteorApp
from tests.proxy import FaultProxy
from tests.utils import wait_for_condition

FAST = {
    "heartbeat_interval": 0,
    "backoff_initial": 0.005,
    "backoff_max": 0.05,
    "stable_after": 0,
    "open_timeout": 2.0,
    "push_backoff_max": 0.05,
}


def _is(kind: str, **match: Any) -> Any:
    return lambda e: e["event"] == kind and all(e.get(k) == v for k, v in match.items())


async def _scrape(url: str) -> str:
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET /{path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    async with asyncio.timeout(5000 * MS):
        data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = data.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200"), head
    return body


async def test_json_events_metrics_and_clean_sigint(
    meteor: MeteorApp, tmp_path: Path, cli_processes: list[CLIProcess]
) -> None:
    db = tmp_path / "edge.db"
    url = f"http://127.0.0.1:{meteor.port}"
    proc = await start_cli(
        "mirror",
        url,
        "items",
        "--mode",
        "read",
        "--store",
        f"sqlite:///{db}",
        "--json",
        "--metrics-port",
        "0",
    )
    cli_processes.append(proc)
    start = await proc.wait_for(_is("start"))
    assert start["collections"] == ["items"] and start["mode"] == "read"
    metrics = await proc.wait_for(_is("metrics"))
    ready = await proc.wait_for(_is("ready", collection="items"))
    assert ready["documents"] == 5 and ready["received"] >= 5
    assert any(e["event"] == "status" and e["state"] == "connected" for e in proc.events)

    meteor.insert("items", {"_id": "live1", "name": "live"})
    change = await proc.wait_for(_is("change", id="live1"))
    assert change["op"] == "added" and change["fields"] == {"name": "live"}
    assert change["source"] == "remote"

    body = await _scrape(metrics["url"])
    labels = f'collection="items",remote="{url}"'
    assert f"aioserversync_documents{{{labels}}} 6.0" in body
    assert f'aioserversync_connected{{remote="{url}"}} 1.0' in body
    assert f"aioserversync_outbox_pending{{{labels}}} 0.0" in body

    code, err = await proc.interrupt()
    assert code == 0, err
    assert "Traceback" not in err
    kinds = [e["event"] for e in proc.events]
    assert kinds[-1] == "stopped" and proc.events[-1]["exit_code"] == 0
    stopping = proc.events[kinds.index("stopping")]
    assert stopping["signal"] == "SIGINT"
    assert [
        e["state"] for e in proc.events[kinds.index("stopping") :] if e["event"] == "status"
    ] == ["closed"]

    code, out, err = await run_cli("status", "--store", f"sqlite:///{db}", "--json")
    assert code == 0, err
    import json

    report = json.loads(out)
    (items,) = report["collections"]
    assert items["name"] == "items" and items["documents"] == 6
    assert list(items["last_sync"]) == [url]
    assert items["pending_count"] == 0 and items["failed_count"] == 0


async def test_write_mode_offline_changes_conflict_and_failed_write_in_status(
    meteor: MeteorApp, tmp_path: Path, cli_processes: list[CLIProcess]
) -> None:
    import json

    db = tmp_path / "edge.db"
    meteor.deny["items"] = lambda op, _id, doc: _id == "denied1"
    # An earlier run of an edge made offline changes, then stopped with them queued.
    async with FaultProxy(meteor.port) as proxy:
        remote = ServerSync(proxy.url(), store=SQLiteStore(str(db)), name="app", **FAST)
        async with remote:
            items = await remote.sync("items", mode="write")
            await items.wait_ready(timeout=5000 * MS)
            proxy.refuse()
            proxy.cut()
            await wait_for_condition(lambda: not remote.client.connected, message="offline")
            await items.update("d1", {"$set": {"name": "edge edit"}})
            await items.insert({"_id": "offline1", "name": "made offline"})
            await items.insert({"_id": "denied1", "name": "refused later"})
    meteor.update("items", "d1", {"$set": {"name": "server edit"}})

    code, out, err = await run_cli("status", "--store", f"sqlite:///{db}", "--json")
    assert code == 0, err
    (items_status,) = json.loads(out)["collections"]
    assert items_status["pending_count"] == 3
    assert [(r["op"], r["id"], r["state"]) for r in items_status["pending"]] == [
        ("update", "d1", "pending"),
        ("insert", "offline1", "pending"),
        ("insert", "denied1", "pending"),
    ]
    seqs = [r["seq"] for r in items_status["pending"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3

    proc = await start_cli(
        "mirror",
        f"http://127.0.0.1:{meteor.port}",
        "items",
        "--mode",
        "write",
        "--name",
        "app",
        "--store",
        f"sqlite:///{db}",
        "--json",
    )
    cli_processes.append(proc)
    conflict = await proc.wait_for(_is("conflict", id="d1"))
    assert conflict["local"]["name"] == "edge edit"
    assert conflict["remote"]["name"] == "server edit"
    await proc.wait_for(_is("rejected", id="denied1"))
    await wait_for_condition(
        lambda: meteor.get("items", "offline1") is not None, message="offline insert pushed"
    )
    code, err = await proc.interrupt()
    assert code == 0, err
    assert meteor.get("items", "d1")["name"] == "server edit"  # the remote won
    assert meteor.get("items", "denied1") is None

    code, out, err = await run_cli("status", "--store", f"sqlite:///{db}", "--json")
    assert code == 0, err
    (items_status,) = json.loads(out)["collections"]
    assert items_status["pending_count"] == 0
    assert items_status["failed_count"] == 1
    (failed,) = items_status["failed"]
    assert (failed["op"], failed["id"], failed["state"]) == ("insert", "denied1", "failed")
    assert failed["error"]  # the server's refusal is kept with the dead letter
    (logged,) = items_status["conflicts"]
    assert logged["id"] == "d1" and logged["origin"] == "app"
    assert logged["local"]["name"] == "edge edit" and logged["remote"]["name"] == "server edit"

    code, text, err = await run_cli("status", "--store", f"sqlite:///{db}")
    assert code == 0, err
    assert "documents   6" in text
    assert "failed      1" in text and "denied1" in text
    assert "conflicts   1 recent" in text


async def test_sigint_while_offline_keeps_queued_writes(
    tmp_path: Path, cli_processes: list[CLIProcess]
) -> None:
    with socket.socket() as s:  # a port nothing listens on: the remote is down
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    db = tmp_path / "edge.db"
    async with ServerSync(url, store=SQLiteStore(str(db)), name="app", **FAST) as remote:
        items = await remote.sync("items", mode="write")
        await items.insert({"_id": "q1", "name": "queued"})
        await items.insert({"_id": "q2", "name": "queued too"})

    proc = await start_cli(
        "mirror", url, "items", "--mode", "write", "--name", "app",
        "--store", f"sqlite:///{db}", "--json", "--drain-timeout", "30",
    )  # fmt: skip
    cli_processes.append(proc)
    await proc.wait_for(_is("start"))
    await proc.wait_for(lambda e: e["event"] == "status" and e["state"] == "reconnecting")
    code, err = await proc.interrupt(timeout=5000 * MS)  # no drain wait without a link
    assert code == 0, err
    stopping = next(e for e in proc.events if e["event"] == "stopping")
    assert stopping["pending"] == 2 and proc.events[-1]["pending"] == 2

    code, out, err = await run_cli("status", "--store", f"sqlite:///{db}", "--json")
    assert code == 0, err
    (items_status,) = json.loads(out)["collections"]
    assert [r["id"] for r in items_status["pending"]] == ["q1", "q2"]
    assert items_status["documents"] == 2


async def test_refused_subscription_reports_an_error_and_exits_1(
    meteor: MeteorApp, tmp_path: Path
) -> None:
    import json

    code, out, err = await run_cli(
        "mirror", f"http://127.0.0.1:{meteor.port}", "nope", "--json",
        "--store", f"sqlite:///{tmp_path / 'edge.db'}",
    )  # fmt: skip
    assert code == 1, err
    events = [json.loads(line) for line in out.splitlines()]
    (error,) = [e for e in events if e["event"] == "error"]
    assert error["collection"] == "nope" and "404" in error["message"]
    assert events[-1] == {**events[-1], "event": "stopped", "exit_code": 1}


async def test_resync_flag_restores_local_edits_a_hub_catch_up_keeps(
    tmp_path: Path, cli_processes: list[CLIProcess]
) -> None:
    from aioserversync.hub import ServerSyncServer

    hub = ServerSyncServer(
        SQLiteStore(tmp_path / "hub.db"),
        allow_anonymous=True,
        heartbeat_interval=0,
        compression=None,
        purge_interval=0,
    )
    hub.collection("items")
    running = await hub.serve()
    try:
        for i in range(3):
            await hub.insert("items", {"_id": f"d{i}", "name": f"doc {i}"})
        url = running.url
        db = tmp_path / "edge.db"
        async with ServerSync(url, store=SQLiteStore(str(db)), name="app", **FAST) as remote:
            items = await remote.sync("items", mode="read")
            await items.wait_ready(timeout=5000 * MS)
            await items.update("d1", {"$set": {"name": "edited here"}})  # the cache only

        async def mirror(*extra: str) -> CLIProcess:
            proc = await start_cli(
                "mirror", url, "items", "--mode", "read", "--name", "app",
                "--store", f"sqlite:///{db}", "--json", *extra,
            )  # fmt: skip
            cli_processes.append(proc)
            return proc

        async def name_of_d1() -> str:
            async with SQLiteStore(str(db)) as store:
                doc = await store.get("items", "d1")
            assert doc is not None
            return str(doc["name"])

        proc = await mirror()  # catches up from the checkpoint: nothing changed on the hub
        await proc.wait_for(_is("ready", collection="items"))
        code, err = await proc.interrupt()
        assert code == 0, err
        assert not any(e["event"] == "resynced" for e in proc.events)
        assert await name_of_d1() == "edited here"

        proc = await mirror("--resync")
        done = await proc.wait_for(_is("resynced", collections=["items"]))
        assert done["seconds"] >= 0
        code, err = await proc.interrupt()
        assert code == 0, err
        assert await name_of_d1() == "doc 1"

        # A resync asked for while the hub is unreachable is kept, shown by status, and done by
        # the next mirror (without --resync).
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with ServerSync(dead, store=SQLiteStore(str(db)), name="app", **FAST) as remote:
            items = await remote.sync("items", mode="read")
            await items.update("d1", {"$set": {"name": "edited again"}})
            with pytest.raises(SyncTimeout):
                await items.resync(timeout=50 * MS)
        code, out, err = await run_cli("status", "--store", f"sqlite:///{db}", "--json")
        assert code == 0, err
        assert json.loads(out)["collections"][0]["resync_asked"] == ["app"]
        code, out, err = await run_cli("status", "--store", f"sqlite:///{db}")
        assert "resync      asked, at the next session  from app" in out

        proc = await mirror()
        await proc.wait_for(_is("ready", collection="items"))
        code, err = await proc.interrupt()
        assert code == 0, err
        assert await name_of_d1() == "doc 1"
        code, out, err = await run_cli("status", "--store", f"sqlite:///{db}", "--json")
        assert json.loads(out)["collections"][0]["resync_asked"] == []
    finally:
        await hub.close()

"""``aioserversync hub`` as a subprocess: serve, sync an edge from it, stop cleanly, restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aioserversync.asyncio.sync import ServerSync
from tests.cli.conftest import CLIProcess, run_cli, start_cli
from tests.conftest import MS

FAST = {
    "heartbeat_interval": 0,
    "backoff_initial": 0.005,
    "backoff_max": 0.05,
    "stable_after": 0,
    "open_timeout": 2.0,
    "push_backoff_max": 0.05,
}


async def _start_hub(db: Path, procs: list[CLIProcess], *extra: str) -> tuple[CLIProcess, str]:
    proc = await start_cli(
        "hub",
        "--store",
        f"sqlite:///{db}",
        "--collection",
        "items",
        "--collection",
        "notes",
        "--port",
        "0",
        "--json",
        *extra,
    )
    procs.append(proc)
    listening = await proc.wait_for(lambda e: e["event"] == "listening")
    assert listening["collections"] == ["items", "notes"]
    return proc, f"http://127.0.0.1:{listening['port']}"


async def test_serves_edges_stops_cleanly_and_keeps_data(
    tmp_path: Path, cli_processes: list[CLIProcess]
) -> None:
    db = tmp_path / "hub.db"
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"edge-secret": "edge-1"}))
    hub, url = await _start_hub(db, cli_processes, "--tokens", str(tokens))

    edge_db = tmp_path / "edge.db"
    async with ServerSync(
        url, store=f"sqlite:///{edge_db}", name="hub", token="edge-secret", **FAST
    ) as remote:
        items = await remote.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        assert await items.count() == 0
        await items.insert({"_id": "a", "name": "from an edge"})
        await items.wait_drained(timeout=5000 * MS)
        assert items.stats.pushed == 1

    # The edge followed the hub protocol: its cache holds a checkpoint, shown by `status`.
    code, out, err = await run_cli("status", "--store", f"sqlite:///{edge_db}", "--json")
    assert code == 0, err
    (edge_items,) = json.loads(out)["collections"]
    assert edge_items["documents"] == 1 and edge_items["pending_count"] == 0
    assert list(edge_items["checkpoints"]) == ["hub"]
    assert edge_items["checkpoints"]["hub"] >= 1

    code, err = await hub.interrupt()
    assert code == 0, err
    assert hub.events[-1]["event"] == "stopped"
    assert "Traceback" not in err

    # The data survived the stop: a restarted hub serves it to a new edge.
    hub, url = await _start_hub(db, cli_processes, "--allow-anonymous")
    async with ServerSync(url, store="memory://", **FAST) as remote:
        items = await remote.sync("items", mode="read")
        await items.wait_ready(timeout=5000 * MS)
        assert await items.find({}) == [{"_id": "a", "name": "from an edge"}]
    code, err = await hub.interrupt()
    assert code == 0, err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--host", "0.0.0.0"], "refusing to serve the hub"),
        (["--tls-cert", "missing.pem"], "cannot load TLS certificate"),
        (["--tokens", "missing.json"], "cannot read tokens file"),
        (["--store", "redis://x"], "unknown store URL scheme"),
    ],
    ids=["open bind without tokens", "missing certificate", "missing tokens file", "bad store"],
)
async def test_bad_settings_exit_2_with_one_line(
    tmp_path: Path, extra: list[str], expected: str
) -> None:
    args = ["hub", "--store", "sqlite:///hub.db", "--collection", "items", "--port", "0", *extra]
    code, _, err = await run_cli(*args, cwd=tmp_path)
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and expected in lines[0], err

"""Every benchmark scenario runs at a tiny size, so the benchmarks do not rot.

These runs check that each scenario completes and that its own result checks pass (each run
verifies the documents, counters and writes it expected); their figures are not measurements.
Scenarios that need ddp-blaster are skipped when Node is not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import (
    b1_initial,
    b2_hub_pull,
    b3_catchup,
    b4_latency,
    b5_memory,
    b6_outbox,
    b7_fanout,
    hubproc,
    live_changes,
    stores,
)
from benchmarks.__main__ import main as run_all
from benchmarks.blaster import Blaster, node_available
from tests.conftest import ROOT

needs_node = pytest.mark.skipif(not node_available(), reason="ddp-blaster needs Node and npm")


@pytest.fixture(autouse=True)
def _hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hubproc, "HUB_CACHE", tmp_path)


def _rows(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert objs, "the scenario emitted no table"
    return [r for obj in objs for r in obj["rows"]]


def _all_runs_ok(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        done, total = row["ok runs"].split("/")
        assert done == total != "0", row


def test_store_figures() -> None:
    objs = stores.run(docs=2_000, quick=True, mongo=False)
    titles = [o["title"] for o in objs]
    assert any(t.startswith("apply()") for t in titles)
    assert any("find" in t for t in titles)
    assert "SQLiteStore, one PutDocs per batch" in {r.get("store") for r in _rows(objs)}
    assert all(r.get("docs/s", 1) > 0 for r in _rows(objs))


@needs_node
def test_b1_initial_sync() -> None:
    rows = _rows(b1_initial.run(docs=500, repeats=1, mongo=False))
    assert {r["case"] for r in rows} >= {
        "py-websockets-parse (+ orjson)",
        "aioserversync -> SQLiteStore",
        "aioserversync -> MemoryStore",
    }
    _all_runs_ok(rows)


@needs_node
def test_live_changes() -> None:
    rows = _rows(live_changes.run(changes=500, repeats=1))
    assert len(rows) == 5
    _all_runs_ok(rows)


def test_b2_hub_pull() -> None:
    rows = _rows(b2_hub_pull.run(docs=300, repeats=1))
    assert rows[0]["case"] == "hub pull -> SQLiteStore"
    _all_runs_ok(rows)


def test_b3_catchup() -> None:
    rows = _rows(b3_catchup.run(docs=300, ks=(5, 20)))
    cases = [r["case"] for r in rows]
    assert cases[1].startswith("catch-up after K=5 ")
    assert any(c.startswith("full resync through the hub into the existing store") for c in cases)
    assert all(r["seconds"] > 0 for r in rows)


def test_b4_latency() -> None:
    (row,) = _rows(b4_latency.run(rates=(100,), seconds=0.3, docs=300))
    assert row["writes"] == 30
    assert 0 < row["p50 ms"] <= row["p99 ms"] <= row["max ms"]


def test_b6_outbox_drain() -> None:
    rows = _rows(b6_outbox.run(writes=20, docs=300))
    assert [r["writes"] for r in rows] == [20, 20, 20]
    assert all(r["writes/s"] > 0 for r in rows)
    assert "insert_many" in rows[2]["case"]


def test_b7_fanout() -> None:
    (row,) = _rows(b7_fanout.run(edges=(2,), docs=50, seconds=0.3))
    assert row["changes delivered"] == f"{row['hub writes'] * 2:,}/{row['hub writes'] * 2:,}"


@needs_node
def test_b5_memory() -> None:
    (row,) = _rows(b5_memory.run(sizes=(500,)))
    assert row["docs"] == 500
    assert row["peak RSS MB"] >= row["RSS after imports MB"] > 0


@needs_node
def test_the_peer_driver_follows_the_bench_contract() -> None:
    with Blaster(300, changes=400, change_docs=50) as blaster:
        for extra in ([], ["--docs", "50", "--changes", "400"]):
            args = ["--url", blaster.url, "--timeout", "60", "--docs", "300", *extra]
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.peer_driver", *args],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=90,
                check=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            assert "error" not in result, result
            assert result["docs_per_s"] > 0
            if extra:
                assert (result["docs"], result["changes"]) == (50, 400)
                assert result["changes_per_s"] > 0


def test_the_runner_writes_the_tables(tmp_path: Path) -> None:
    assert run_all(["--quick", "--only", "stores", "--out", str(tmp_path)]) == 0
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    titles = [json.loads(line)["title"] for line in lines]
    assert "Targets" in titles and "Scenario durations" in titles
    assert "### Resync round into SQLiteStore" in (tmp_path / "results.md").read_text()

"""Run every benchmark scenario and write the tables to ``bench-results/``.

    python -m benchmarks [--quick] [--only B1,B5] [--no-peers] [--out DIR]

Scenarios, in order (``--only`` takes these names, case-insensitive):

* ``stores``: store-only figures (PutDoc, StagePut/StageCommit, PatchDoc, indexed find);
* ``B1``: initial sync over the stock-Meteor path from ddp-blaster, with the raw websockets
  baselines;
* ``live``: live ``changed`` application rate;
* ``B2``: initial sync through the hub's batched pull; ``B3``: catch-up after K offline changes
  vs a full resync; ``B4``: live latency hub commit -> edge commit; ``B6``: outbox drain of 10k
  offline writes; ``B7``: hub fan-out to many edges;
* ``B5``: peak RSS at 100k, 1M and 3M documents (fresh process per size);
* ``peers``: the shared bench's ``run_peers.sh`` with this library's driver next to the peer
  clients (skipped by ``--no-peers`` and ``--quick``).

``--quick`` runs every scenario at a small size (a smoke run; its figures mean little). Each
scenario prints markdown tables and one ``JSON`` line per table; the run also writes
``results.md`` (every table, the machine, the targets) and ``results.jsonl`` to
``bench-results/<UTC time>/`` and prints the targets summary at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import RECORD, ROOT, emit, machine_info, markdown_table

Scenario = Callable[[bool], list[dict[str, Any]]]


def _stores(quick: bool) -> list[dict[str, Any]]:
    from benchmarks import stores

    return stores.run(docs=20_000 if quick else 100_000, quick=quick, mongo=not quick)


def _b1(quick: bool) -> list[dict[str, Any]]:
    from benchmarks import b1_initial

    if quick:
        return b1_initial.run(docs=5_000, repeats=1, mongo=False)
    return b1_initial.run(docs=100_000, repeats=3, mongo=True)


def _live(quick: bool) -> list[dict[str, Any]]:
    from benchmarks import live_changes

    return live_changes.run(changes=5_000 if quick else 100_000, repeats=1 if quick else 3)


def _b2(quick: bool) -> list[dict[str, Any]]:
    from benchmarks import b2_hub_pull

    return b2_hub_pull.run(docs=5_000 if quick else 100_000, repeats=1 if quick else 3)


def _b3(quick: bool) -> list[dict[str, Any]]:
    from benchmarks import b3_catchup

    if quick:
        return b3_catchup.run(docs=5_000, ks=(10, 100))
    return b3_catchup.run(docs=100_000, ks=(100, 1_000, 10_000))


def _b4(quick: bool) -> list[dict[str, Any]]:
    from benchmarks import b4_latency

    if quick:
        return b4_latency.run(rates=(200,), seconds=1.0)
    return b4_latency.run(rates=(1_000, 10_000), seconds=5.0)


def _b6(quick: bool) -> list[dict[str, Any]]:
    from benchmarks import b6_outbox

    return b6_outbox.run(writes=300 if quick else 10_000)


def _b7(quick: bool) -> list[dict[str, Any]]:
    from benchmarks import b7_fanout

    if quick:
        return b7_fanout.run(edges=(4,), docs=200, seconds=1.0)
    return b7_fanout.run(edges=(50, 200, 500), docs=10_000, seconds=3.0)


def _b5(quick: bool) -> list[dict[str, Any]]:
    from benchmarks import b5_memory

    return b5_memory.run(sizes=(5_000, 20_000) if quick else (100_000, 1_000_000, 3_000_000))


def _peers(quick: bool) -> list[dict[str, Any]]:
    from benchmarks import peers

    return peers.run(docs=100_000, repeats=1, changes=100_000, only=peers.DEFAULT_ONLY)


SCENARIOS: dict[str, Scenario] = {
    "stores": _stores,
    "B1": _b1,
    "live": _live,
    "B2": _b2,
    "B3": _b3,
    "B4": _b4,
    "B6": _b6,
    "B7": _b7,
    "B5": _b5,
    "peers": _peers,
}


def _targets(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for obj in objs:
        for name, t in (obj.get("targets") or {}).items():
            rows.append({"scenario": obj["title"].split(":")[0], "target": name, **t})
        if obj["title"] == "Peers: targets of this run":
            for r in obj["rows"]:
                rows.append({"scenario": "peers", "target": r["target"], "got": r["value"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="every scenario at a small size")
    p.add_argument("--only", default="", help="comma-separated scenario names")
    p.add_argument("--no-peers", action="store_true", help="skip run_peers.sh")
    p.add_argument("--out", type=Path, default=None, help="results folder")
    a = p.parse_args(argv)
    wanted = {s.strip().lower() for s in a.only.split(",") if s.strip()}
    unknown = wanted - {k.lower() for k in SCENARIOS}
    if unknown:
        p.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = a.out or ROOT / "bench-results" / stamp
    out.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    print(f"# aioserversync benchmarks ({'quick' if a.quick else 'full'} run)\n")
    print(markdown_table([info]))
    started = time.perf_counter()
    failed: list[str] = []
    timings: list[dict[str, Any]] = []
    for name, scenario in SCENARIOS.items():
        if wanted and name.lower() not in wanted:
            continue
        if name == "peers" and (a.no_peers or a.quick):
            continue
        print(f"\n## {name}\n", flush=True)
        t = time.perf_counter()
        try:
            scenario(a.quick)
        except Exception as exc:
            failed.append(name)
            traceback.print_exc()
            emit(f"{name}: FAILED", [{"error": f"{type(exc).__name__}: {exc}"}])
        timings.append({"scenario": name, "seconds": round(time.perf_counter() - t, 1)})
    total = round(time.perf_counter() - started, 1)
    emit("Targets", _targets(RECORD) or [{"target": "(none measured)"}])
    emit("Scenario durations", [*timings, {"scenario": "total", "seconds": total}])
    with (out / "results.jsonl").open("w") as f:
        for obj in RECORD:
            f.write(json.dumps(obj, default=str) + "\n")
    md = [f"# aioserversync benchmarks, {info['date']}\n", markdown_table([info]), ""]
    for obj in RECORD:
        md += [f"### {obj['title']}\n", markdown_table(obj["rows"]), ""]
    (out / "results.md").write_text("\n".join(md))
    print(f"\nResults written to {out}")
    if failed:
        print(f"FAILED scenarios: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

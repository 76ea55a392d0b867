"""This library next to the peer DDP clients: the shared bench's ``run_peers.sh``, one run.

    python -m benchmarks.peers [--docs 100000] [--repeats 3] [--changes 100000] [--only REGEX]

The shared bench folder is read-only, so it is copied to a cache folder (``$TMPDIR`` or
``AIOSERVERSYNC_BENCH_CACHE``) and its ``setup.sh`` runs there once (``npm ci`` for the server and
the Node peers, Python venvs for the Python peers in ``/tmp``). ``run_peers.sh`` then runs every
client against one ddp-blaster, interleaved per round, with this library's driver
(:mod:`benchmarks.peer_driver`, SQLiteStore and MemoryStore) as ``EXTRA_CLIENTS``. The tables are
the bench's own (median docs/s, min-max, peak RSS), plus the target ratios of this run:
into SQLite >= 4x the best Python peer and >= 0.55x ddp.js.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.blaster import CACHE
from benchmarks.common import ROOT, SHARED_BENCH, emit

BENCH_COPY = CACHE / "aioserversync-bench"
PYTHON_PEERS = ("python-ddp", "python-meteor", "pyMeteor", "ddp-asyncio (shimmed)")
OURS = {"sqlite": "aioserversync (SQLite)", "memory": "aioserversync (memory)"}
DEFAULT_ONLY = (
    r"^(node-ws-.*|py-websockets-.*|ddp\.js|ddp \(npm\)|python-ddp|python-meteor|pyMeteor|"
    r"ddp-asyncio.*|aioserversync.*)$"
)
"""Every client but simpleddp: its initial sync is quadratic (about 33 s per 100k run, 100 s of
the bench); the shared bench README has its figures (about 3k docs/s)."""


def bench_copy() -> Path:
    """A writable copy of the shared bench folder, set up (``setup.sh``) once.

    Raises:
        subprocess.CalledProcessError: ``setup.sh`` failed (no npm or PyPI access).
    """
    if not (BENCH_COPY / "run_peers.sh").exists():
        shutil.copytree(SHARED_BENCH, BENCH_COPY, dirs_exist_ok=True)
        for path in [BENCH_COPY, *BENCH_COPY.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
    ready = (
        (BENCH_COPY / "ddp-blaster" / "node_modules").is_dir()
        and (BENCH_COPY / "node-peers" / "node_modules").is_dir()
        and Path(os.environ.get("BENCH_VENV", "/tmp/benchvenv"), "bin", "python").exists()
    )
    if not ready:
        subprocess.run(["./setup.sh"], cwd=BENCH_COPY, check=True, stdout=subprocess.DEVNULL)
    return BENCH_COPY


def _medians(path: Path, key: str) -> dict[str, dict[str, Any]]:
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                runs[r["client"]].append(r)
    out = {}
    for client, rs in runs.items():
        ok = [r for r in rs if key in r and "error" not in r]
        row: dict[str, Any] = {"client": client, "ok runs": f"{len(ok)}/{len(rs)}"}
        if ok:
            rates = sorted(r[key] for r in ok)
            row["median /s"] = round(statistics.median(rates))
            row["min-max /s"] = f"{rates[0]:,}-{rates[-1]:,}"
            rss = [r["peak_rss_mb"] for r in ok if r.get("peak_rss_mb") is not None]
            row["peak RSS MB (max)"] = max(rss) if rss else None
        else:
            row["error"] = next((r.get("error") for r in rs if r.get("error")), "no result")
        out[client] = row
    return out


def _ratio(rows: dict[str, dict[str, Any]], ours: str, other: str) -> float | None:
    a = rows.get(ours, {}).get("median /s")
    b = rows.get(other, {}).get("median /s")
    return round(a / b, 2) if a and b else None


def run(
    *,
    docs: int = 100_000,
    repeats: int = 3,
    changes: int = 100_000,
    only: str = "",
    out: Path | None = None,
) -> list[dict[str, Any]]:
    """Run the shared bench with this library's driver; emit the tables."""
    folder = bench_copy()
    out = out or Path(CACHE / "aioserversync-peers-out")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    python = sys.executable
    extra = "\n".join(
        f"{label}|env PYTHONPATH={ROOT} {python} -m benchmarks.peer_driver --store {kind}"
        for kind, label in OURS.items()
    )
    env = {
        **os.environ,
        "DOCS": str(docs),
        "REPEATS": str(repeats),
        "CHANGES": str(changes),
        "EXTRA_CLIENTS": extra,
        "OUT": str(out),
        "ONLY": only,
    }
    proc = subprocess.run(
        ["./run_peers.sh"], cwd=folder, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"run_peers.sh failed ({proc.returncode}): {proc.stderr[-2000:]}")
    meta = (out / "meta.txt").read_text() if (out / "meta.txt").exists() else ""
    initial = _medians(out / "sub.jsonl", "docs_per_s")
    live = _medians(out / "changes.jsonl", "changes_per_s")
    results = [
        emit(
            f"Peers: initial subscription, {docs:,} docs, sub -> ready (run_peers.sh, "
            f"{repeats} interleaved rounds)",
            list(initial.values()),
            extra={"meta": meta},
        )
    ]
    if changes:
        results.append(
            emit(
                f"Peers: live changes, {changes:,} changed over 1,000 docs, ready -> END",
                list(live.values()),
            )
        )
    best_py = max(
        (initial[p]["median /s"] for p in PYTHON_PEERS if initial.get(p, {}).get("median /s")),
        default=None,
    )
    ours = initial.get(OURS["sqlite"], {}).get("median /s")
    targets = [
        {
            "target": "B1 into SQLite >= 4x the best Python peer",
            "value": round(ours / best_py, 2) if ours and best_py else None,
            "met": bool(ours and best_py and ours >= 4 * best_py),
        },
        {
            "target": "B1 into SQLite >= 0.55x ddp.js",
            "value": _ratio(initial, OURS["sqlite"], "ddp.js"),
            "met": bool((_ratio(initial, OURS["sqlite"], "ddp.js") or 0) >= 0.55),
        },
        {
            "target": "B1 into SQLite vs py-websockets-store (dict baseline)",
            "value": _ratio(initial, OURS["sqlite"], "py-websockets-store"),
            "met": None,
        },
    ]
    if changes:
        targets.append(
            {
                "target": "live changes (SQLite, via changes()) vs ddp.js",
                "value": _ratio(live, OURS["sqlite"], "ddp.js"),
                "met": None,
            }
        )
    results.append(emit("Peers: targets of this run", targets))
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--changes", type=int, default=100_000)
    p.add_argument(
        "--only", default=DEFAULT_ONLY, help="regex of client names (default: all but simpleddp)"
    )
    a = p.parse_args()
    run(docs=a.docs, repeats=a.repeats, changes=a.changes, only=a.only)


if __name__ == "__main__":
    main()

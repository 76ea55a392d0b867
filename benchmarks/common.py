"""Shared benchmark helpers: machine info, timing, peak RSS, and table output (markdown + JSON)."""

from __future__ import annotations

import json
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED_BENCH = Path(os.environ.get("AIOSERVERSYNC_SHARED_BENCH", ROOT.parent / "shared" / "bench"))
now = time.perf_counter
cpu = time.process_time

RECORD: list[dict[str, Any]] = []
"""Every table emitted by this process, in order (the runner writes them to bench-results/)."""


def machine_info() -> dict[str, Any]:
    """Describe the machine and the software versions measured."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
    }
    for mod in ("websockets", "orjson", "pymongo"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            info[mod] = None
    try:  # the [fast] extra: pull pages checked by simdjson (aioserversync/jsoncheck.py)
        from importlib.metadata import version

        info["pysimdjson"] = version("pysimdjson")
    except Exception:
        info["pysimdjson"] = None
    try:
        info["node"] = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["node"] = None
    return info


def peak_rss_mb() -> float:
    """The process's peak resident set size in MB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Render rows as a markdown table (numbers get thousands separators)."""
    if not rows:
        return "(no rows)"
    cols = list(columns or rows[0].keys())

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.0f}"
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        return "" if v is None else str(v)

    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def emit(
    title: str,
    rows: Sequence[dict[str, Any]],
    *,
    columns: Sequence[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Print a titled markdown table and one JSON line; return the JSON object."""
    print(f"\n### {title}\n")
    print(markdown_table(rows, columns))
    obj = {"title": title, "rows": list(rows), **(extra or {})}
    print("\nJSON " + json.dumps(obj, default=str))
    sys.stdout.flush()
    RECORD.append(obj)
    return obj


def rate_row(
    case: str, n: int, runs: Sequence[tuple[float, float]], *, unit: str = "docs", total: int = 0
) -> dict[str, Any]:
    """A table row from ``(wall seconds, CPU seconds)`` runs of ``n`` items: median and range.

    ``CPU s`` is the process CPU time over the timed span (the server runs elsewhere); on a
    shared, noisy machine ``per CPU s`` is the steadier measure of client cost.
    """
    row: dict[str, Any] = {"case": case, "ok runs": f"{len(runs)}/{total or len(runs)}"}
    if not runs:
        return row
    walls = sorted(w for w, _ in runs)
    cpus = sorted(c for _, c in runs)
    med = statistics.median(walls)
    row[f"median {unit}/s"] = round(n / med)
    row[f"min-max {unit}/s"] = f"{n / walls[-1]:,.0f}-{n / walls[0]:,.0f}"
    row["median s"] = round(med, 3)
    mcpu = statistics.median(cpus)
    row[f"{unit} per CPU s"] = round(n / mcpu) if mcpu else None
    return row

"""The ddp-blaster test server (from the shared DDP client bench) as a subprocess.

``node server.js --port 0 --docs N [--changes M --change-docs K]`` serves raw DDP on
``ws://127.0.0.1:P/websocket``: ``sub items [N]`` gets N pre-framed ``added`` then ``ready``;
``sub items [K, M]`` gets K ``added``, ``ready``, M ``changed`` of ``{"counter": k}`` cycling over
the K documents, then ``added`` of id ``END``. The shared folder is read-only, so when its
``node_modules`` is missing the server is copied to a cache folder and ``npm ci`` runs there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from benchmarks.common import SHARED_BENCH

BLASTER = SHARED_BENCH / "ddp-blaster"
CACHE = Path(os.environ.get("AIOSERVERSYNC_BENCH_CACHE", Path(tempfile.gettempdir())))


def node_available() -> bool:
    """Whether ``node`` and ``npm`` are on the PATH and the shared bench folder exists."""
    return bool(shutil.which("node") and shutil.which("npm") and BLASTER.is_dir())


def blaster_dir() -> Path:
    """Return a ddp-blaster folder with node_modules, installing a private copy if needed."""
    if (BLASTER / "node_modules" / "ws").is_dir():
        return BLASTER
    target = CACHE / "aioserversync-ddp-blaster"
    if not (target / "node_modules" / "ws").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        for name in ("server.js", "package.json", "package-lock.json"):
            shutil.copy(BLASTER / name, target / name)
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=target,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return target


class Blaster:
    """ddp-blaster on a free loopback port, for ``with`` blocks.

    Args:
        docs: Documents pre-built for ``sub items [docs]``.
        changes: Live ``changed`` messages pre-built for ``sub items [change_docs, changes]``.
        change_docs: Documents of the change stream.
    """

    def __init__(self, docs: int, *, changes: int = 0, change_docs: int = 0) -> None:
        self.docs = docs
        self.changes = changes
        self.change_docs = change_docs
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> Blaster:
        folder = blaster_dir()
        cmd = ["node", str(folder / "server.js"), "--port", "0", "--docs", str(self.docs)]
        if self.changes:
            cmd += ["--changes", str(self.changes), "--change-docs", str(self.change_docs)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"ws://([\d.]+):(\d+)", line)
        if not m:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"ddp-blaster did not start: {line!r}")
        self.url = f"ws://{m.group(1)}:{m.group(2)}/websocket"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

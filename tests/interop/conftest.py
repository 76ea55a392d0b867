"""Node.js and the npm DDP clients for the interop tests, installed once into a cache folder.

The packages are installed with ``npm install --no-audit --no-fund`` into
``~/.cache/aioserversync-interop/<hash of the package list>`` (``AIOSERVERSYNC_INTEROP_CACHE``
overrides the parent folder) and reused while present. The tests are skipped only when ``node``
or ``npm`` is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

NPM_PACKAGES = {
    "simpleddp": "2.2.4",
    "ddp.js": "2.2.1",
    "ws": "8.23.0",
    "isomorphic-ws": "5.0.0",
}
INSTALL_TIMEOUT = 600


def _cache_root() -> Path:
    base = os.environ.get("AIOSERVERSYNC_INTEROP_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "aioserversync-interop"


def _installed(folder: Path) -> bool:
    return (folder / ".complete").exists() and all(
        (folder / "node_modules" / name / "package.json").exists() for name in NPM_PACKAGES
    )


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """The ``node_modules`` folder holding the npm clients (installed on first use)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm not installed: the npm interop tests need Node.js")
    spec = json.dumps(NPM_PACKAGES, sort_keys=True)
    folder = _cache_root() / hashlib.sha256(spec.encode()).hexdigest()[:16]
    if not _installed(folder):
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".install-", dir=folder.parent))
        try:
            (staging / "package.json").write_text(
                json.dumps({"private": True, "dependencies": NPM_PACKAGES}, indent=2)
            )
            proc = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=staging,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
                check=False,
            )
            if proc.returncode != 0:
                pytest.fail(f"npm install failed:\n{proc.stdout}\n{proc.stderr}")
            (staging / ".complete").write_text(spec)
            if not _installed(folder):
                shutil.rmtree(folder, ignore_errors=True)
                try:
                    staging.rename(folder)
                except OSError:
                    if not _installed(folder):  # pragma: no cover - a concurrent install won
                        raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return folder / "node_modules"

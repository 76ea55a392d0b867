"""``run_hub``: TLS from PEM files, a clean stop on an event and on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from aioserversync.exceptions import ConfigurationError
from aioserversync.hub import HubConfig, HubServing, run_hub, ssl_context
from tests.conftest import MS, ROOT
from tests.hub.conftest import call, client, insert_change


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


async def test_run_hub_serves_wss_and_stops_cleanly(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("tok-alice alice\n")
    config = HubConfig(
        store=str(tmp_path / "hub.sqlite3"),
        collections=["items"],
        port=0,
        certfile=str(cert),
        keyfile=str(key),
        tokens_file=str(tokens),
        heartbeat_interval=0,
    )
    stop = asyncio.Event()
    serving: asyncio.Future[HubServing] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_hub(config, started=serving.set_result, stop=stop, handle_signals=False)
    )
    async with asyncio.timeout(10_000 * MS):
        running = await serving
    assert running.url.startswith("wss://127.0.0.1:")
    trust = ssl.create_default_context(cafile=str(cert))
    async with client(running.url, "tok-alice", ssl=trust) as c:
        assert (await call(c, "serversync/capabilities"))["collections"] == ["items"]
        await call(c, "serversync/push", "items", [insert_change("m1", "a", {"n": 1})])
    stop.set()
    async with asyncio.timeout(10_000 * MS):
        await task
    assert not running.hub.store.is_open  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError):
        ssl_context(str(tmp_path / "missing.pem"))


async def test_sigterm_stops_a_hub_process_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "hub.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.hub.hub_proc",
        str(db),
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20_000 * MS):
            line = (await proc.stdout.readline()).decode()
        url = f"ws://127.0.0.1:{int(line.split()[1])}/websocket"
        async with client(url, "tok") as c:
            await call(c, "serversync/push", "items", [insert_change("m1", "a", {"n": 1})])
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20_000 * MS):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

"""``mirror`` on a terminal: the live display runs (through a pseudo-terminal) and stops cleanly."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import signal
import sys
from pathlib import Path

from tests.cli.conftest import cli_env
from tests.conftest import MS
from tests.meteor_app import MeteorApp

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


async def test_live_display_on_a_terminal(meteor: MeteorApp, tmp_path: Path) -> None:
    master, slave = pty.openpty()
    env = {**cli_env(), "TERM": "xterm-256color", "COLUMNS": "200", "LINES": "40"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aioserversync", "mirror", f"http://127.0.0.1:{meteor.port}",
        "items", "--store", f"sqlite:///{tmp_path / 'edge.db'}",
        stdin=slave, stdout=slave, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    os.close(slave)
    loop = asyncio.get_running_loop()
    seen = bytearray()
    got_data = asyncio.Event()

    def on_readable() -> None:
        try:
            data = os.read(master, 65536)
        except OSError:  # the terminal closed with the process
            data = b""
        if not data:
            loop.remove_reader(master)
        seen.extend(data)
        got_data.set()

    def text() -> str:
        return ANSI.sub(b"", bytes(seen)).decode(errors="replace")

    async def until(needle: str) -> None:
        async with asyncio.timeout(10_000 * MS):
            while needle not in text():
                got_data.clear()
                await got_data.wait()

    loop.add_reader(master, on_readable)
    try:
        await until("ready")
        await until("● connected")  # the live status line after the first snapshot
        assert "items 5 docs" in text()
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(15_000 * MS):
            code = await proc.wait()
        await until("stopped")
        assert code == 0
        assert proc.stderr is not None
        assert b"Traceback" not in await proc.stderr.read()
    finally:
        loop.remove_reader(master)
        os.close(master)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

"""Helpers for running the ``aioserversync`` command as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MS, ROOT
from tests.meteor_app import MeteorApp

SEED = [{"_id": f"d{i}", "name": f"doc {i}", "n": i} for i in range(5)]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("HTTP_PROXY", None)
    env.pop("http_proxy", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def run_cli(
    *args: str,
    cwd: Path | None = None,
    timeout: float = 30_000 * MS,
    env: dict[str, str] | None = None,
) -> tuple[int, str, str]:
    """Run ``python -m aioserversync ARGS`` to completion; return (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aioserversync",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env={**cli_env(), **(env or {})},
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class CLIProcess:
    """A long-running ``aioserversync`` subprocess whose stdout is read as JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []

    async def next_event(self, timeout: float = 10_000 * MS) -> dict[str, Any]:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            line = await self.proc.stdout.readline()
        if not line:
            err = b""
            if self.proc.stderr is not None:
                err = await self.proc.stderr.read()
            raise AssertionError(f"the command ended early: {err.decode()}")
        event = json.loads(line)
        self.events.append(event)
        return event

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10_000 * MS
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = await self.next_event(max(0.0, deadline - loop.time()))
            if predicate(event):
                return event

    async def interrupt(self, timeout: float = 15_000 * MS) -> tuple[int, str]:
        """Send SIGINT; read the remaining events; return (exit code, stderr)."""
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        async with asyncio.timeout(timeout):
            rest = await self.proc.stdout.read()
            err = await self.proc.stderr.read()
            code = await self.proc.wait()
        self.events.extend(json.loads(line) for line in rest.decode().splitlines() if line)
        return code, err.decode()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def start_cli(*args: str, cwd: Path | None = None) -> CLIProcess:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aioserversync",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=cli_env(),
    )
    return CLIProcess(proc)


@pytest.fixture
async def cli_processes() -> AsyncIterator[list[CLIProcess]]:
    """Processes registered here are killed (by their own PID) if a test leaves them running."""
    procs: list[CLIProcess] = []
    yield procs
    for p in procs:
        await p.kill()


@pytest.fixture
async def meteor() -> AsyncIterator[MeteorApp]:
    app = MeteorApp()
    app.add_collection("items", SEED)
    await app.start()
    yield app
    await app.stop()

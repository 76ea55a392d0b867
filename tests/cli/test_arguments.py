"""Bad arguments: one line on stderr and exit code 2, before anything is started."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.cli.conftest import run_cli

CASES = {
    "bad URL scheme": (["mirror", "ftp://example.com", "items"], "unsupported URL scheme 'ftp'"),
    "URL without host": (["mirror", "http://", "items"], "has no host"),
    "unknown store scheme": (
        ["mirror", "http://127.0.0.1:1", "items", "--store", "redis://x"],
        "unknown store URL scheme 'redis'",
    ),
    "store without scheme": (["status", "--store", "cache.db"], "has no scheme"),
    "unknown mode": (
        ["mirror", "http://127.0.0.1:1", "items", "--mode", "bogus"],
        "invalid choice: 'bogus'",
    ),
    "malformed sqlite URL": (
        ["status", "--store", "sqlite://relative.db"],
        "use sqlite:///relative/path",
    ),
    "missing cache": (["status", "--store", "sqlite:///does-not-exist.db"], "no cache at"),
    "bad port": (
        ["mirror", "http://127.0.0.1:1", "items", "--metrics-port", "99999"],
        "out of range",
    ),
    "no command": ([], "required: COMMAND"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
async def test_bad_arguments_exit_2_with_one_line(case: str, tmp_path: Path) -> None:
    args, expected = CASES[case]
    code, out, err = await run_cli(*args, cwd=tmp_path)
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("aioserversync")
    assert expected in lines[0]
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []  # nothing created


async def test_version() -> None:
    code, out, _ = await run_cli("--version")
    assert code == 0 and out.startswith("aioserversync ")

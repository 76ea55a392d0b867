"""Every code example in the docs runs here.

Fenced blocks are marked in their info string:

* ```` ```python example ````: a complete program, run as a script;
* ```` ```python example app ````: a module defining an ASGI ``app``; its lifespan is started and
  ``GET /items`` and ``GET /status`` must answer 200;
* ```` ```sh example ````: shell commands, run with ``bash -e``.

The blocks of one page run in order, in one fresh directory (a later block may use files an
earlier one made), with ``AIOSERVERSYNC_URL`` pointing at a loopback server that serves ``items``
and ``notes`` (a hub; a page that starts with ``<!-- examples-server: meteor -->`` gets the
stock-Meteor-like test app instead; both refuse ``items`` documents named "forbidden"), and
``MONGODB_URI`` at a test MongoDB when a block mentions it. Unmarked ``python`` blocks are not
allowed on these pages: every Python example must run.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.conftest import cli_env
from tests.conftest import MS, ROOT
from tests.meteor_app import MeteorApp

PAGES = [
    "README.md",
    "docs/index.md",
    "docs/quickstart.md",
    "docs/modes.md",
    "docs/stores.md",
    "docs/meteor.md",
    "docs/operations.md",
]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
SEED = [{"_id": f"d{i}", "name": f"item {i}", "n": i} for i in range(3)]


@dataclass
class Block:
    page: str
    line: int
    lang: str
    flags: list[str]
    code: str


def blocks(page: str) -> list[Block]:
    text = (ROOT / page).read_text()
    out = []
    for m in FENCE.finditer(text):
        info = m.group(1).split()
        lang, flags = (info[0], info[1:]) if info else ("", [])
        out.append(Block(page, text[: m.start()].count("\n") + 1, lang, flags, m.group(2)))
    return out


def test_every_python_block_is_marked_runnable() -> None:
    unmarked = [
        f"{b.page}:{b.line}"
        for page in PAGES
        for b in blocks(page)
        if b.lang == "python" and "example" not in b.flags
    ]
    assert unmarked == []


def test_readme_quick_start_is_exactly_make_demo_and_make_test() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    (block,) = [b for b in FENCE.finditer(section)]
    assert block.group(2).split("\n") == ["make demo", "make test", ""]


def test_docs_link_targets_exist() -> None:
    missing = []
    for page in [*PAGES, "docs/protocol.md"]:
        text = (ROOT / page).read_text()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            path = (ROOT / page).parent / target
            if path.name == "benchmarks.md":
                continue  # written separately; linked ahead of time
            if not path.exists():
                missing.append(f"{page} -> {target}")
    assert missing == []


def _allowed(identity: object, collection: str, op: str, doc_id: object, doc: object) -> bool:
    # operations.md shows a refused write: documents named "forbidden" are denied.
    return not (isinstance(doc, dict) and doc.get("name") == "forbidden")


@pytest.fixture
async def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    page = request.node.callspec.params["page"]
    text = (ROOT / page).read_text()
    if "<!-- examples-server: meteor -->" in text:
        app = MeteorApp()
        app.add_collection("items", SEED)
        app.add_collection("notes", [])
        app.deny["items"] = lambda op, _id, doc: not _allowed(None, "items", op, _id, doc)
        await app.start()
        try:
            yield f"http://127.0.0.1:{app.port}"
        finally:
            await app.stop()
        return
    from aioserversync.hub import ServerSyncServer
    from aioserversync.stores import SQLiteStore

    hub = ServerSyncServer(
        SQLiteStore(str(tmp_path_factory.mktemp("hub") / "docs-hub.db")), allow_anonymous=True
    )
    hub.collection("items", write=_allowed)
    hub.collection("notes")
    async with hub.serve("127.0.0.1", 0) as running:
        for doc in SEED:
            await hub.insert("items", doc)
        yield f"http://127.0.0.1:{running.port}"


async def _run(args: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(60_000 * MS):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{what} did not finish") from None
    assert proc.returncode == 0, f"{what} failed:\n{out.decode()}"


async def _run_app(code: str, path: Path, env: dict[str, str]) -> None:
    import httpx
    from asgi_lifespan import LifespanManager

    await asyncio.to_thread(path.write_text, code)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    old, old_cwd = dict(os.environ), os.getcwd()
    os.environ.update(env)
    os.chdir(path.parent)  # files the app makes land in the page's directory
    try:
        spec.loader.exec_module(module)
        async with (
            LifespanManager(module.app) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url="http://docs"
            ) as client,
        ):
            for route in ("/items", "/status"):
                r = await client.get(route)
                assert r.status_code == 200, (route, r.text)
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old)


@pytest.mark.parametrize("page", PAGES)
async def test_page_examples_run(
    page: str, server: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    runnable = [b for b in blocks(page) if "example" in b.flags]
    if not runnable:
        pytest.skip(f"{page} has no runnable examples")
    env = cli_env()
    env["AIOSERVERSYNC_URL"] = server
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if any("MONGODB_URI" in b.code for b in runnable):
        env["MONGODB_URI"] = request.getfixturevalue("mongo_uri")
    for n, b in enumerate(runnable):
        what = f"{page}:{b.line}"
        if b.lang == "python" and "app" in b.flags:
            await _run_app(b.code, tmp_path / f"docs_app_{n}.py", env)
        elif b.lang == "python":
            script = tmp_path / f"example_{n}.py"
            script.write_text(b.code)
            await _run([sys.executable, str(script)], tmp_path, env, what)
        elif b.lang in ("sh", "bash", "console"):
            await _run(["bash", "-e", "-c", b.code], tmp_path, env, what)
        else:
            raise AssertionError(f"{what}: cannot run a {b.lang!r} block")

"""``aioserversync.metrics``: figures read at scrape time, a private registry, the HTTP listener."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from aioserversync.asyncio.sync import ServerSync
from aioserversync.metrics import SyncMetrics, serve_metrics
from tests.conftest import MS
from tests.meteor_app import MeteorApp
from tests.utils import wait_for_condition

FAST = {
    "heartbeat_interval": 0,
    "backoff_initial": 0.005,
    "backoff_max": 0.05,
    "stable_after": 0,
    "open_timeout": 2.0,
}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def _http(port: int, request: bytes, *, eof: bool = False) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    if eof:
        writer.write_eof()
    async with asyncio.timeout(5000 * MS):
        data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return data


async def test_figures_follow_the_remote_and_its_collections(meteor: MeteorApp) -> None:
    url = f"http://127.0.0.1:{meteor.port}"
    metrics = SyncMetrics()
    other = SyncMetrics()  # a second instance: private registries never collide
    assert metrics.registry is not other.registry
    async with ServerSync(url, store="memory://", name="hub-a", **FAST) as remote:
        items = await remote.sync("items", mode="write")
        await items.wait_ready(timeout=5000 * MS)
        metrics.track(remote, items)
        metrics.track(remote, items)  # tracking twice changes nothing
        await items.insert({"_id": "x1", "name": "new"})
        await items.wait_drained(timeout=5000 * MS)

        s = _samples((await metrics.render()).decode())
        coll = (("collection", "items"), ("remote", "hub-a"))
        assert s[("aioserversync_connected", (("remote", "hub-a"),))] == 1.0
        assert (
            s[("aioserversync_connection_state", (("remote", "hub-a"), ("state", "connected")))]
            == 1.0
        )
        assert (
            s[("aioserversync_connection_state", (("remote", "hub-a"), ("state", "reconnecting")))]
            == 0.0
        )
        assert s[("aioserversync_documents", coll)] == 6.0
        assert s[("aioserversync_outbox_pending", coll)] == 0.0
        assert s[("aioserversync_pushed_total", coll)] == 1.0
        assert s[("aioserversync_resyncs_total", coll)] == 1.0
        assert s[("aioserversync_live", coll)] == 1.0
        assert 0.0 <= s[("aioserversync_last_sync_age_seconds", coll)] < 60.0

        server = await serve_metrics(metrics, "127.0.0.1", 0)
        try:
            ok = await _http(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            assert ok.startswith(b"HTTP/1.1 200 OK")
            assert b'aioserversync_documents{collection="items",remote="hub-a"} 6.0' in ok
            missing = await _http(server.port, b"GET /nope HTTP/1.1\r\n\r\n")
            assert missing.startswith(b"HTTP/1.1 404")
            wrong = await _http(server.port, b"POST /metrics HTTP/1.1\r\n\r\n")
            assert wrong.startswith(b"HTTP/1.1 405")
            garbage = await _http(server.port, b"\x00\x01garbage-without-end", eof=True)
            assert garbage == b""  # dropped, and the listener keeps serving
            again = await _http(server.port, b"GET /metrics HTTP/1.1\r\n\r\n")
            assert again.startswith(b"HTTP/1.1 200 OK")
            # A scraper that never finishes its request is dropped when the listener closes.
            _, idle = await asyncio.open_connection("127.0.0.1", server.port)
            await wait_for_condition(lambda: server._writers, message="idle scrape accepted")
        finally:
            await server.close()
        idle.close()
        with contextlib.suppress(OSError):
            await idle.wait_closed()

    # After close: the state is reported as closed, counts that cannot be read are left out.
    s = _samples((await metrics.render()).decode())
    assert s[("aioserversync_connected", (("remote", "hub-a"),))] == 0.0
    metrics.untrack(remote)
    s = _samples((await metrics.render()).decode())
    assert not any(name == "aioserversync_connected" for name, _ in s)


def test_accepts_a_given_registry() -> None:
    registry = CollectorRegistry()
    metrics = SyncMetrics(registry, namespace="edge")
    assert metrics.registry is registry
    assert "edge_connected" in {m.name for m in registry.collect()}


def test_core_never_imports_the_optional_extras() -> None:
    code = (
        "import sys, aioserversync.asyncio.sync, aioserversync.stores, aioserversync.cli;"
        "bad = {'prometheus_client', 'rich'} & set(sys.modules);"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

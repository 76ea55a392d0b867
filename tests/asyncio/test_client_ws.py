"""DDPClientConnection over real sockets: websockets servers, and a raw TCP server for exact bytes.

The websockets server covers compression, fragmentation, pings both ways and the closing
handshake; the raw server writes exact bytes (the handshake response and frames in one write,
invalid frames), which a conforming server library cannot be made to send.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK

from aioserversync.asyncio.client import DDPClient
from aioserversync.asyncio.client_ws import DDPClientConnection
from aioserversync.protocol.events import Added
from tests.conftest import MS
from tests.utils import wait_for_condition

T = 5000 * MS
Handler = Callable[[ServerConnection], Awaitable[None]]


@asynccontextmanager
async def ws_server(handler: Handler, **kwargs: Any) -> AsyncIterator[str]:
    """A websockets server on 127.0.0.1:0 running ``handler`` per connection; yields the URL."""
    async with serve(handler, "127.0.0.1", 0, **kwargs) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/websocket"


@asynccontextmanager
async def raw_server(
    after_handshake: bytes, *, extensions: str | None = None, drip: bool = False
) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A TCP server that answers the upgrade and writes ``after_handshake`` right behind it.

    Yields the URL and a list that collects what each client sent after its request.
    """
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        found = re.search(rb"sec-websocket-key: *(\S+)", request, re.IGNORECASE)
        assert found is not None
        guid = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        accept = base64.b64encode(hashlib.sha1(found.group(1) + guid).digest())
        head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        head += b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n"
        if extensions is not None:
            head += b"Sec-WebSocket-Extensions: " + extensions.encode() + b"\r\n"
        data = head + b"\r\n" + after_handshake
        if drip:
            for i in range(len(data)):
                writer.write(data[i : i + 1])
                await writer.drain()
        else:
            writer.write(data)
        try:
            while chunk := await reader.read(65536):
                received.append(chunk)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/websocket", received


def frame(payload: bytes, b0: int = 0x81) -> bytes:
    """One unmasked server frame; ``b0`` holds FIN, RSV and the opcode."""
    n = len(payload)
    if n < 126:
        return bytes([b0, n]) + payload
    if n < 65536:
        return bytes([b0, 126]) + n.to_bytes(2, "big") + payload
    return bytes([b0, 127]) + n.to_bytes(8, "big") + payload


async def open_client(url: str, **kwargs: Any) -> DDPClientConnection:
    kwargs.setdefault("compression", None)
    ws = await connect(url, proxy=None, create_connection=DDPClientConnection, **kwargs)
    assert isinstance(ws, DDPClientConnection)
    return ws


async def read_all(ws: DDPClientConnection, count: int) -> list[bytes]:
    got: list[bytes] = []
    async with asyncio.timeout(T):
        while len(got) < count:
            got.extend(await ws.next_batch())
    return got


async def read_until_closed(ws: DDPClientConnection) -> tuple[list[bytes], ConnectionClosed]:
    got: list[bytes] = []
    async with asyncio.timeout(T):
        while True:
            try:
                got.extend(await ws.next_batch())
            except ConnectionClosed as exc:
                return got, exc


MESSAGES = [
    b'{"msg":"added","id":"%d","fields":{"v":"%s"}}' % (i, b"x" * (i % 300)) for i in range(2000)
]
MESSAGES += [b"y" * 70000, b"", b"z" * 65535]


# ------------------------------------------------------------------------------ websockets server


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_messages_arrive_in_order_in_batches(compression: str | None) -> None:
    async def handler(ws: ServerConnection) -> None:
        for m in MESSAGES:
            await ws.send(m, text=True)
        await ws.wait_closed()

    async with ws_server(handler, compression=compression) as url:
        ws = await open_client(url, compression=compression, max_size=2**20)
        assert ws.fast
        got = await read_all(ws, len(MESSAGES))
        assert got == MESSAGES
        await ws.close()


async def test_fragmented_messages_from_the_server_are_reassembled() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send([b"frag", b"men", b"ted"], text=True)
        await ws.send(["über", "all"])
        await ws.send(b"done", text=True)
        await ws.wait_closed()

    async with ws_server(handler, compression="deflate") as url:
        ws = await open_client(url, compression="deflate")
        assert await read_all(ws, 3) == [b"fragmented", "überall".encode(), b"done"]
        await ws.close()


async def test_server_pings_are_answered() -> None:
    pongs: list[float] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.send(b"hello", text=True)
        waiter = await ws.ping(b"p1")
        async with asyncio.timeout(T):
            pongs.append(await waiter)
        await ws.send(b"after pong", text=True)
        await ws.wait_closed()

    async with ws_server(handler) as url:
        ws = await open_client(url)
        assert await read_all(ws, 2) == [b"hello", b"after pong"]
        assert len(pongs) == 1
        await ws.close()


async def test_client_pings_get_their_pong() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with ws_server(handler) as url:
        ws = await open_client(url)
        waiter = await ws.ping(b"c1")
        async with asyncio.timeout(T):
            latency = await waiter
        assert latency >= 0
        await ws.close()


@pytest.mark.parametrize(("code", "ok"), [(1000, True), (4000, False)])
async def test_a_server_close_ends_the_stream_after_its_messages(code: int, ok: bool) -> None:
    async def handler(ws: ServerConnection) -> None:
        for i in range(50):
            await ws.send(b"m%d" % i, text=True)
        await ws.close(code, "bye")

    async with ws_server(handler) as url:
        ws = await open_client(url)
        got, exc = await read_until_closed(ws)
        assert got == [b"m%d" % i for i in range(50)]
        assert isinstance(exc, ConnectionClosedOK if ok else ConnectionClosedError)
        assert exc.rcvd is not None and exc.rcvd.code == code and exc.rcvd.reason == "bye"
        assert exc.sent is not None and exc.sent.code == code  # the close was answered
        with pytest.raises(ConnectionClosed):
            await ws.next_batch()


async def test_a_client_close_completes_the_handshake() -> None:
    seen: list[int | None] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()
        seen.append(ws.close_code)

    async with ws_server(handler) as url:
        ws = await open_client(url)
        async with asyncio.timeout(T):
            await ws.close(1000)
        with pytest.raises(ConnectionClosedOK):
            await ws.next_batch()
        await wait_for_condition(lambda: seen, timeout=T)
        assert seen == [1000]


async def test_a_message_over_max_size_fails_the_connection_with_1009(caplog) -> None:
    seen: list[int | None] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.send(b"a" * 1000, text=True)
        await ws.send(b"b" * 1001, text=True)
        await ws.wait_closed()
        seen.append(ws.close_code)

    async with ws_server(handler, compression="deflate") as url:
        ws = await open_client(url, max_size=1000, compression="deflate")
        got, exc = await read_until_closed(ws)
        assert got == [b"a" * 1000]
        assert isinstance(exc, ConnectionClosedError)
        assert exc.sent is not None and exc.sent.code == 1009
        await wait_for_condition(lambda: seen, timeout=T)
        assert seen == [1009]
        # Said as what it is: the same message will come after every reconnect.
        [record] = [r for r in caplog.records if "max_size" in r.getMessage()]
        assert record.levelname == "ERROR" and "max_size= is raised" in record.getMessage()


async def test_reading_pauses_when_the_reader_falls_behind_and_resumes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The limit is in force from the first byte (the server sends at once).
    monkeypatch.setattr(DDPClientConnection, "max_buffer", 64 * 1024)
    big = [b"%06d" % i + b"." * 1000 for i in range(3000)]  # about 3 MB

    async def handler(ws: ServerConnection) -> None:
        for m in big:
            await ws.send(m, text=True)
        await ws.wait_closed()

    async with ws_server(handler) as url:
        ws = await open_client(url, max_size=2**20)
        await wait_for_condition(
            lambda: not ws.transport.is_reading(),  # type: ignore[attr-defined]
            timeout=T,
            message="reading paused",
        )
        first = await ws.next_batch()
        # Bounded: at most the limit plus what one read of the transport can hold.
        assert 60 * 1024 <= sum(map(len, first)) <= 64 * 1024 + 256 * 1024 + 1100
        assert ws.transport.is_reading()  # type: ignore[attr-defined]
        rest = await read_all(ws, len(big) - len(first))
        assert first + rest == big
        await ws.close()


async def test_a_fragment_size_limit_keeps_websockets_reader() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(b"one", text=True)
        await ws.send(b"two", text=True)
        await ws.wait_closed()

    async with ws_server(handler) as url:
        ws = await open_client(url, max_size=(1000, 500))
        assert not ws.fast
        assert await read_all(ws, 2) == [b"one", b"two"]
        ws.unread([b"again"])
        assert await ws.next_batch() == [b"again"]
        await ws.close()
        with pytest.raises(ConnectionClosedOK):
            await ws.next_batch()


# ------------------------------------------------------------------------------ raw server


@pytest.mark.parametrize("drip", [False, True], ids=["one-write", "byte-by-byte"])
async def test_frames_written_with_the_handshake_response_are_not_lost(drip: bool) -> None:
    msgs = [b'{"server_id":"0"}', b"x" * 200, b"y" * 70000, b"last"]
    after = b"".join(frame(m) for m in msgs)
    async with raw_server(after, drip=drip) as (url, _):
        ws = await open_client(url, max_size=2**20)
        assert ws.fast
        assert await read_all(ws, len(msgs)) == msgs
        ws.transport.abort()


@pytest.mark.parametrize(
    ("extensions", "bits", "takeover"),
    [
        ("permessage-deflate; server_no_context_takeover", 15, False),
        ("permessage-deflate; server_max_window_bits=10", 10, True),
    ],
)
async def test_negotiated_deflate_parameters_are_honoured(
    extensions: str, bits: int, takeover: bool
) -> None:
    msgs = [b'{"msg":"added","id":"%d","fields":{"a":"%s"}}' % (i, b"k" * i) for i in range(40)]
    out = b""
    enc = zlib.compressobj(wbits=-bits)
    for m in msgs:
        if not takeover:
            enc = zlib.compressobj(wbits=-bits)
        out += frame((enc.compress(m) + enc.flush(zlib.Z_SYNC_FLUSH))[:-4], 0xC1)
    async with raw_server(out, extensions=extensions) as (url, _):
        ws = await open_client(url, compression="deflate")
        assert ws.fast
        assert await read_all(ws, len(msgs)) == msgs
        ws.transport.abort()


@pytest.mark.parametrize(
    "bad",
    [frame(b"x", 0x83), frame(b"x", 0xC1), frame(b"x", 0x80), bytes([0x81, 0x81]) + b"abcdx"],
    ids=["opcode-3", "rsv1-without-deflate", "lone-continuation", "masked"],
)
async def test_protocol_errors_fail_the_connection_with_1002(bad: bytes) -> None:
    async with raw_server(frame(b"good") + bad + frame(b"never")) as (url, received):
        ws = await open_client(url)
        got, exc = await read_until_closed_after_abort(ws, received)
        assert got == [b"good"]
        assert isinstance(exc, ConnectionClosedError)
        assert exc.sent is not None and exc.sent.code == 1002


async def read_until_closed_after_abort(
    ws: DDPClientConnection, received: list[bytes]
) -> tuple[list[bytes], ConnectionClosed]:
    """Read until the close frame went out, then drop the link as a silent server would."""
    got: list[bytes] = []
    async with asyncio.timeout(T):
        got.extend(await ws.next_batch())
        # The raw server never closes by itself: once our close frame reached it, abort.
        await wait_for_condition(lambda: any(b"\x88" in c[:1] for c in received), timeout=T)
        ws.transport.abort()
        try:
            got.extend(await ws.next_batch())
        except ConnectionClosed as exc:
            return got, exc
        raise AssertionError("the connection should be closed")


async def test_a_close_frame_without_a_code_is_a_normal_close() -> None:
    async with raw_server(frame(b"only") + frame(b"", 0x88)) as (url, received):
        ws = await open_client(url)
        got, exc = await read_until_closed_after_abort(ws, received)
        assert got == [b"only"]
        assert isinstance(exc, ConnectionClosedOK)
        assert exc.rcvd is not None and exc.rcvd.code == 1005


async def test_a_server_that_never_closes_the_tcp_link_is_cut_after_close_timeout() -> None:
    async with raw_server(frame(b"m") + frame(b"\x03\xe8", 0x88)) as (url, _):
        ws = await open_client(url, close_timeout=200 * MS)
        got, exc = await read_until_closed(ws)
        assert got == [b"m"]
        assert isinstance(exc, ConnectionClosedOK) and exc.rcvd is not None
        assert exc.rcvd.code == 1000


# ------------------------------------------------------------------------------ DDPClient


async def test_invalid_utf8_is_a_counted_protocol_error_and_reading_goes_on() -> None:
    added: list[Added] = []

    async def handler(ws: ServerConnection) -> None:
        async for data in ws:
            if b'"connect"' in (data if isinstance(data, bytes) else data.encode()):
                await ws.send(b'{"msg":"connected","session":"s1"}', text=True)
                await ws.send(
                    b'{"msg":"added","collection":"c","id":"\xff","fields":{}}', text=True
                )
                await ws.send(b'{"msg":"added","collection":"c","id":"ok","fields":{}}', text=True)

    def on_data(events: list[Any]) -> None:
        added.extend(e for e in events if type(e) is Added)

    async with (
        ws_server(handler) as url,
        DDPClient(url, on_data=on_data, proxy=None, heartbeat_interval=0) as client,
    ):
        await wait_for_condition(lambda: added, timeout=T)
        assert [e.id for e in added] == ["ok"]
        assert client.stats.protocol_errors == 1
        assert client.connected

"""DDPProtocol, the base of both cores: framing, ping/pong, bad input, hooks (no event loop)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from aioserversync.exceptions import LocalProtocolError, RemoteProtocolError
from aioserversync.protocol.connection import (
    CLOSED,
    CONNECTED,
    CONNECTING,
    DEFAULT_MAX_SIZE,
    SUPPORTED_VERSIONS,
    DDPProtocol,
    encode_message,
    parse_frame,
)
from aioserversync.protocol.events import InvalidMessage, Ping, Pong


class Recording(DDPProtocol):
    """A bare core with one extra handler and a record of the invalid-input hook."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.invalid_seen: list[tuple[RemoteProtocolError, str | bytes]] = []
        self.handled: list[dict[str, Any]] = []
        self._handlers["echo"] = self._echo

    def _echo(self, msg: dict[str, Any]) -> None:
        if "boom" in msg:
            raise KeyError("boom")
        self.handled.append(msg)
        self._send(
            {
                "msg": "echoed",
                "frame": self._frame.decode() if isinstance(self._frame, bytes) else self._frame,
            }
        )

    def _on_invalid(self, exc: RemoteProtocolError, data: str | bytes) -> None:
        self.invalid_seen.append((exc, data))


def test_constants() -> None:
    assert SUPPORTED_VERSIONS == ("1", "pre2", "pre1")
    assert DEFAULT_MAX_SIZE == 32 * 2**20


def test_parse_frame() -> None:
    assert parse_frame(b'{"msg":"x"}') == {"msg": "x"}
    assert parse_frame('{"msg":"x"}', max_size=11) == {"msg": "x"}
    with pytest.raises(RemoteProtocolError) as e:
        parse_frame(b'{"msg":"x"}', max_size=5)
    assert e.value.frame == b'{"msg":"x"}'
    with pytest.raises(RemoteProtocolError, match="invalid JSON"):
        parse_frame(b"{nope")


def test_encode_message() -> None:
    assert encode_message({"msg": "ping"}) == b'{"msg":"ping"}'
    with pytest.raises(LocalProtocolError):
        encode_message({"msg": "x", "v": object()})
    with pytest.raises(LocalProtocolError):
        encode_message({"msg": "x", "v": 2**70})


def test_initial_state_and_buffers() -> None:
    p = Recording()
    assert p.state is CONNECTING
    assert p.events_received() == []
    assert p.data_to_send() == []
    assert p.last_protocol_error is None


def test_ping_pong_only_when_connected() -> None:
    p = Recording()
    p.receive_text(b'{"msg":"ping","id":"a"}')
    assert p.events_received() == [Ping("a")]
    assert p.data_to_send() == []
    with pytest.raises(LocalProtocolError):
        p.send_ping()
    p.state = CONNECTED
    p.receive_text('{"msg":"ping"}')
    p.receive_text(b'{"msg":"pong","id":"z"}')
    assert p.events_received() == [Ping(None), Pong("z")]
    assert p.data_to_send() == [b'{"msg":"pong"}']
    p.send_ping("q")
    assert p.data_to_send() == [b'{"msg":"ping","id":"q"}']


def test_handler_sees_the_frame() -> None:
    p = Recording()
    p.receive_text(b'{"msg":"echo","a":1}')
    assert p.handled == [{"msg": "echo", "a": 1}]
    assert orjson.loads(p.data_to_send()[0])["frame"] == '{"msg":"echo","a":1}'


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        (b"garbage", "invalid JSON"),
        (b"[]", "not a JSON object"),
        (b"3", "not a JSON object"),
        (b'{"a":1}', "without 'msg'"),
        (b'{"msg":"nope"}', "unknown DDP message"),
        (b'{"msg":7}', "unknown DDP message"),
        (b'{"msg":"echo","boom":1}', "malformed DDP message"),
        (b'{"msg":"pong","id":3}', "pong id"),
    ],
)
def test_bad_input_becomes_invalid_message(
    frame: bytes, fragment: str, caplog: pytest.LogCaptureFixture
) -> None:
    p = Recording()
    p.receive_text(frame)
    [event] = p.events_received()
    assert isinstance(event, InvalidMessage)
    assert fragment in str(event.error)
    assert event.error.frame == frame
    assert p.last_protocol_error is event.error
    assert p.invalid_seen == [(event.error, frame)]
    assert "DDP protocol error" in caplog.text


def test_frame_excerpt_is_bounded() -> None:
    p = Recording()
    frame = b"x" * 5000
    p.receive_text(frame)
    [event] = p.events_received()
    assert event.error.frame == frame[:200]


def test_max_size() -> None:
    p = Recording(max_size=20)
    p.receive_text(b'{"msg":"echo","pad":"' + b"z" * 50 + b'"}')
    [event] = p.events_received()
    assert "max_size" in str(event.error)
    p.receive_text(b'{"msg":"echo"}')
    assert p.events_received() == []
    assert p.handled == [{"msg": "echo"}]


def test_receive_events_is_receive_then_collect() -> None:
    p = Recording()
    p.receive_text(b'{"msg":"pong"}')
    assert p.receive_events(b'{"msg":"pong","id":"2"}') == [Pong(None), Pong("2")]
    assert p.events_received() == []


def test_receive_eof() -> None:
    p = Recording()
    p.state = CONNECTED
    p.receive_eof()
    assert p.state is CLOSED

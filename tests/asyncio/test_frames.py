"""FrameParser, the server-to-client WebSocket frame reader, fed with byte chunks.

Frames are built byte by byte here (RFC 6455 §5.2), compressed ones with zlib (RFC 7692), so
every case is exact: lengths at the 7/16/64-bit boundaries, every split position, fragmented
messages with control frames between the fragments, close frames, deflate with and without
context takeover, size limits and each protocol violation.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import pytest
from websockets.exceptions import PayloadTooBig, ProtocolError

from aioserversync.asyncio.frames import CLOSE, PING, PONG, DeflateParams, FrameParser

TEXT, BINARY, CONT = 0x01, 0x02, 0x00


def frame(
    payload: bytes,
    opcode: int = TEXT,
    *,
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    mask: bool = False,
) -> bytes:
    """Serialise one frame as a server would (unmasked unless ``mask``)."""
    b0 = opcode | (0x80 if fin else 0) | (0x40 if rsv1 else 0)
    b0 |= (0x20 if rsv2 else 0) | (0x10 if rsv3 else 0)
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, m | 127]) + n.to_bytes(8, "big")
    if mask:
        key = b"\x01\x02\x03\x04"
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        head += key
    return head + payload


def deflate_messages(messages: Iterable[bytes], *, takeover: bool, bits: int = 15) -> list[bytes]:
    """Compress messages as a permessage-deflate sender does (sync flush, tail stripped)."""
    out = []
    enc = zlib.compressobj(wbits=-bits)
    for m in messages:
        if not takeover:
            enc = zlib.compressobj(wbits=-bits)
        data = enc.compress(m) + enc.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        out.append(data[:-4])
    return out


def payload_of(n: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) % 251 for i in range(n))


def feed_all(parser: FrameParser, chunks: Iterable[bytes]) -> FrameParser:
    for c in chunks:
        parser.feed(c)
    return parser


def splits(data: bytes, positions: Iterable[int]) -> Iterable[list[bytes]]:
    for p in positions:
        yield [data[:p], data[p:]]


LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 70000]


# ------------------------------------------------------------------------------ lengths, splits


@pytest.mark.parametrize("length", LENGTHS)
def test_one_text_frame_of_each_boundary_length(length: int) -> None:
    msg = payload_of(length)
    p = feed_all(FrameParser(), [frame(msg)])
    assert p.messages == [msg]
    assert not p.done and p.buffered == 0


def test_a_stream_of_boundary_lengths_whole_and_byte_by_byte() -> None:
    msgs = [payload_of(n, seed=i) for i, n in enumerate(LENGTHS)]
    stream = b"".join(frame(m) for m in msgs)
    assert feed_all(FrameParser(), [stream]).messages == msgs
    byte_by_byte = feed_all(FrameParser(), (stream[i : i + 1] for i in range(len(stream))))
    assert byte_by_byte.messages == msgs


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 300])
def test_small_frames_split_at_every_position(length: int) -> None:
    msgs = [payload_of(length, 1), payload_of(length, 2), b"tail"]
    stream = b"".join(frame(m) for m in msgs)
    for chunks in splits(stream, range(len(stream) + 1)):
        assert feed_all(FrameParser(), chunks).messages == msgs, chunks
    # Three pieces: every pair of cut points across the first two frames.
    for a in range(0, len(stream), 7):
        for b in range(a, len(stream), 5):
            p = feed_all(FrameParser(), [stream[:a], stream[a:b], stream[b:]])
            assert p.messages == msgs, (a, b)


@pytest.mark.parametrize("length", [65535, 65536])
def test_large_frames_split_around_headers_and_payload(length: int) -> None:
    msgs = [b"x", payload_of(length), b"y"]
    stream = b"".join(frame(m) for m in msgs)
    second = len(frame(b"x"))
    third = second + len(frame(msgs[1]))
    positions = [*range(0, second + 16), *range(third - 16, len(stream) + 1)]
    positions += list(range(second, third, 4099))
    for chunks in splits(stream, positions):
        assert feed_all(FrameParser(), chunks).messages == msgs


@pytest.mark.parametrize("size", [1000, 4099, 65536])
def test_large_frames_of_every_kind_fed_in_chunks_arrive_whole_as_bytes(size: int) -> None:
    # A final text frame held over chunks has its payload joined straight from them; a binary
    # frame and the fragments of a message go the general way. All arrive as whole bytes.
    text, binary = payload_of(200_000, 1), payload_of(70_000, 2)
    first, second = payload_of(70_000, 3), payload_of(66_000, 4)
    stream = b"".join(
        [
            frame(text),
            frame(binary, BINARY),
            frame(first, fin=False),
            frame(b"ping", PING),
            frame(second, CONT),
            frame(b"tail"),
        ]
    )
    p = feed_all(FrameParser(), (stream[i : i + size] for i in range(0, len(stream), size)))
    assert p.messages == [text, binary, first + second, b"tail"]
    assert all(type(m) is bytes for m in p.messages)
    assert p.controls == [(PING, frame(b"ping", PING))] and p.buffered == 0


def test_an_incomplete_frame_is_held_back_until_it_is_whole() -> None:
    msg = payload_of(70000)
    data = frame(msg)
    p = FrameParser()
    p.feed(data[:5])
    p.feed(data[5:40000])
    assert p.messages == [] and p.buffered == 40000
    p.feed(data[40000:] + frame(b"next")[:1])
    assert p.messages == [msg] and p.buffered == 1


def test_binary_messages_are_delivered_like_text() -> None:
    p = feed_all(FrameParser(), [frame(b"\x00\x01bin", BINARY), frame(b"txt")])
    assert p.messages == [b"\x00\x01bin", b"txt"]


def test_invalid_utf8_in_a_text_frame_is_passed_on_for_the_json_parser_to_reject() -> None:
    p = feed_all(FrameParser(), [frame(b'{"msg":"\xff"}')])
    assert p.messages == [b'{"msg":"\xff"}'] and p.error is None


# ------------------------------------------------------------------------------ fragmentation


def test_fragmented_text_is_reassembled() -> None:
    parts = [b"hel", b"", b"lo ", payload_of(200)]
    stream = frame(parts[0], TEXT, fin=False)
    stream += frame(parts[1], CONT, fin=False) + frame(parts[2], CONT, fin=False)
    stream += frame(parts[3], CONT)
    stream += frame(b"after")
    whole = b"".join(parts)
    for chunks in splits(stream, range(len(stream) + 1)):
        assert feed_all(FrameParser(), chunks).messages == [whole, b"after"]


def test_control_frames_between_fragments_are_reported_and_the_message_survives() -> None:
    ping = frame(b"are you there", PING)
    pong = frame(b"", PONG)
    stream = frame(b"frag", BINARY, fin=False) + ping + frame(b"ment", CONT, fin=False)
    stream += pong + frame(b"ed", CONT)
    for chunks in splits(stream, range(len(stream) + 1)):
        p = feed_all(FrameParser(), chunks)
        assert p.messages == [b"fragmented"]
        assert p.controls == [(PING, ping), (PONG, pong)]
        assert not p.done


# ------------------------------------------------------------------------------ close


@pytest.mark.parametrize(
    "payload", [(4000).to_bytes(2, "big") + "bye ✓".encode(), b""], ids=["code", "no-code"]
)
def test_a_close_frame_stops_the_parser_after_the_messages_before_it(payload: bytes) -> None:
    close = frame(payload, CLOSE)
    stream = frame(b"one") + frame(b"two") + close + frame(b"ignored") + b"\xff\xff\xff"
    for chunks in splits(stream, range(len(stream) + 1)):
        p = feed_all(FrameParser(), chunks)
        assert p.messages == [b"one", b"two"]
        assert p.controls == [(CLOSE, close)]
        assert p.closed and p.done and p.error is None
        p.feed(frame(b"later"))
        assert p.messages == [b"one", b"two"]


# ------------------------------------------------------------------------------ deflate


@pytest.mark.parametrize("takeover", [True, False], ids=["context-takeover", "no-takeover"])
@pytest.mark.parametrize("bits", [15, 10, 9])
def test_deflate_messages(takeover: bool, bits: int) -> None:
    msgs = [b'{"msg":"added","id":"%d","fields":{"x":"%s"}}' % (i, b"ab" * i) for i in range(60)]
    msgs.append(payload_of(70000))
    compressed = deflate_messages(msgs, takeover=takeover, bits=bits)
    stream = b"".join(frame(c, rsv1=True) for c in compressed)
    params = DeflateParams(no_context_takeover=not takeover, max_window_bits=bits)
    assert feed_all(FrameParser(deflate=params), [stream]).messages == msgs
    pieces = (stream[i : i + 97] for i in range(0, len(stream), 97))
    p = feed_all(FrameParser(deflate=params, max_size=2**20), pieces)
    assert p.messages == msgs and p.error is None
    if takeover and len(msgs) > 1:
        # Later messages refer back to earlier ones: a fresh context cannot read them.
        lone = FrameParser(deflate=DeflateParams(no_context_takeover=True, max_window_bits=bits))
        lone.feed(b"".join(frame(c, rsv1=True) for c in compressed[1:]))
        assert lone.error is not None or lone.messages != msgs[1:]


def test_a_compressed_message_in_fragments_and_an_uncompressed_one_between() -> None:
    msgs = [payload_of(5000), b"plain", payload_of(300, 3)]
    first, third = deflate_messages([msgs[0], msgs[2]], takeover=True)
    stream = frame(first[:10], TEXT, fin=False, rsv1=True) + frame(b"", PING)
    stream += frame(first[10:50], CONT, fin=False) + frame(first[50:], CONT)
    stream += frame(b"plain") + frame(third, rsv1=True)
    for cut in range(0, len(stream) + 1, 3):
        p = feed_all(FrameParser(deflate=DeflateParams()), [stream[:cut], stream[cut:]])
        assert p.messages == msgs and p.controls == [(PING, frame(b"", PING))]


def test_deflate_output_counts_as_inflated_bytes() -> None:
    msg = b"z" * 50000
    (c,) = deflate_messages([msg], takeover=True)
    p = feed_all(FrameParser(deflate=DeflateParams()), [frame(c, rsv1=True)])
    assert p.messages == [msg] and p.inflated == len(msg)


def test_bad_deflate_data_is_a_protocol_error() -> None:
    p = feed_all(FrameParser(deflate=DeflateParams()), [frame(b"\xff\xfe\xfd garbage", rsv1=True)])
    assert isinstance(p.error, ProtocolError) and p.error_code == 1002
    assert "decompression failed" in str(p.error)


def test_a_bad_window_size_is_refused() -> None:
    with pytest.raises(ValueError):
        FrameParser(deflate=DeflateParams(max_window_bits=16))


# ------------------------------------------------------------------------------ size limits


def test_a_frame_over_max_size_fails_with_1009_from_its_header() -> None:
    p = FrameParser(max_size=100)
    p.feed(frame(payload_of(100)))
    assert p.messages == [payload_of(100)]
    p.feed(frame(payload_of(101))[:4])  # the header alone is enough to refuse it
    assert isinstance(p.error, PayloadTooBig) and p.error_code == 1009


def test_a_huge_declared_length_fails_at_once_even_when_the_header_is_cut() -> None:
    head = bytes([0x81, 127]) + (2**40).to_bytes(8, "big")
    for cut in range(1, len(head)):
        p = FrameParser(max_size=2**20)
        p.feed(head[:cut])
        assert p.error is None
        p.feed(head[cut:])
        assert isinstance(p.error, PayloadTooBig) and p.error_code == 1009 and p.buffered == 0


def test_a_small_max_size_is_checked_on_short_frames_too() -> None:
    p = feed_all(FrameParser(max_size=10), [frame(b"0123456789"), frame(b"0123456789x")])
    assert p.messages == [b"0123456789"] and p.error_code == 1009


def test_a_fragmented_message_over_max_size_fails_with_1009() -> None:
    stream = frame(b"a" * 60, fin=False) + frame(b"b" * 40, CONT, fin=False)
    stream += frame(b"c", CONT)
    p = feed_all(FrameParser(max_size=100), [stream])
    assert p.messages == [] and isinstance(p.error, PayloadTooBig) and p.error_code == 1009


@pytest.mark.parametrize("takeover", [True, False])
def test_a_compressed_message_inflating_over_max_size_fails_with_1009(takeover: bool) -> None:
    (bomb,) = deflate_messages([b"\x00" * 1_000_000], takeover=takeover)
    assert len(bomb) < 2000
    params = DeflateParams(no_context_takeover=not takeover)
    p = feed_all(FrameParser(max_size=100_000, deflate=params), [frame(bomb, rsv1=True)])
    assert p.messages == [] and isinstance(p.error, PayloadTooBig) and p.error_code == 1009
    # Exactly at the limit is fine.
    (ok,) = deflate_messages([b"\x00" * 100_000], takeover=takeover)
    p = feed_all(FrameParser(max_size=100_000, deflate=params), [frame(ok, rsv1=True)])
    assert p.messages == [b"\x00" * 100_000] and p.error is None


def test_a_fragmented_compressed_message_over_max_size_fails_with_1009() -> None:
    (c,) = deflate_messages([b"q" * 10_000], takeover=True)
    stream = frame(c[:5], fin=False, rsv1=True) + frame(c[5:], CONT)
    p = feed_all(FrameParser(max_size=5_000, deflate=DeflateParams()), [stream])
    assert p.messages == [] and p.error_code == 1009


# ------------------------------------------------------------------------------ violations


VIOLATIONS = {
    "opcode 3": (frame(b"x", 0x03), "invalid opcode"),
    "opcode 11": (frame(b"x", 0x0B), "invalid opcode"),
    "masked frame": (frame(b"x", mask=True), "incorrect masking"),
    "rsv1 without deflate": (frame(b"x", rsv1=True), "reserved bits"),
    "rsv2": (frame(b"x", rsv2=True), "reserved bits"),
    "rsv3": (frame(b"x", rsv3=True), "reserved bits"),
    "rsv1 on a control frame": (frame(b"", PING, rsv1=True), "reserved bits"),
    "continuation without a start": (frame(b"x", CONT), "unexpected continuation"),
    "text inside a fragmented message": (
        frame(b"a", fin=False) + frame(b"b"),
        "expected a continuation frame",
    ),
    "fragmented ping": (frame(b"", PING, fin=False), "fragmented control frame"),
    "control frame over 125 bytes": (frame(b"p" * 126, PING), "control frame too long"),
    "close inside a fragmented message": (
        frame(b"a", fin=False) + frame(b"", CLOSE),
        "incomplete fragmented message",
    ),
}


@pytest.mark.parametrize("name", list(VIOLATIONS))
def test_protocol_violations_fail_with_1002(name: str) -> None:
    bad, reason = VIOLATIONS[name]
    stream = frame(b"before") + bad + frame(b"after")
    for chunks in splits(stream, range(len(stream) + 1)):
        p = feed_all(FrameParser(), chunks)
        assert p.messages == [b"before"], chunks
        assert isinstance(p.error, ProtocolError) and reason in str(p.error)
        assert p.error_code == 1002 and p.done and p.buffered == 0
        p.feed(frame(b"later"))
        assert p.messages == [b"before"]


def test_rsv1_on_a_continuation_of_a_compressed_message_is_an_error() -> None:
    (c,) = deflate_messages([b"hello world"], takeover=True)
    stream = frame(c[:3], fin=False, rsv1=True) + frame(c[3:], CONT, rsv1=True)
    p = feed_all(FrameParser(deflate=DeflateParams()), [stream])
    assert p.error_code == 1002 and "RSV1 bit set in continuation frame" in str(p.error)


def test_rsv1_on_a_continuation_of_a_plain_message_is_an_error() -> None:
    stream = frame(b"abc", fin=False) + frame(b"def", CONT, rsv1=True)
    p = feed_all(FrameParser(deflate=DeflateParams()), [stream])
    assert p.error_code == 1002 and "reserved bits" in str(p.error)

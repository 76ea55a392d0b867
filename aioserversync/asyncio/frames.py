"""A fast parser for the WebSocket frames a server sends to a client (RFC 6455, RFC 7692).

:class:`FrameParser` takes the byte stream after the opening handshake, in chunks of any size,
and turns it into whole data messages, collected in :attr:`FrameParser.messages` as ``bytes`` in
wire order. It replaces websockets' per-frame machinery on the receive side of
:class:`~aioserversync.asyncio.client_ws.DDPClientConnection`: one loop over each chunk, with a
fast branch for the frame DDP servers send almost exclusively (one unfragmented, uncompressed
text frame), and no object per frame beyond the payload itself.

What it checks, as websockets does: server frames are unmasked; reserved bits are clear (RSV1
only on the first frame of a compressed message, when permessage-deflate was negotiated);
opcodes are known; control frames are final and at most 125 bytes; continuation frames follow an
unfinished message and nothing else interrupts one (control frames may); a message, compressed
or not, stays within ``max_size``. A violation stops the parser and sets :attr:`FrameParser.error`
(websockets' ``ProtocolError`` or ``PayloadTooBig``) with the close code to send
(:attr:`FrameParser.error_code`: 1002, or 1009 for size).

Control frames are not interpreted here: each one goes, unmodified, to
:attr:`FrameParser.controls` as ``(opcode, frame bytes)`` so the caller can hand it to
websockets' own protocol object, which answers pings and runs the closing handshake. After a
close frame the parser stops (:attr:`FrameParser.closed`) and ignores the rest of the stream.

Text and binary messages are both delivered (the DDP core reports non-JSON as a protocol error);
UTF-8 is not validated here, as ``recv(decode=False)`` does not validate it either: the JSON
parser rejects invalid UTF-8.
"""

from __future__ import annotations

import sys
import zlib
from dataclasses import dataclass

from websockets.exceptions import PayloadTooBig, ProtocolError

__all__ = ["CLOSE", "PING", "PONG", "DeflateParams", "FrameParser"]

CLOSE = 0x08
PING = 0x09
PONG = 0x0A

_TAIL = b"\x00\x00\xff\xff"
"""The empty stored block a permessage-deflate sender strips from the end of each message."""
_FIN_TEXT = 0x81
_PROTOCOL_ERROR = 1002
_MESSAGE_TOO_BIG = 1009


def _header(buf: bytes) -> tuple[int, int] | None:
    """``(header size, payload length)`` of the frame starting ``buf`` (None: cut short)."""
    if len(buf) < 2:
        return None
    length = buf[1] & 0x7F
    if length < 126:
        return 2, length
    size = 4 if length == 126 else 10
    if len(buf) < size:
        return None
    return size, int.from_bytes(buf[2:size], "big")


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """The server side of a negotiated permessage-deflate extension (RFC 7692 §7.1).

    Attributes:
        no_context_takeover: ``server_no_context_takeover``: every message starts a new
            compression context.
        max_window_bits: ``server_max_window_bits`` (8 to 15).
    """

    no_context_takeover: bool = False
    max_window_bits: int = 15


class FrameParser:
    """Server-to-client WebSocket frames in, whole messages out (sans-I/O).

    Args:
        max_size: Largest message accepted, in bytes, after decompression (``None``: no limit).
        deflate: The negotiated permessage-deflate parameters, or ``None`` when the connection
            is not compressed.

    Attributes:
        messages: Complete data messages not yet taken, oldest first. Take them by replacing
            the list (``batch, parser.messages = parser.messages, []``).
        controls: Control frames not yet handled, as ``(opcode, frame bytes)``.
        closed: A close frame was parsed (it is the last entry added to ``controls``).
        error: The violation that stopped the parser, if any.
        error_code: The close code to fail the connection with after ``error``.
        inflated: Bytes produced by decompression since the caller last reset it (for flow
            control: compressed messages grow after the bytes were counted on the wire).
    """

    __slots__ = (
        "_buffered",
        "_chunks",
        "_decoder",
        "_deflate",
        "_frag",
        "_frag_compressed",
        "_frag_size",
        "_limited",
        "_max",
        "_need",
        "_small",
        "closed",
        "controls",
        "error",
        "error_code",
        "inflated",
        "messages",
    )

    def __init__(self, *, max_size: int | None = None, deflate: DeflateParams | None = None):
        if deflate is not None and not 8 <= deflate.max_window_bits <= 15:
            raise ValueError(f"invalid server_max_window_bits {deflate.max_window_bits}")
        self.messages: list[bytes] = []
        self.controls: list[tuple[int, bytes]] = []
        self.closed = False
        self.error: ProtocolError | PayloadTooBig | None = None
        self.error_code = 0
        self.inflated = 0
        self._max = sys.maxsize if max_size is None else max_size
        self._limited = max_size is not None
        self._small = min(125, self._max)
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._need = 0
        self._frag: list[bytes] | None = None
        self._frag_size = 0
        self._frag_compressed = False
        self._deflate = deflate
        self._decoder: zlib._Decompress | None = None
        if deflate is not None and not deflate.no_context_takeover:
            # 8 is sent as 9 by zlib-based peers and zlib refuses to inflate with 8 (zlib #171).
            self._decoder = zlib.decompressobj(wbits=-max(9, deflate.max_window_bits))

    @property
    def done(self) -> bool:
        """Whether the parser stopped (close frame or error): later input is ignored."""
        return self.closed or self.error is not None

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of an incomplete frame."""
        return self._buffered

    def feed(self, data: bytes) -> None:
        """Parse one chunk of the stream; complete messages go to :attr:`messages`.

        Never raises for bad input: a violation sets :attr:`error` and stops the parser.

        Args:
            data: The next bytes received, any size (an empty chunk is a no-op).
        """
        if self.closed or self.error is not None:
            return
        pos = 0
        if self._chunks:
            pos = self._complete(data)
            if pos < 0:
                return
        self._parse(data, pos)

    def _complete(self, data: bytes) -> int:
        """Finish the frame held back from earlier chunks with the start of ``data``.

        Only the missing part of ``data`` is copied (a final text frame's payload is joined
        straight from the chunks, without its header). Returns where the rest of ``data`` starts,
        or -1 when the frame is still incomplete (``data`` is kept) or the parser stopped.
        """
        chunks = self._chunks
        need = self._need
        if need == 0:
            # The header itself was cut (fewer than 10 bytes held): complete it first.
            head = b"".join(chunks) + data[:10]
            header = _header(head)
            if header is None:
                chunks.append(data)
                self._buffered += len(data)
                return -1
            size, length = header
            if head[1] & 0x80 or length > self._max:
                self._parse(head, 0)  # reports the violation
                return -1
            need = self._need = size + length
        take = need - self._buffered
        if take > len(data):
            chunks.append(data)
            self._buffered += len(data)
            return -1
        self._chunks = []
        self._buffered = 0
        self._need = 0
        first = chunks[0]
        header = _header(first)
        if header is not None and first[0] == _FIN_TEXT and self._frag is None:
            # The usual large frame (a pull page): its payload joined straight from the chunks,
            # one copy instead of joining the frame and then slicing the payload out of it.
            parts: list[bytes | memoryview] = [memoryview(first)[header[0] :]]
            parts += chunks[1:]
            parts.append(memoryview(data)[:take])
            self.messages.append(b"".join(parts))
            return take
        chunks.append(data[:take])
        self._parse(b"".join(chunks), 0)
        return -1 if self.closed or self.error is not None else take

    def _parse(self, data: bytes, pos: int) -> None:
        """Parse the frames of ``data`` from ``pos``; hold back an incomplete last frame."""
        n = len(data)
        need = 0
        append = self.messages.append
        limit = self._max
        small = self._small
        plain = self._frag is None
        while n - pos > 1:
            length = data[pos + 1]
            if length <= small and plain and data[pos] == _FIN_TEXT:
                # The frame a DDP server sends: final, text, uncompressed, under 126 bytes.
                stop = pos + 2 + length
                if stop > n:
                    need = stop - pos
                    break
                append(data[pos + 2 : stop])
                pos = stop
                continue
            b0 = data[pos]
            if length < 126:
                start = pos + 2
            elif length == 126:
                if n - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            else:
                self._fail(ProtocolError("incorrect masking"))
                return
            if length > limit:
                self._fail(PayloadTooBig(length, limit), _MESSAGE_TOO_BIG)
                return
            stop = start + length
            if stop > n:
                need = stop - pos
                break
            if b0 == _FIN_TEXT and plain:
                append(data[start:stop])
            elif not self._frame(b0, data, pos, start, stop):
                return
            else:
                plain = self._frag is None
            pos = stop
        if pos < n:
            self._chunks.append(data[pos:])
            self._buffered = n - pos
            self._need = need

    # ------------------------------------------------------------------ the uncommon frames

    def _frame(self, b0: int, data: bytes, pos: int, start: int, stop: int) -> bool:
        """Handle any frame but a final uncompressed text frame; False when the parser stops."""
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        compressed = False
        if b0 & 0x70:
            if b0 & 0x30 or self._deflate is None:
                return self._fail(ProtocolError("reserved bits must be 0"))
            if opcode == 0 and self._frag is not None and self._frag_compressed:
                return self._fail(ProtocolError("RSV1 bit set in continuation frame"))
            if opcode not in (1, 2):
                return self._fail(ProtocolError("reserved bits must be 0"))
            compressed = True
        if opcode >= 8:
            if opcode > PONG:
                return self._fail(ProtocolError("invalid opcode"))
            if not fin:
                return self._fail(ProtocolError("fragmented control frame"))
            if stop - start > 125:
                return self._fail(ProtocolError("control frame too long"))
            if opcode == CLOSE and self._frag is not None:
                return self._fail(ProtocolError("incomplete fragmented message"))
            self.controls.append((opcode, data[pos:stop]))
            if opcode == CLOSE:
                self.closed = True
                self._chunks = []
                self._buffered = 0
                return False
            return True
        if opcode == 1 or opcode == 2:
            if self._frag is not None:
                return self._fail(ProtocolError("expected a continuation frame"))
            payload = data[start:stop]
            if compressed:
                assert self._deflate is not None
                if self._deflate.no_context_takeover:
                    self._decoder = zlib.decompressobj(wbits=-max(9, self._deflate.max_window_bits))
                inflated = self._inflate(payload, bool(fin), 0)
                if inflated is None:
                    return False
                payload = inflated
            if fin:
                self.messages.append(payload)
            else:
                self._frag = [payload]
                self._frag_size = len(payload)
                self._frag_compressed = compressed
            return True
        if opcode != 0:
            return self._fail(ProtocolError("invalid opcode"))
        frag = self._frag
        if frag is None:
            return self._fail(ProtocolError("unexpected continuation frame"))
        payload = data[start:stop]
        if self._frag_compressed:
            inflated = self._inflate(payload, bool(fin), self._frag_size)
            if inflated is None:
                return False
            payload = inflated
        elif self._frag_size + len(payload) > self._max:
            return self._fail(
                PayloadTooBig(len(payload), self._max, self._frag_size), _MESSAGE_TOO_BIG
            )
        frag.append(payload)
        self._frag_size += len(payload)
        if fin:
            self.messages.append(b"".join(frag))
            self._frag = None
            self._frag_size = 0
            self._frag_compressed = False
        return True

    def _inflate(self, payload: bytes, fin: bool, current: int) -> bytes | None:
        """Decompress one frame of a compressed message within the size limit (None: failed)."""
        decoder = self._decoder
        assert decoder is not None
        room = self._max - current
        if fin:
            payload += _TAIL
        try:
            out = decoder.decompress(payload, room + 1 if self._limited else 0)
        except zlib.error as exc:
            err = ProtocolError("decompression failed")
            err.__cause__ = exc
            self._fail(err)
            return None
        if len(out) > room or decoder.unconsumed_tail:
            self._fail(PayloadTooBig(None, self._max, current), _MESSAGE_TOO_BIG)
            return None
        if fin and self._deflate is not None and self._deflate.no_context_takeover:
            self._decoder = None
        self.inflated += len(out)
        return out

    def _fail(self, exc: ProtocolError | PayloadTooBig, code: int = _PROTOCOL_ERROR) -> bool:
        self.error = exc
        self.error_code = code
        self._chunks = []
        self._buffered = 0
        self._frag = None
        return False

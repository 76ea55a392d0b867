"""Server-side WebSocket output: batched writes of DDP frames.

A session flushes its queued DDP messages in batches. :func:`write_frames` writes one batch under
a single websockets send context (one state check, one flow-control wait); on connections without
extensions it frames the messages itself (a server text frame is a fixed header plus the payload,
RFC 6455 §5.2) and hands the whole batch to the transport at once. :class:`DDPConnection` joins
whatever websockets itself queues into a single transport write, which matters for compressed
connections, where websockets frames each message.
"""

from __future__ import annotations

import contextlib

from websockets.asyncio.server import ServerConnection

__all__ = ["DDPConnection", "text_frames", "write_frames"]


class DDPConnection(ServerConnection):
    """A websockets server connection that writes all pending frames with one socket write.

    websockets writes each frame separately; a session flushing a batch of DDP messages would
    then make one system call per message. Joining them keeps fan-out fast.
    """

    def send_data(self) -> None:
        """Write every outgoing chunk the protocol produced in a single transport write."""
        chunks: list[bytes] = []
        for data in self.protocol.data_to_send():
            if data:
                chunks.append(data)
                continue
            if chunks:
                self.transport.write(b"".join(chunks))
                chunks = []
            # An empty chunk means end of stream: defer to websockets for the half-close.
            if self.transport.can_write_eof():
                with contextlib.suppress(Exception):
                    self.transport.write_eof()
            else:
                self.transport.close()
        if chunks:
            self.transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))


_SMALL_HEADERS = [bytes((0x81, n)) for n in range(126)]


def text_frames(frames: list[bytes]) -> bytes:
    """Frame DDP messages as unmasked, unfragmented WebSocket text frames (RFC 6455 §5.2)."""
    parts: list[bytes] = []
    append = parts.append
    for frame in frames:
        n = len(frame)
        if n < 126:
            append(_SMALL_HEADERS[n])
        elif n < 65536:
            append(b"\x81\x7e" + n.to_bytes(2, "big"))
        else:
            append(b"\x81\x7f" + n.to_bytes(8, "big"))
        append(frame)
    return b"".join(parts)


async def write_frames(ws: ServerConnection, frames: list[bytes]) -> None:
    """Send DDP messages as text frames under one websockets send context.

    The context checks that the connection is open, then applies flow control once. Without
    extensions the batch is framed here and written at once; with permessage-deflate,
    websockets frames (and compresses) each message.

    Raises:
        websockets.exceptions.ConnectionClosed: If the connection is closed.
    """
    async with ws.send_context():
        protocol = ws.protocol
        if protocol.extensions:
            send_text = protocol.send_text
            for frame in frames:
                send_text(frame)
        else:
            ws.transport.write(text_frames(frames))

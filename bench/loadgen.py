"""A bare asyncio WebSocket client protocol for the detailed channel and record benchmarks.

Each connection is an asyncio ``Protocol`` that performs the HTTP upgrade by hand, sends
pre-encoded masked text frames and parses unmasked server frames in place. (The suite's load
generator, :mod:`bench.client`, uses picows instead.)
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from typing import cast

__all__ = ["RawWsProtocol", "encode_client_frame"]


def encode_client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """Encode one masked client→server frame (RFC 6455 §5.2)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


class RawWsProtocol(asyncio.Protocol):
    """A bare WebSocket client connection: hand-made upgrade, unmasked frame parsing in place.

    Subclasses get every complete text frame through :meth:`on_text` (the buffer and the body's
    bounds, so nothing is copied) and :meth:`after_frames` once per read.
    """

    def __init__(self, host: str, path: str) -> None:
        self.host = host
        self.path = path
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(RuntimeError(bytes(buffer[:end]).decode()))
                return
            del buffer[: end + 4]
            self.upgraded = True
            self.ready.set_result(None)
        # Parse complete server frames (unmasked).
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            length, head = buffer[pos + 1] & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
            if size - pos < head + length:
                break
            start = pos + head
            if buffer[pos] & 0x0F == 0x1:
                self.on_text(buffer, start, start + length)
            pos = start + length
        if pos:
            del buffer[:pos]
        self.after_frames()

    def on_text(self, buffer: bytearray, start: int, end: int) -> None:
        """Handle one text frame whose body is ``buffer[start:end]``."""

    def after_frames(self) -> None:
        """Called after each read once its complete frames were handled."""

    def send_frame(self, payload: bytes) -> None:
        """Send ``payload`` as one masked text frame."""
        assert self.transport is not None
        self.transport.write(encode_client_frame(payload))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("connection lost during upgrade"))

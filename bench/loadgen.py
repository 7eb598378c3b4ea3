"""A lean WebSocket load generator for request/response workloads.

Run as its own process: ``python -m bench.loadgen --url ws://127.0.0.1:PORT --connections 100
--duration 5``. Prints one JSON object with the results on stdout.

It is deliberately cheaper per request than any server under test, so that the server is the
bottleneck: each connection is a bare asyncio ``Protocol`` (uvloop when installed) that performs
the HTTP upgrade by hand, sends a pre-encoded masked text frame and counts unmasked response
frames by parsing only their headers. Each connection sends its next request as soon as the
previous response arrived (sequential requests, like the JS SEED client, which reuses id ``0``).
Frames that are not responses (pushes without an ``id``) are ignored.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import struct
import sys
import time
from typing import Any, cast
from urllib.parse import urlsplit

__all__ = ["RawWsProtocol", "encode_client_frame", "run"]


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


class _Conn(RawWsProtocol):
    def __init__(self, host: str, path: str, request: bytes, stats: _Stats) -> None:
        super().__init__(host, path)
        self.frame = encode_client_frame(request)
        self.stats = stats
        self.sent_at = 0
        self.running = False
        self.responses = 0

    def on_text(self, buffer: bytearray, start: int, end: int) -> None:
        # Responses carry an id; Mesh servers and the bare echo write it first.
        if buffer.startswith(b'{"id"', start):
            self.responses += 1

    def after_frames(self) -> None:
        responses, self.responses = self.responses, 0
        if responses and self.running:
            now = time.perf_counter_ns()
            self.stats.record(now - self.sent_at)
            self.send()

    def send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter_ns()
        self.transport.write(self.frame)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.running = False


class _Stats:
    def __init__(self) -> None:
        self.count = 0
        self.latencies: list[int] = []
        self.recording = False

    def record(self, ns: int) -> None:
        if self.recording:
            self.count += 1
            self.latencies.append(ns)


async def run(
    url: str,
    *,
    connections: int = 100,
    duration: float = 5.0,
    warmup: float = 1.0,
    request: bytes = b'{"id":0,"command":"echo","payload":{"text":"hello"}}',
) -> dict[str, Any]:
    """Drive ``connections`` sequential request loops against ``url`` and return the results."""
    split = urlsplit(url)
    host = split.hostname or "127.0.0.1"
    port = split.port or 80
    path = split.path or "/"
    loop = asyncio.get_running_loop()
    stats = _Stats()
    conns: list[_Conn] = []
    for _ in range(connections):
        _, conn = await loop.create_connection(
            lambda: _Conn(f"{host}:{port}", path, request, stats), host, port
        )
        conns.append(conn)
    await asyncio.wait_for(asyncio.gather(*(c.ready for c in conns)), 30)
    for conn in conns:
        conn.running = True
        conn.send()
    await asyncio.sleep(warmup)
    stats.recording = True
    started = time.perf_counter()
    await asyncio.sleep(duration)
    stats.recording = False
    elapsed = time.perf_counter() - started
    for conn in conns:
        conn.running = False
        if conn.transport is not None:
            conn.transport.close()
    latencies = sorted(stats.latencies)
    if not latencies:
        raise RuntimeError("no responses received")
    return {
        "requests": stats.count,
        "seconds": elapsed,
        "rps": stats.count / elapsed,
        "p50_ms": latencies[len(latencies) // 2] / 1e6,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] / 1e6,
        "mean_ms": statistics.fmean(latencies) / 1e6,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--request", default='{"id":0,"command":"echo","payload":{"text":"hello"}}')
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    else:
        runner = uvloop.run
    result = runner(
        run(
            args.url,
            connections=args.connections,
            duration=args.duration,
            warmup=args.warmup,
            request=args.request.encode(),
        )
    )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

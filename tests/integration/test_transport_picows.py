"""What the picows adapter does itself: requests, fragments, close codes, synchronous decisions.

The shared behaviour (the whole core over picows) is covered by the integration suite, which
runs on every built-in transport; these tests speak raw bytes to reach the adapter's edges.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from base64 import b64encode
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode

from mesh_server import MeshAuthError, MeshServer, UpgradeRequest
from mesh_server.transport.picows import PicowsTransport
from tests.support.http import http_get
from tests.support.raw_client import RawClient
from tests.support.timing import wait_for

pytestmark = pytest.mark.integration

_KEY = b64encode(b"0123456789abcdef").decode()
_UPGRADE = (
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    f"Sec-WebSocket-Key: {_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


@asynccontextmanager
async def picows_server(**options: Any) -> AsyncIterator[MeshServer]:
    server = MeshServer(port=0, transport="picows", close_timeout=2.0, **options)
    server.expose_command("echo", lambda ctx: ctx.payload)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


class RawSocket:
    """A WebSocket client written byte by byte (masked frames, RFC 6455 §5.3)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    @asynccontextmanager
    async def open(cls, port: int) -> AsyncIterator[RawSocket]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(_UPGRADE.encode())
            head = await wait_for(reader.readuntil(b"\r\n\r\n"))
            assert head.startswith(b"HTTP/1.1 101 "), head
            raw = cls(reader, writer)
            assert (await raw.frame())[0] == Opcode.TEXT  # mesh/assign-id
            yield raw
        finally:
            writer.close()
            await writer.wait_closed()

    def send(self, opcode: Opcode, data: bytes, *, fin: bool = True) -> None:
        self.writer.write(Frame(opcode, data, fin=fin).serialize(mask=True, extensions=[]))

    async def frame(self) -> tuple[Opcode, bytes]:
        first, second = await wait_for(self.reader.readexactly(2))
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return Opcode(first & 0x0F), await self.reader.readexactly(length)

    async def close_frame(self) -> int:
        while True:
            opcode, data = await self.frame()
            if opcode == Opcode.CLOSE:
                return int(struct.unpack("!H", data[:2])[0])

    async def eof(self) -> bytes:
        return await wait_for(self.reader.read())


async def test_fragmented_message_is_joined() -> None:
    async with picows_server() as server, RawSocket.open(server.port) as raw:
        text = json.dumps({"id": 1, "command": "echo", "payload": "x" * 300}).encode()
        raw.send(Opcode.TEXT, text[:10], fin=False)
        raw.send(Opcode.CONT, text[10:100], fin=False)
        raw.send(Opcode.PING, b"p")  # a control frame between fragments is allowed (§5.4)
        raw.send(Opcode.CONT, text[100:])
        assert await raw.frame() == (Opcode.PONG, b"p")
        opcode, data = await raw.frame()
        assert opcode == Opcode.TEXT
        assert json.loads(data)["payload"] == "x" * 300


async def test_fragments_over_the_message_limit_close_1009() -> None:
    async with picows_server(max_message_size=1000) as server, RawSocket.open(server.port) as raw:
        raw.send(Opcode.TEXT, b"[" * 600, fin=False)  # each frame is under the limit
        raw.send(Opcode.CONT, b"1" * 600)
        assert await raw.close_frame() == 1009


@pytest.mark.parametrize(
    "frames",
    [
        [(Opcode.CONT, b"x", True)],
        [(Opcode.TEXT, b"[", False), (Opcode.TEXT, b"1]", True)],
    ],
    ids=["continuation-without-start", "new-message-inside-one"],
)
async def test_fragmentation_errors_close_1002(frames: list[tuple[Opcode, bytes, bool]]) -> None:
    async with picows_server() as server, RawSocket.open(server.port) as raw:
        for opcode, data, fin in frames:
            raw.send(opcode, data, fin=fin)
        assert await raw.close_frame() == 1002


async def test_peer_close_code_is_echoed_and_reported() -> None:
    closed = asyncio.get_running_loop().create_future()
    async with picows_server() as server:
        server.on_disconnection(lambda conn: closed.set_result(conn.close_code))
        async with RawSocket.open(server.port) as raw:
            raw.send(Opcode.CLOSE, struct.pack("!H", 4321) + b"bye")
            assert await raw.close_frame() == 4321
            assert await raw.eof() == b""  # the server closes TCP after the closing handshake
            assert await wait_for(closed) == 4321


async def test_server_close_codes_of_the_core_reach_the_client() -> None:
    async with picows_server(max_message_size=64) as server, RawClient.open(server.url) as client:
        await client.send_raw(json.dumps({"id": 1, "command": "echo", "payload": "y" * 100}))
        assert await client.wait_closed() == 1009


async def test_plain_and_malformed_requests() -> None:
    async with picows_server() as server:
        status, headers, _ = await http_get(server.port, "/other")
        assert status == 426
        assert headers.get("upgrade") == "websocket"
        status, _, body = await http_get(server.port, "/healthz")
        assert status == 200
        assert json.loads(body) == {"status": "ok"}
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(_UPGRADE.replace("Version: 13", "Version: 12").encode())
        head = await wait_for(reader.read())
        writer.close()
        await writer.wait_closed()
        assert head.startswith(b"HTTP/1.1 400 "), head


async def test_synchronous_authenticate_sees_the_request_and_refuses_with_its_status() -> None:
    seen: list[UpgradeRequest] = []

    def authenticate(request: UpgradeRequest) -> dict[str, Any]:
        seen.append(request)
        if request.query.get("token") != "ok":
            raise MeshAuthError(499, "custom status")
        return {"user": "u"}

    async with picows_server(authenticate=authenticate) as server:
        with pytest.raises(InvalidStatus) as info:
            await wait_for(connect(server.url + "?token=no"))
        assert info.value.response.status_code == 499
        async with RawClient.open(server.url + "?token=ok") as client:
            assert client.connection_id
            (connection,) = server.connections.local().values()
            assert connection.remote_address is not None
        assert seen[0].peer is None  # picows does not tell the factory the peer


async def test_awaitable_decisions_are_refused(caplog: pytest.LogCaptureFixture) -> None:
    async def coroutine_hook(request: UpgradeRequest) -> None:
        return None

    with pytest.raises(ValueError, match="synchronously"):
        MeshServer(transport="picows", authenticate=coroutine_hook)

    def returns_awaitable(request: UpgradeRequest) -> Any:
        return coroutine_hook(request)

    async with picows_server(authenticate=returns_awaitable) as server:
        with caplog.at_level(logging.ERROR), pytest.raises(InvalidStatus) as info:
            await wait_for(connect(server.url))
        assert info.value.response.status_code == 500
    assert "synchronous authenticate" in caplog.text


def test_transport_options_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown transport"):
        MeshServer(transport="nope")
    with pytest.raises(ValueError, match="read_buffer_size"):
        PicowsTransport(max_message_size=1, read_buffer_size=1)
    server = MeshServer()
    server.configure(transport="picows")
    assert server.options.transport_name == "picows"


def test_configure_transport_keeps_an_existing_transport() -> None:
    # The ASGI app handed out by asgi_app() must not be dropped silently by a later choice.
    server = MeshServer()
    app = server.asgi_app()
    with pytest.raises(RuntimeError, match=r"already has its transport \(AsgiTransport"):
        server.configure(transport="picows")
    assert server.transport is app.transport
    assert server.options.transport_name == "websockets"
    given = PicowsTransport(max_message_size=1 << 16)
    server = MeshServer(transport=given)
    with pytest.raises(RuntimeError, match=r"already has its transport \(PicowsTransport"):
        server.configure(transport="websockets")
    assert server.transport is given


def test_compression_is_refused_with_picows() -> None:
    with pytest.raises(ValueError, match="permessage-deflate"):
        MeshServer(transport="picows", compression=True)

"""The websockets adapter over real sockets: listen backlog, handshake paths, framing, shutdown."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import struct
import sys
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode

from mesh_server import MeshServer, UpgradeRequest
from mesh_server.transport.base import DEFAULT_BACKLOG, effective_backlog
from tests.support.http import http_get
from tests.support.raw_client import RawClient, running_server
from tests.support.timing import TIMEOUT, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
APP = "from mesh_server import MeshServer\n\nserver = MeshServer()\n"
SOMAXCONN = int(Path("/proc/sys/net/core/somaxconn").read_text())


def listen_backlog(sock: socket.socket) -> int:
    """The backlog the kernel applies to a listening socket.

    Linux reports it in ``tcp_info.tcpi_sacked`` for sockets in the LISTEN state (the same
    number ``ss -ltn`` prints as Send-Q): eight one-byte fields, then u32 rto, ato, snd_mss,
    rcv_mss, unacked, sacked.
    """
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return int(struct.unpack_from("I", info, 28)[0])


def listening_socket(server: MeshServer) -> socket.socket:
    transport = server.transport
    assert transport is not None
    sockets = transport.sockets  # type: ignore[attr-defined]
    assert len(sockets) == 1
    return sockets[0]  # type: ignore[no-any-return]


# ------------------------------------------------------------------ listen backlog


async def test_configured_backlog_is_in_effect() -> None:
    async with running_server(backlog=77) as server:
        assert listen_backlog(listening_socket(server)) == 77
    server = MeshServer(port=0)
    server.configure(backlog=300)
    async with server:
        assert listen_backlog(listening_socket(server)) == 300


async def test_default_backlog_is_1024_capped_by_somaxconn() -> None:
    async with running_server() as server:
        applied = listen_backlog(listening_socket(server))
    assert applied == effective_backlog(DEFAULT_BACKLOG)
    assert applied == min(DEFAULT_BACKLOG, SOMAXCONN)


def test_backlog_must_be_positive() -> None:
    with pytest.raises(ValueError, match="backlog"):
        MeshServer(backlog=0)
    with pytest.raises(ValueError, match="backlog"):
        MeshServer().configure(backlog=0)


# ------------------------------------------------------------------ handshake


async def test_plain_requests_never_reach_authenticate() -> None:
    seen: list[str] = []

    def authenticate(request: UpgradeRequest) -> Any:
        seen.append(request.path)
        return None

    async with running_server(authenticate=authenticate) as server:
        status, headers, body = await http_get(server.port, "/ws")
        # A plain request to any path but the health endpoints: websockets' own answer.
        assert status == 426
        assert headers["upgrade"] == "websocket"
        assert b"You cannot access a WebSocket server directly" in body
        assert (await http_get(server.port, "/healthz"))[0] == 200
        async with RawClient.open(server.url + "/ws"):
            pass
    assert seen == ["/ws"]


async def test_plain_answer_ends_the_connection() -> None:
    async with running_server() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        probe = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        writer.write(probe * 2)  # a pipelined second request is not answered
        data = await wait_for(reader.read())
        writer.close()
    assert data.count(b"HTTP/1.1 ") == 1
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b'{"status":"ok"}')


async def test_upgrade_followed_by_garbage_is_not_answered() -> None:
    opened: list[Any] = []
    async with running_server() as server:
        server.on_connection(opened.append)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(raw_upgrade() + b"GET / HTTP/1.1\r\n\r\n")  # not a WebSocket frame
        assert await wait_for(reader.read()) == b""
        writer.close()
    assert opened == []


async def test_handshake_bounded_by_open_timeout() -> None:
    async with running_server(open_timeout=0.2) as server:
        silent = await asyncio.open_connection("127.0.0.1", server.port)
        partial = await asyncio.open_connection("127.0.0.1", server.port)
        partial[1].write(b"GET / HTTP/1.1\r\nHost: x\r\n")
        for reader, writer in (silent, partial):
            assert await wait_for(reader.read()) == b""  # dropped without an answer
            writer.close()


def raw_upgrade(path: str = "/") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def read_frames(reader: asyncio.StreamReader, count: int) -> list[Any]:
    frames = []
    for _ in range(count):
        head = await wait_for(reader.readexactly(2))
        length = head[1] & 0x7F
        if length == 126:
            length = int.from_bytes(await reader.readexactly(2), "big")
        frames.append(json.loads(await wait_for(reader.readexactly(length))))
    return frames


async def test_frames_pipelined_behind_the_request_wait_for_an_async_decision() -> None:
    entered, decide = asyncio.Event(), asyncio.Event()

    async def authenticate(request: UpgradeRequest) -> Any:
        entered.set()
        await decide.wait()
        return {"user": "u1"}

    async with running_server(authenticate=authenticate) as server:
        server.expose_command("echo", lambda ctx: ctx.payload)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        message = b'{"id":1,"command":"echo","payload":"early"}'
        # One write: the frame is read with the request, while authenticate is pending.
        writer.write(raw_upgrade() + Frame(Opcode.TEXT, message).serialize(mask=True))
        await wait_for(entered.wait())
        decide.set()
        response = await wait_for(reader.readuntil(b"\r\n\r\n"))
        assert response.startswith(b"HTTP/1.1 101")
        assign, echo = await read_frames(reader, 2)
        assert assign["command"] == "mesh/assign-id"
        assert echo == {"id": 1, "command": "echo", "payload": "early"}
        writer.close()


async def test_async_refusal_keeps_its_status() -> None:
    async def authenticate(request: UpgradeRequest) -> Any:
        await asyncio.sleep(0)
        raise RuntimeError("bug in the hook")

    async with running_server(authenticate=authenticate) as server:
        with pytest.raises(InvalidStatus) as info:
            async with connect(server.url):
                pass
        assert info.value.response.status_code == 500


async def test_close_aborts_handshakes_waiting_for_authenticate() -> None:
    entered = asyncio.Event()

    async def authenticate(request: UpgradeRequest) -> Any:
        entered.set()
        await asyncio.Event().wait()  # never decides

    server = MeshServer(port=0, authenticate=authenticate)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(raw_upgrade())
    await wait_for(entered.wait())
    await wait_for(server.close())
    assert await wait_for(reader.read()) == b""
    writer.close()


# ------------------------------------------------------------------ frames


@pytest.mark.parametrize("size", [10, 1_000, 70_000])
async def test_frame_sizes_on_the_wire(size: int) -> None:
    async with running_server() as server, RawClient.open(server.url) as client:
        server.expose_command("echo", lambda ctx: ctx.payload)
        assert await client.call("echo", "x" * size) == "x" * size


async def test_compression_goes_through_the_protocol_encoder() -> None:
    async with running_server(compression=True) as server:
        server.expose_command("echo", lambda ctx: ctx.payload)
        async with connect(server.url, compression="deflate") as ws:
            assert ws.protocol.extensions, "permessage-deflate was negotiated"
            json.loads(await ws.recv())
            for size in (10, 70_000):
                await ws.send(json.dumps({"id": size, "command": "echo", "payload": "y" * size}))
                assert json.loads(await ws.recv())["payload"] == "y" * size


# ------------------------------------------------------------------ mesh serve options


async def test_mesh_serve_backlog_and_health_options(tmp_path: Path) -> None:
    (tmp_path / "transport_app.py").write_text(APP)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mesh_server",
        "serve",
        "transport_app:server",
        "--port",
        "0",
        "--backlog",
        "77",
        "--health-path",
        "/live",
        "--readiness-path",
        "/ready",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        match = None
        while match is None:
            line = (await asyncio.wait_for(proc.stderr.readline(), TIMEOUT * 2)).decode()
            assert line, "mesh serve exited before listening"
            # The startup line's limits field (mesh_server.logs) names the effective backlog.
            match = re.search(r'listening on ws://127\.0\.0\.1:(\d+) .*"backlog":77[,}]', line)
        port = int(match[1])
        assert (await http_get(port, "/live"))[0] == 200
        assert (await http_get(port, "/ready"))[0] == 200
        assert (await http_get(port, "/healthz"))[0] == 426
    finally:
        proc.kill()
        await proc.wait()

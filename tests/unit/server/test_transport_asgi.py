"""The ASGI adapter against a scripted ASGI server (no sockets): scopes, denials, queue bounds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mesh_server import MeshServer
from mesh_server.transport.asgi import AsgiApp, AsgiTransport
from mesh_server.transport.asgi_connection import AsgiConnection
from mesh_server.transport.base import (
    Accept,
    HttpResponse,
    TransportConnection,
    TransportHooks,
    UpgradeDecision,
    UpgradeRequest,
)
from tests.support.timing import wait_for


class Peer:
    """The ASGI server side of one scope: feeds ``receive`` and records what ``send`` got."""

    def __init__(self, *incoming: dict[str, Any]) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for message in incoming:
            self.incoming.put_nowait(message)
        self.sent: list[dict[str, Any]] = []
        self.writable = asyncio.Event()
        self.writable.set()
        self.got = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        await self.writable.wait()
        self.sent.append(message)
        self.got.set()

    def types(self) -> list[str]:
        return [m["type"] for m in self.sent]

    async def wait_sent(self, count: int) -> None:
        while len(self.sent) < count:
            self.got.clear()
            await wait_for(self.got.wait())


def ws_scope(**extra: Any) -> dict[str, Any]:
    scope = {
        "type": "websocket",
        "path": "/ws/room",
        "root_path": "/ws",
        "query_string": b"token=t",
        "headers": [(b"cookie", b"sid=abc"), (b"x-forwarded-for", b"10.0.0.1")],
        "client": ("127.0.0.1", 5555),
        "extensions": {"websocket.http.response": {}},
    }
    scope.update(extra)
    return scope


def http_scope(path: str, root_path: str = "") -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "root_path": root_path,
        "query_string": b"",
        "headers": [],
        "client": None,
    }


def transport(**options: Any) -> AsgiTransport:
    return AsgiTransport(max_message_size=options.pop("max_message_size", 100), **options)


async def started(
    decide: Any = None, on_http: Any = None, on_connect: Any = None, **options: Any
) -> AsgiTransport:
    async def connect(connection: TransportConnection) -> None:
        await connection.wait_closed()

    adapter = transport(**options)
    hooks = TransportHooks(
        decide or (lambda request: Accept()),
        on_connect or connect,
        on_http or (lambda request: None),
    )
    await adapter.start(hooks)
    return adapter


async def test_refusal_uses_the_denial_extension_with_its_status() -> None:
    seen: list[UpgradeRequest] = []

    def decide(request: UpgradeRequest) -> UpgradeDecision:
        seen.append(request)
        return HttpResponse.text(401, "token expired")

    adapter = await started(decide)
    peer = Peer({"type": "websocket.connect"})
    await adapter.websocket(ws_scope(), peer.receive, peer.send)
    assert peer.sent == [
        {
            "type": "websocket.http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"13"),
            ],
        },
        {"type": "websocket.http.response.body", "body": b"token expired"},
    ]
    (request,) = seen
    assert (request.path, request.query, request.cookies) == (
        "/ws/room",
        {"token": "t"},
        {"sid": "abc"},
    )
    assert request.headers["X-Forwarded-For"] == "10.0.0.1"
    assert request.peer == ("127.0.0.1", 5555)


async def test_refusal_without_the_extension_is_a_close_before_accept() -> None:
    adapter = await started(lambda request: HttpResponse.text(401, "no"))
    peer = Peer({"type": "websocket.connect"})
    await adapter.websocket(ws_scope(extensions={}), peer.receive, peer.send)
    assert peer.sent == [{"type": "websocket.close"}]


async def test_failing_and_slow_upgrade_hooks() -> None:
    def crash(request: UpgradeRequest) -> UpgradeDecision:
        raise RuntimeError("bug")

    async def crash_later() -> UpgradeDecision:
        raise RuntimeError("bug")

    never = asyncio.Event()

    async def hang() -> UpgradeDecision:
        await never.wait()
        return Accept()

    cases = [
        (await started(crash), 500),
        (await started(lambda request: crash_later()), 500),
        (await started(lambda request: hang(), open_timeout=0.01), 503),
    ]
    for adapter, status in cases:
        peer = Peer({"type": "websocket.connect"})
        await adapter.websocket(ws_scope(), peer.receive, peer.send)
        assert peer.sent[0]["status"] == status


async def test_close_stops_handshakes_in_progress() -> None:
    never = asyncio.Event()

    async def hang() -> UpgradeDecision:
        await never.wait()
        return Accept()

    adapter = await started(lambda request: hang())
    peer = Peer({"type": "websocket.connect"})
    handshake = asyncio.create_task(adapter.websocket(ws_scope(), peer.receive, peer.send))
    while not adapter._deciding:
        await asyncio.sleep(0)
    await adapter.close()
    await wait_for(handshake)
    assert peer.sent[0]["status"] == 503
    # Closed: refused like before start, without the not-started error.
    peer = Peer({"type": "websocket.connect"})
    await adapter.websocket(ws_scope(), peer.receive, peer.send)
    assert peer.sent[0]["status"] == 503
    assert not adapter._warned


async def test_not_started_answers_503_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    adapter = transport()
    for _ in range(2):
        peer = Peer({"type": "websocket.connect"})
        await adapter.websocket(ws_scope(), peer.receive, peer.send)
        assert peer.sent[0]["status"] == 503
    peer = Peer()
    await adapter.http(http_scope("/healthz"), peer.send)
    assert peer.sent[0]["status"] == 503
    assert b"not serving" in peer.sent[1]["body"]
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "lifespan" in caplog.records[0].message
    # A scope that ends before websocket.connect is left alone.
    peer = Peer({"type": "websocket.disconnect", "code": 1006})
    await adapter.websocket(ws_scope(), peer.receive, peer.send)
    assert peer.sent == []


async def test_http_sees_the_path_below_the_mount_point() -> None:
    paths: list[str] = []

    def on_http(request: UpgradeRequest) -> HttpResponse | None:
        paths.append(request.path)
        if request.path == "/healthz":
            return HttpResponse.json(200, {"status": "ok"}, (("Cache-Control", "no-store"),))
        return None

    adapter = await started(on_http=on_http)
    peer = Peer()
    await adapter.http(http_scope("/ws/healthz", "/ws"), peer.send)
    assert peer.sent[0] == {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", b"15"),
            (b"cache-control", b"no-store"),
        ],
    }
    assert peer.sent[1] == {"type": "http.response.body", "body": b'{"status":"ok"}'}
    for scope in (http_scope("/ws", "/ws"), http_scope("/other", "/ws"), http_scope("/x")):
        peer = Peer()
        await adapter.http(scope, peer.send)
        assert peer.sent[0]["status"] == 404
    assert paths == ["/healthz", "/", "/other", "/x"]


async def test_lifespan_runs_startup_and_shutdown_and_reports_failures() -> None:
    calls: list[str] = []

    async def start() -> None:
        calls.append("start")

    async def stop() -> None:
        calls.append("stop")

    app = AsgiApp(transport(), start, stop)
    peer = Peer({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"})
    await app({"type": "lifespan"}, peer.receive, peer.send)
    assert peer.types() == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert calls == ["start", "stop"]

    async def fail() -> None:
        raise OSError("redis unreachable")

    app = AsgiApp(transport(), fail, stop)
    peer = Peer({"type": "lifespan.startup"})
    await app({"type": "lifespan"}, peer.receive, peer.send)
    assert peer.sent == [{"type": "lifespan.startup.failed", "message": "redis unreachable"}]


async def accepted(adapter: AsgiTransport, peer: Peer) -> AsgiConnection:
    connections: list[AsgiConnection] = []
    ready = asyncio.Event()

    async def connect(connection: TransportConnection) -> None:
        assert isinstance(connection, AsgiConnection)
        connections.append(connection)
        ready.set()
        await connection.wait_closed()

    await adapter.start(TransportHooks(lambda request: Accept({"u": 1}), connect))
    task = asyncio.create_task(adapter.websocket(ws_scope(), peer.receive, peer.send))
    await wait_for(ready.wait())
    connections[0].app_task = task  # type: ignore[attr-defined]
    return connections[0]


async def test_frames_queue_until_send_completes_and_count_above_the_mark() -> None:
    adapter = transport(max_message_size=1 << 20)
    peer = Peer({"type": "websocket.connect"})
    connection = await accepted(adapter, peer)
    assert connection.accepted == {"u": 1}
    assert peer.types() == ["websocket.accept"]
    peer.writable.clear()  # the ASGI server's send() waits, as uvicorn's does above its mark
    frame = b'"' + b"x" * 1022 + b'"'
    paused = [connection.write_frame(frame) for _ in range(80)]
    assert paused[:64] == [False] * 64  # 64 KiB of queue before frames count as pending
    assert all(paused[64:])
    assert connection.buffered_amount == 80 * 1024
    assert connection.pending_frames == 15
    peer.writable.set()
    await peer.wait_sent(81)
    assert peer.sent[1] == {"type": "websocket.send", "text": frame.decode()}
    assert (connection.buffered_amount, connection.pending_frames) == (0, 0)
    assert connection.is_open
    peer.incoming.put_nowait({"type": "websocket.disconnect", "code": 1001})
    await wait_for(connection.app_task)  # type: ignore[attr-defined]
    assert (connection.close_code, connection.is_open) == (1001, False)
    assert not connection.write_frame(frame)
    assert not adapter.live


async def test_early_messages_held_then_delivered_and_oversize_closes_1009() -> None:
    adapter = transport(max_message_size=10)
    peer = Peer({"type": "websocket.connect"})
    connection = await accepted(adapter, peer)
    peer.incoming.put_nowait({"type": "websocket.receive", "text": "early"})
    peer.incoming.put_nowait({"type": "websocket.receive", "bytes": b"binary"})
    while len(connection._early) < 2:
        await asyncio.sleep(0)
    got: list[bytes] = []
    lost: list[bool] = []
    connection.set_handlers(got.append, lambda: lost.append(True))
    assert got == [b"early", b"binary"]
    peer.incoming.put_nowait({"type": "websocket.receive", "text": "x" * 11})
    await peer.wait_sent(2)
    assert peer.sent[1] == {"type": "websocket.close", "code": 1009, "reason": "message too big"}
    peer.incoming.put_nowait({"type": "websocket.disconnect", "code": 1009})
    await wait_for(connection.app_task)  # type: ignore[attr-defined]
    assert lost == [True]
    assert got == [b"early", b"binary"]


async def test_close_drops_frames_that_do_not_leave_in_time() -> None:
    adapter = transport(close_timeout=0.01)
    peer = Peer({"type": "websocket.connect"})
    connection = await accepted(adapter, peer)
    peer.writable.clear()  # a consumer that never reads
    connection.write_frame(b"1")
    connection.start_close(4001, "slow consumer")
    await wait_for(connection.app_task)  # type: ignore[attr-defined]
    assert connection.close_code == 1006
    assert peer.types() == ["websocket.accept"]


async def test_transport_close_closes_open_connections_with_1001() -> None:
    adapter = transport()
    peer = Peer({"type": "websocket.connect"})
    connection = await accepted(adapter, peer)
    closing = asyncio.create_task(adapter.close())
    await peer.wait_sent(2)
    assert peer.sent[1] == {"type": "websocket.close", "code": 1001, "reason": "server shutdown"}
    peer.incoming.put_nowait({"type": "websocket.disconnect", "code": 1001})
    await wait_for(closing)
    await wait_for(connection.app_task)  # type: ignore[attr-defined]


def test_asgi_app_shares_one_transport_and_refuses_another(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = MeshServer()
    app = server.asgi_app()
    assert server.asgi_app().transport is app.transport is server.transport
    other = MeshServer(transport=transport())
    assert isinstance(other.asgi_app().transport, AsgiTransport)
    with pytest.raises(RuntimeError, match="already has a _NotAsgi"):
        MeshServer(transport=_NotAsgi()).asgi_app()
    assert not caplog.records
    MeshServer(compression=True).asgi_app()
    assert "ws-per-message-deflate" in caplog.records[0].message


class _NotAsgi:
    async def start(self, hooks: TransportHooks) -> None:
        return None

    @property
    def port(self) -> int:
        return 0

    async def close(self) -> None:
        return None


async def test_asgi_app_after_start_is_refused() -> None:
    server = MeshServer(port=0)
    await server.start()
    try:
        with pytest.raises(RuntimeError, match="already has a WebsocketsTransport"):
            server.asgi_app()
    finally:
        await server.close()

"""Connection adapter with a fake transport: ordering, backpressure, 4001, timers, cleanup."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from mesh_sdk.protocol.errors import UnavailableError
from mesh_sdk.protocol.generated.models import NoopRequest, NoopResponse
from mesh_server import MeshServer
from mesh_server._core.connections import Connections
from mesh_server.connection import Connection
from mesh_server.features import Builtin
from mesh_server.session import ServerSession
from mesh_server.transport.base import UpgradeRequest
from tests.support.timing import eventually, wait_for


class FakeTransport:
    """Records what the connection writes; lets the test feed frames and drop the socket."""

    def __init__(self) -> None:
        self.upgrade = UpgradeRequest("/")
        self.accepted: Any = None
        self.written: list[bytes] = []
        self.closed_with: int | None = None
        self.reading = True
        self.buffered = 0
        self.pending = 0
        self.paused = False
        self.on_message: Callable[[bytes], None] | None = None
        self.on_lost: Callable[[], None] | None = None
        self._lost = asyncio.Event()

    @property
    def is_open(self) -> bool:
        return self.closed_with is None

    @property
    def buffered_amount(self) -> int:
        return self.buffered

    @property
    def pending_frames(self) -> int:
        return self.pending

    @property
    def close_code(self) -> int | None:
        return self.closed_with

    def set_handlers(
        self, on_message: Callable[[bytes], None], on_lost: Callable[[], None]
    ) -> None:
        self.on_message, self.on_lost = on_message, on_lost

    def write_frame(self, frame: bytes) -> bool:
        self.written.append(frame)
        return self.paused

    def start_close(self, code: int, reason: str = "") -> None:
        if self.closed_with is None:
            self.closed_with = code

    def abort(self) -> None:
        self.lose()

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    async def wait_closed(self) -> None:
        await self._lost.wait()

    # test helpers
    def feed(self, obj: Any) -> None:
        assert self.on_message is not None
        self.on_message(json.dumps(obj).encode())

    def lose(self) -> None:
        self._lost.set()
        if self.on_lost is not None:
            self.on_lost()

    def frames(self) -> list[Any]:
        return [json.loads(f) for f in self.written]


@pytest.fixture
async def server() -> AsyncIterator[MeshServer]:
    srv = MeshServer(port=0, ping_interval=10.0, latency_interval=10.0)
    await srv.backend.start(srv.instance_id, lambda channel, data: None)
    yield srv
    await srv.backend.close()


async def open_connection(server: MeshServer, **session: Any) -> tuple[Connection, FakeTransport]:
    transport = FakeTransport()
    options: dict[str, Any] = {
        "limits": server.limits,
        # The sans-I/O session takes ms; the server's options are seconds.
        "ping_interval": round(server.options.ping_interval * 1000),
        "latency_interval": round(server.options.latency_interval * 1000),
        "max_missed_pongs": server.options.max_missed_pongs,
    }
    options.update(session)
    connection = Connection(
        Connections(server._core), transport, "conn-test", ServerSession("conn-test", **options)
    )
    await server.backend.register_connection("conn-test")
    server._core.hub.add(connection)
    return connection, transport


async def test_frames_before_start_follow_assign_id(server: MeshServer) -> None:
    connection, transport = await open_connection(server)
    connection.send(b'{"command":"early","payload":1}')
    assert transport.written == []
    connection.start()
    assert [f["command"] for f in transport.frames()] == ["mesh/assign-id", "early"]
    assert connection.upgrade.path == "/"
    assert connection.remote_address is None
    assert "conn-test" in repr(connection)


async def test_inflight_cap_backlog_and_resume(server: MeshServer) -> None:
    server = MeshServer(port=0, max_inflight_requests=1)
    await server.backend.start(server.instance_id, lambda c, d: None)
    gate = asyncio.Event()

    async def slow(ctx: Any) -> Any:
        await gate.wait()
        return ctx.payload

    server.expose_command("slow", slow)
    connection, transport = await open_connection(server)
    connection.start()
    transport.feed({"id": 1, "command": "slow", "payload": 1})
    assert not transport.reading  # cap of 1 reached: stop reading
    transport.feed({"id": 2, "command": "slow", "payload": 2})  # already read: backlogged
    gate.set()
    await eventually(lambda: len(transport.frames()) == 3)
    assert [f.get("id") for f in transport.frames()[1:]] == [1, 2]
    assert transport.reading
    await server.backend.close()


async def test_slow_consumer_closes_4001_and_cleans_up_once(server: MeshServer) -> None:
    hooks: list[str] = []
    server.on_disconnection(lambda conn: hooks.append(conn.id))
    connection, transport = await open_connection(server)
    connection.start()
    transport.paused = True
    transport.buffered = server.limits.max_outbound_bytes + 1
    connection.send(b"{}")
    assert transport.closed_with == 4001
    assert connection.closed
    count = len(transport.written)
    connection.send(b"{}")  # dropped
    assert len(transport.written) == count
    connection.close(1000)  # idempotent
    transport.lose()  # the socket going away later does not clean up twice
    assert connection.cleanup_task is not None
    await wait_for(connection.cleanup_task)
    assert hooks == ["conn-test"]
    assert await server.backend.get_all_connection_metadata() == {}


async def test_pending_frames_limit(server: MeshServer) -> None:
    connection, transport = await open_connection(server)
    connection.start()
    transport.paused = True
    transport.pending = server.limits.max_outbound_frames + 1
    connection.send(b"{}")
    assert transport.closed_with == 4001


async def test_transport_loss_cleans_up(server: MeshServer) -> None:
    connection, transport = await open_connection(server)
    connection.start()
    transport.lose()
    assert connection.closed
    assert connection.close_code == 1006
    assert connection.cleanup_task is not None
    await wait_for(connection.cleanup_task)
    assert server.connections.get_local("conn-test") is None


async def test_timers_ping_then_4000(server: MeshServer) -> None:
    connection, transport = await open_connection(
        server, ping_interval=20, latency_interval=100_000
    )
    connection.start()
    await eventually(lambda: transport.closed_with == 4000)
    assert [f["command"] for f in transport.frames()] == ["mesh/assign-id", "ping", "ping"]


async def test_pong_and_rate_limited_reply(server: MeshServer) -> None:
    server = MeshServer(port=0, rate_limit=1, rate_burst=1)
    await server.backend.start(server.instance_id, lambda c, d: None)
    server.expose_command("echo", lambda ctx: ctx.payload)
    connection, transport = await open_connection(server)
    connection.start()
    transport.feed({"id": 1, "command": "pong", "payload": {}})
    transport.feed({"id": 1, "command": "echo", "payload": 1})
    transport.feed({"id": 2, "command": "echo", "payload": 2})
    await eventually(lambda: len(transport.frames()) == 3)
    by_id = {f["id"]: f for f in transport.frames()[1:]}
    assert by_id[1]["payload"] == 1
    assert by_id[2]["error"]["code"] == "ERATELIMIT"
    transport.feed({"id": 3, "command": "x", "payload": "y" * (2 * 1024 * 1024)})
    assert transport.closed_with == 1009
    await server.backend.close()


async def test_cleanup_retried_while_backend_unreachable(
    server: MeshServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooks: list[str] = []
    server.on_disconnection(lambda conn: hooks.append(conn.id))
    real = server.backend.unregister_connection
    failures = 2

    async def flaky(connection_id: str, tracked: Any) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise UnavailableError("down")
        await real(connection_id, tracked)

    monkeypatch.setattr(server.backend, "unregister_connection", flaky)
    connection, _transport = await open_connection(server)
    connection.start()
    connection.close(1000)
    assert connection.cleanup_task is not None
    await wait_for(connection.cleanup_task)
    assert hooks == ["conn-test"]  # hooks run after the first attempt; the retry continues

    async def unregistered() -> bool:
        return await server.backend.get_all_connection_metadata() == {}

    await eventually(unregistered)
    assert failures == 0


async def test_after_response_callbacks_follow_the_builtin_response(server: MeshServer) -> None:
    # §9.3/§10.4/§11.5: pushes held during a subscribe are released right after its response.
    connection, transport = await open_connection(server)
    released = asyncio.Event()

    async def subscribe_like(conn: Any, model: NoopRequest) -> NoopResponse:
        conn.after_response(lambda: conn.send(b'{"command":"held","payload":1}'))
        conn.after_response(released.set)
        return NoopResponse.model_construct(True)

    server._core.pipeline.add_builtins({"mesh/noop": Builtin(NoopRequest, subscribe_like)})
    connection.start()
    transport.feed({"id": 7, "command": "mesh/noop", "payload": {}})
    await wait_for(released.wait())
    frames = transport.frames()
    assert [f.get("id", f["command"]) for f in frames[1:]] == [7, "held"]
    # Outside a built-in the callback runs on the next loop turn.
    outside = asyncio.Event()
    connection.after_response(outside.set)
    await wait_for(outside.wait())


# ------------------------------------------------------------------ hostile input (issue 8)


async def test_non_string_commands_are_answered_and_the_connection_lives(
    server: MeshServer,
) -> None:
    server.expose_command("echo", lambda ctx: ctx.payload)
    connection, transport = await open_connection(server)
    connection.start()
    assert transport.on_message is not None
    transport.on_message(b'{"id":1,"command":{}}')
    transport.on_message(b'{"id":2,"command":["echo"],"payload":1}')
    transport.on_message(b'{"command":{"x":1}}')  # no id: malformed, counted
    transport.feed({"id": 3, "command": "echo", "payload": "still here"})
    await eventually(lambda: len(transport.frames()) == 4)
    by_id = {f["id"]: f for f in transport.frames()[1:]}
    assert by_id[1]["error"]["code"] == "ENOTFOUND"
    assert by_id[1]["command"] == {}
    assert by_id[2]["error"]["error"] == 'Command "["echo"]" not found'
    assert by_id[3]["payload"] == "still here"
    assert transport.closed_with is None
    assert server._core.pipeline.bad_input.totals["malformed"] == 1
    assert connection.session.inflight == 0


async def test_deep_frames_never_leak_inflight_slots(server: MeshServer) -> None:
    server = MeshServer(port=0, max_inflight_requests=5, max_malformed_frames=1000)
    await server.backend.start(server.instance_id, lambda c, d: None)
    server.expose_command("echo", lambda ctx: ctx.payload)
    connection, transport = await open_connection(server)
    connection.start()
    assert transport.on_message is not None
    deep_id = b'{"id":' + b"[" * 1000 + b"]" * 1000 + b',"command":"mesh/noop"}'
    deep_payload = b'{"id":9,"command":"echo","payload":' + b"[" * 1000 + b"]" * 1000 + b"}"
    for _ in range(100):
        transport.on_message(deep_id)
        transport.on_message(deep_payload)
    transport.feed({"id": "last", "command": "echo", "payload": 1})
    await eventually(lambda: transport.frames()[-1].get("id") == "last")
    answers = transport.frames()[1:]
    assert len(answers) == 101
    assert {a["error"]["code"] for a in answers[:-1]} == {"ETOOLARGE"}
    assert connection.session.inflight == 0
    assert transport.reading
    totals = server._core.pipeline.bad_input.totals
    assert (totals["malformed"], totals["too_deep"]) == (100, 100)
    await server.backend.close()


async def test_pipeline_failures_still_answer_and_free_the_slot(
    server: MeshServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server.expose_command("echo", lambda ctx: ctx.payload)
    server._core.pipeline.add_builtins(
        {"mesh/noop": Builtin(NoopRequest, lambda conn, model: _true())}
    )
    connection, transport = await open_connection(server)
    connection.start()

    async def broken(conn: Any, request: Any) -> bytes:
        raise RuntimeError("pipeline bug")

    monkeypatch.setattr(server._core.pipeline, "run_command", broken)
    real_builtin = server._core.pipeline.run_builtin
    calls = 0

    async def first_breaks(conn: Any, request: Any) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("builtin bug")
        return await real_builtin(conn, request)

    monkeypatch.setattr(server._core.pipeline, "run_builtin", first_breaks)
    transport.feed({"id": 1, "command": "echo"})
    transport.feed({"id": 2, "command": "mesh/noop"})
    transport.feed({"id": 3, "command": "mesh/noop"})  # the FIFO goes on after a failure
    await eventually(lambda: len(transport.frames()) == 4)
    by_id = {f["id"]: f for f in transport.frames()[1:]}
    assert by_id[1]["error"]["code"] == "ESERVER"
    assert by_id[2]["error"]["code"] == "ESERVER"
    assert by_id[3]["payload"] is True
    assert connection.session.inflight == 0
    logged = sorted(r.getMessage() for r in caplog.records if r.exc_info)
    assert logged == [
        "command 'echo' failed (request id 1 on conn-test)",
        "command 'mesh/noop' failed (request id 2 on conn-test)",
    ]


async def _true() -> NoopResponse:
    return NoopResponse.model_construct(True)


async def test_a_bug_while_handling_a_frame_closes_1011(
    server: MeshServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    connection, transport = await open_connection(server)
    connection.start()

    def broken(self: Any, data: bytes, now: int) -> Any:
        raise RuntimeError("session bug")

    # ServerSession has __slots__: the method is replaced on the class (for this test only).
    monkeypatch.setattr(type(connection.session), "receive", broken)
    transport.feed({"id": 1, "command": "echo"})  # nothing escapes into the transport
    assert transport.closed_with == 1011
    assert [r.getMessage() for r in caplog.records if r.exc_info] == [
        "handling a frame failed on conn-test"
    ]


async def test_cancellations_never_strand_queued_builtins(
    server: MeshServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 8 item 8: a built-in run that ended early left the built-ins queued behind it
    # unanswered until the next built-in arrived (the last ones of a connection: never).
    started = asyncio.Event()
    calls: list[int] = []

    async def handler(conn: Any, model: NoopRequest) -> NoopResponse:
        calls.append(len(calls))
        if len(calls) == 1:
            raise asyncio.CancelledError  # leaked by a library, nobody cancelled the task
        if len(calls) == 2:
            started.set()
            await asyncio.Event().wait()  # until the task is cancelled below
        return NoopResponse.model_construct(True)

    server._core.pipeline.add_builtins({"mesh/noop": Builtin(NoopRequest, handler)})
    connection, transport = await open_connection(server)
    connection.start()
    for request_id in range(1, 5):
        transport.feed({"id": request_id, "command": "mesh/noop"})
    await wait_for(started.wait())
    task = connection._builtin_task
    assert task is not None
    task.cancel()  # a real cancellation of the FIFO while the connection stays open
    await eventually(lambda: len(transport.frames()) == 5)
    by_id = {f["id"]: f for f in transport.frames()[1:]}
    assert by_id[1]["error"]["code"] == "ESERVER"
    assert by_id[2]["error"]["code"] == "ESERVER"
    assert by_id[3]["payload"] is True
    assert by_id[4]["payload"] is True
    assert connection.session.inflight == 0
    assert len([r for r in caplog.records if r.exc_info]) == 2


async def test_latency_is_seconds(server: MeshServer) -> None:
    connection, _ = await open_connection(server, ping_interval=100_000, latency_interval=1000)
    session = connection.session
    assert connection.latency == 0.0
    session.start(0)  # driven on its own ms clock: the round trip is exactly 40 ms
    session.on_timer(1000)
    session.receive(b'{"id":0,"command":"latency:response","payload":{}}', 1040)
    assert session.rtt == 40
    assert connection.latency == 0.04

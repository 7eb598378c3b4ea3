"""Server core over real loopback sockets, spoken to with raw websockets (wire compatibility)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from mesh_server import ForbiddenError, MeshAuthError, MeshError, MeshServer, UpgradeRequest
from tests.support.raw_client import RawClient, running_server
from tests.support.timing import TIMEOUT, eventually, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("transport")]


def error_of(frame: dict[str, Any]) -> dict[str, Any]:
    assert "error" in frame, frame
    assert frame["payload"] == {k: frame["error"][k] for k in ("error", "code", "name")}
    return frame["error"]  # type: ignore[no-any-return]


# ------------------------------------------------------------------ opening (§5.2)


async def test_assign_id_first_even_when_client_sends_immediately() -> None:
    release = asyncio.Event()
    async with running_server() as server:
        held: list[Any] = []

        @server.on_connection
        async def hold(connection: Any) -> None:
            held.append(connection)
            await release.wait()
            server._core.deliver([connection.id], b'{"command":"welcome","payload":1}')

        server.expose_command("echo", lambda ctx: ctx.payload)
        async with RawClient.open(server.url, wait_id=False) as client:
            await client.send({"id": 1, "command": "echo", "payload": "early"})
            # The frame reached the server while the hook runs, before mesh/assign-id.
            await eventually(lambda: bool(held) and len(held[0]._t._early) == 1)
            release.set()
            first = await client.next_frame()
            assert first["command"] == "mesh/assign-id"
            assert first["payload"].startswith("conn-")
            assert 5 < len(first["payload"]) <= 64
            rest = [await client.next_frame(), await client.next_frame()]
            assert {"command": "welcome", "payload": 1} in rest
            assert {"id": 1, "command": "echo", "payload": "early"} in rest


async def test_connection_ids_unique_and_registered() -> None:
    async with (
        running_server() as server,
        RawClient.open(server.url) as a,
        RawClient.open(server.url) as b,
    ):
        assert a.connection_id != b.connection_id
        ids = list(await server.backend.get_all_connection_metadata())
        assert sorted(ids) == sorted([a.connection_id, b.connection_id])
        assert set(server.connections.local()) == set(ids)


# ------------------------------------------------------------------ requests and responses (§3)


async def test_echo_ids_and_absent_payload() -> None:
    async with running_server() as server:
        server.expose_command("echo", lambda ctx: ctx.payload)
        async with RawClient.open(server.url) as client:
            assert await client.request(None, "echo", 1) == {
                "id": None,
                "command": "echo",
                "payload": 1,
            }
            assert await client.request("abc", "echo") == {
                "id": "abc",
                "command": "echo",
                "payload": {},
            }
            obj_id = {"nested": [1, 2]}
            assert (await client.request(obj_id, "echo", [1]))["id"] == obj_id


async def test_equal_ids_concurrently_answered_each() -> None:
    gate = asyncio.Event()

    async def slow(ctx: Any) -> Any:
        await gate.wait()
        return ctx.payload

    async with running_server() as server:
        server.expose_command("slow", slow)
        async with RawClient.open(server.url) as client:
            for i in range(5):
                await client.send({"id": 0, "command": "slow", "payload": i})
            gate.set()
            payloads = sorted([(await client.response(0))["payload"] for _ in range(5)])
            assert payloads == [0, 1, 2, 3, 4]


async def test_binary_frames_accepted() -> None:
    async with running_server() as server:
        server.expose_command("echo", lambda ctx: ctx.payload)
        async with RawClient.open(server.url) as client:
            await client.send_raw(b'{"id":9,"command":"echo","payload":"bin"}')
            assert (await client.response(9))["payload"] == "bin"


async def test_handler_returning_nothing_sends_null() -> None:
    async with running_server() as server:
        server.expose_command("nothing", lambda ctx: None)
        async with RawClient.open(server.url) as client:
            frame = await client.request(1, "nothing", {})
            assert frame == {"id": 1, "command": "nothing", "payload": None}


async def test_unknown_and_missing_and_reserved_commands() -> None:
    async with running_server() as server, RawClient.open(server.url) as client:
        frame = await client.request(7, "no-such-command", {"x": 1})
        # Appendix A.2, exactly.
        assert frame == {
            "id": 7,
            "command": "no-such-command",
            "payload": {
                "error": 'Command "no-such-command" not found',
                "code": "ENOTFOUND",
                "name": "CommandError",
            },
            "error": {
                "error": 'Command "no-such-command" not found',
                "code": "ENOTFOUND",
                "name": "CommandError",
            },
        }
        assert error_of(await client.request(8, "ping"))["code"] == "ENOTFOUND"
        await client.send({"id": 9})
        frame = await client.response(9)
        assert "command" not in frame
        assert error_of(frame)["code"] == "ENOTFOUND"
        await client.send({"id": 10, "command": 42})
        frame = await client.response(10)
        assert frame["command"] == 42
        assert error_of(frame)["code"] == "ENOTFOUND"
        # Disabled by default (§12.1) and unsupported collections (§1.3).
        for name in ("mesh/set-my-connection-metadata", "mesh/subscribe-collection"):
            assert error_of(await client.request(11, name, {"metadata": 1}))["code"] == (
                "ENOTFOUND"
            )


@pytest.mark.native_only
def test_reserved_names_cannot_be_registered() -> None:
    server = MeshServer()
    for name in ("mesh/echo", "ping", "pong", "latency", "latency:request", "latency:response"):
        with pytest.raises(ValueError, match="reserved"):
            server.expose_command(name, lambda ctx: None)
    with pytest.raises(TypeError):
        server.expose_command("x", "not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        server.expose_command("x", lambda ctx: None, middlewares=[1])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="unknown MeshServer option"):
        MeshServer(max_mesage_size=1)


async def test_mesh_error_sent_exactly() -> None:
    async with running_server() as server:

        @server.command("boom")
        async def boom(ctx: Any) -> None:
            raise MeshError("boom", code="EDEMO", name="DemoError", details={"k": 1})

        async with RawClient.open(server.url) as client:
            frame = await client.request(1, "boom", {})
            assert frame["payload"] == {"error": "boom", "code": "EDEMO", "name": "DemoError"}
            assert frame["error"] == {
                "error": "boom",
                "code": "EDEMO",
                "name": "DemoError",
                "details": {"k": 1},
            }


@pytest.mark.parametrize("debug", [False, True])
async def test_unexpected_exception_is_generic_unless_debug(
    debug: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_server(debug=debug) as server:

        @server.command("crash")
        def crash(ctx: Any) -> None:
            raise RuntimeError("secret detail")

        async with RawClient.open(server.url) as client:
            error = error_of(await client.request(1, "crash"))
    assert error["code"] == "ESERVER"
    assert error["name"] == "Error"
    if debug:
        assert "secret detail" in error["error"]
    else:
        assert error["error"] == "Internal server error"
    assert any("secret detail" in (r.exc_text or "") for r in caplog.records)


async def test_result_not_json_is_eserver() -> None:
    async with running_server() as server:
        server.expose_command("bad", lambda ctx: object())
        async with RawClient.open(server.url) as client:
            assert error_of(await client.request(1, "bad"))["code"] == "ESERVER"


# ------------------------------------------------------------------ middleware (§3.4)


async def test_middleware_order_and_context() -> None:
    calls: list[str] = []
    async with running_server() as server:

        def global_sync(ctx: Any) -> None:
            calls.append(f"global-sync:{ctx.command}")
            ctx.user = "alice"

        async def global_async(ctx: Any) -> None:
            calls.append("global-async")

        async def command_mw(ctx: Any) -> None:
            calls.append(f"command:{ctx.user}")
            ctx.extra = 42

        server.use_middleware(global_sync, global_async)

        @server.command("whoami", middlewares=[command_mw])
        async def whoami(ctx: Any) -> Any:
            calls.append("handler")
            assert ctx.server is server
            assert ctx.connection.id in server.connections.local()
            return {"user": ctx.user, "extra": ctx.extra, "payload": ctx.payload}

        async with RawClient.open(server.url) as client:
            frame = await client.request(1, "whoami", {"q": 1})
            assert frame["payload"] == {"user": "alice", "extra": 42, "payload": {"q": 1}}
            assert calls == ["global-sync:whoami", "global-async", "command:alice", "handler"]
            calls.clear()
            # ENOTFOUND is decided before any middleware.
            await client.request(2, "missing")
            assert calls == []
            # Built-ins run global middleware too (the README's way to guard mesh/join-room).
            await client.request(3, "mesh/noop", {})
            assert calls == ["global-sync:mesh/noop", "global-async"]


async def test_middleware_rejection_stops_pipeline() -> None:
    handled = []
    async with running_server() as server:

        async def deny(ctx: Any) -> None:
            if ctx.command == "mesh/get-my-connection-metadata":
                raise ForbiddenError("no metadata for you")

        def deny_cmd(ctx: Any) -> None:
            raise ForbiddenError("nope")

        server.use_middleware(deny)
        server.expose_command("guarded", lambda ctx: handled.append(1), middlewares=[deny_cmd])
        async with RawClient.open(server.url) as client:
            error = error_of(await client.request(1, "guarded"))
            assert (error["code"], error["name"], error["error"]) == (
                "EFORBIDDEN",
                "ForbiddenError",
                "nope",
            )
            error = error_of(await client.request(2, "mesh/get-my-connection-metadata", {}))
            assert error["code"] == "EFORBIDDEN"
            assert handled == []


# ------------------------------------------------------------------ validation (§4, §7)


async def test_builtin_validation_appendix_a2() -> None:
    async with running_server() as server, RawClient.open(server.url) as client:
        frame = await client.request(3, "mesh/get-connection-metadata", {})
        error = error_of(frame)
        assert error["code"] == "EVALIDATION"
        assert error["name"] == "ValidationError"
        assert error["error"] == 'Invalid payload for "mesh/get-connection-metadata"'
        assert error["details"] == [
            {"path": "", "message": "'connectionId' is a required property"}
        ]
        error = error_of(await client.request(4, "mesh/get-connection-metadata", [1]))
        assert error["code"] == "EVALIDATION"
        assert error["details"][0]["path"] == ""
        error = error_of(
            await client.request(5, "mesh/get-connection-metadata", {"connectionId": 5})
        )
        assert error["details"][0]["path"] == "/connectionId"


# ------------------------------------------------------------------ limits (§15, §16)


async def test_oversize_frame_closes_1009() -> None:
    async with running_server(max_message_size=1024) as server, RawClient.open(server.url) as c:
        await c.send({"id": 1, "command": "echo", "payload": "x" * 2000})
        assert await c.wait_closed() == 1009


async def test_malformed_flood_closes_1008() -> None:
    async with running_server(max_malformed_frames=3) as server:
        server.expose_command("echo", lambda ctx: ctx.payload)
        async with RawClient.open(server.url) as client:
            # Malformed frames are ignored (no reply) and counted.
            for data in ("not json", "[1,2]", '{"command":"echo"}'):
                await client.send_raw(data)
            assert (await client.request(1, "echo", "still ok"))["payload"] == "still ok"
            await client.send_raw('"scalar"')
            assert await client.wait_closed() == 1008


async def test_rate_limit_answers_eratelimit() -> None:
    async with running_server(rate_limit=1, rate_burst=2) as server:
        server.expose_command("echo", lambda ctx: ctx.payload)
        async with RawClient.open(server.url) as client:
            for i in range(3):
                await client.send({"id": i, "command": "echo", "payload": i})
            frames = [await client.response(i) for i in range(3)]
            assert [f["payload"] for f in frames[:2]] == [0, 1]
            error = error_of(frames[2])
            assert error["code"] == "ERATELIMIT"
            assert error["details"]["retryAfterMs"] > 0


async def test_inflight_cap_pauses_reading() -> None:
    gate = asyncio.Event()
    running = 0
    peak = 0

    async def slow(ctx: Any) -> Any:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1
        return ctx.payload

    async with running_server(max_inflight_requests=2) as server:
        server.expose_command("slow", slow)
        async with RawClient.open(server.url) as client:
            for i in range(6):
                await client.send({"id": i, "command": "slow", "payload": i})
            await eventually(lambda: running == 2)
            gate.set()
            assert sorted([(await client.response(i))["payload"] for i in range(6)]) == list(
                range(6)
            )
            assert peak == 2


async def test_builtins_answered_in_arrival_order() -> None:
    async with running_server() as server, RawClient.open(server.url) as client:
        for i in range(30):
            command = "mesh/noop" if i % 2 else "mesh/get-my-connection-metadata"
            await client.send({"id": i, "command": command, "payload": {}})
        ids = [(await client.next_frame())["id"] for _ in range(30)]
        assert ids == list(range(30))


# ------------------------------------------------------------------ liveness (§6)


async def test_silent_client_closed_with_4000() -> None:
    async with running_server(ping_interval=0.1, latency_interval=10.0) as server:
        closed = asyncio.Event()
        server.on_disconnection(lambda conn: closed.set())
        async with RawClient.open(server.url) as client:
            loop = asyncio.get_running_loop()
            start = loop.time()
            assert await client.next_frame() == {"command": "ping", "payload": {}}
            assert await client.next_frame() == {"command": "ping", "payload": {}}
            assert await client.wait_closed() == 4000
            elapsed = loop.time() - start
            assert 0.15 < elapsed < 2.0
            await wait_for(closed.wait())
            assert await server.backend.get_all_connection_metadata() == {}


async def test_pong_keeps_connection_alive_and_latency_measured() -> None:
    async with (
        running_server(ping_interval=0.06, latency_interval=0.025) as server,
        RawClient.open(server.url, auto_pong=True) as client,
    ):
        # Answer latency probes like the JS client: echo with an id.
        latencies = []
        while len(latencies) < 8:
            frame = await client.next_frame()
            if frame["command"] == "latency:request":
                await client.send({"id": 1, "command": "latency:response", "payload": {}})
            elif frame["command"] == "latency":
                latencies.append(frame["payload"])
        assert latencies[0] == 0
        assert all(isinstance(v, int) and v >= 0 for v in latencies)
        connection = next(iter(server.connections.local().values()))
        assert connection.latency >= 0
        assert not connection.closed


async def test_protocol_level_pings_answered_and_never_fatal() -> None:
    async with running_server() as server:
        server.expose_command("echo", lambda ctx: ctx.payload)
        async with connect(server.url) as ws:
            json.loads(await ws.recv())
            pong_waiter = await ws.ping(b"hi")
            latency = await asyncio.wait_for(pong_waiter, TIMEOUT)
            assert latency >= 0


# ------------------------------------------------------------------ slow consumer (§15: 4001)


async def test_slow_consumer_closed_4001_others_unaffected() -> None:
    async with running_server(
        max_outbound_bytes=256 * 1024,
        max_outbound_frames=200,
        ping_interval=1.0,
        latency_interval=0.04,
    ) as server:
        closed_codes: dict[str, int | None] = {}
        done = asyncio.Event()

        def on_close(connection: Any) -> None:
            closed_codes[connection.id] = connection.close_code
            done.set()

        server.on_disconnection(on_close)
        async with (
            connect(server.url, max_queue=1) as slow_ws,
            RawClient.open(server.url, auto_pong=True) as healthy,
        ):
            slow_id = json.loads(await slow_ws.recv())["payload"]
            # Stop reading at the TCP level: the kernel buffers fill, then asyncio's.
            slow_ws.transport.pause_reading()
            chunk = "x" * 16_384
            for _ in range(2000):
                await server.send(slow_id, "spam", chunk)
                if closed_codes:
                    break
                await asyncio.sleep(0)
            await wait_for(done.wait())
            assert closed_codes == {slow_id: 4001}
            assert server.connections.get_local(slow_id) is None
            # The healthy connection keeps getting latency probes.
            for _ in range(2):
                await healthy.wait_push("latency")
            assert healthy.connection_id in server.connections.local()
            slow_ws.transport.abort()


# ------------------------------------------------------------------ authentication (§5.1)


@pytest.mark.websockets_only  # an async authenticate hook: picows decides synchronously
async def test_authenticate_rejects_with_status() -> None:
    seen: list[UpgradeRequest] = []

    async def authenticate(request: UpgradeRequest) -> Any:
        seen.append(request)
        token = request.query.get("token") or request.cookies.get("token")
        if token != "good":
            raise MeshAuthError(401, "token expired")
        return {"userId": "u1", "path": request.path}

    async with running_server(authenticate=authenticate) as server:
        with pytest.raises(InvalidStatus) as info:
            async with connect(server.url + "/ws?token=bad"):
                pass
        assert info.value.response.status_code == 401
        assert b"token expired" in info.value.response.body
        async with RawClient.open(
            server.url + "/ws", additional_headers={"Cookie": "token=good; x=1"}
        ) as client:
            payload = await client.call("mesh/get-my-connection-metadata", {})
            assert payload == {"metadata": {"userId": "u1", "path": "/ws"}}
        assert seen[0].query == {"token": "bad"}
        assert seen[1].cookies["token"] == "good"
        assert seen[1].peer is not None


async def test_authenticate_sync_hook_none_and_crash() -> None:
    def authenticate(request: UpgradeRequest) -> Any:
        if request.path == "/crash":
            raise RuntimeError("bug")
        if request.path == "/custom":
            raise MeshAuthError(499, "custom status")
        return None

    async with running_server(authenticate=authenticate) as server:
        async with RawClient.open(server.url) as client:
            assert await client.call("mesh/get-my-connection-metadata", {}) == {"metadata": None}
        for path, status in (("/crash", 500), ("/custom", 499)):
            with pytest.raises(InvalidStatus) as info:
                async with connect(server.url + path):
                    pass
            assert info.value.response.status_code == status


@pytest.mark.native_only
def test_mesh_auth_error_validates_status() -> None:
    with pytest.raises(ValueError, match="4xx"):
        MeshAuthError(200, "ok")
    assert str(MeshAuthError(403, "no")) == "HTTP 403: no"


async def test_origin_allow_list_and_max_connections() -> None:
    async with running_server(allowed_origins=["https://ok.example"], max_connections=1) as server:
        with pytest.raises(InvalidStatus) as info:
            async with connect(server.url, origin="https://evil.example"):  # type: ignore[arg-type]
                pass
        assert info.value.response.status_code == 403
        async with RawClient.open(server.url, origin="https://ok.example"):
            with pytest.raises(InvalidStatus) as info:
                async with connect(server.url, origin="https://ok.example"):  # type: ignore[arg-type]
                    pass
            assert info.value.response.status_code == 503


# ------------------------------------------------------------------ metadata (§12.1)


async def test_metadata_commands_and_manager() -> None:
    async with running_server() as server:
        manager = server.connections
        async with RawClient.open(server.url) as a, RawClient.open(server.url) as d:
            assert a.connection_id is not None
            assert d.connection_id is not None
            await manager.set_metadata(a.connection_id, {"userId": "u1", "name": "Alice"})
            # Appendix A.7.
            assert await d.call("mesh/get-my-connection-metadata", {}) == {"metadata": None}
            assert await d.call(
                "mesh/get-connection-metadata", {"connectionId": a.connection_id}
            ) == {"metadata": {"userId": "u1", "name": "Alice"}}
            assert await d.call("mesh/get-connection-metadata", {"connectionId": "nope"}) == {
                "metadata": None
            }
            conn_a = server.connections.get_local(a.connection_id)
            assert conn_a is not None
            await manager.set_metadata(conn_a, {"name": "Al"}, strategy="merge")
            assert await manager.get_metadata(conn_a) == {"userId": "u1", "name": "Al"}
            assert await manager.get_all_metadata() == {
                a.connection_id: {"userId": "u1", "name": "Al"},
                d.connection_id: None,
            }
            with pytest.raises(ValueError, match="strategy"):
                await manager.set_metadata(conn_a, 1, strategy="bogus")  # type: ignore[arg-type]
        await eventually(lambda: not server.connections.local())
        assert await manager.get_all_metadata() == {}


async def test_client_metadata_writes_guarded_and_bounded() -> None:
    def write_guard(connection: Any, metadata: Any) -> bool:
        return not (isinstance(metadata, dict) and metadata.get("admin"))

    async def read_guard(connection: Any, target: str) -> bool:
        return target == connection.id

    async with (
        running_server(
            client_metadata_writes=True,
            metadata_write_guard=write_guard,
            metadata_read_guard=read_guard,
            max_metadata_size=100,
        ) as server,
        RawClient.open(server.url) as a,
        RawClient.open(server.url) as b,
    ):
        assert await a.call("mesh/set-my-connection-metadata", {"metadata": {"n": 1}}) == {
            "success": True
        }
        assert await a.call(
            "mesh/set-my-connection-metadata",
            {"metadata": {"m": 2}, "options": {"strategy": "merge"}},
        ) == {"success": True}
        assert await a.call("mesh/get-my-connection-metadata", {}) == {"metadata": {"n": 1, "m": 2}}
        assert await a.call("mesh/set-my-connection-metadata", {"metadata": {"admin": True}}) == {
            "success": False
        }
        frame = await a.request(1, "mesh/set-my-connection-metadata", {"metadata": "x" * 200})
        assert error_of(frame)["code"] == "ETOOLARGE"
        assert frame["error"]["details"] == {"limit": 100}
        # The read guard denies other connections' metadata: null.
        assert await b.call("mesh/get-connection-metadata", {"connectionId": a.connection_id}) == {
            "metadata": None
        }
        assert await a.call("mesh/get-connection-metadata", {"connectionId": a.connection_id}) == {
            "metadata": {"n": 1, "m": 2}
        }


# ------------------------------------------------------------------ sending (§13.2)


async def test_send_and_broadcast_variants() -> None:
    async with (
        running_server() as server,
        RawClient.open(server.url) as a,
        RawClient.open(server.url) as b,
        RawClient.open(server.url) as c,
    ):
        ids = [a.connection_id, b.connection_id, c.connection_id]
        assert all(ids)
        assert await server.send(ids[0], "direct", {"n": 1})
        assert await a.wait_push("direct") == {"n": 1}
        assert not await server.send("conn-unknown", "direct", 1)
        await server.broadcast("all", 1)
        for client in (a, b, c):
            assert await client.wait_push("all") == 1
        await server.connections.broadcast("most", 2, exclude=server.connections.get_local(ids[1]))
        assert await a.wait_push("most") == 2
        assert await c.wait_push("most") == 2
        await server.connections.broadcast("fewer", 3, exclude=[ids[0], ids[2]])
        assert await b.wait_push("fewer") == 3
        await server.add_to_room("room:x", ids[0])
        await server.add_to_room("room:x", ids[1])
        await server.broadcast_room("room:x", "in-room", 4)
        await server.connections.broadcast("in-room-but", 5, room="room:x", exclude=ids[0])
        await server.broadcast("marker", 0)
        for client in (a, b, c):
            await client.wait_push("marker")
        seen = {
            name: [f["command"] for f in client.inbox]
            for name, client in (("a", a), ("b", b), ("c", c))
        }
        assert seen == {
            "a": ["in-room"],
            "b": ["in-room", "in-room-but"],
            "c": [],
        }
        with pytest.raises(ValueError, match="reserved"):
            await server.send(ids[0], "mesh/assign-id", "x")


# ------------------------------------------------------------------ cleanup and shutdown (§5.3)


async def test_cleanup_exactly_once_and_graceful_close() -> None:
    disconnected: list[str] = []
    async with running_server() as server:
        server.on_disconnection(lambda conn: disconnected.append(conn.id))
        async with RawClient.open(server.url) as a:
            async with RawClient.open(server.url) as b:
                pass
            await eventually(lambda: len(disconnected) == 1)
            assert disconnected == [b.connection_id]
            assert list(await server.backend.get_all_connection_metadata()) == [a.connection_id]
            closing = asyncio.create_task(server.close())
            assert await a.wait_closed() == 1001
            await wait_for(closing)
    assert disconnected == [b.connection_id, a.connection_id]


@pytest.mark.native_only
async def test_serve_forever_and_port() -> None:
    server = MeshServer(port=0)
    assert server.port == 0
    task = asyncio.create_task(server.serve_forever())
    await eventually(lambda: server.started)
    assert server.port > 0
    async with RawClient.open(server.url) as client:
        assert client.connection_id is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not server.started


async def test_many_frames_before_assign_id_all_answered_in_order() -> None:
    release = asyncio.Event()
    async with running_server() as server:
        held: list[Any] = []

        @server.on_connection
        async def hold(connection: Any) -> None:
            held.append(connection)
            await release.wait()

        async with RawClient.open(server.url, wait_id=False) as client:
            for i in range(60):
                await client.send({"id": i, "command": "mesh/noop", "payload": {}})
            # The server holds what it read and stopped reading (bounded, §5.2 step 4).
            await eventually(lambda: bool(held) and len(held[0]._t._early) >= 16)
            release.set()
            assert (await client.next_frame())["command"] == "mesh/assign-id"
            ids = [(await client.next_frame())["id"] for _ in range(60)]
            assert ids == list(range(60))


async def test_fragmented_messages_are_joined() -> None:
    async with running_server() as server, connect(server.url) as ws:
        server.expose_command("echo", lambda ctx: ctx.payload)
        json.loads(await ws.recv())
        await ws.send(iter(['{"id":1,"command":"echo",', '"payload":"in pieces"}']))
        assert json.loads(await ws.recv()) == {"id": 1, "command": "echo", "payload": "in pieces"}
        await ws.send(iter([b'{"id":2,"command":"echo",', b'"payload":"binary"}']))
        assert json.loads(await ws.recv())["payload"] == "binary"

"""MeshClient against the real MeshServer (memory backend): commands, liveness, reconnect."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from mesh_sdk.client import MeshClient
from mesh_sdk.errors import MeshAuthenticationError
from mesh_sdk.protocol.errors import (
    CommandNotFoundError,
    ForbiddenError,
    MeshConnectionError,
    MeshError,
    MeshTimeoutError,
    ValidationError,
)
from mesh_server import MeshAuthError, UpgradeRequest
from tests.integration.sdk_support import Restartable, clients, mesh
from tests.support.raw_client import running_server
from tests.support.timing import TIMEOUT, eventually, wait_for
from tests.unit.sdk.recorder import Recorder

__all__ = ["clients", "mesh"]

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("transport")]

Factory = Callable[..., MeshClient]


async def test_commands_and_typed_errors(mesh: Restartable, clients: Factory) -> None:
    client = clients(mesh.url)
    await wait_for(client.connect())
    assert client.connection_id is not None
    assert client.connection_id in mesh.current.connections.local()
    assert await client.command("echo", {"x": [1, "a", None]}) == {"x": [1, "a", None]}
    assert await client.command("echo") == {}
    with pytest.raises(CommandNotFoundError):
        await client.command("missing")
    with pytest.raises(ForbiddenError, match="not for you"):
        await client.command("forbidden")
    with pytest.raises(MeshError) as info:
        await client.command("demo")
    assert (info.value.code, info.value.name, info.value.message) == (
        "EDEMO",
        "DemoError",
        "demo failure",
    )
    with pytest.raises(ValidationError) as validation:
        await client.command("mesh/join-room", {})
    assert validation.value.details == [
        {"path": "", "message": "'roomName' is a required property"}
    ]
    assert await client.command("mesh/noop") is True


async def test_concurrent_commands(mesh: Restartable, clients: Factory) -> None:
    client = clients(mesh.url)
    await client.connect()
    results = await wait_for(asyncio.gather(*(client.command("echo", i) for i in range(200))))
    assert results == list(range(200))


async def test_command_timeout(mesh: Restartable, clients: Factory) -> None:
    client = clients(mesh.url)
    await client.connect()
    with pytest.raises(MeshTimeoutError):
        await client.command("slow", timeout=0.05)
    mesh.app.gate.set()
    assert await client.command("echo", 1) == 1


async def test_latency_is_measured() -> None:
    async with running_server(latency_interval=0.03) as server:
        client = MeshClient(server.url)
        recorder = Recorder(client)
        await client.connect()
        await eventually(lambda: recorder.count("latency") >= 2)
        assert client.latency is not None
        assert client.latency >= 0
        await client.close()


async def test_server_pings_are_answered(clients: Factory) -> None:
    # The ping interval is a slice of the timeout unit (not 50 ms): the server's pong check and
    # the client's watchdog (one missed ping or pong each) must not mistake a busy box's
    # scheduling delay for a silent peer.
    interval = TIMEOUT / 20
    async with running_server(ping_interval=interval, latency_interval=60.0) as server:
        client = clients(server.url, ping_timeout=interval, max_missed_pings=1)
        recorder = Recorder(client)
        await client.connect()
        connection = server.connections.local()[client.connection_id]  # type: ignore[index]
        # Four ping periods: a client that did not pong would be closed with 4000 after three.
        await eventually(lambda: client._session.counters.pings >= 4)
        assert not connection.closed
        assert recorder.count("disconnect") == 0


async def test_watchdog_reconnects(clients: Factory) -> None:
    async with running_server(ping_interval=10.0) as server:
        # The client expects pings every 30 ms, the server sends one every 10 s: the watchdog
        # drops the socket after 60 ms and the client reconnects with a new id (§14).
        client = clients(server.url, ping_timeout=0.03, max_missed_pings=1)
        recorder = Recorder(client)
        await client.connect()
        first = client.connection_id
        _, second = await recorder.wait("reconnect")
        assert second != first
        await eventually(lambda: first not in server.connections.local())


async def test_in_flight_fails_and_is_not_resent(mesh: Restartable, clients: Factory) -> None:
    client = clients(mesh.url)
    recorder = Recorder(client)
    await client.connect()
    task = asyncio.ensure_future(client.command("slow", "once"))
    await wait_for(mesh.app.started.wait())
    mesh.app.gate.set()  # let shutdown finish quickly; the response is discarded with the socket
    await mesh.restart()
    with pytest.raises(MeshConnectionError):
        await wait_for(task)
    await recorder.wait("resubscribed")
    assert await client.command("echo", "after") == "after"
    assert [c for c in mesh.app.calls if c[0] == "slow"] == [("slow", "once")]


async def test_queued_commands_sent_in_order_after_restart(
    mesh: Restartable, clients: Factory
) -> None:
    client = clients(mesh.url)
    recorder = Recorder(client)
    await client.connect()
    await mesh.stop()
    await recorder.wait("disconnect")
    tasks = [asyncio.ensure_future(client.command("echo", i)) for i in range(10)]
    await asyncio.sleep(0)
    await mesh.start()
    assert await wait_for(asyncio.gather(*tasks)) == list(range(10))
    assert [c[1] for c in mesh.app.calls if c[0] == "echo"] == list(range(10))
    await recorder.wait("resubscribed")
    assert recorder.names() == ["connect", "disconnect", "connect", "reconnect", "resubscribed"]
    assert recorder.events[1][1] == 1001  # graceful shutdown: going away (§16)


async def test_queued_command_expires_while_server_down(
    mesh: Restartable, clients: Factory
) -> None:
    client = clients(mesh.url)
    recorder = Recorder(client)
    await client.connect()
    await mesh.stop()
    await recorder.wait("disconnect")
    with pytest.raises(MeshTimeoutError):
        await client.command("echo", 1, timeout=0.05)
    await mesh.start()
    await recorder.wait("resubscribed")
    assert mesh.app.calls == []


@pytest.mark.parametrize(("code", "reconnects"), [(4000, True), (4003, True), (4500, False)])
async def test_server_close_codes(
    mesh: Restartable, clients: Factory, code: int, reconnects: bool
) -> None:
    client = clients(mesh.url)
    recorder = Recorder(client)
    await client.connect()
    mesh.current.connections.local()[client.connection_id].close(code, "test")  # type: ignore[index]
    if reconnects:
        await recorder.wait("reconnect")
        assert await client.command("echo", 1) == 1
    else:
        await recorder.wait("close")
        assert client.closed
        assert client.close_code == code


async def test_authentication_rejected(clients: Factory) -> None:
    allowed = {"ok"}

    def authenticate(request: UpgradeRequest) -> Any:
        token = request.headers.get("x-token")
        if token not in allowed:
            raise MeshAuthError(401, "bad token")
        return {"token": token}

    async with running_server(authenticate=authenticate) as server:
        with pytest.raises(MeshAuthenticationError) as info:
            await clients(server.url, additional_headers={"x-token": "nope"}).connect()
        assert info.value.status == 401
        client = clients(server.url, additional_headers={"x-token": "ok"})
        recorder = Recorder(client)
        await client.connect()
        assert await client.get_connection_metadata() == {"token": "ok"}
        # the token is revoked; the next reconnect is refused and the client gives up (§14)
        allowed.clear()
        server.connections.local()[client.connection_id].close(4002, "state lost")  # type: ignore[index]
        _, error = await recorder.wait("reconnect_failed")
        assert isinstance(error, MeshAuthenticationError)
        await recorder.wait("close")


async def test_metadata(clients: Factory) -> None:
    async with running_server(client_metadata_writes=True) as server:
        a = clients(server.url)
        b = clients(server.url)
        await a.connect()
        await b.connect()
        assert await a.get_connection_metadata() is None
        assert await a.set_connection_metadata({"name": "alice", "tags": ["x"]}) is True
        assert await a.set_connection_metadata({"age": 3}, strategy="merge") is True
        expected = {"name": "alice", "tags": ["x"], "age": 3}
        assert await b.get_connection_metadata(a.connection_id) == expected
        assert await b.get_connection_metadata("conn-unknown") is None
        await server.rooms.set_metadata("room:1", {"topic": "t"})
        assert await a.get_room_metadata("room:1") == {"topic": "t"}
        assert await a.get_room_metadata("room:none") is None


async def test_set_metadata_disabled_by_default(mesh: Restartable, clients: Factory) -> None:
    client = clients(mesh.url)
    await client.connect()
    with pytest.raises(CommandNotFoundError):
        await client.set_connection_metadata({"admin": True})


async def test_server_push(mesh: Restartable, clients: Factory) -> None:
    client = clients(mesh.url)
    await client.connect()
    got: asyncio.Queue[Any] = asyncio.Queue()
    client.on_push("notice", got.put_nowait)
    await mesh.current.send(client.connection_id, "notice", {"n": 1})  # type: ignore[arg-type]
    await mesh.current.broadcast("notice", {"n": 2})
    assert await wait_for(got.get()) == {"n": 1}
    assert await wait_for(got.get()) == {"n": 2}

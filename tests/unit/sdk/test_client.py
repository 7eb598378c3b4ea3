"""MeshClient against a scripted fake server over a real socket: commands, liveness, reconnect."""

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
from mesh_sdk.session import SessionState
from tests.support.timing import TIMEOUT, eventually, wait_for
from tests.unit.sdk.fake_server import HOLD, FakeRequest, FakeServer
from tests.unit.sdk.recorder import Recorder

Factory = Callable[..., MeshClient]


# --------------------------------------------------------------------------------------------
# Connect, commands, errors


async def test_connect_resolves_after_assign_id(fake: FakeServer, make_client: Factory) -> None:
    client = make_client(fake.url)
    recorder = Recorder(client)
    assert client.state is SessionState.IDLE
    await wait_for(client.connect())
    assert client.connection_id == "conn-fake1"
    assert client.connected
    assert client.state is SessionState.READY
    await client.connect()  # idempotent
    assert len(fake.connections) == 1
    assert recorder.names() == ["connect"]


async def test_async_with(fake: FakeServer) -> None:
    async with MeshClient(fake.url) as client:
        assert await client.command("echo", {"a": [1, None]}) == {"a": [1, None]}
        assert await client.command("echo") == {}
    assert client.closed
    assert client.connection_id is None


async def test_request_ids_unique_and_concurrent(fake: FakeServer, make_client: Factory) -> None:
    client = make_client(fake.url)
    await client.connect()
    results = await wait_for(asyncio.gather(*(client.command("echo", i) for i in range(50))))
    assert results == list(range(50))
    ids = [r.id for r in fake.requests]
    assert len(set(ids)) == 50
    assert all(type(i) is int for i in ids)


async def test_typed_errors(fake: FakeServer, make_client: Factory) -> None:
    def forbidden(conn: Any, req: FakeRequest) -> Any:
        raise ForbiddenError('Record "x" is not writable by this connection.')

    def demo(conn: Any, req: FakeRequest) -> Any:
        raise MeshError("demo failure", code="EDEMO", name="DemoError")

    def invalid(conn: Any, req: FakeRequest) -> Any:
        raise ValidationError.for_command("v", [{"path": "/a", "message": "bad"}])

    fake.handlers.update({"forbidden": forbidden, "demo": demo, "v": invalid})
    client = make_client(fake.url)
    await client.connect()
    with pytest.raises(CommandNotFoundError):
        await client.command("missing")
    with pytest.raises(ForbiddenError, match="not writable"):
        await client.command("forbidden")
    with pytest.raises(MeshError) as info:
        await client.command("demo")
    assert (info.value.code, info.value.name) == ("EDEMO", "DemoError")
    with pytest.raises(ValidationError) as validation:
        await client.command("v")
    assert validation.value.details == [{"path": "/a", "message": "bad"}]


async def test_error_shaped_success_payload_is_returned(
    fake: FakeServer, make_client: Factory
) -> None:
    fake.handlers["weird"] = lambda conn, req: {"error": "x", "code": "EX", "name": "N"}
    client = make_client(fake.url)
    await client.connect()
    assert await client.command("weird") == {"error": "x", "code": "EX", "name": "N"}


async def test_command_before_connect_fails(make_client: Factory) -> None:
    client = make_client("ws://127.0.0.1:9/")
    with pytest.raises(MeshConnectionError):
        await client.command("echo")


async def test_command_timeout(fake: FakeServer, make_client: Factory) -> None:
    fake.handlers["slow"] = lambda conn, req: HOLD
    client = make_client(fake.url)
    await client.connect()
    with pytest.raises(MeshTimeoutError):
        await client.command("slow", timeout=0.03)
    # the late answer is ignored and the client keeps working
    await fake.connections[0].respond(fake.requests[-1], "late")
    assert await client.command("echo", 1) == 1


async def test_command_timeout_is_seconds(fake: FakeServer, make_client: Factory) -> None:
    """Issue 10: ``timeout=5`` waits five seconds (it once expired after 5 ms)."""
    fake.handlers["slow"] = lambda conn, req: HOLD
    client = make_client(fake.url)
    await client.connect()
    loop = asyncio.get_running_loop()
    issued = loop.time()
    task = asyncio.ensure_future(client.command("slow", timeout=5))
    await fake.wait_request("slow")
    (pending,) = client._session.pending.values()
    # The deadline is on the loop's clock (seconds); the timer is armed for it.
    assert pending.deadline is not None
    assert issued + 5 <= pending.deadline <= loop.time() + 5
    assert client._timer is not None
    assert client._timer.when() == pending.deadline
    assert not task.done()
    task.cancel()
    with pytest.raises(MeshTimeoutError, match=r"after 0\.02 s"):
        await client.command("slow", timeout=0.02)


async def test_negative_durations_rejected(fake: FakeServer, make_client: Factory) -> None:
    for option in ("command_timeout", "reconnect_unavailable_delay"):
        with pytest.raises(ValueError, match=option):
            make_client(fake.url, **{option: -1})
    with pytest.raises(ValueError, match="open_timeout"):
        make_client(fake.url, open_timeout=0)
    with pytest.raises(ValueError, match="non-negative"):
        make_client(fake.url, reconnect_base_delay=-0.5)
    client = make_client(fake.url)
    await client.connect()
    with pytest.raises(ValueError, match="timeout"):
        await client.command("echo", timeout=-1)


async def test_cancelled_command_is_forgotten(fake: FakeServer, make_client: Factory) -> None:
    fake.handlers["slow"] = lambda conn, req: HOLD
    client = make_client(fake.url)
    await client.connect()
    task = asyncio.ensure_future(client.command("slow"))
    request = await fake.wait_request("slow")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client._session.pending == {}
    await request.connection.respond(request, "late")
    assert await client.command("echo", 2) == 2


async def test_on_push_and_push_event(fake: FakeServer, make_client: Factory) -> None:
    client = make_client(fake.url)
    recorder = Recorder(client)
    await client.connect()
    got: list[Any] = []
    done = asyncio.Event()

    async def async_handler(payload: Any) -> None:
        got.append(("async", payload))
        done.set()

    client.on_push("notice", lambda payload: got.append(("sync", payload)))
    remove = client.on_push("notice", async_handler)
    await fake.connections[0].push("notice", {"n": 1})
    await wait_for(done.wait())
    assert got == [("sync", {"n": 1}), ("async", {"n": 1})]
    assert ("push", "notice", {"n": 1}) in recorder.events
    remove()


async def test_unknown_event_name_rejected(make_client: Factory) -> None:
    client = make_client("ws://127.0.0.1:9/")
    with pytest.raises(ValueError, match="unknown event"):
        client.on("connected", print)


# --------------------------------------------------------------------------------------------
# Liveness (§6)


async def test_ping_pong_and_latency(fake: FakeServer, make_client: Factory) -> None:
    client = make_client(fake.url)
    recorder = Recorder(client)
    await client.connect()
    conn = fake.connections[0]
    await conn.push("ping", {})
    await conn.push("latency", 17)
    await conn.push("latency:request", {})
    await fake.wait(lambda: conn.count("pong") == 1 and conn.count("latency:response") == 1)
    pong = next(f for f in conn.frames if f["command"] == "pong")
    assert pong["payload"] == {}
    assert type(pong["id"]) is int
    response = next(f for f in conn.frames if f["command"] == "latency:response")
    assert response["payload"] == {}
    assert client.latency == 0.017
    await recorder.wait("latency")


async def test_watchdog_reconnects_when_pings_stop(fake: FakeServer, make_client: Factory) -> None:
    client = make_client(fake.url, ping_timeout=0.05, max_missed_pings=1)
    recorder = Recorder(client)
    await client.connect()
    await recorder.wait("reconnect")
    assert len(fake.connections) >= 2
    assert recorder.names()[:3] == ["connect", "disconnect", "connect"]


async def test_pings_keep_the_watchdog_quiet(fake: FakeServer, make_client: Factory) -> None:
    # The watchdog period is a slice of the timeout unit and the pings come 20 times per
    # period, so only a stall of most of a period (not a busy box's scheduling delay) looks
    # like a silent server.
    ping_timeout = TIMEOUT / 20
    period = 2 * ping_timeout  # (max_missed_pings + 1) × ping_timeout
    client = make_client(fake.url, ping_timeout=ping_timeout, max_missed_pings=1)
    await client.connect()
    conn = fake.connections[0]

    async def pinger() -> None:
        while True:
            await conn.push("ping", {})
            await asyncio.sleep(ping_timeout / 10)  # the fake server's ping pace

    loop = asyncio.get_running_loop()
    until = loop.time() + 2 * period
    task = asyncio.create_task(pinger())
    try:
        # Each pong wakes the wait: it ends once more than two watchdog periods went by, or
        # early when the watchdog reconnected.
        await fake.wait(
            lambda: loop.time() > until or len(fake.connections) > 1,
            timeout=2 * period + TIMEOUT,
        )
    finally:
        task.cancel()
    assert conn.count("pong") > 0
    assert len(fake.connections) == 1


# --------------------------------------------------------------------------------------------
# Reconnect (§14, §16)


async def test_in_flight_fails_with_econnection_and_is_not_resent(
    fake: FakeServer, make_client: Factory
) -> None:
    fake.handlers["slow"] = lambda conn, req: HOLD
    client = make_client(fake.url)
    recorder = Recorder(client)
    await client.connect()
    task = asyncio.ensure_future(client.command("slow"))
    await fake.wait_request("slow")
    fake.connections[0].abort()
    with pytest.raises(MeshConnectionError):
        await wait_for(task)
    await recorder.wait("reconnect")
    assert await client.command("echo", "after") == "after"
    assert fake.commands(fake.connections[1]) == ["echo"]


async def test_offline_queue_sent_in_order_after_reconnect(
    fake: FakeServer, make_client: Factory
) -> None:
    client = make_client(fake.url)
    recorder = Recorder(client)
    await client.connect()
    fake.reject_status = 503
    fake.connections[0].abort()
    await recorder.wait("disconnect")
    assert client.state is SessionState.DISCONNECTED
    tasks = [asyncio.ensure_future(client.command("echo", i)) for i in range(5)]
    await asyncio.sleep(0)
    fake.reject_status = None
    assert await wait_for(asyncio.gather(*tasks)) == list(range(5))
    conn2 = fake.connections[1]
    assert [r.payload for r in fake.requests if r.connection is conn2] == list(range(5))
    await recorder.wait("resubscribed")
    assert recorder.names() == ["connect", "disconnect", "connect", "reconnect", "resubscribed"]
    assert client.connection_id == conn2.id


async def test_503_caps_the_backoff_so_a_recovered_server_is_asked_again_soon(
    fake: FakeServer, make_client: Factory
) -> None:
    """Issue 8: after a long outage answered 503, the client must not wait a full backoff."""
    draws = iter([0.0] + [1.0] * 1000)  # attempt 0 at once, then always the whole ceiling
    client = make_client(
        fake.url,
        reconnect_base_delay=60.0,
        reconnect_max_delay=60.0,
        reconnect_unavailable_delay=0.01,
        rng=lambda: next(draws),
    )
    recorder = Recorder(client)
    await client.connect()
    fake.reject_status = 503
    fake.connections[0].abort()
    # Without the cap the second attempt would come a minute after the first.
    await eventually(lambda: fake.rejected >= 3)
    fake.reject_status = None
    await recorder.wait("reconnect")


async def test_queued_command_expires(fake: FakeServer, make_client: Factory) -> None:
    client = make_client(fake.url)
    recorder = Recorder(client)
    await client.connect()
    fake.reject_status = 503
    fake.connections[0].abort()
    await recorder.wait("disconnect")
    with pytest.raises(MeshTimeoutError, match="offline"):
        await client.command("echo", 1, timeout=0.03)
    assert isinstance(client.last_error, MeshConnectionError)


@pytest.mark.parametrize("code", [1000, 1001, 1011, 4000, 4001, 4002, 4003, 4100])
async def test_reconnect_after_server_close(
    fake: FakeServer, make_client: Factory, code: int
) -> None:
    client = make_client(fake.url)
    recorder = Recorder(client)
    await client.connect()
    await fake.connections[0].close(code)
    await recorder.wait("reconnect")
    assert ("disconnect", code, "") in recorder.events
    assert await client.command("echo", 1) == 1


@pytest.mark.parametrize("code", [1008, 1002, 1003, 1007, 1010, 4500, 4501, 4999])
async def test_no_reconnect_after_terminal_close(
    fake: FakeServer, make_client: Factory, code: int
) -> None:
    client = make_client(fake.url)
    recorder = Recorder(client)
    await client.connect()
    await fake.connections[0].close(code, "bye")
    await recorder.wait("close")
    assert client.closed
    assert client.close_code == code
    assert recorder.names() == ["connect", "disconnect", "close"]
    assert len(fake.connections) == 1
    with pytest.raises(MeshConnectionError):
        await client.command("echo")


async def test_should_reconnect_false(fake: FakeServer, make_client: Factory) -> None:
    client = make_client(fake.url, should_reconnect=False)
    recorder = Recorder(client)
    await client.connect()
    fake.connections[0].abort()
    await recorder.wait("close")
    assert client.closed


async def test_auth_rejection_at_connect(fake: FakeServer, make_client: Factory) -> None:
    fake.reject_status = 401
    client = make_client(fake.url)
    with pytest.raises(MeshAuthenticationError) as info:
        await client.connect()
    assert info.value.status == 401
    assert info.value.code == "ECONNECTION"


async def test_auth_rejection_stops_reconnect(fake: FakeServer, make_client: Factory) -> None:
    client = make_client(fake.url)
    recorder = Recorder(client)
    await client.connect()
    fake.reject_status = 403
    fake.connections[0].abort()
    _name, error = await recorder.wait("reconnect_failed")
    assert isinstance(error, MeshAuthenticationError)
    assert error.status == 403
    await recorder.wait("close")
    assert client.closed


async def test_max_reconnect_attempts(fake: FakeServer, make_client: Factory) -> None:
    client = make_client(fake.url, max_reconnect_attempts=3)
    recorder = Recorder(client)
    await client.connect()
    fake.reject_status = 503
    fake.connections[0].abort()
    _, error = await recorder.wait("reconnect_failed")
    assert "3 attempts" in str(error)
    await recorder.wait("close")


async def test_connect_failures(fake: FakeServer, make_client: Factory) -> None:
    fake.reject_status = 500
    with pytest.raises(MeshConnectionError, match="HTTP 500"):
        await make_client(fake.url).connect()
    with pytest.raises(MeshConnectionError):
        await make_client("ws://127.0.0.1:1/").connect()
    with pytest.raises(ValueError, match="ws or wss"):
        make_client("http://nope")


async def test_close_before_assign_id() -> None:
    async with FakeServer(assign_id=False) as fake:
        client = MeshClient(fake.url, open_timeout=5.0)
        task = asyncio.ensure_future(client.connect())
        conn = await fake.wait_connections(1)
        await conn.close(1011)
        with pytest.raises(MeshConnectionError, match="before mesh/assign-id"):
            await wait_for(task)
        assert len(fake.connections) == 1
        await client.close()


async def test_connect_timeout_without_assign_id() -> None:
    async with FakeServer(assign_id=False) as fake:
        client = MeshClient(fake.url, open_timeout=0.1)
        with pytest.raises(MeshConnectionError, match="timed out"):
            await client.connect()
        await client.close()


async def test_reconnect_without_assign_id_retries() -> None:
    async with FakeServer() as fake:
        client = MeshClient(fake.url, open_timeout=0.2, reconnect_base_delay=0.005)
        recorder = Recorder(client)
        await client.connect()
        fake.assign_id = False
        fake.connections[0].abort()
        await fake.wait_connections(2)
        fake.assign_id = True
        await recorder.wait("reconnect")
        assert len(fake.connections) == 3
        await client.close()


async def test_application_close_fails_pending_and_stops(
    fake: FakeServer, make_client: Factory
) -> None:
    fake.handlers["slow"] = lambda conn, req: HOLD
    client = make_client(fake.url)
    recorder = Recorder(client)
    await client.connect()
    task = asyncio.ensure_future(client.command("slow"))
    await fake.wait_request("slow")
    await client.close()
    with pytest.raises(MeshConnectionError):
        await task
    assert recorder.names() == ["connect", "disconnect", "close"]
    await client.close()
    assert len(fake.connections) == 1


async def test_close_while_reconnecting(fake: FakeServer, make_client: Factory) -> None:
    client = make_client(fake.url, reconnect_base_delay=10.0, reconnect_max_delay=10.0)
    recorder = Recorder(client)
    await client.connect()
    fake.connections[0].abort()
    await recorder.wait("disconnect")
    queued = asyncio.ensure_future(client.command("echo"))
    await asyncio.sleep(0)
    await wait_for(client.close())
    with pytest.raises(MeshConnectionError):
        await queued
    assert client.closed


async def test_reconnect_after_close_and_connect_again(
    fake: FakeServer, make_client: Factory
) -> None:
    client = make_client(fake.url)
    await client.connect()
    await client.close()
    await client.connect()
    assert client.connection_id == "conn-fake2"
    assert await client.command("echo", 3) == 3

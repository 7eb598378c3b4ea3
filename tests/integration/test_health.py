"""Health endpoints on the WebSocket port: every readiness state, over real sockets."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from mesh_server import MeshServer
from mesh_server.backends.redis import RedisBackend
from tests.support.http import http_get
from tests.support.raw_client import RawClient, running_server
from tests.support.redis import RedisServer
from tests.support.timing import eventually, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("transport")]


async def readiness(port: int) -> tuple[int, dict[str, Any]]:
    status, headers, body = await http_get(port, "/readyz")
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    return status, json.loads(body)


async def test_liveness_and_readiness_while_serving() -> None:
    async with running_server() as server:
        status, _, body = await http_get(server.port, "/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        assert await readiness(server.port) == (200, {"status": "ready"})
        assert server.readiness().ready
        # Probes do not disturb WebSocket traffic on the same port.
        async with RawClient.open(server.url + "/healthz") as client:
            assert client.connection_id is not None


async def test_paths_configurable_and_off_switch(transport: str) -> None:
    # A plain request the hooks do not answer: a listening adapter asks for the upgrade, the
    # ASGI application says 404 (it may be mounted beside other routes).
    unanswered = 404 if transport == "asgi" else 426
    async with running_server(health_path="/live", readiness_path="/ready") as server:
        assert (await http_get(server.port, "/live"))[0] == 200
        assert (await http_get(server.port, "/ready"))[0] == 200
        assert (await http_get(server.port, "/healthz"))[0] == unanswered
    async with running_server(health=False) as server:
        for path in ("/healthz", "/readyz"):
            assert (await http_get(server.port, path))[0] == unanswered
    server = MeshServer(port=0)
    server.configure(health=False)
    server.configure(health=True, readiness_path="/r")
    async with server:
        assert (await http_get(server.port, "/r"))[0] == 200
        assert (await http_get(server.port, "/healthz"))[0] == 200


async def test_not_ready_while_shutting_down() -> None:
    release = asyncio.Event()
    server = MeshServer(port=0, close_timeout=2.0)

    @server.on_disconnection
    async def slow_cleanup(connection: Any) -> None:
        await release.wait()

    await server.start()
    try:
        async with RawClient.open(server.url) as client:
            closing = asyncio.create_task(server.close())
            assert await client.wait_closed() == 1001
            await eventually(lambda: not server.started)
            # Cleanup is still running: the listener answers, but the instance is not ready.
            assert await readiness(server.port) == (
                503,
                {"status": "unavailable", "reasons": ["shutting_down"]},
            )
            assert (await http_get(server.port, "/healthz"))[0] == 200
            with pytest.raises(InvalidStatus) as info:
                async with connect(server.url):
                    pass
            assert info.value.response.status_code == 503
            release.set()
            await wait_for(closing)
    finally:
        release.set()
        await server.close()


@pytest.mark.redis
async def test_not_ready_while_redis_is_down_then_ready_again(own_redis: RedisServer) -> None:
    backend = RedisBackend(
        own_redis.url, operation_timeout=0.3, reconnect_min=0.02, reconnect_max=0.1
    )
    server = MeshServer(
        port=0,
        backend=backend,
        instance_heartbeat_interval=0.1,
        instance_ttl=2.0,
        backend_grace=0.3,
        close_timeout=2.0,
    )
    async with server:
        assert await readiness(server.port) == (200, {"status": "ready"})
        own_redis.kill()

        async def reasons_include(reason: str) -> bool:
            status, body = await readiness(server.port)
            return status == 503 and reason in body["reasons"]

        # The pub/sub reader notices at once; past backend_grace the instance fences itself.
        await eventually(lambda: reasons_include("pubsub_disconnected"))
        await eventually(lambda: reasons_include("fenced"))
        assert "backend_unavailable" in server.readiness().reasons
        own_redis.start()

        async def ready() -> bool:
            return (await readiness(server.port))[0] == 200

        await eventually(ready)
        async with RawClient.open(server.url) as client:
            assert client.connection_id is not None

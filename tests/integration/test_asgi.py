"""MeshServer as an ASGI application: mounted in FastAPI and Starlette, under uvicorn.

The core cases run on both transports through the ``transport`` fixture (test_core and the
feature and SDK suites); this module covers what only the ASGI deployment has: mounting, the
frameworks' lifespan, health below the mount point, and a mixed cluster.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from contextlib import AsyncExitStack
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import Mount
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from mesh_sdk.client import MeshClient
from mesh_server import MeshAuthError, MeshServer, UpgradeRequest
from tests.support.hosting import bind, hosted, uvicorn_serving
from tests.support.http import http_get
from tests.support.raw_client import RawClient
from tests.support.timing import eventually, wait_for

pytestmark = pytest.mark.integration


def authenticating(seen: list[UpgradeRequest]) -> Any:
    def authenticate(request: UpgradeRequest) -> Any:
        seen.append(request)
        if request.query.get("token") != "good":
            raise MeshAuthError(401, "bad token")
        return {"user": request.cookies.get("user"), "path": request.path}

    return authenticate


async def test_fastapi_mount_with_the_server_lifespan() -> None:
    seen: list[UpgradeRequest] = []
    mesh = MeshServer(authenticate=authenticating(seen), close_timeout=2.0)
    mesh.expose_command("echo", lambda ctx: ctx.payload)
    app = FastAPI(lifespan=mesh.lifespan)

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    app.mount("/ws", mesh.asgi_app())
    sock = bind()
    port = sock.getsockname()[1]
    async with uvicorn_serving(app, sock):
        assert mesh.started
        url = f"ws://127.0.0.1:{port}/ws/"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url + "?token=bad"):
                pass
        assert refused.value.response.status_code == 401
        assert refused.value.response.body == b"bad token"
        headers = {"Cookie": "user=ada", "X-Trace": "t1"}
        async with RawClient.open(url + "?token=good", additional_headers=headers) as client:
            assert (await client.request(1, "echo", "hi"))["payload"] == "hi"
            metadata = await client.call("mesh/get-my-connection-metadata", {})
            assert metadata == {"metadata": {"user": "ada", "path": "/ws/"}}
        request = seen[-1]
        assert request.headers["x-trace"] == "t1"
        assert request.peer is not None
        assert request.peer[0] == "127.0.0.1"
        # Health below the mount point; the app's own routes and other paths are untouched.
        status, _, body = await http_get(port, "/ws/healthz")
        assert (status, body) == (200, b'{"status":"ok"}')
        status, _, body = await http_get(port, "/ws/readyz")
        assert (status, body) == (200, b'{"status":"ready"}')
        status, _, body = await http_get(port, "/ws/metrics")
        assert status == 200
        assert b"mesh_connections 0.0" in body
        assert (await http_get(port, "/ws/nope"))[0] == 404
        assert (await http_get(port, "/hello"))[2] == b'{"hello":"world"}'
        assert (await http_get(port, "/healthz"))[0] == 404
    assert not mesh.started


async def test_starlette_mount_and_sdk_client() -> None:
    mesh = MeshServer(close_timeout=2.0)
    mesh.expose_channel("news")
    app = Starlette(routes=[Mount("/mesh", app=mesh.asgi_app())], lifespan=mesh.lifespan)
    sock = bind()
    port = sock.getsockname()[1]
    async with uvicorn_serving(app, sock), MeshClient(f"ws://127.0.0.1:{port}/mesh/") as client:
        received: list[Any] = []
        await client.subscribe_channel("news", received.append)
        await mesh.publish_to_channel("news", "extra")
        await eventually(lambda: received == ["extra"])


async def test_mounted_without_lifespan_refuses_with_503(caplog: pytest.LogCaptureFixture) -> None:
    mesh = MeshServer()
    app = FastAPI()
    app.mount("/ws", mesh.asgi_app())
    sock = bind()
    port = sock.getsockname()[1]
    async with uvicorn_serving(app, sock):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"ws://127.0.0.1:{port}/ws/"):
                pass
        assert refused.value.response.status_code == 503
        assert (await http_get(port, "/ws/healthz"))[0] == 503
    assert not mesh.started
    assert any("server.lifespan" in record.message for record in caplog.records)


async def test_uvicorn_shutdown_cleans_up_every_connection() -> None:
    # uvicorn closes open WebSockets (1012) before the lifespan shutdown: each still gets the
    # full cleanup, so another instance sees the presence leave.
    async with hosted("asgi") as mesh:
        left: list[str] = []
        mesh.on_disconnection(lambda connection: left.append(connection.id))
        async with RawClient.open(mesh.url) as client:
            pass
        await eventually(lambda: left == [client.connection_id])


@pytest.mark.redis
async def test_uvicorn_fastapi_and_native_instances_share_room_channel_and_record(
    redis_url: str,
) -> None:
    options = {"redis_url": redis_url, "close_timeout": 2.0, "latency_interval": 60.0}
    native = MeshServer(port=0, **options)
    mounted = MeshServer(**options)
    for server in (native, mounted):
        server.expose_channel("chat")
        server.track_presence(re.compile(r"room:.+"))
        server.expose_writable_record(re.compile(r"doc:.+"))
    app = FastAPI(lifespan=mounted.lifespan)
    app.mount("/ws", mounted.asgi_app())
    sock = bind()
    port = sock.getsockname()[1]
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(uvicorn_serving(app, sock))
        await stack.enter_async_context(native)
        assert native.instance_id != mounted.instance_id
        on_asgi = await stack.enter_async_context(MeshClient(f"ws://127.0.0.1:{port}/ws/"))
        on_native = await stack.enter_async_context(MeshClient(native.url))
        # Room and presence across the two instances.
        await on_asgi.join_room("room:lobby")
        presence = await on_asgi.subscribe_presence("room:lobby")
        await on_native.join_room("room:lobby")
        await eventually(lambda: on_native.connection_id in presence.present)
        members = await mounted.get_room_members("room:lobby")
        assert sorted(members) == sorted([on_asgi.connection_id, on_native.connection_id])
        # Channel: published by a client of each instance, heard by the other.
        heard_native: list[Any] = []
        heard_asgi: list[Any] = []
        await on_native.subscribe_channel("chat", heard_native.append)
        await on_asgi.subscribe_channel("chat", heard_asgi.append)
        await mounted.publish_to_channel("chat", "from asgi")
        await native.publish_to_channel("chat", "from native")
        await eventually(lambda: len(heard_native) == len(heard_asgi) == 2)
        assert heard_native == heard_asgi == ["from asgi", "from native"]
        # Record: written through each instance, seen by the client of the other.
        record = await on_asgi.subscribe_record("doc:1")
        assert await on_native.publish_record_update("doc:1", {"title": "t"})
        await eventually(lambda: record.value == {"title": "t"})
        watched = await on_native.subscribe_record("doc:1")
        assert await on_asgi.publish_record_update("doc:1", {"n": 2}, "merge")
        await eventually(lambda: watched.value == record.value == {"title": "t", "n": 2})
        # The ASGI client leaving is seen by the native one's presence at once.
        left: list[Any] = []
        native_presence = await on_native.subscribe_presence("room:lobby", left.append)
        await on_asgi.close()
        await eventually(lambda: on_asgi.connection_id not in native_presence.present)


@pytest.mark.parametrize("target", ["examples.asgi_app:app", "examples.asgi_app:asgi"])
async def test_uvicorn_runs_the_example_and_stops_on_sigterm(target: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--port",
        "0",
        "--ws-per-message-deflate",
        "false",
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        port = 0
        while not port:
            line = (await wait_for(process.stderr.readline())).decode()
            assert line, "uvicorn exited before listening"
            found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
            port = int(found.group(1)) if found else 0
        prefix = "/ws/" if target.endswith(":app") else "/"
        url = f"ws://127.0.0.1:{port}{prefix}"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url):
                pass
        assert refused.value.response.status_code == 401
        async with RawClient.open(url + "?user=ada") as client:
            assert await client.call("whoami", {}) == {"user": "ada"}
            process.send_signal(signal.SIGTERM)
            # uvicorn closes WebSockets itself (1012, service restart) before the lifespan ends.
            assert await client.wait_closed() == 1012
        rest = (await wait_for(process.stderr.read())).decode()
        # The lifespan shutdown closed the Mesh server; uvicorn then re-raises the signal it
        # caught, so the exit status is SIGTERM's.
        assert "Application shutdown complete." in rest
        assert await wait_for(process.wait()) == -signal.SIGTERM
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

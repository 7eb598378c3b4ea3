"""A restartable MeshServer on a fixed port (memory backend, shared hub) for SDK tests.

The ``mesh`` fixture requests ``transport``: SDK tests run on every transport (websockets,
picows and ASGI under uvicorn).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from mesh_sdk.client import MeshClient
from mesh_server import ForbiddenError, MeshError, MeshServer
from mesh_server.backends.memory import MemoryBackend, MemoryHub
from tests.support.hosting import hosted
from tests.support.timing import TIMEOUT


class App:
    """Application state the test server's handlers share across restarts."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.gate = asyncio.Event()
        self.started = asyncio.Event()


def setup(server: MeshServer, app: App) -> None:
    """Commands, exposure and presence tracking used by the SDK integration tests."""

    async def echo(ctx: Any) -> Any:
        app.calls.append(("echo", ctx.payload))
        return ctx.payload

    async def slow(ctx: Any) -> Any:
        app.calls.append(("slow", ctx.payload))
        app.started.set()
        await app.gate.wait()
        return "done"

    def forbidden(ctx: Any) -> Any:
        raise ForbiddenError("not for you")

    def demo(ctx: Any) -> Any:
        raise MeshError("demo failure", code="EDEMO", name="DemoError")

    server.expose_command("echo", echo)
    server.expose_command("slow", slow)
    server.expose_command("forbidden", forbidden)
    server.expose_command("demo", demo)
    server.expose_channel(re.compile(r"chat:.+"))
    server.track_presence(re.compile(r"room:.+"))
    server.expose_record(re.compile(r"doc:.+"))
    server.expose_writable_record(re.compile(r"wdoc:.+"))


class Restartable:
    """Starts, stops and restarts a MeshServer on the same port, keeping backend state."""

    def __init__(self, **options: Any) -> None:
        self.app = App()
        self.hub = MemoryHub()
        self.options = options
        self.port = 0
        self.server: MeshServer | None = None
        self._hosting: AbstractAsyncContextManager[MeshServer] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def current(self) -> MeshServer:
        if self.server is None:
            raise RuntimeError("server not running")
        return self.server

    async def start(self) -> MeshServer:
        options = {"close_timeout": 2.0, "latency_interval": 60.0, **self.options}
        self._hosting = hosted(
            port=self.port,
            backend=MemoryBackend(hub=self.hub),
            setup=lambda server: setup(server, self.app),
            **options,
        )
        server = await self._hosting.__aenter__()
        self.port = server.port
        self.server = server
        return server

    async def stop(self) -> None:
        if self._hosting is not None:
            hosting, self._hosting, self.server = self._hosting, None, None
            await hosting.__aexit__(None, None, None)

    async def restart(self) -> MeshServer:
        await self.stop()
        return await self.start()


@pytest.fixture
async def mesh(transport: str) -> AsyncIterator[Restartable]:
    server = Restartable()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def clients() -> AsyncIterator[Callable[..., MeshClient]]:
    made: list[MeshClient] = []

    def factory(url: str, **options: Any) -> MeshClient:
        options.setdefault("reconnect_base_delay", 0.005)
        options.setdefault("reconnect_max_delay", 0.02)
        options.setdefault("command_timeout", TIMEOUT)
        client = MeshClient(url, **options)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.close()

"""Several MeshServer instances in one process sharing one store, for the feature tests.

``memory``: every server gets a :class:`MemoryBackend` on one shared :class:`MemoryHub`;
``redis``: every server gets its own Redis backend on the same private Redis URL. The feature
tests are written once and run on both (the ``cluster`` fixture is parametrized), and on every
transport (websockets, picows and ASGI under uvicorn: it requests the ``transport`` fixture).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest

from mesh_server import MeshServer
from mesh_server.backends.memory import MemoryBackend, MemoryHub
from tests.support.hosting import hosted
from tests.support.raw_client import RawClient

FAST = {
    "ping_interval": 60.0,
    "latency_interval": 60.0,
    "presence_sweep_interval": 0.05,
    "close_timeout": 2.0,
}


@dataclass
class ServerCluster:
    """Starts servers on one shared store; closes them at teardown."""

    kind: str
    redis_url: str | None
    hub: MemoryHub = field(default_factory=MemoryHub)
    servers: list[MeshServer] = field(default_factory=list)
    stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    async def start(self, n: int = 1, **options: Any) -> list[MeshServer]:
        """Start ``n`` more servers on free loopback ports."""
        started = []
        for _ in range(n):
            opts = {**FAST, "port": 0, **options}
            if self.kind == "memory":
                opts["backend"] = MemoryBackend("mesh:", hub=self.hub)
            else:
                opts["redis_url"] = self.redis_url
            server = await self.stack.enter_async_context(hosted(**opts))
            self.servers.append(server)
            started.append(server)
        return started

    async def close(self) -> None:
        await self.stack.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def cluster(request: pytest.FixtureRequest, transport: str) -> AsyncIterator[ServerCluster]:
    """A :class:`ServerCluster` on the memory backend and on Redis (on the test's transport)."""
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    cluster = ServerCluster(request.param, redis_url)
    try:
        yield cluster
    finally:
        await cluster.close()


def pushes(client: RawClient, command: str) -> list[Any]:
    """Payloads of the pushes named ``command`` kept in the client's inbox (arrival order)."""
    return [f["payload"] for f in client.inbox if "id" not in f and f.get("command") == command]


async def collect(client: RawClient, command: str, count: int) -> list[Any]:
    """Read until the inbox holds ``count`` pushes named ``command``; return them in order."""
    while len(pushes(client, command)) < count:
        client.inbox.append(await client.next_frame())
    return pushes(client, command)

"""Fixtures for Redis-backend unit tests: started backends on the private session Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from mesh_server.backends.redis import RedisBackend
from tests.support.timing import wait_for

NS = "mesh:"


class Inbox:
    """A recording message handler with per-channel queues."""

    def __init__(self) -> None:
        self.log: list[tuple[str, bytes]] = []
        self.queues: dict[str, asyncio.Queue[bytes]] = defaultdict(asyncio.Queue)

    def __call__(self, channel: str, data: bytes) -> None:
        self.log.append((channel, data))
        self.queues[channel].put_nowait(data)

    async def next(self, channel: str) -> bytes:
        return await wait_for(self.queues[channel].get())


StartBackend = Callable[..., Awaitable[tuple[RedisBackend, Inbox]]]


@pytest.fixture
async def start_backend(redis_url: str) -> AsyncIterator[StartBackend]:
    """Start RedisBackends on the session Redis; all are closed at teardown."""
    started: list[RedisBackend] = []

    async def start(**options: object) -> tuple[RedisBackend, Inbox]:
        backend = RedisBackend(redis_url, namespace=NS, **options)  # type: ignore[arg-type]
        inbox = Inbox()
        await backend.start(f"inst-{uuid.uuid4().hex[:8]}", inbox)
        started.append(backend)
        return backend, inbox

    yield start
    for backend in reversed(started):
        await backend.close()


@pytest.fixture
async def plain_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain redis-py client on the same server (an 'external' publisher or inspector)."""
    client = aioredis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()

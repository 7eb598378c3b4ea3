"""Redis backend under faults: Redis killed and restarted while a backend runs."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import pytest
import redis.asyncio as aioredis

from mesh_sdk.protocol.errors import UnavailableError
from mesh_server.backends.messages import inbox_channel
from mesh_server.backends.redis import RedisBackend
from tests.support.redis import RedisServer
from tests.support.timing import TIMEOUT, eventually, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.integration]

OPERATION_TIMEOUT_MS = 500


class Inbox:
    def __init__(self) -> None:
        self.queues: dict[str, asyncio.Queue[bytes]] = defaultdict(asyncio.Queue)

    def __call__(self, channel: str, data: bytes) -> None:
        self.queues[channel].put_nowait(data)

    async def next(self, channel: str) -> bytes:
        return await wait_for(self.queues[channel].get())


async def test_kill_and_restart(own_redis: RedisServer) -> None:
    recovered = asyncio.Event()

    async def on_recovered() -> None:
        recovered.set()

    backend = RedisBackend(
        own_redis.url,
        operation_timeout_ms=OPERATION_TIMEOUT_MS,
        reconnect_min_ms=20,
        reconnect_max_ms=200,
        on_recovered=on_recovered,
    )
    inbox = Inbox()
    await backend.start("inst-faults", inbox)
    try:
        await backend.subscribe("app:chan")
        await backend.register_connection("c1")
        await backend.write_record("rec", {"v": 1})
        assert await backend.heartbeat(10_000)

        own_redis.kill()
        operations = [
            backend.ping(),
            backend.write_record("rec", {"v": 2}),
            backend.send_to_connection("c1", b"x"),
            backend.join_room("room", "c1", 60_000),
            backend.publish_channel("app:chan", "m", history=3),
            backend.subscribe("app:other"),
            backend.heartbeat(10_000),
        ]
        for operation in operations:
            started = time.monotonic()
            with pytest.raises(UnavailableError):
                await wait_for(operation)
            assert time.monotonic() - started < OPERATION_TIMEOUT_MS / 1000 + 0.5 * TIMEOUT
        subscriber = backend._require_subscriber()
        assert subscriber._task is not None
        assert not subscriber._task.done(), "the pub/sub reader must survive"

        own_redis.start()
        await wait_for(recovered.wait())
        assert backend.pubsub_reconnects == 1

        # Commands work again (the pool reconnects on its own).
        await backend.ping()
        write = await backend.write_record("rec", {"v": 3})
        assert write.version == 1  # Redis came back empty

        # The pub/sub channels were re-subscribed: the inbox and the application channel.
        client = aioredis.from_url(own_redis.url)
        try:
            channels = await client.pubsub_channels()
            assert b"app:chan" in channels
            assert inbox_channel("mesh:", "inst-faults").encode() in channels
            await client.publish("app:chan", "after recovery")
            assert await inbox.next("app:chan") == b"after recovery"

            # The instance registration was re-created; the lost state is reported once.
            assert await client.exists("mesh:instance:inst-faults:hb")
            assert await client.sismember("mesh:instances", "inst-faults")
            assert not await backend.heartbeat(10_000)
            assert await backend.heartbeat(10_000)
        finally:
            await client.aclose()

        await backend.reregister_connections({"c1": {"user": 1}})
        assert await backend.send_to_connection("c1", b"hello")
        await backend.subscribe("app:other")
    finally:
        await backend.close()


async def test_restart_while_idle_recovers_repeatedly(own_redis: RedisServer) -> None:
    backend = RedisBackend(
        own_redis.url, operation_timeout_ms=OPERATION_TIMEOUT_MS, reconnect_min_ms=10
    )
    inbox = Inbox()
    await backend.start("inst-idle", inbox)
    try:
        await backend.subscribe("chan")
        for round_ in range(1, 3):
            own_redis.restart()
            await eventually(lambda r=round_: backend.pubsub_reconnects == r)  # type: ignore[misc]
            await backend.publish_channel("chan", f"m{round_}")
            assert await inbox.next("chan") == f"m{round_}".encode()
    finally:
        await backend.close()


async def test_start_fails_fast_when_redis_is_down(own_redis: RedisServer) -> None:
    own_redis.kill()
    backend = RedisBackend(own_redis.url, operation_timeout_ms=OPERATION_TIMEOUT_MS)
    with pytest.raises(UnavailableError):
        await wait_for(backend.start("inst-down", Inbox()))
    await backend.close()

"""Several MeshServer instances on one private Redis (protocol.md §13)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mesh_server import MeshServer
from tests.support.raw_client import RawClient, running_server
from tests.support.redis import RedisServer
from tests.support.timing import TIMEOUT, eventually

pytestmark = [pytest.mark.redis, pytest.mark.integration, pytest.mark.usefixtures("transport")]

ROOT = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def two_servers(
    redis_url: str, **options: Any
) -> AsyncIterator[tuple[MeshServer, MeshServer]]:
    async with (
        running_server(redis_url=redis_url, **options) as one,
        running_server(redis_url=redis_url, **options) as two,
    ):
        yield one, two


async def test_send_and_broadcast_across_instances(redis_url: str) -> None:
    async with (
        two_servers(redis_url) as (one, two),
        RawClient.open(one.url) as a,
        RawClient.open(two.url) as b,
        RawClient.open(two.url) as c,
    ):
        assert a.connection_id
        assert b.connection_id
        assert c.connection_id
        assert one.instance_id != two.instance_id
        # A push to a connection on the other instance goes through its inbox.
        assert await one.send(b.connection_id, "direct", {"to": "b"})
        assert await b.wait_push("direct") == {"to": "b"}
        await one.broadcast("everyone", 1)
        for client in (a, b, c):
            assert await client.wait_push("everyone") == 1
        await two.connections.broadcast("not-b", 2, exclude=b.connection_id)
        assert await a.wait_push("not-b") == 2
        assert await c.wait_push("not-b") == 2
        # Membership is added through instance one, for connections of both instances.
        await one.add_to_room("room:x", a.connection_id)
        await one.add_to_room("room:x", b.connection_id)
        await one.broadcast_room("room:x", "in-room", 3)
        assert await a.wait_push("in-room") == 3
        assert await b.wait_push("in-room") == 3
        await two.connections.broadcast(
            "in-room-not-a", 4, room="room:x", exclude=[a.connection_id]
        )
        assert await b.wait_push("in-room-not-a") == 4
        await one.broadcast("marker", 0)
        for client in (a, b, c):
            await client.wait_push("marker")
        assert [f["command"] for f in a.inbox] == []
        assert [f["command"] for f in c.inbox] == []
        assert sorted(await two.get_room_members("room:x")) == sorted(
            [a.connection_id, b.connection_id]
        )


async def test_broadcast_costs_one_publish_whatever_the_connections(own_redis: RedisServer) -> None:
    async with two_servers(own_redis.url, instance_heartbeat_interval=60.0, instance_ttl=120.0) as (
        one,
        two,
    ):
        clients = [RawClient.open(server.url) for server in (one, two) for _ in range(5)]
        async with contextlib.AsyncExitStack() as stack:
            opened = [await stack.enter_async_context(c) for c in clients]
            for client in opened[:3] + opened[5:8]:
                assert client.connection_id is not None
                await one.add_to_room("room:big", client.connection_id)
            before = own_redis.info_commandstats().get("publish", 0)
            await one.broadcast("hello", 1)
            await one.broadcast_room("room:big", "room-hello", 2)
            await one.connections.broadcast("most", 3, exclude=[opened[0].connection_id or ""])
            after = own_redis.info_commandstats().get("publish", 0)
            for client in opened:
                assert await client.wait_push("hello") == 1
            # §13.2: O(instances) messages — here one PUBLISH per call, for 10 connections.
            assert after - before == 3


async def test_sigkilled_instance_cleaned_up_within_bound(redis_url: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.server_proc",
        "--redis-url",
        redis_url,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT * 2)
        _, port, dead_instance = line.decode().split()
        async with (
            running_server(
                redis_url=redis_url,
                instance_heartbeat_interval=0.2,
                instance_ttl=0.6,
                instance_sweep_interval=0.2,
            ) as survivor,
            RawClient.open(f"ws://127.0.0.1:{port}") as victim,
            RawClient.open(survivor.url) as watcher,
        ):
            survivor.track_presence("room:tracked")
            victim_id = victim.connection_id
            assert victim_id is not None
            assert await victim.call("set-meta", {"user": "v"}) is True
            joined = await victim.call("mesh/join-room", {"roomName": "room:tracked"})
            assert joined["success"] is True
            watch = await watcher.call("mesh/subscribe-presence", {"roomName": "room:tracked"})
            assert victim_id in watch["present"]
            assert await survivor.connections.get_metadata(victim_id) == {"user": "v"}
            loop = asyncio.get_running_loop()
            proc.kill()
            killed_at = loop.time()
            # §13.4: presence ends with one leave, then metadata and routing entries go.
            update = await watcher.wait_push("mesh/presence-update", timeout=TIMEOUT * 2)
            assert update["type"] == "leave"
            assert update["connectionId"] == victim_id

            async def gone() -> bool:
                ids = list(await survivor.backend.get_all_connection_metadata())
                meta = await survivor.connections.get_metadata(victim_id)
                return victim_id not in ids and meta is None

            await eventually(gone, timeout=TIMEOUT * 2)
            # Bound with these intervals: ttl 0.6 s + sweep 0.2 s + work; generous for slow CI.
            assert loop.time() - killed_at < 5.0
            assert await survivor.get_room_members("room:tracked") == []
            assert survivor._core.instance is not None
            await eventually(lambda: dead_instance in survivor._core.instance.swept)  # type: ignore[union-attr]
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_redis_restart_under_load(own_redis: RedisServer) -> None:
    async with running_server(
        redis_url=own_redis.url,
        instance_heartbeat_interval=0.1,
        instance_ttl=0.4,
        instance_sweep_interval=0.1,
        backend_grace=0.5,
    ) as server:
        async with RawClient.open(server.url) as client:
            assert await client.call("mesh/get-my-connection-metadata", {}) == {"metadata": None}
            own_redis.kill()
            # While Redis is down, backend commands answer EUNAVAILABLE and nothing crashes.
            codes = set()
            for _ in range(5):
                frame = await client.request("x", "mesh/get-my-connection-metadata", {})
                codes.add(frame.get("error", {}).get("code"))
            assert codes == {"EUNAVAILABLE"}
            own_redis.start()
            # Redis came back empty: the instance fences itself (§13.5) → 4002.
            assert await client.wait_closed(timeout=TIMEOUT * 2) == 4002

        async def serving() -> bool:
            try:
                async with RawClient.open(server.url) as again:
                    result = await again.call("mesh/get-my-connection-metadata", {})
                    return bool(result == {"metadata": None})
            except Exception:
                return False

        await eventually(serving, timeout=TIMEOUT * 2, step=0.1)
        assert server.started

"""Channels over real sockets, on the memory backend and on Redis (protocol.md §7, §9)."""

from __future__ import annotations

import asyncio
import re

import pytest
import redis.asyncio as aioredis

from mesh_server import MeshServer
from tests.integration.features_cluster import ServerCluster, cluster, collect, pushes
from tests.support.raw_client import RawClient
from tests.support.timing import eventually

__all__ = ["cluster"]

pytestmark = pytest.mark.integration

SUB = "mesh/subscribe-channel"
UNSUB = "mesh/unsubscribe-channel"
MSG = "mesh/subscription-message"


def expose(*servers: MeshServer) -> None:
    for server in servers:
        server.expose_channel(re.compile(r"chat:.+"))
        server.expose_channel(
            re.compile(r"vip:.+"), lambda connection, channel: channel.endswith(":open")
        )


async def backend_subscribed(cluster: ServerCluster, channel: str) -> int:
    """How many instances hold a backend subscription to ``channel``."""
    if cluster.kind == "memory":
        return cluster.hub.publish(channel, b"__probe__")
    client = aioredis.from_url(cluster.redis_url)
    try:
        counts = await client.pubsub_numsub(channel)
        return int(counts[0][1])
    finally:
        await client.aclose()


async def test_guard_internal_names_and_unsubscribe_answers(cluster: ServerCluster) -> None:
    (server,) = await cluster.start(1)
    expose(server)
    async with RawClient.open(server.url) as client:
        assert await client.call(SUB, {"channel": "vip:open"}) == {"success": True, "history": []}
        denied = {"success": False, "history": []}
        assert await client.call(SUB, {"channel": "vip:closed"}) == denied
        assert await client.call(SUB, {"channel": "other"}) == denied
        server.expose_channel(re.compile(r".*"))
        for name in ("mesh:presence:updates:room:lobby", "__keyspace@0__:k", "__keyevent@0__:del"):
            assert await client.call(SUB, {"channel": name}) == denied
        assert await client.call(UNSUB, {"channel": "vip:open"}) is True
        assert await client.call(UNSUB, {"channel": "vip:open"}) is False
        assert await client.call(UNSUB, {"channel": "vip:closed"}) is False
        error = await client.call(SUB, {})
        assert error["code"] == "EVALIDATION"


async def test_history_exactly_n_newest_first(cluster: ServerCluster) -> None:
    (server,) = await cluster.start(1, max_history=3)
    expose(server)
    for index in range(1, 6):
        await server.publish_to_channel("chat:h", f"m{index}", history=4)
    async with RawClient.open(server.url) as client:
        assert await client.call(SUB, {"channel": "chat:h", "historyLimit": 2}) == {
            "success": True,
            "history": ["m5", "m4"],
        }
        assert (await client.call(SUB, {"channel": "chat:h", "historyLimit": 100}))["history"] == [
            "m5",
            "m4",
            "m3",
        ]  # clamped to max_history
        result = await client.call("mesh/get-channel-history", {"channel": "chat:h", "limit": 9})
        assert result == {"success": True, "history": ["m5", "m4", "m3"]}
    (other,) = await cluster.start(1)
    expose(other)
    async with RawClient.open(other.url) as client:
        # Exactly 4 kept (§9.5).
        assert (await client.call("mesh/get-channel-history", {"channel": "chat:h"}))[
            "history"
        ] == ["m5", "m4", "m3", "m2"]


async def test_messages_reach_subscribers_on_every_instance_in_order(
    cluster: ServerCluster,
) -> None:
    one, two = await cluster.start(2)
    expose(one, two)
    async with (
        RawClient.open(one.url) as a,
        RawClient.open(two.url) as b,
        RawClient.open(two.url) as c,
    ):
        for client in (a, b, c):
            await client.call(SUB, {"channel": "chat:x"})
        await c.call(SUB, {"channel": "chat:x"})  # repeat: no duplicates
        await one.publish_to_channel("chat:x", {"type": "msg", "text": "hi"})
        for index in range(20):
            await (one if index % 2 else two).publish_to_channel("chat:x", f"m{index}")
        expected = ['{"type":"msg","text":"hi"}'] + [f"m{index}" for index in range(20)]
        for client in (a, b, c):
            messages = await collect(client, MSG, 21)
            assert [m["message"] for m in messages] == expected
            assert {m["channel"] for m in messages} == {"chat:x"}


@pytest.mark.redis
async def test_external_redis_publish_reaches_subscribers(redis_url: str) -> None:
    cluster = ServerCluster("redis", redis_url)
    try:
        one, two = await cluster.start(2)
        expose(one, two)
        async with RawClient.open(one.url) as a, RawClient.open(two.url) as b:
            await a.call(SUB, {"channel": "chat:ext"})
            await b.call(SUB, {"channel": "chat:ext"})
            plain = aioredis.from_url(redis_url)
            try:
                await plain.publish("chat:ext", "from redis-cli")
                await plain.publish("chat:ext", b"bad \xff")
            finally:
                await plain.aclose()
            for client in (a, b):
                got = [m["message"] for m in await collect(client, MSG, 2)]
                assert got == ["from redis-cli", "bad \ufffd"]
    finally:
        await cluster.close()


async def test_no_message_lost_between_history_and_live(cluster: ServerCluster) -> None:
    one, two = await cluster.start(2)
    expose(one, two)
    stop = asyncio.Event()
    published: list[str] = []

    async def publisher() -> None:
        index = 0
        while not stop.is_set():
            text = f"n{index:05d}"
            await one.publish_to_channel("chat:flow", text, history=1000)
            published.append(text)
            index += 1
            if index % 5 == 0:
                await asyncio.sleep(0)

    task = asyncio.create_task(publisher())
    try:
        await eventually(lambda: len(published) >= 20)
        async with RawClient.open(two.url) as client:
            result = await client.call(SUB, {"channel": "chat:flow", "historyLimit": 1000})
            await eventually(lambda: len(published) >= len(result["history"]) + 50)
            stop.set()
            await task
            last = published[-1]
            while not pushes(client, MSG) or pushes(client, MSG)[-1]["message"] != last:
                client.inbox.append(await client.next_frame())
    finally:
        stop.set()
        await task
    history = list(reversed(result["history"]))
    live = [m["message"] for m in pushes(client, MSG)]
    assert live == sorted(live)  # publication order
    assert len(live) == len(set(live))
    seen = set(history) | set(live)
    first = published.index(history[0]) if history else published.index(live[0])
    # §9.3: everything from the oldest history entry onwards arrived, in history or live.
    assert [text for text in published[first:] if text not in seen] == []


async def test_unsubscribe_when_last_local_subscriber_leaves(cluster: ServerCluster) -> None:
    one, two = await cluster.start(2)
    expose(one, two)
    async with (
        RawClient.open(one.url) as a,
        RawClient.open(one.url) as b,
        RawClient.open(two.url) as c,
    ):
        for client in (a, b, c):
            await client.call(SUB, {"channel": "chat:rel"})
        assert await backend_subscribed(cluster, "chat:rel") == 2
        await a.call(UNSUB, {"channel": "chat:rel"})
        assert await backend_subscribed(cluster, "chat:rel") == 2
        await b.call(UNSUB, {"channel": "chat:rel"})
        assert await backend_subscribed(cluster, "chat:rel") == 1

    async def released() -> bool:
        return await backend_subscribed(cluster, "chat:rel") == 0

    # c disconnected: its instance releases the channel during cleanup (§9.4).
    await eventually(released)

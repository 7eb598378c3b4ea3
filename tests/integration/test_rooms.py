"""Rooms across instances over real sockets, memory and Redis (protocol.md §10.1, §12.2, §13.2)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from contextlib import AsyncExitStack

import pytest

from tests.integration.features_cluster import ServerCluster, cluster, collect, pushes
from tests.support.raw_client import RawClient
from tests.support.timing import eventually

__all__ = ["cluster"]

pytestmark = pytest.mark.integration

JOIN = "mesh/join-room"
LEAVE = "mesh/leave-room"


async def test_room_broadcast_costs_o_instances(
    cluster: ServerCluster, request: pytest.FixtureRequest
) -> None:
    one, two = await cluster.start(2)
    async with AsyncExitStack() as stack:
        members = [
            await stack.enter_async_context(RawClient.open((one if i % 2 else two).url))
            for i in range(200)
        ]
        for batch in range(0, 200, 50):
            joined = await asyncio.gather(
                *(m.call(JOIN, {"roomName": "big"}) for m in members[batch : batch + 50])
            )
            assert all(result == {"success": True, "present": []} for result in joined)
        async with RawClient.open(one.url) as outsider:
            stats = (
                request.getfixturevalue("redis_server").info_commandstats
                if cluster.kind == "redis"
                else None
            )
            before = stats() if stats else {}
            for index in range(5):
                await one.broadcast_room("big", "hello", {"n": index})
            after = stats() if stats else {}
            for member in members:
                got = await collect(member, "hello", 5)
                assert [p["n"] for p in got] == list(range(5))
            assert pushes(outsider, "hello") == []
        if stats:
            publishes = after.get("publish", 0) - before.get("publish", 0)
            # §13.2: one message per broadcast, resolved by each instance locally.
            assert publishes <= 5 * 2, publishes
            evals = sum(after.get(k, 0) - before.get(k, 0) for k in ("evalsha", "eval"))
            assert evals <= 5 * 2


async def test_join_leave_clear_and_metadata_across_instances(cluster: ServerCluster) -> None:
    one, two = await cluster.start(2)
    for server in (one, two):
        server.track_presence(re.compile(r"room:.+"))
    async with (
        RawClient.open(one.url) as a,
        RawClient.open(two.url) as b,
    ):
        assert await a.call(JOIN, {"roomName": "room:1"}) == {
            "success": True,
            "present": [a.connection_id],
        }
        assert await b.call(JOIN, {"roomName": "plain"}) == {"success": True, "present": []}
        await b.call(JOIN, {"roomName": "room:1"})
        assert sorted(await one.get_room_members("room:1")) == sorted(
            [a.connection_id, b.connection_id]
        )
        assert await two.rooms.is_member("room:1", a.connection_id)
        assert sorted(await one.rooms.all_rooms()) == ["plain", "room:1"]
        assert await b.call(LEAVE, {"roomName": "plain"}) == {"success": True}
        assert await b.call(LEAVE, {"roomName": "plain"}) == {"success": True}
        await one.rooms.set_metadata("room:1", {"topic": "x", "n": 1})
        await two.rooms.update_metadata("room:1", {"n": 2})
        assert await b.call("mesh/get-room-metadata", {"roomName": "room:1"}) == {
            "metadata": {"topic": "x", "n": 2}
        }
        assert await a.call("mesh/get-room-metadata", {"roomName": "nothing"}) == {"metadata": None}
        await one.broadcast_room("room:1", "before-clear", 1)
        assert await collect(b, "before-clear", 1) == [1]
        await two.rooms.clear("room:1")
        assert await one.get_room_members("room:1") == []
        assert await one.rooms.get_metadata("room:1") is None
        # Every instance dropped the room from its local index: no delivery after clearing.
        await one.broadcast_room("room:1", "after-clear", 1)
        await one.broadcast("everyone", 2)
        for client in (a, b):
            await collect(client, "everyone", 1)
            assert pushes(client, "after-clear") == []


async def test_server_side_add_of_a_remote_connection(cluster: ServerCluster) -> None:
    one, two = await cluster.start(2)
    async with RawClient.open(two.url) as b:
        await one.add_to_room("vip", b.connection_id)
        assert await one.rooms.is_member("vip", b.connection_id)

        async def indexed() -> bool:
            # The owner instance indexes b once the inbox control arrives (§13.2).
            await one.broadcast_room("vip", "probe", 1)
            await _read_some(b)
            return bool(pushes(b, "probe"))

        await eventually(indexed)
        await one.remove_from_room("vip", b.connection_id)
        assert not await two.rooms.is_member("vip", b.connection_id)
        await one.add_to_room("a", b.connection_id)
        await one.add_to_room("b", b.connection_id)
        await one.rooms.remove_from_all(b.connection_id)
        assert await one.rooms.all_rooms() == []


async def _read_some(client: RawClient) -> bool:
    try:
        client.inbox.append(await client.next_frame(timeout=0.05))
    except TimeoutError:
        return False
    return True


async def test_remote_add_to_a_tracked_room_is_refreshed_by_the_owners_pongs(
    cluster: ServerCluster,
) -> None:
    # Server code on one instance adds a connection of another instance to a tracked room: the
    # owner must learn of it (inbox control, §13.2) so that its pongs refresh the presence
    # (§10.3); otherwise the presence expires and a false `leave` is published.
    one, two = await cluster.start(2, ping_interval=0.1, presence_sweep_interval=0.02)
    for server in (one, two):
        server.track_presence(re.compile(r"live:.+"), ttl=0.3)
    async with (
        RawClient.open(one.url, auto_pong=True) as watcher,
        RawClient.open(two.url) as member,
    ):
        subscribed = await watcher.call("mesh/subscribe-presence", {"roomName": "live:1"})
        assert subscribed["success"] is True
        assert member.connection_id is not None
        await one.add_to_room("live:1", member.connection_id)
        joined = await watcher.wait_push("mesh/presence-update")
        assert (joined["type"], joined["connectionId"]) == ("join", member.connection_id)
        reader = asyncio.create_task(_read_forever(watcher))  # it answers its own pings
        try:
            for pong_id in range(10):  # ten ping intervals: more than three TTLs
                await member.wait_push("ping")
                await member.send({"id": pong_id, "command": "pong", "payload": {}})
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        assert pushes(watcher, "mesh/presence-update") == []  # no expiry, no false leave
        assert await one.presence.get_present_connections("live:1") == [member.connection_id]
        await one.remove_from_room("live:1", member.connection_id)
        left = await watcher.wait_push("mesh/presence-update")
        assert (left["type"], left["connectionId"]) == ("leave", member.connection_id)
        assert pushes(watcher, "mesh/presence-update") == []


async def _read_forever(client: RawClient) -> None:
    while True:
        client.inbox.append(await client.next_frame())

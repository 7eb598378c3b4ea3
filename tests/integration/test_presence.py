"""Presence across instances over real sockets, on memory and Redis (protocol.md §10)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest

from mesh_server import MeshServer
from tests.integration.features_cluster import ServerCluster, cluster, collect, pushes
from tests.support.raw_client import RawClient

__all__ = ["cluster"]

pytestmark = pytest.mark.integration

JOIN = "mesh/join-room"
LEAVE = "mesh/leave-room"
SUBP = "mesh/subscribe-presence"
UPDATE = "mesh/presence-update"


def track(*servers: MeshServer, ttl: float | None = None) -> None:
    for server in servers:
        server.track_presence(re.compile(r"room:.+"), ttl=ttl)


@asynccontextmanager
async def clients(*urls: str, auto_pong: bool = True) -> AsyncIterator[list[RawClient]]:
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(RawClient.open(url, auto_pong=auto_pong))
            for url in urls
        ]


def summary(events: list[Any], *ignored: str | None) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for event in events:
        if event["connectionId"] in ignored:
            continue
        if event["type"] == "state":
            out.append(("state", event["connectionId"], event["state"]))
        else:
            out.append((event["type"], event["connectionId"]))
    return out


async def until_marker(watchers: list[RawClient], marker_id: str | None) -> None:
    """Read every watcher (concurrently, answering pings) until it saw the marker's join."""

    async def one(watcher: RawClient) -> None:
        while not any(
            e["connectionId"] == marker_id and e["type"] == "join" for e in pushes(watcher, UPDATE)
        ):
            watcher.inbox.append(await watcher.next_frame())

    await asyncio.gather(*(one(watcher) for watcher in watchers))


async def test_every_subscriber_on_every_instance_gets_each_event_once(
    cluster: ServerCluster,
) -> None:
    one, two = await cluster.start(2)
    track(one, two)
    async with clients(one.url, one.url, two.url, two.url) as watchers:
        for watcher in watchers:
            assert await watcher.call(SUBP, {"roomName": "room:lobby"}) == {
                "success": True,
                "present": [],
                "states": {},
            }
        async with clients(one.url, two.url) as (a, b):
            assert await a.call(JOIN, {"roomName": "room:lobby"}) == {
                "success": True,
                "present": [a.connection_id],
            }
            joined = await b.call(JOIN, {"roomName": "room:lobby"})
            assert sorted(joined["present"]) == sorted([a.connection_id, b.connection_id])
            await b.call(JOIN, {"roomName": "room:lobby"})  # no second join event
            assert (
                await b.call(
                    "mesh/publish-presence-state",
                    {
                        "roomName": "room:lobby",
                        "state": {"typing": True},
                    },
                )
                is True
            )
            assert await a.call(LEAVE, {"roomName": "room:lobby"}) == {"success": True}
        # b's socket closed: cleanup publishes its leave (state goes silently).
        async with clients(two.url) as (marker,):
            await marker.call(JOIN, {"roomName": "room:lobby"})
            await until_marker(watchers, marker.connection_id)
        expected = [
            ("join", a.connection_id),
            ("join", b.connection_id),
            ("state", b.connection_id, {"typing": True}),
            ("leave", a.connection_id),
            ("leave", b.connection_id),
        ]
        for watcher in watchers:
            assert summary(pushes(watcher, UPDATE), marker.connection_id) == expected


async def test_silent_client_expires_with_exactly_one_leave(cluster: ServerCluster) -> None:
    servers = await cluster.start(3, ping_interval=0.4, max_missed_pongs=1)
    track(*servers, ttl=0.6)  # below (1 + 2) × 0.4 s: expires before the 4000 close
    async with clients(*(server.url for server in servers)) as watchers:
        for watcher in watchers:
            await watcher.call(SUBP, {"roomName": "room:exp"})
        async with RawClient.open(servers[0].url) as silent:  # never answers pings
            await silent.call(JOIN, {"roomName": "room:exp"})

            async def leave_seen(watcher: RawClient) -> None:
                while ("leave", silent.connection_id) not in summary(pushes(watcher, UPDATE)):
                    watcher.inbox.append(await watcher.next_frame())

            await asyncio.gather(*(leave_seen(watcher) for watcher in watchers))
            members = await servers[1].get_room_members("room:exp")
            assert members == [silent.connection_id]  # expiry keeps membership (§10.1)

            async def closed() -> int | None:
                return await silent.wait_closed()

            closing = asyncio.create_task(closed())
            # Keep the watchers answering pings while the silent client is closed (4000).
            while not closing.done():
                await asyncio.gather(
                    *(asyncio.wait_for(w.next_frame(), 0.2) for w in watchers),
                    return_exceptions=True,
                )
            assert closing.result() == 4000
        async with clients(servers[2].url) as (marker,):
            await marker.call(JOIN, {"roomName": "room:exp"})
            await until_marker(watchers, marker.connection_id)
        for watcher in watchers:
            events = summary(pushes(watcher, UPDATE), marker.connection_id)
            assert events == [("join", silent.connection_id), ("leave", silent.connection_id)]


async def test_state_expiry_gives_exactly_one_null(cluster: ServerCluster) -> None:
    servers = await cluster.start(3)
    track(*servers)
    async with clients(*(server.url for server in servers)) as watchers:
        for watcher in watchers:
            await watcher.call(SUBP, {"roomName": "room:st"})
        async with clients(servers[1].url) as (writer,):
            await writer.call(JOIN, {"roomName": "room:st"})
            assert (
                await writer.call(
                    "mesh/publish-presence-state",
                    {"roomName": "room:st", "state": "typing", "expireAfter": 200},
                )
                is True
            )
            for watcher in watchers:
                await collect(watcher, UPDATE, 3)
            got = await watchers[0].call("mesh/get-presence-state", {"roomName": "room:st"})
            assert got == {"success": True, "present": [writer.connection_id], "states": {}}
            await writer.call(LEAVE, {"roomName": "room:st"})
        async with clients(servers[0].url) as (marker,):
            await marker.call(JOIN, {"roomName": "room:st"})
            await until_marker(watchers, marker.connection_id)
        expected = [
            ("join", writer.connection_id),
            ("state", writer.connection_id, "typing"),
            ("state", writer.connection_id, None),
            ("leave", writer.connection_id),
        ]
        for watcher in watchers:
            assert summary(pushes(watcher, UPDATE), marker.connection_id) == expected


async def test_presence_state_answers(cluster: ServerCluster) -> None:
    (server,) = await cluster.start(1, max_presence_state_size=16)
    track(server)
    async with clients(server.url) as (client,):
        state = {"roomName": "room:s", "state": 1}
        assert await client.call("mesh/publish-presence-state", state) is False  # not present
        assert await client.call("mesh/clear-presence-state", {"roomName": "room:s"}) is False
        await client.call(JOIN, {"roomName": "plain"})
        assert (
            await client.call("mesh/publish-presence-state", {"roomName": "plain", "state": 1})
            is False
        )
        assert await client.call(SUBP, {"roomName": "plain"}) == {"success": False, "present": []}
        await client.call(JOIN, {"roomName": "room:s"})
        assert await client.call("mesh/publish-presence-state", state) is True
        too_big = await client.call(
            "mesh/publish-presence-state", {"roomName": "room:s", "state": "x" * 40}
        )
        assert too_big["code"] == "ETOOLARGE"
        null = await client.call(
            "mesh/publish-presence-state", {"roomName": "room:s", "state": None}
        )
        assert null["code"] == "EVALIDATION"
        assert await client.call("mesh/clear-presence-state", {"roomName": "room:s"}) is True
        assert await client.call("mesh/unsubscribe-presence", {"roomName": "room:s"}) is False

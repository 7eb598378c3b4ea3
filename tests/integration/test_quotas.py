"""Per-connection quotas over real sockets, on memory and Redis (mesh_server.quotas)."""

from __future__ import annotations

import re
from contextlib import AsyncExitStack
from typing import Any

import pytest

from mesh_server import MeshServer
from tests.integration.features_cluster import ServerCluster, cluster
from tests.support.raw_client import RawClient

__all__ = ["cluster"]

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("transport")]

JOIN = "mesh/join-room"
LEAVE = "mesh/leave-room"
STATE = "mesh/publish-presence-state"
CLEAR = "mesh/clear-presence-state"
GET_STATE = "mesh/get-presence-state"
WRITE = "mesh/publish-record-update"
SUB = "mesh/subscribe-record"


def error(frame: dict[str, Any]) -> dict[str, Any]:
    assert "error" in frame, frame
    return frame["error"]  # type: ignore[no-any-return]


async def state_of(client: RawClient, room: str) -> Any:
    answer = await client.call(GET_STATE, {"roomName": room})
    return answer["states"].get(client.connection_id)


async def test_presence_state_bytes_add_up_over_rooms(cluster: ServerCluster) -> None:
    (server,) = await cluster.start(1, max_presence_state_bytes=1000)
    server.track_presence(re.compile(r"game:.+"))
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(RawClient.open(server.url))
        other = await stack.enter_async_context(RawClient.open(server.url))
        for room in ("game:1", "game:2", "game:3"):
            await client.call(JOIN, {"roomName": room})
        await other.call(JOIN, {"roomName": "game:2"})
        big = "x" * 598  # 600 bytes of JSON

        assert await client.call(STATE, {"roomName": "game:1", "state": big}) is True
        refused = await client.request(1, STATE, {"roomName": "game:2", "state": big})

        assert error(refused)["code"] == "ETOOLARGE"
        assert error(refused)["details"] == {
            "limit": 1000,
            "quota": "max_presence_state_bytes",
            "used": 600,
        }
        assert await state_of(client, "game:2") is None, "nothing stored"
        # Quotas are per connection; replacing a room's state reuses its share.
        assert await other.call(STATE, {"roomName": "game:2", "state": big}) is True
        assert await client.call(STATE, {"roomName": "game:1", "state": "y" * 398}) is True
        assert await client.call(STATE, {"roomName": "game:2", "state": big}) is True
        assert (
            error(await client.request(2, STATE, {"roomName": "game:3", "state": 1}))["details"][
                "used"
            ]
            == 1000
        )
        # Clearing a state or leaving its room frees its share.
        assert await client.call(CLEAR, {"roomName": "game:1"}) is True
        assert await client.call(STATE, {"roomName": "game:3", "state": "z" * 398}) is True
        assert await client.call(LEAVE, {"roomName": "game:2"}) == {"success": True}
        assert await client.call(STATE, {"roomName": "game:1", "state": big}) is True
        assert await state_of(client, "game:1") == big


def writable(*servers: MeshServer) -> None:
    for server in servers:
        server.expose_writable_record(re.compile(r"w:.+"))


async def test_record_bytes_cannot_be_bypassed_with_many_small_records(
    cluster: ServerCluster,
) -> None:
    one, two = await cluster.start(2, max_record_bytes_per_connection=1000)
    writable(one, two)
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(RawClient.open(one.url))
        fresh = await stack.enter_async_context(RawClient.open(two.url))
        # Each record costs its value, its id (4 bytes) and 64 bytes: 14 of them fit.
        written = 0
        while True:
            frame = await client.request(
                written, WRITE, {"recordId": f"w:{written:02d}", "newValue": 1}
            )
            if "error" in frame:
                break
            written += 1
        assert written == 1000 // (1 + 4 + 64)
        refusal = error(frame)
        assert refusal["code"] == "ETOOLARGE"
        assert refusal["details"] == {"limit": 1000, "quota": "max_record_bytes_per_connection"}
        assert await fresh.call(SUB, {"recordId": f"w:{written:02d}"}) == {
            "success": True,
            "record": None,
            "version": 0,
        }, "nothing stored"
        # Rewriting a record it already holds needs only that record's share.
        assert await client.call(WRITE, {"recordId": "w:00", "newValue": 2}) == {"success": True}
        big = await client.request("big", WRITE, {"recordId": "w:00", "newValue": "x" * 200})
        assert error(big)["details"]["quota"] == "max_record_bytes_per_connection"
        assert (await fresh.call(SUB, {"recordId": "w:00"}))["record"] == 2
        # The budget is the writing connection's: another one still has all of it.
        assert await fresh.call(WRITE, {"recordId": "w:big", "newValue": "x" * 800}) == {
            "success": True
        }


async def test_record_write_rate(cluster: ServerCluster) -> None:
    (server,) = await cluster.start(1, record_write_rate=0.001, record_write_burst=3)
    writable(server)
    async with RawClient.open(server.url) as client:
        for i in range(3):
            assert await client.call(WRITE, {"recordId": "w:r", "newValue": i}) == {"success": True}
        refused = error(await client.request("x", WRITE, {"recordId": "w:r", "newValue": 9}))
        assert refused["code"] == "ERATELIMIT"
        assert refused["details"]["quota"] == "record_write_rate"
        assert refused["details"]["retryAfterMs"] > 0
        answer = await client.call(SUB, {"recordId": "w:r"})
        assert (answer["record"], answer["version"]) == (2, 3), "nothing stored"

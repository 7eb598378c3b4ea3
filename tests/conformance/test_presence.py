"""Presence: refresh, expiry sweeps, states (protocol.md §10.3–§10.5)."""

from __future__ import annotations

import asyncio

from mesh_server.backends.base import PresenceSnapshot
from tests.conformance.conftest import Cluster, Node
from tests.conformance.events import presence_events, watch_presence


async def sweep_all(nodes: list[Node]) -> int:
    """Run ``sweep_presence`` on every node concurrently; return the total expired."""
    return sum(await asyncio.gather(*(node.backend.sweep_presence() for node in nodes)))


async def sweep_until_expired(cluster: Cluster, nodes: list[Node], expected: int) -> int:
    """Sweep on all nodes concurrently until ``expected`` entries expired; return the total."""
    cluster.lapse(cluster.short_ttl)
    total = 0
    while total < expected:
        total += sum(await cluster.until(lambda: sweep_all(nodes), lambda n: n > 0))
    return total


async def test_sweep_with_nothing_due(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    await a.backend.register_connection("conn-1")
    await a.backend.join_room("game", "conn-1", cluster.long_ttl)
    assert await a.backend.sweep_presence() == 0
    assert "conn-1" in (await a.backend.presence_snapshot("game")).present


async def test_expiry_yields_exactly_one_leave_with_concurrent_sweepers(
    cluster: Cluster,
) -> None:
    nodes = await cluster.start(3)
    a, b, c = nodes
    await watch_presence(c, "game")
    await a.backend.register_connection("conn-1")
    await a.backend.join_room("game", "conn-1", cluster.short_ttl)
    await a.backend.set_presence_state("game", "conn-1", {"s": 1})

    assert await sweep_until_expired(cluster, nodes, 1) == 1

    assert await presence_events(c, "game") == [
        ("join", "conn-1"),
        ("state", "conn-1", {"s": 1}),
        ("leave", "conn-1"),
    ], "the state goes silently with the presence"
    assert await sweep_all(nodes) == 0
    assert await presence_events(c, "game") == []
    assert "conn-1" not in (await b.backend.presence_snapshot("game")).present
    assert await b.backend.presence_snapshot("game") == PresenceSnapshot([], {})
    assert await b.backend.is_in_room("game", "conn-1") is True, "expiry keeps membership"


async def test_many_expiries_each_yield_one_leave(cluster: Cluster) -> None:
    nodes = await cluster.start(3)
    a, b, c = nodes
    await watch_presence(c, "crowd")
    connections = [f"conn-{i:02d}" for i in range(20)]
    for i, conn in enumerate(connections):
        node = nodes[i % 3]
        await node.backend.register_connection(conn)
        await node.backend.join_room("crowd", conn, cluster.short_ttl)
        await node.backend.set_presence_state("crowd", conn, i)

    assert await sweep_until_expired(cluster, nodes, 20) == 20

    events = await presence_events(c, "crowd")
    leaves = sorted(e[1] for e in events if e[0] == "leave")
    assert leaves == connections
    assert [e for e in events if e[0] == "state" and e[2] is None] == []
    assert await b.backend.presence_snapshot("crowd") == PresenceSnapshot([], {})
    assert sorted(await a.backend.room_members("crowd")) == connections


async def test_refresh_rejoins_after_expiry(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await watch_presence(b, "game")
    await a.backend.register_connection("conn-1")
    await a.backend.join_room("game", "conn-1", cluster.short_ttl)
    await sweep_until_expired(cluster, [a, b], 1)

    await a.backend.refresh_presence("conn-1", [("game", cluster.long_ttl)])

    assert await presence_events(b, "game") == [
        ("join", "conn-1"),
        ("leave", "conn-1"),
        ("join", "conn-1"),
    ]
    assert "conn-1" in (await b.backend.presence_snapshot("game")).present
    assert (await b.backend.presence_snapshot("game")).present == ["conn-1"]


async def test_refresh_extends_presence_without_events(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await watch_presence(b, "game")
    for conn in ("conn-1", "conn-witness"):
        await a.backend.register_connection(conn)
    await a.backend.join_room("game", "conn-1", cluster.short_ttl)
    # Joined later with the same TTL: once it expired, conn-1's first deadline has passed too.
    await a.backend.join_room("game", "conn-witness", cluster.short_ttl)
    await a.backend.refresh_presence("conn-1", [("game", cluster.long_ttl)])

    await sweep_until_expired(cluster, [a, b], 1)

    assert await presence_events(b, "game") == [
        ("join", "conn-1"),
        ("join", "conn-witness"),
        ("leave", "conn-witness"),
    ]
    assert "conn-1" in (await a.backend.presence_snapshot("game")).present


async def test_refresh_ignores_rooms_the_connection_is_not_a_member_of(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    await watch_presence(a, "game")
    await a.backend.register_connection("conn-1")
    await a.backend.join_room("plain", "conn-1", None)

    await a.backend.refresh_presence("conn-1", [("game", cluster.long_ttl)])
    await a.backend.refresh_presence("conn-1", [])

    assert "conn-1" not in (await a.backend.presence_snapshot("game")).present
    assert await a.backend.is_in_room("game", "conn-1") is False
    assert await presence_events(a, "game") == []


async def test_refresh_several_rooms_at_once(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    await watch_presence(a, "r1")
    await watch_presence(a, "r2")
    await a.backend.register_connection("conn-1")
    await a.backend.join_room("r1", "conn-1", None)
    await a.backend.join_room("r2", "conn-1", None)

    await a.backend.refresh_presence("conn-1", [("r1", cluster.long_ttl), ("r2", cluster.long_ttl)])

    assert "conn-1" in (await a.backend.presence_snapshot("r1")).present
    assert "conn-1" in (await a.backend.presence_snapshot("r2")).present
    assert await presence_events(a, "r1") == [("join", "conn-1")]
    assert await presence_events(a, "r2") == [("join", "conn-1")]


async def test_state_requires_presence(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    await watch_presence(a, "game")
    await a.backend.register_connection("conn-1")
    await a.backend.join_room("plain", "conn-1", None)

    assert await a.backend.set_presence_state("game", "conn-1", {"x": 1}) is False
    assert await a.backend.set_presence_state("plain", "conn-1", {"x": 1}) is False
    assert await a.backend.clear_presence_state("game", "conn-1") is False
    assert await presence_events(a, "game") == []
    assert await a.backend.presence_snapshot("plain") == PresenceSnapshot([], {})


async def test_state_set_replace_clear(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await watch_presence(b, "game")
    await a.backend.register_connection("conn-1")
    await a.backend.register_connection("conn-2")
    await a.backend.join_room("game", "conn-1", cluster.long_ttl)
    await a.backend.join_room("game", "conn-2", cluster.long_ttl)

    assert await a.backend.set_presence_state("game", "conn-1", {"typing": True}) is True
    assert await a.backend.set_presence_state("game", "conn-1", [1, "two"]) is True
    snapshot = await b.backend.presence_snapshot("game")
    assert sorted(snapshot.present) == ["conn-1", "conn-2"]
    assert snapshot.states == {"conn-1": [1, "two"]}, "only connections with a state"

    assert await a.backend.clear_presence_state("game", "conn-1") is True
    assert await a.backend.clear_presence_state("game", "conn-1") is True
    assert (await b.backend.presence_snapshot("game")).states == {}

    assert await presence_events(b, "game") == [
        ("join", "conn-1"),
        ("join", "conn-2"),
        ("state", "conn-1", {"typing": True}),
        ("state", "conn-1", [1, "two"]),
        ("state", "conn-1", None),
    ], "clearing publishes null only if a state existed"


async def test_falsy_states_are_states(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    await watch_presence(a, "game")
    await a.backend.register_connection("conn-1")
    await a.backend.join_room("game", "conn-1", cluster.long_ttl)
    for state in (False, 0, "", [], {}):
        await a.backend.set_presence_state("game", "conn-1", state)
        assert (await a.backend.presence_snapshot("game")).states == {"conn-1": state}
    events = await presence_events(a, "game")
    assert [e[2] for e in events[1:]] == [False, 0, "", [], {}]
    assert events[1][2] is False


async def test_silent_state(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await watch_presence(b, "game")
    await a.backend.register_connection("conn-1")
    await a.backend.join_room("game", "conn-1", cluster.long_ttl)

    assert await a.backend.set_presence_state("game", "conn-1", {"quiet": 1}, silent=True)

    assert await presence_events(b, "game") == [("join", "conn-1")]
    assert (await b.backend.presence_snapshot("game")).states == {"conn-1": {"quiet": 1}}


async def test_state_expiry_publishes_exactly_one_null(cluster: Cluster) -> None:
    nodes = await cluster.start(3)
    a, _, c = nodes
    await watch_presence(c, "game")
    await a.backend.register_connection("conn-1")
    await a.backend.join_room("game", "conn-1", cluster.long_ttl)
    await a.backend.set_presence_state(
        "game", "conn-1", {"s": 1}, expire_after_ms=cluster.short_ttl
    )

    assert await sweep_until_expired(cluster, nodes, 1) == 1

    assert await presence_events(c, "game") == [
        ("join", "conn-1"),
        ("state", "conn-1", {"s": 1}),
        ("state", "conn-1", None),
    ]
    assert await c.backend.presence_snapshot("game") == PresenceSnapshot(["conn-1"], {})
    assert await sweep_all(nodes) == 0


async def test_replacing_a_state_replaces_its_expiry(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await watch_presence(b, "game")
    for conn in ("conn-1", "conn-witness"):
        await a.backend.register_connection(conn)
        await a.backend.join_room("game", conn, cluster.long_ttl)
    await a.backend.set_presence_state("game", "conn-1", "old", expire_after_ms=cluster.short_ttl)
    await a.backend.set_presence_state(
        "game", "conn-witness", "w", expire_after_ms=cluster.short_ttl
    )
    await a.backend.set_presence_state("game", "conn-1", "new")

    await sweep_until_expired(cluster, [a, b], 1)

    events = await presence_events(b, "game")
    assert events[-1] == ("state", "conn-witness", None)
    assert ("state", "conn-1", None) not in events
    assert (await a.backend.presence_snapshot("game")).states == {"conn-1": "new"}


async def test_expire_after_zero_never_expires(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await watch_presence(b, "game")
    for conn in ("conn-1", "conn-witness"):
        await a.backend.register_connection(conn)
    await a.backend.join_room("game", "conn-1", cluster.long_ttl)
    await a.backend.join_room("game", "conn-witness", cluster.short_ttl)
    await a.backend.set_presence_state("game", "conn-1", "kept", expire_after_ms=0)

    await sweep_until_expired(cluster, [a, b], 1)

    assert (await a.backend.presence_snapshot("game")).states == {"conn-1": "kept"}
    assert (await presence_events(b, "game"))[-1] == ("leave", "conn-witness")

"""Instance registry: routing, heartbeats, dead-instance sweeps, fencing, close (§5, §13)."""

from __future__ import annotations

import asyncio

from mesh_server.backends.base import DeadInstanceReport, PresenceSnapshot
from tests.conformance.conftest import Cluster, Node
from tests.conformance.events import presence_events, watch_presence


async def sweep_instances(nodes: list[Node]) -> list[DeadInstanceReport]:
    """Run ``sweep_dead_instances`` on every node concurrently; return all reports."""
    results = await asyncio.gather(*(node.backend.sweep_dead_instances() for node in nodes))
    return [report for reports in results for report in reports]


async def claim_dead(cluster: Cluster, survivors: list[Node]) -> list[DeadInstanceReport]:
    """Let short heartbeats lapse and sweep concurrently until something is claimed."""
    cluster.lapse(cluster.short_ttl)
    rounds = await cluster.until(lambda: sweep_instances(survivors), bool)
    return [report for reports in rounds for report in reports]


async def test_registered_connection_is_routed_from_every_instance(cluster: Cluster) -> None:
    a, b, c = await cluster.start(3)
    await a.backend.register_connection("conn-a")
    await b.backend.register_connection("conn-b")
    for node in (a, b, c):
        assert await node.backend.connection_instance("conn-a") == a.instance_id
        assert await node.backend.connection_instance("conn-b") == b.instance_id
        assert await node.backend.connection_instance("conn-unknown") is None
        assert sorted(await node.backend.get_all_connection_metadata()) == ["conn-a", "conn-b"]


async def test_unregister_connection_removes_everything(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await watch_presence(b, "t1")
    await watch_presence(b, "t2")
    await a.backend.register_connection("conn-1", {"user": 1})
    await a.backend.register_connection("conn-2")
    await a.backend.join_room("t1", "conn-1", cluster.long_ttl)
    await a.backend.join_room("t2", "conn-1", cluster.long_ttl)
    await a.backend.join_room("plain", "conn-1", None)
    await a.backend.join_room("t1", "conn-2", cluster.long_ttl)
    await a.backend.set_presence_state("t1", "conn-1", "busy")
    await a.backend.set_presence_state("t2", "conn-1", "idle", expire_after_ms=cluster.long_ttl)

    await a.backend.unregister_connection("conn-1", ["t1", "t2"])

    assert await presence_events(b, "t1") == [
        ("join", "conn-1"),
        ("join", "conn-2"),
        ("state", "conn-1", "busy"),
        ("leave", "conn-1"),
    ]
    assert await presence_events(b, "t2") == [
        ("join", "conn-1"),
        ("state", "conn-1", "idle"),
        ("leave", "conn-1"),
    ]
    for node in (a, b):
        assert await node.backend.connection_instance("conn-1") is None
        assert await node.backend.get_connection_metadata("conn-1") is None
        assert await node.backend.get_all_connection_metadata() == {"conn-2": None}
        assert await node.backend.connection_rooms("conn-1") == []
        assert await node.backend.room_members("t1") == ["conn-2"]
        assert await node.backend.room_members("plain") == []
        assert sorted(await node.backend.all_rooms()) == ["t1"]
        assert await node.backend.presence_snapshot("t1") == PresenceSnapshot(["conn-2"], {})
        assert await node.backend.presence_snapshot("t2") == PresenceSnapshot([], {})
    assert await b.backend.send_to_connection("conn-1", b"x") is False


async def test_unregister_unknown_connection_is_harmless(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    await a.backend.unregister_connection("conn-unknown", ["t1"])
    assert await a.backend.get_all_connection_metadata() == {}


async def test_heartbeat_of_a_live_instance(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    assert await a.backend.heartbeat(cluster.long_ttl) is True
    assert await a.backend.heartbeat(cluster.long_ttl) is True
    assert await b.backend.heartbeat(cluster.long_ttl) is True
    assert await sweep_instances([a, b]) == []


async def test_dead_instance_is_claimed_once_and_cleaned(cluster: Cluster) -> None:
    dead, *survivors = await cluster.start(4)
    watcher = survivors[0]
    await watch_presence(watcher, "t1")
    await watch_presence(watcher, "t2")
    for node in survivors:
        assert await node.backend.heartbeat(cluster.long_ttl) is True
    await dead.backend.register_connection("conn-d1", {"user": "d1"})
    await dead.backend.register_connection("conn-d2")
    await survivors[1].backend.register_connection("conn-live", {"user": "live"})
    await dead.backend.join_room("t1", "conn-d1", cluster.long_ttl)
    await dead.backend.join_room("t2", "conn-d1", cluster.long_ttl)
    await dead.backend.join_room("plain", "conn-d2", None)
    await survivors[1].backend.join_room("t1", "conn-live", cluster.long_ttl)
    await dead.backend.set_presence_state("t1", "conn-d1", "busy")
    assert await dead.backend.heartbeat(cluster.short_ttl) is True

    reports = await claim_dead(cluster, survivors)

    assert reports == [DeadInstanceReport(dead.instance_id, ["conn-d1", "conn-d2"])]
    assert await sweep_instances(survivors) == []
    assert await presence_events(watcher, "t1") == [
        ("join", "conn-d1"),
        ("join", "conn-live"),
        ("state", "conn-d1", "busy"),
        ("leave", "conn-d1"),
    ]
    assert await presence_events(watcher, "t2") == [("join", "conn-d1"), ("leave", "conn-d1")]
    for node in survivors:
        assert list(await node.backend.get_all_connection_metadata()) == ["conn-live"]
        assert await node.backend.connection_instance("conn-d1") is None
        assert await node.backend.get_connection_metadata("conn-d1") is None
        assert await node.backend.get_all_connection_metadata() == {"conn-live": {"user": "live"}}
        assert await node.backend.connection_rooms("conn-d1") == []
        assert await node.backend.connection_rooms("conn-d2") == []
        assert await node.backend.all_rooms() == ["t1"]
        assert await node.backend.presence_snapshot("t1") == PresenceSnapshot(["conn-live"], {})
        assert await node.backend.send_to_connection("conn-d2", b"x") is False

    # protocol.md §13.5: the presumed-dead instance learns it from its next heartbeat.
    assert await dead.backend.heartbeat(cluster.long_ttl) is False
    assert await dead.backend.heartbeat(cluster.long_ttl) is True, "re-registered"
    assert await sweep_instances(survivors) == []


async def test_lapsed_heartbeat_fences_before_any_sweep(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await b.backend.heartbeat(cluster.long_ttl)
    await a.backend.register_connection("conn-a")
    await a.backend.register_connection("conn-witness")
    assert await a.backend.heartbeat(cluster.short_ttl) is True
    # The witness's presence deadline is later than the heartbeat's, on the same store clock;
    # the margin absorbs Redis rounding TIME (µs) and PX expiry (ms) differently.
    witness_ttl = cluster.short_ttl + 50
    await a.backend.join_room("clock", "conn-witness", witness_ttl)
    cluster.lapse(witness_ttl)
    await cluster.until(b.backend.sweep_presence, lambda n: n > 0)

    assert await a.backend.heartbeat(cluster.long_ttl) is False
    assert await a.backend.heartbeat(cluster.long_ttl) is True
    assert await b.backend.sweep_dead_instances() == []
    assert await b.backend.connection_instance("conn-a") == a.instance_id


async def test_close_deregisters_and_cleans_leftover_connections(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await watch_presence(b, "game")
    await b.backend.heartbeat(cluster.long_ttl)
    await a.backend.register_connection("conn-left", {"k": 1})
    await a.backend.join_room("game", "conn-left", cluster.long_ttl)
    await b.backend.register_connection("conn-b")

    await a.backend.close()

    assert await presence_events(b, "game") == [("join", "conn-left"), ("leave", "conn-left")]
    assert list(await b.backend.get_all_connection_metadata()) == ["conn-b"]
    assert await b.backend.get_connection_metadata("conn-left") is None
    assert await b.backend.all_rooms() == []
    assert await b.backend.sweep_dead_instances() == []
    assert await b.backend.send_to_connection("conn-left", b"x") is False


async def test_closed_instance_receives_nothing(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await a.backend.subscribe("chan")
    await b.backend.subscribe("chan")
    await a.backend.close()
    await b.backend.publish("chan", b"after-close")
    await b.backend.broadcast(b"frame")
    assert await b.recorder.next("chan") == b"after-close"
    await b.recorder.drain(b.backend, cluster.broadcast_channel)
    assert [ch for ch, _ in a.recorder.log if ch in ("chan", cluster.broadcast_channel)] == []


async def test_concurrent_registrations_each_take_effect_when_they_return(
    cluster: Cluster,
) -> None:
    a, b = await cluster.start(2)

    def metadata(n: int) -> dict[str, int] | None:
        return {"n": n} if n % 2 else None

    async def register(n: int) -> None:
        await a.backend.register_connection(f"conn-{n}", metadata(n))
        # Routed from every instance as soon as this very call returned.
        assert await b.backend.connection_instance(f"conn-{n}") == a.instance_id

    await asyncio.gather(*(register(n) for n in range(40)))
    assert await b.backend.get_all_connection_metadata() == {
        f"conn-{n}": metadata(n) for n in range(40)
    }

"""Rooms: membership, join/leave, presence on join, room clearing (protocol.md §10.1, §10.2)."""

from __future__ import annotations

from mesh_server.backends.base import JoinResult, PresenceSnapshot
from mesh_server.backends.messages import decode_envelope
from tests.conformance.conftest import Cluster
from tests.conformance.events import presence_events, watch_presence


async def test_untracked_join_adds_membership_only(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await watch_presence(b, "lobby")
    await a.backend.register_connection("conn-1")

    result = await a.backend.join_room("lobby", "conn-1", None)

    assert result == JoinResult(joined_presence=False, present=[])
    for node in (a, b):
        assert await node.backend.room_members("lobby") == ["conn-1"]
        assert await node.backend.connection_rooms("conn-1") == ["lobby"]
        assert await node.backend.is_in_room("lobby", "conn-1") is True
        assert "conn-1" not in (await node.backend.presence_snapshot("lobby")).present
        assert await node.backend.all_rooms() == ["lobby"]
    assert await presence_events(b, "lobby") == []


async def test_membership_queries_across_instances(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await a.backend.register_connection("conn-1")
    await b.backend.register_connection("conn-2")
    await a.backend.join_room("r1", "conn-1", None)
    await a.backend.join_room("r2", "conn-1", cluster.long_ttl)
    await b.backend.join_room("r2", "conn-2", None)

    for node in (a, b):
        assert sorted(await node.backend.room_members("r2")) == ["conn-1", "conn-2"]
        assert sorted(await node.backend.connection_rooms("conn-1")) == ["r1", "r2"]
        assert await node.backend.connection_rooms("conn-2") == ["r2"]
        assert await node.backend.connection_rooms("conn-unknown") == []
        assert await node.backend.is_in_room("r1", "conn-2") is False
        assert await node.backend.is_in_room("nowhere", "conn-1") is False
        assert await node.backend.room_members("nowhere") == []
        assert sorted(await node.backend.all_rooms()) == ["r1", "r2"]


async def test_join_is_idempotent(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    await a.backend.register_connection("conn-1")
    await a.backend.join_room("lobby", "conn-1", None)
    await a.backend.join_room("lobby", "conn-1", None)
    assert await a.backend.room_members("lobby") == ["conn-1"]
    assert await a.backend.connection_rooms("conn-1") == ["lobby"]


async def test_tracked_join_publishes_join_once(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await watch_presence(b, "game")
    await a.backend.register_connection("conn-1")
    await b.backend.register_connection("conn-2")

    first = await a.backend.join_room("game", "conn-1", cluster.long_ttl)
    again = await a.backend.join_room("game", "conn-1", cluster.long_ttl)
    other = await b.backend.join_room("game", "conn-2", cluster.long_ttl)

    assert first == JoinResult(joined_presence=True, present=["conn-1"])
    assert again == JoinResult(joined_presence=False, present=["conn-1"])
    assert other.joined_presence is True
    assert sorted(other.present) == ["conn-1", "conn-2"]
    assert await presence_events(b, "game") == [("join", "conn-1"), ("join", "conn-2")]
    assert "conn-1" in (await a.backend.presence_snapshot("game")).present


async def test_leave_room(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await watch_presence(b, "game")
    await a.backend.register_connection("conn-1")
    await a.backend.join_room("game", "conn-1", cluster.long_ttl)
    await a.backend.join_room("plain", "conn-1", None)

    assert await b.backend.leave_room("game", "conn-1") is True
    assert await b.backend.leave_room("game", "conn-1") is False
    assert await a.backend.leave_room("plain", "conn-1") is True
    assert await a.backend.leave_room("never", "conn-1") is False

    assert await presence_events(b, "game") == [("join", "conn-1"), ("leave", "conn-1")]
    assert await a.backend.room_members("game") == []
    assert await a.backend.connection_rooms("conn-1") == []
    assert await a.backend.all_rooms() == []
    assert "conn-1" not in (await a.backend.presence_snapshot("game")).present
    assert (await a.backend.presence_snapshot("game")).present == []


async def test_leave_ends_state_with_leave_only(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    await watch_presence(a, "game")
    await a.backend.register_connection("conn-1")
    await a.backend.join_room("game", "conn-1", cluster.long_ttl)
    await a.backend.set_presence_state("game", "conn-1", {"typing": True})

    await a.backend.leave_room("game", "conn-1")

    assert await presence_events(a, "game") == [
        ("join", "conn-1"),
        ("state", "conn-1", {"typing": True}),
        ("leave", "conn-1"),
    ]
    await a.backend.join_room("game", "conn-1", cluster.long_ttl)
    snapshot = await a.backend.presence_snapshot("game")
    assert snapshot.present == ["conn-1"]
    assert snapshot.states == {}, "the state ended with the presence"


async def test_clear_room(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await watch_presence(b, "game")
    for conn, node in (("conn-1", a), ("conn-2", b), ("conn-3", b)):
        await node.backend.register_connection(conn)
    await a.backend.join_room("game", "conn-1", cluster.long_ttl)
    await b.backend.join_room("game", "conn-2", cluster.long_ttl)
    await b.backend.join_room("game", "conn-3", None)
    await b.backend.join_room("other", "conn-3", None)
    await a.backend.set_presence_state("game", "conn-1", "busy")
    await a.backend.set_room_metadata("game", {"topic": "x"})
    await a.backend.set_room_metadata("other", {"topic": "y"})
    assert len(await presence_events(b, "game")) == 3

    cleared = await a.backend.clear_room("game")

    assert sorted(cleared) == ["conn-1", "conn-2", "conn-3"]
    events = await presence_events(b, "game")
    assert sorted(events) == [("leave", "conn-1"), ("leave", "conn-2")]
    for node in (a, b):
        assert await node.backend.room_members("game") == []
        assert await node.backend.get_room_metadata("game") is None
        assert await node.backend.get_room_metadata("other") == {"topic": "y"}
        assert await node.backend.presence_snapshot("game") == PresenceSnapshot([], {})
        assert await node.backend.connection_rooms("conn-1") == []
        assert await node.backend.connection_rooms("conn-3") == ["other"]
        assert await node.backend.all_rooms() == ["other"]
        assert await node.backend.is_in_room("game", "conn-2") is False
    assert await a.backend.clear_room("game") == []
    assert await presence_events(b, "game") == []


async def test_join_registered_joins_and_tells_the_owner_in_one_step(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await watch_presence(a, "r")
    await a.backend.register_connection("conn-1")

    result = await b.backend.join_registered("r", "conn-1", cluster.long_ttl)

    assert result == JoinResult(joined_presence=True, present=["conn-1"])
    assert decode_envelope(await a.recorder.next(a.inbox)) == (
        {"t": "room", "op": "join", "r": "r", "c": "conn-1"},
        b"",
    )
    assert await b.backend.room_members("r") == ["conn-1"]
    assert await presence_events(a, "r") == [("join", "conn-1")]
    untracked = await b.backend.join_registered("plain", "conn-1", None)
    assert untracked == JoinResult(joined_presence=False, present=[])
    assert sorted(await a.backend.connection_rooms("conn-1")) == ["plain", "r"]


async def test_join_of_a_connection_unregistered_after_the_lookup_leaves_nothing(
    cluster: Cluster,
) -> None:
    a, b = await cluster.start(2)
    await watch_presence(b, "r")
    await a.backend.register_connection("conn-1")
    # Server code on b found the connection on a; then it disconnected before the join.
    assert await b.backend.connection_instance("conn-1") == a.instance_id
    await a.backend.unregister_connection("conn-1", [])

    assert await b.backend.join_registered("r", "conn-1", cluster.long_ttl) is None

    assert await b.backend.room_members("r") == []
    assert await b.backend.connection_rooms("conn-1") == []
    assert await b.backend.all_rooms() == []
    assert "conn-1" not in (await b.backend.presence_snapshot("r")).present
    assert await a.recorder.drain(b.backend, a.inbox) == []
    assert await presence_events(b, "r") == []


async def test_a_connection_unregistering_after_a_join_loses_the_membership(
    cluster: Cluster,
) -> None:
    a, b = await cluster.start(2)
    await a.backend.register_connection("conn-1")
    assert await b.backend.join_registered("r", "conn-1", cluster.long_ttl) is not None

    await a.backend.unregister_connection("conn-1", [])

    assert await b.backend.room_members("r") == []
    assert await b.backend.connection_rooms("conn-1") == []
    assert "conn-1" not in (await b.backend.presence_snapshot("r")).present

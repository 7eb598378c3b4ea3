"""Rooms and presence feature logic on the memory backend (protocol.md §7, §10, §12.2)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mesh_sdk.protocol.errors import TooLargeError, ValidationError
from mesh_server.backends.base import PresenceSnapshot
from mesh_server.backends.memory import MemoryBackend
from mesh_server.limits import Limits
from tests.unit.server.features_fakes import FakeCluster, FakeConnection, FakeCore

JOIN = "mesh/join-room"
LEAVE = "mesh/leave-room"
SUBP = "mesh/subscribe-presence"
UNSUBP = "mesh/unsubscribe-presence"
GETP = "mesh/get-presence-state"
PUBS = "mesh/publish-presence-state"
CLEARS = "mesh/clear-presence-state"
UPDATE = "mesh/presence-update"


@pytest.fixture
async def cluster() -> AsyncIterator[FakeCluster]:
    cluster = FakeCluster()
    yield cluster
    await cluster.close()


async def tracked(cluster: FakeCluster, n: int = 1, **options: Any) -> list[FakeCore]:
    cores = await cluster.start(n, **options)
    for core in cores:
        core.features.presence.track(re.compile(r"room:.+"))
    return cores


def summary(events: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (e["type"], e["connectionId"], e["state"])
        if e["type"] == "state"
        else (e["type"], e["connectionId"])
        for e in events
    ]


def events_without(conn: FakeConnection, *ignored: str) -> list[tuple[Any, ...]]:
    return [e for e in summary(conn.pushes(UPDATE)) if e[1] not in ignored]


# ------------------------------------------------------------------ tracking


async def test_default_ttl_and_refusals(
    cluster: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    (core,) = await cluster.start(1, ping_interval=1.0, max_missed_pongs=1)
    presence = core.features.presence
    presence.track("room:a")
    # TTLs are given in seconds and handed to the backend in ms.
    assert presence.ttl_ms_for("room:a") == 3000  # (1 + 2) × 1 s, §10.3
    with pytest.raises(ValueError, match="must exceed"):
        presence.track("room:b", ttl=1.0)
    with caplog.at_level(logging.WARNING):
        presence.track("room:c", ttl=1.5)
    assert "below" in caplog.text
    assert presence.ttl_ms_for("room:c") == 1500
    assert presence.ttl_ms_for("room:zzz") is None
    presence.track(re.compile(r"room:.*"), ttl=5.0)
    assert presence.ttl_ms_for("room:a") == 3000  # first matching pattern's TTL
    assert presence.ttl_ms_for("room:zzz") == 5000
    assert presence.tracked_rooms_of(["room:a", "x", "room:q"]) == ["room:a", "room:q"]


# ------------------------------------------------------------------ rooms


async def test_join_present_only_when_tracked_and_guarded(cluster: FakeCluster) -> None:
    (core,) = await cluster.start(1)
    core.features.presence.track(re.compile(r"room:.+"))
    core.features.presence.track("guarded", guard=lambda connection, room: False)
    a, b = await core.connect(), await core.connect()
    assert await core.request(a, JOIN, {"roomName": "room:1"}) == {
        "success": True,
        "present": [a.id],
    }
    result = await core.request(b, JOIN, {"roomName": "room:1"})
    assert sorted(result["present"]) == sorted([a.id, b.id])
    assert await core.request(a, JOIN, {"roomName": "plain"}) == {"success": True, "present": []}
    assert await core.request(a, JOIN, {"roomName": "guarded"}) == {
        "success": True,
        "present": [],
    }
    assert await core.features.rooms.is_member("guarded", a.id)
    assert sorted(await core.features.rooms.members("room:1")) == sorted([a.id, b.id])
    assert await core.features.presence.get_present_connections("guarded") == [a.id]
    assert core.room_index["room:1"] == {a.id, b.id}


async def test_leave_and_room_metadata(cluster: FakeCluster) -> None:
    (core,) = await tracked(cluster)
    a = await core.connect()
    await core.request(a, JOIN, {"roomName": "room:m"})
    assert await core.request(a, LEAVE, {"roomName": "room:m"}) == {"success": True}
    assert await core.request(a, LEAVE, {"roomName": "room:m"}) == {"success": True}
    assert "room:m" not in core.room_index
    assert await core.request(a, "mesh/get-room-metadata", {"roomName": "room:m"}) == {
        "metadata": None
    }
    rooms = core.features.rooms
    await rooms.set_metadata("room:m", {"a": 1, "b": 2})
    await rooms.update_metadata("room:m", {"b": 3})
    assert await core.request(a, "mesh/get-room-metadata", {"roomName": "room:m"}) == {
        "metadata": {"a": 1, "b": 3}
    }
    assert await rooms.get_metadata("room:m") == {"a": 1, "b": 3}
    assert await rooms.get_all_metadata() == {"room:m": {"a": 1, "b": 3}}


async def test_server_side_add_remove_and_clear_across_instances(cluster: FakeCluster) -> None:
    one, two = await tracked(cluster, 2)
    a = await one.connect()
    b = await two.connect()
    watcher = await one.connect()
    await one.request(watcher, SUBP, {"roomName": "room:s"})
    # Server code on instance one adds b, which lives on instance two.
    await one.features.rooms.add("room:s", b.id)
    await watcher.wait_pushes(UPDATE, 1)
    assert await one.features.rooms.is_member("room:s", b)
    await b.wait(lambda: "room:s" in two.room_index)  # the owner indexed it (inbox control)
    await one.features.rooms.add("room:s", a)
    assert sorted(await one.features.rooms.all_rooms()) == ["room:s"]
    await one.features.rooms.remove("room:s", b.id)
    members = await one.features.rooms.clear("room:s")
    assert sorted(members) == [a.id]
    assert await one.features.rooms.members("room:s") == []
    await watcher.wait(lambda: len(watcher.pushes(UPDATE)) >= 4)
    assert summary(watcher.pushes(UPDATE)) == [
        ("join", b.id),
        ("join", a.id),
        ("leave", b.id),
        ("leave", a.id),
    ]
    assert "room:s" not in one.room_index
    await one.features.rooms.add("room:s", "conn-unknown")
    assert await one.features.rooms.members("room:s") == []


async def test_remote_membership_updates_the_owner_index(cluster: FakeCluster) -> None:
    one, two = await tracked(cluster, 2)
    b = await two.connect()
    await one.features.rooms.add("room:r", b.id)
    await b.wait(lambda: "room:r" in two.room_index)
    assert two.features.rooms.local_rooms_of(b.id) == {"room:r"}
    await one.features.rooms.remove_from_all(b.id)
    await b.wait(lambda: "room:r" not in two.room_index)
    assert two.features.rooms.local_rooms_of(b.id) == set()
    assert await one.features.rooms.members("room:r") == []


# ------------------------------------------------------------------ presence events


async def test_every_subscriber_on_every_instance_gets_each_event_once(
    cluster: FakeCluster,
) -> None:
    one, two = await tracked(cluster, 2)
    watchers = [await one.connect(), await one.connect(), await two.connect(), await two.connect()]
    for index, watcher in enumerate(watchers):
        core = one if index < 2 else two
        result = await core.request(watcher, SUBP, {"roomName": "room:e"})
        assert result == {"success": True, "present": [], "states": {}}
    await one.request(watchers[0], SUBP, {"roomName": "room:e"})  # repeat: no duplicates
    a, b = await one.connect(), await two.connect()
    await one.request(a, JOIN, {"roomName": "room:e"})
    await two.request(b, JOIN, {"roomName": "room:e"})
    await two.request(b, JOIN, {"roomName": "room:e"})  # already present: no second join
    await one.request(a, LEAVE, {"roomName": "room:e"})
    await two.disconnect(b)
    expected = [("join", a.id), ("join", b.id), ("leave", a.id), ("leave", b.id)]
    for watcher in watchers:
        await watcher.wait_pushes(UPDATE, 4)
    marker = await one.connect()
    await one.request(marker, JOIN, {"roomName": "room:e"})
    for watcher in watchers:
        await watcher.wait(lambda w=watcher: ("join", marker.id) in summary(w.pushes(UPDATE)))  # type: ignore[misc]
        assert events_without(watcher, marker.id) == expected


async def test_subscribe_presence_snapshot_and_denials(cluster: FakeCluster) -> None:
    (core,) = await cluster.start(1)
    core.features.presence.track(re.compile(r"room:.+"))
    core.features.presence.track("secret", guard=lambda connection, room: False)
    a, b = await core.connect(), await core.connect()
    await core.request(a, JOIN, {"roomName": "room:p"})
    await core.request(a, PUBS, {"roomName": "room:p", "state": {"typing": True}})
    expected = {"success": True, "present": [a.id], "states": {a.id: {"typing": True}}}
    assert await core.request(b, SUBP, {"roomName": "room:p"}) == expected
    assert await core.request(b, GETP, {"roomName": "room:p"}) == expected
    for room in ("untracked", "secret"):
        assert await core.request(b, SUBP, {"roomName": room}) == {"success": False, "present": []}
        assert await core.request(b, GETP, {"roomName": room}) == {"success": False, "present": []}
    assert await core.request(b, UNSUBP, {"roomName": "room:p"}) is True
    assert await core.request(b, UNSUBP, {"roomName": "room:p"}) is False
    assert cluster.hub.publish("mesh:presence:room:p", b"{}") == 0  # released (§9.4 spirit)


async def test_presence_state_rules(cluster: FakeCluster) -> None:
    (core,) = await tracked(cluster, limits=Limits(max_presence_state_size=20))
    core.features.presence.track("closed", guard=lambda connection, room: False)
    a, w = await core.connect(), await core.connect()
    await core.request(w, SUBP, {"roomName": "room:s"})
    # §7: false when not present, untracked or guard-denied.
    assert await core.request(a, PUBS, {"roomName": "room:s", "state": 1}) is False
    assert await core.request(a, PUBS, {"roomName": "plain", "state": 1}) is False
    await core.request(a, JOIN, {"roomName": "closed"})
    assert await core.request(a, PUBS, {"roomName": "closed", "state": 1}) is False
    assert await core.request(a, CLEARS, {"roomName": "closed"}) is False
    await core.request(a, JOIN, {"roomName": "room:s"})
    with pytest.raises(TooLargeError) as info:
        await core.request(a, PUBS, {"roomName": "room:s", "state": "x" * 30})
    assert info.value.details == {"limit": 20}
    with pytest.raises(ValidationError):
        await core.request(a, PUBS, {"roomName": "room:s", "state": None})
    assert await core.request(a, PUBS, {"roomName": "room:s", "state": "busy"}) is True
    assert await core.request(a, PUBS, {"roomName": "room:s", "state": "q", "silent": True}) is True
    assert await core.request(a, CLEARS, {"roomName": "room:s"}) is True
    assert await core.request(a, CLEARS, {"roomName": "room:s"}) is True  # nothing to clear
    await core.request(a, LEAVE, {"roomName": "room:s"})
    await w.wait_pushes(UPDATE, 4)
    assert summary(w.pushes(UPDATE)) == [
        ("join", a.id),
        ("state", a.id, "busy"),
        ("state", a.id, None),
        ("leave", a.id),
    ]


async def test_state_expiry_gives_one_null_event(cluster: FakeCluster) -> None:
    one, two = await tracked(cluster, 2, presence_sweep_interval=0.01)
    a, w = await one.connect(), await two.connect()
    await two.request(w, SUBP, {"roomName": "room:x"})
    await one.request(a, JOIN, {"roomName": "room:x"})
    await one.request(a, PUBS, {"roomName": "room:x", "state": "t", "expireAfter": 500})
    await w.wait_pushes(UPDATE, 2)
    cluster.clock.advance(600)  # (ms) both instances sweep every 10 ms; one removes it
    await w.wait_pushes(UPDATE, 3)
    await one.request(a, LEAVE, {"roomName": "room:x"})
    await w.wait_pushes(UPDATE, 4)
    assert summary(w.pushes(UPDATE)) == [
        ("join", a.id),
        ("state", a.id, "t"),
        ("state", a.id, None),
        ("leave", a.id),
    ]


async def test_pong_refreshes_presence_and_silence_expires(cluster: FakeCluster) -> None:
    (core,) = await tracked(cluster, presence_sweep_interval=0.01)  # TTL 3 s
    a, b, w = await core.connect(), await core.connect(), await core.connect()
    await core.request(w, SUBP, {"roomName": "room:t"})
    await core.request(a, JOIN, {"roomName": "room:t"})
    await core.request(b, JOIN, {"roomName": "room:t"})
    await core.request(b, JOIN, {"roomName": "plain"})  # untracked rooms are not refreshed
    for _ in range(3):
        cluster.clock.advance(2000)
        await core.pong(b)  # b answers pings, a is silent
    await w.wait_pushes(UPDATE, 3)
    assert summary(w.pushes(UPDATE))[2] == ("leave", a.id)
    assert await core.features.presence.get_present_connections("room:t") == [b.id]
    # Membership survives expiry; the next refresh makes a present again (§10.3).
    assert await core.features.rooms.is_member("room:t", a.id)
    await core.pong(a)
    await w.wait_pushes(UPDATE, 4)
    assert summary(w.pushes(UPDATE))[3] == ("join", a.id)


class JoinDuringSnapshotBackend(MemoryBackend):
    """Another connection joins (publishing ``join``) right after the snapshot is read."""

    async def presence_snapshot(self, room: str) -> PresenceSnapshot:
        snapshot = await super().presence_snapshot(room)
        await self.join_room(room, "conn-late", 60_000)
        for _ in range(5):
            await asyncio.sleep(0)  # the join event reaches the feature while pending
        return snapshot


async def test_presence_response_precedes_its_events(cluster: FakeCluster) -> None:
    (core,) = await tracked(cluster, backend_factory=JoinDuringSnapshotBackend)
    w = await core.connect()
    result = await core.request(w, SUBP, {"roomName": "room:o"})
    assert result == {"success": True, "present": [], "states": {}}
    (event,) = await w.wait_pushes(UPDATE, 1)
    assert (event["type"], event["connectionId"]) == ("join", "conn-late")
    # §10.4: the response is queued before any event of this subscription.
    assert [("id" in frame) for frame in w.frames] == [True, False]


async def test_disconnect_drops_presence_subscriptions_and_quota(cluster: FakeCluster) -> None:
    (core,) = await tracked(cluster)
    a = await core.connect()
    await core.request(a, SUBP, {"roomName": "room:q"})
    await core.request(a, JOIN, {"roomName": "room:q"})
    assert core.features.quota.count(a.id) == 2
    await core.disconnect(a)
    assert core.features.quota.count(a.id) == 0
    assert cluster.hub.publish("mesh:presence:room:q", b"{}") == 0

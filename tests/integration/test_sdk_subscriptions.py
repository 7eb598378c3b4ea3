"""MeshClient subscriptions against the real MeshServer (memory backend), incl. restarts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from mesh_sdk.client import MeshClient
from mesh_sdk.errors import SubscriptionDenied
from mesh_sdk.protocol.errors import ForbiddenError
from mesh_sdk.subscriptions import PresenceUpdate, RecordChange
from mesh_server.backends.memory import MemoryHub
from tests.integration.sdk_support import Restartable, clients, mesh
from tests.support.timing import eventually, wait_for
from tests.unit.sdk.recorder import Recorder

__all__ = ["clients", "mesh"]

pytestmark = pytest.mark.integration

Factory = Callable[..., MeshClient]


class Msg(BaseModel):
    text: str


class Doc(BaseModel):
    title: str
    items: list[int] = []


async def connected(mesh: Restartable, clients: Factory, **options: Any) -> MeshClient:
    client = clients(mesh.url, **options)
    await wait_for(client.connect())
    return client


# --------------------------------------------------------------------------------------------
# Channels (§9)


async def test_channel_history_and_live_messages(mesh: Restartable, clients: Factory) -> None:
    server = mesh.current
    for text in ("m1", "m2", "m3"):
        await server.publish_to_channel("chat:1", {"text": text}, history=2)
    client = await connected(mesh, clients)
    sub = await client.subscribe_channel("chat:1", history_limit=10, model=Msg)
    assert sub.history == [Msg(text="m3"), Msg(text="m2")]
    received = aiter(sub)
    await server.publish_to_channel("chat:1", {"text": "live"})
    await server.publish_to_channel("chat:1", "not json")
    await server.publish_to_channel("chat:1", json.dumps({"text": "after"}))
    assert await wait_for(anext(received)) == Msg(text="live")
    assert await wait_for(anext(received)) == Msg(text="after")
    assert sub.decode_errors == 1
    assert await client.get_channel_history("chat:1", limit=5) == [
        '{"text":"m3"}',
        '{"text":"m2"}',
    ]
    assert await sub.unsubscribe() is True
    assert await client.unsubscribe_channel("chat:1") is False


async def test_channel_denied(mesh: Restartable, clients: Factory) -> None:
    client = await connected(mesh, clients)
    for name in ("secret", "mesh:internal"):
        with pytest.raises(SubscriptionDenied):
            await client.subscribe_channel(name)
    with pytest.raises(SubscriptionDenied):
        await client.get_channel_history("secret")


async def test_channel_resubscribed_after_restart_without_replay(
    mesh: Restartable, clients: Factory
) -> None:
    await mesh.current.publish_to_channel("chat:r", "old", history=5)
    client = await connected(mesh, clients)
    recorder = Recorder(client)
    got: list[str] = []
    sub = await client.subscribe_channel("chat:r", got.append, history_limit=5)
    assert sub.history == ["old"]
    server = await mesh.restart()
    await recorder.wait("resubscribed")
    await server.publish_to_channel("chat:r", "new", history=5)
    await eventually(lambda: got == ["new"])
    assert sub.history == ["old"]


# --------------------------------------------------------------------------------------------
# Rooms and presence (§10)


async def test_rooms_and_presence_between_clients(mesh: Restartable, clients: Factory) -> None:
    alice = await connected(mesh, clients)
    bob = await connected(mesh, clients)
    updates: list[PresenceUpdate] = []
    room = await alice.join_room("room:lobby", on_presence=updates.append)
    assert room.present == [alice.connection_id]
    presence = room.presence
    assert presence is not None
    assert presence.present == {alice.connection_id}
    bob_room = await bob.join_room("room:lobby")
    assert set(bob_room.present) == {alice.connection_id, bob.connection_id}
    await eventually(lambda: presence.present == {alice.connection_id, bob.connection_id})
    assert await bob.publish_presence_state("room:lobby", {"typing": True}) is True
    await eventually(lambda: presence.states == {bob.connection_id: {"typing": True}})
    snapshot = await bob.get_presence_state("room:lobby")
    assert snapshot.states == {bob.connection_id: {"typing": True}}
    assert await bob.clear_presence_state("room:lobby") is True
    await eventually(lambda: presence.states == {})
    assert await bob_room.leave() is True
    await eventually(lambda: presence.present == {alice.connection_id})
    kinds = [(u.type, u.connection_id) for u in updates]
    assert kinds == [
        ("join", bob.connection_id),
        ("state", bob.connection_id),
        ("state", bob.connection_id),
        ("leave", bob.connection_id),
    ]
    assert await room.leave() is True
    assert presence.ended


async def test_presence_not_tracked_is_denied(mesh: Restartable, clients: Factory) -> None:
    client = await connected(mesh, clients)
    with pytest.raises(SubscriptionDenied):
        await client.subscribe_presence("untracked")
    room = await client.join_room("untracked")
    assert room.present == []
    assert await client.publish_presence_state("untracked", {"x": 1}) is False


async def test_rooms_presence_restored_after_restart(mesh: Restartable, clients: Factory) -> None:
    alice = await connected(mesh, clients)
    bob = await connected(mesh, clients)
    recorder = Recorder(alice)
    bob_recorder = Recorder(bob)
    room = await alice.join_room("room:r", on_presence=lambda update: None)
    await alice.publish_presence_state("room:r", {"status": "here"})
    bob_presence = await bob.subscribe_presence("room:r")
    await eventually(lambda: bob_presence.states == {alice.connection_id: {"status": "here"}})
    server = await mesh.restart()
    await recorder.wait("resubscribed")
    await bob_recorder.wait("resubscribed")
    assert room.present == [alice.connection_id]
    assert await server.get_room_members("room:r") == [alice.connection_id]
    # alice's state was re-published under her new id; bob's subscription follows
    await eventually(lambda: bob_presence.states == {alice.connection_id: {"status": "here"}})
    assert bob_presence.present == {alice.connection_id}
    assert room.presence is not None
    await eventually(lambda: room.presence.present == {alice.connection_id})  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------------
# Records (§11)


async def test_record_full_and_patch_subscribers(mesh: Restartable, clients: Factory) -> None:
    writer = await connected(mesh, clients)
    reader = await connected(mesh, clients)
    full_changes: list[RecordChange[Doc]] = []
    full = await reader.subscribe_record("wdoc:1", model=Doc, on_change=full_changes.append)
    patch = await reader.subscribe_record("wdoc:2", mode="patch", model=Doc)
    assert (full.value, full.version) == (None, 0)
    patch_values = aiter(patch)
    assert await wait_for(anext(patch_values)) is None  # the state held: absent
    assert await writer.publish_record_update("wdoc:1", Doc(title="a")) is True
    assert await writer.publish_record_update("wdoc:2", {"title": "a", "items": [1]}) is True
    assert await writer.publish_record_update("wdoc:2", {"title": "b"}, strategy="merge") is True
    assert await wait_for(anext(patch_values)) == Doc(title="a", items=[1])
    assert await wait_for(anext(patch_values)) == Doc(title="b", items=[1])
    assert patch.version == 2
    await eventually(lambda: full.version == 1)
    assert full.value == Doc(title="a")
    assert [c.full for c in full_changes] == [True, True]
    # the writer's own subscription sees its writes too (README)
    own = await writer.subscribe_record("wdoc:2", mode="patch")
    assert own.value == {"title": "b", "items": [1]}
    assert await own.update({"title": "c", "items": []}) is True
    await eventually(lambda: own.version == 3)
    await eventually(lambda: patch.value == Doc(title="c", items=[]))


async def test_record_not_writable_and_not_readable(mesh: Restartable, clients: Factory) -> None:
    client = await connected(mesh, clients)
    rec = await client.subscribe_record("doc:ro")
    with pytest.raises(ForbiddenError, match="not writable"):
        await rec.update({"x": 1})
    with pytest.raises(SubscriptionDenied):
        await client.subscribe_record("hidden:1")


async def test_record_deleted(mesh: Restartable, clients: Factory) -> None:
    client = await connected(mesh, clients)
    await mesh.current.publish_record_update("doc:gone", {"a": 1})
    deleted: list[tuple[str, int]] = []
    rec = await client.subscribe_record("doc:gone", mode="patch")
    rec.on_delete(lambda record_id, version: deleted.append((record_id, version)))
    values = aiter(rec)
    await mesh.current.delete_record("doc:gone")
    assert await wait_for(anext(values)) == {"a": 1}  # the state held when iteration began
    with pytest.raises(StopAsyncIteration):
        await wait_for(anext(values))
    assert deleted == [("doc:gone", 1)]


class DroppingClient(MeshClient):
    """Drops chosen ``mesh/record-update`` frames, to force a version gap (§11.5)."""

    def __init__(self, url: str, drop_versions: set[int], **options: Any) -> None:
        super().__init__(url, **options)
        self.drop_versions = drop_versions

    def _receive(self, message: str | bytes) -> None:
        frame = json.loads(message)
        if (
            frame.get("command") == "mesh/record-update"
            and frame["payload"].get("version") in self.drop_versions
        ):
            self.drop_versions.discard(frame["payload"]["version"])
            return
        super()._receive(message)


async def test_patch_gap_triggers_resync(mesh: Restartable) -> None:
    server = mesh.current
    client = DroppingClient(mesh.url, {2})
    await client.connect()
    changes: list[RecordChange[Any]] = []
    rec = await client.subscribe_record("doc:gap", mode="patch", on_change=changes.append)
    for n in range(1, 5):
        await server.publish_record_update("doc:gap", {"n": n})
    await eventually(lambda: rec.version == 4)
    assert rec.value == {"n": 4}
    # v1 applied as a patch; v2 dropped; v3 revealed the gap → resync answered with v3 (full)
    history = [(c.version, c.full) for c in changes]
    assert history[:2] == [(0, True), (1, False)]
    assert (2, False) not in history
    resynced = [version for version, full in history[2:] if full]
    assert resynced
    assert resynced[0] >= 3
    assert not rec.resyncing
    await client.close()


async def test_records_resubscribed_after_restart(mesh: Restartable, clients: Factory) -> None:
    client = await connected(mesh, clients)
    recorder = Recorder(client)
    await mesh.current.publish_record_update("doc:keep", {"v": 1})
    changes: list[RecordChange[Any]] = []
    rec = await client.subscribe_record("doc:keep", mode="patch", on_change=changes.append)
    await mesh.stop()
    await recorder.wait("disconnect")
    # while the server is down the record changes (backend state survives the restart)
    server = await mesh.start()
    await server.publish_record_update("doc:keep", {"v": 2})
    await recorder.wait("resubscribed")
    await eventually(lambda: rec.version == 2)
    assert rec.value == {"v": 2}
    assert rec.mode == "patch"
    await server.publish_record_update("doc:keep", {"v": 3})
    await eventually(lambda: rec.version == 3)
    assert changes[-1].patch == [{"op": "replace", "path": "/v", "value": 3}]


async def test_async_callbacks_and_iteration_together(mesh: Restartable, clients: Factory) -> None:
    client = await connected(mesh, clients)
    seen: list[int] = []
    done = asyncio.Event()

    async def on_change(change: RecordChange[Any]) -> None:
        seen.append(change.version)
        if change.version == 5:
            done.set()

    rec = await client.subscribe_record("wdoc:async", on_change=on_change)
    versions = rec.changes()
    for n in range(5):
        await client.publish_record_update("wdoc:async", {"n": n})
    await wait_for(done.wait())
    # Issue 10: 5 writes are 6 changes for both kinds of consumer (the snapshot first).
    assert seen == [0, 1, 2, 3, 4, 5]
    assert [(await wait_for(anext(versions))).version for _ in range(6)] == seen


async def test_record_consumers_see_each_version_once_across_server_restarts(
    mesh: Restartable, clients: Factory
) -> None:
    """Issue 10: a renewed subscription repeats no version, to callbacks or iterators."""
    client = await connected(mesh, clients)
    recorder = Recorder(client)
    await mesh.current.publish_record_update("doc:restart", {"v": 1})
    callbacks: list[RecordChange[Any]] = []
    rec = await client.subscribe_record("doc:restart", mode="patch", on_change=callbacks.append)
    iterated = rec.changes()
    await mesh.current.publish_record_update("doc:restart", {"v": 2})
    await eventually(lambda: rec.version == 2)
    # Restart with nothing written meanwhile: the renewed subscription is the held state.
    await mesh.restart()
    await recorder.wait("resubscribed")
    # Restart with a write while the server is down (the backend outlives the process).
    await mesh.stop()
    await recorder.wait("disconnect", 2)
    server = await mesh.start()
    await server.publish_record_update("doc:restart", {"v": 3})
    await recorder.wait("resubscribed", 2)
    await server.publish_record_update("doc:restart", {"v": 4})
    await eventually(lambda: rec.version == 4)
    history = [(c.version, c.full) for c in callbacks]
    # v3 may arrive as the renewed snapshot (full) or, if the write raced the re-subscription,
    # as its push; either way once.
    assert [version for version, _ in history] == [1, 2, 3, 4]
    assert history[:2] == [(1, True), (2, False)]
    assert history[3] == (4, False)
    assert [(await wait_for(anext(iterated))).version for _ in range(4)] == [1, 2, 3, 4]
    await client.close()
    assert [c.version async for c in iterated] == []


async def test_record_from_a_server_that_lost_its_records_is_delivered(
    mesh: Restartable, clients: Factory
) -> None:
    """A restarted memory backend numbers versions anew: its state is new, so it is delivered."""
    client = await connected(mesh, clients)
    recorder = Recorder(client)
    await mesh.current.publish_record_update("doc:lost", {"v": 1})
    rec = await client.subscribe_record("doc:lost")
    iterated = rec.changes()
    await mesh.stop()
    await recorder.wait("disconnect")
    mesh.hub = MemoryHub()  # the records are gone
    await mesh.start()
    await recorder.wait("resubscribed")
    assert [(await wait_for(anext(iterated))).version for _ in range(2)] == [1, 0]
    assert (rec.value, rec.version) == (None, 0)

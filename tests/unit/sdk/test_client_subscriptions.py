"""Subscriptions of MeshClient against the fake server: routing, resync, re-subscription."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from mesh_sdk.client import MeshClient
from mesh_sdk.errors import SubscriptionDenied
from mesh_sdk.protocol.contract import ChannelSpec, CommandSpec, ContractIndex, RecordSpec
from mesh_sdk.protocol.errors import (
    ConflictError,
    ContractViolationError,
    ForbiddenError,
    LocalValidationError,
    UnavailableError,
    ValidationError,
)
from mesh_sdk.subscriptions import PresenceUpdate, RecordChange
from tests.support.timing import eventually, wait_for
from tests.unit.sdk.fake_server import HOLD, FakeConnection, FakeRequest, FakeServer
from tests.unit.sdk.recorder import Recorder

Factory = Callable[..., MeshClient]


class Msg(BaseModel):
    text: str


class Doc(BaseModel):
    title: str
    n: int = 0


async def connected(fake: FakeServer, make_client: Factory, **options: Any) -> MeshClient:
    client = make_client(fake.url, **options)
    await wait_for(client.connect())
    return client


# --------------------------------------------------------------------------------------------
# Channels


async def test_channel_history_messages_and_unsubscribe(
    fake: FakeServer, make_client: Factory
) -> None:
    fake.handlers["mesh/subscribe-channel"] = lambda conn, req: {
        "success": True,
        "history": ['{"text":"m3"}', '{"text":"m2"}'],
    }
    client = await connected(fake, make_client)
    got: list[Msg] = []
    sub = await client.subscribe_channel("chat:1", got.append, history_limit=2, model=Msg)
    request = fake.requests[-1]
    assert request.payload == {"channel": "chat:1", "historyLimit": 2}
    assert sub.history == [Msg(text="m3"), Msg(text="m2")]
    iterator = aiter(sub)
    conn = fake.connections[0]
    await conn.push("mesh/subscription-message", {"channel": "chat:1", "message": '{"text":"a"}'})
    await conn.push("mesh/subscription-message", {"channel": "other", "message": '{"text":"x"}'})
    await conn.push("mesh/subscription-message", {"channel": "chat:1", "message": '{"text":"b"}'})
    assert await wait_for(anext(iterator)) == Msg(text="a")
    assert await wait_for(anext(iterator)) == Msg(text="b")
    assert got == [Msg(text="a"), Msg(text="b")]
    assert await sub.unsubscribe() is True
    assert fake.requests[-1].command == "mesh/unsubscribe-channel"
    with pytest.raises(StopAsyncIteration):
        await wait_for(anext(iterator))
    assert await sub.unsubscribe() is False


async def test_channel_raw_strings_and_async_callback(
    fake: FakeServer, make_client: Factory
) -> None:
    client = await connected(fake, make_client)
    got: list[str] = []
    done = asyncio.Event()

    async def on_message(message: str) -> None:
        got.append(message)
        done.set()

    sub = await client.subscribe_channel("news", on_message)
    assert fake.requests[-1].payload == {"channel": "news"}
    assert sub.history == []
    await fake.connections[0].push(
        "mesh/subscription-message", {"channel": "news", "message": "plain"}
    )
    await wait_for(done.wait())
    assert got == ["plain"]


async def test_channel_denied(fake: FakeServer, make_client: Factory) -> None:
    fake.handlers["mesh/subscribe-channel"] = lambda conn, req: {"success": False, "history": []}
    client = await connected(fake, make_client)
    with pytest.raises(SubscriptionDenied) as info:
        await client.subscribe_channel("mesh:internal")
    assert isinstance(info.value, ForbiddenError)
    assert info.value.target == "mesh:internal"
    assert client._channels == {}


async def test_channel_history_command(fake: FakeServer, make_client: Factory) -> None:
    fake.handlers["mesh/get-channel-history"] = lambda conn, req: (
        {"success": True, "history": ["m3", "m2"]}
        if req.payload["channel"] == "ok"
        else {"success": False, "history": []}
    )
    client = await connected(fake, make_client)
    assert await client.get_channel_history("ok", limit=2) == ["m3", "m2"]
    assert fake.requests[-1].payload == {"channel": "ok", "limit": 2}
    with pytest.raises(SubscriptionDenied):
        await client.get_channel_history("no")


# --------------------------------------------------------------------------------------------
# Records


class RecordPeer:
    """Fake-server side of one record: answers subscribe with the current value and version."""

    def __init__(self, fake: FakeServer, value: Any = None, version: int = 0) -> None:
        self.value = value
        self.version = version
        fake.handlers["mesh/subscribe-record"] = self.subscribe

    def subscribe(self, conn: FakeConnection, req: FakeRequest) -> Any:
        return {"success": True, "record": self.value, "version": self.version}


async def test_record_patch_mode_and_resync(fake: FakeServer, make_client: Factory) -> None:
    peer = RecordPeer(fake, {"title": "a"}, 1)
    client = await connected(fake, make_client)
    changes: list[RecordChange[Doc]] = []
    rec = await client.subscribe_record("doc:1", mode="patch", model=Doc, on_change=changes.append)
    assert fake.requests[-1].payload == {"recordId": "doc:1", "mode": "patch"}
    assert (rec.value, rec.version, rec.mode, rec.record_id) == (
        Doc(title="a"),
        1,
        "patch",
        "doc:1",
    )
    assert changes[0].full
    conn = fake.connections[0]
    ops = [{"op": "add", "path": "/n", "value": 2}]
    await conn.push("mesh/record-update", {"recordId": "doc:1", "patch": ops, "version": 2})
    await conn.push("mesh/record-update", {"recordId": "doc:1", "patch": ops, "version": 2})
    # gap: local 2, push 5 → unsubscribe + subscribe (same mode), answer taken as full state
    peer.value, peer.version = {"title": "z", "n": 5}, 5
    await conn.push("mesh/record-update", {"recordId": "doc:1", "patch": [], "version": 5})
    await fake.wait_request("mesh/subscribe-record", 2)
    await eventually(lambda: rec.version == 5)
    commands = fake.commands()
    assert commands[-2:] == ["mesh/unsubscribe-record", "mesh/subscribe-record"]
    assert fake.requests[-1].payload == {"recordId": "doc:1", "mode": "patch"}
    assert rec.value == Doc(title="z", n=5)
    assert [(c.version, c.full) for c in changes] == [(1, True), (2, False), (5, True)]
    assert changes[1].patch == ops


async def test_record_full_mode_updates_and_writes(fake: FakeServer, make_client: Factory) -> None:
    RecordPeer(fake)
    writes: list[Any] = []

    def publish(conn: FakeConnection, req: FakeRequest) -> Any:
        writes.append(req.payload)
        if req.payload["recordId"] == "ro":
            raise ForbiddenError('Record "ro" is not writable by this connection.')
        return {"success": True}

    fake.handlers["mesh/publish-record-update"] = publish
    client = await connected(fake, make_client)
    rec = await client.subscribe_record("doc:2")
    assert (rec.value, rec.version) == (None, 0)
    values = aiter(rec)
    assert await wait_for(anext(values)) is None  # the current state (absent) first
    conn = fake.connections[0]
    await conn.push("mesh/record-update", {"recordId": "doc:2", "full": {"x": 1}, "version": 1})
    assert await wait_for(anext(values)) == {"x": 1}
    assert await rec.update(Doc(title="t")) is True
    assert await client.publish_record_update("doc:2", {"y": 1}, strategy="merge") is True
    with pytest.raises(ForbiddenError):
        await client.publish_record_update("ro", 1)
    assert writes == [
        {"recordId": "doc:2", "newValue": {"title": "t"}, "options": {"strategy": "replace"}},
        {"recordId": "doc:2", "newValue": {"y": 1}, "options": {"strategy": "merge"}},
        {"recordId": "ro", "newValue": 1},
    ]


async def test_record_writes_with_an_expected_version(
    fake: FakeServer, make_client: Factory
) -> None:
    RecordPeer(fake, {"x": 1}, 4)
    writes: list[Any] = []

    def publish(conn: FakeConnection, req: FakeRequest) -> Any:
        writes.append(req.payload)
        if req.payload.get("expectedVersion") != 4:
            raise ConflictError.for_record("doc:cas", req.payload["expectedVersion"], 4)
        return {"success": True}

    fake.handlers["mesh/publish-record-update"] = publish
    client = await connected(fake, make_client)
    rec = await client.subscribe_record("doc:cas")

    assert await rec.update({"x": 2}, expected_version=rec.version) is True
    with pytest.raises(ConflictError) as caught:
        await client.publish_record_update("doc:cas", {"x": 3}, expected_version=0)
    assert (caught.value.expected, caught.value.actual) == (0, 4)
    for bad in (-1, True, "4"):
        with pytest.raises(ValueError, match="expected_version"):
            await client.publish_record_update("doc:cas", 1, expected_version=bad)  # type: ignore[arg-type]
    assert writes == [
        {
            "recordId": "doc:cas",
            "newValue": {"x": 2},
            "options": {"strategy": "replace"},
            "expectedVersion": 4,
        },
        {"recordId": "doc:cas", "newValue": {"x": 3}, "expectedVersion": 0},
    ]


async def test_record_deleted_ends_subscription(fake: FakeServer, make_client: Factory) -> None:
    RecordPeer(fake, {"a": 1}, 3)
    client = await connected(fake, make_client)
    deleted: list[tuple[str, int]] = []
    rec = await client.subscribe_record("doc:3")
    rec.on_delete(lambda record_id, version: deleted.append((record_id, version)))
    values = aiter(rec)
    await fake.connections[0].push("mesh/record-deleted", {"recordId": "doc:3", "version": 3})
    assert await wait_for(anext(values)) == {"a": 1}  # the state held when iteration began
    with pytest.raises(StopAsyncIteration):
        await wait_for(anext(values))
    assert deleted == [("doc:3", 3)]
    assert rec.deleted
    assert "doc:3" not in client._records


async def test_record_denied_and_bad_mode(fake: FakeServer, make_client: Factory) -> None:
    fake.handlers["mesh/subscribe-record"] = lambda conn, req: {"success": False}
    client = await connected(fake, make_client)
    with pytest.raises(SubscriptionDenied):
        await client.subscribe_record("secret")
    assert client._records == {}
    with pytest.raises(ValueError, match="mode"):
        await client.subscribe_record("x", mode="diff")  # type: ignore[call-overload]


async def test_record_unsubscribe_and_async_with(fake: FakeServer, make_client: Factory) -> None:
    RecordPeer(fake)
    client = await connected(fake, make_client)
    async with await client.subscribe_record("doc:4") as rec:
        assert not rec.ended
    assert rec.ended
    assert fake.commands()[-1] == "mesh/unsubscribe-record"


# --------------------------------------------------------------------------------------------
# Rooms and presence


async def test_presence_snapshot_and_idempotent_events(
    fake: FakeServer, make_client: Factory
) -> None:
    fake.handlers["mesh/subscribe-presence"] = lambda conn, req: {
        "success": True,
        "present": ["a", "b"],
        "states": {"b": {"typing": True}},
    }
    client = await connected(fake, make_client)
    updates: list[PresenceUpdate] = []
    pres = await client.subscribe_presence("lobby", on_update=updates.append)
    assert pres.present == {"a", "b"}
    assert pres.states == {"b": {"typing": True}}
    conn = fake.connections[0]
    base = {"roomName": "lobby", "timestamp": 1}
    await conn.push("mesh/presence-update", {"type": "join", "connectionId": "a", **base})
    await conn.push("mesh/presence-update", {"type": "join", "connectionId": "c", **base})
    await conn.push("mesh/presence-update", {"type": "leave", "connectionId": "b", **base})
    await conn.push("mesh/presence-update", {"type": "leave", "connectionId": "b", **base})
    await eventually(lambda: len(updates) == 2)
    await client.command("echo")  # every push before this response has been processed
    assert [(u.type, u.connection_id) for u in updates] == [("join", "c"), ("leave", "b")]
    assert pres.present == {"a", "c"}
    assert pres.states == {}
    assert await client.unsubscribe_presence("lobby") is True
    assert pres.ended


async def test_presence_denied_and_get_state(fake: FakeServer, make_client: Factory) -> None:
    fake.handlers["mesh/subscribe-presence"] = lambda conn, req: {"success": False, "present": []}
    fake.handlers["mesh/get-presence-state"] = lambda conn, req: {
        "success": True,
        "present": ["a"],
        "states": {"a": 1},
    }
    client = await connected(fake, make_client)
    with pytest.raises(SubscriptionDenied):
        await client.subscribe_presence("private")
    snapshot = await client.get_presence_state("lobby")
    assert snapshot.present == {"a"}
    assert snapshot.states == {"a": 1}


async def test_join_room_with_presence_and_leave(fake: FakeServer, make_client: Factory) -> None:
    client = await connected(fake, make_client)
    room = await client.join_room("lobby", on_presence=lambda update: None)
    assert room.present == [client.connection_id]
    assert room.presence is not None
    assert room.joined
    assert await client.publish_presence_state("lobby", {"typing": True}, silent=True) is True
    assert fake.requests[-1].payload == {
        "roomName": "lobby",
        "state": {"typing": True},
        "silent": True,
    }
    assert await room.leave() is True
    assert fake.commands()[-2:] == ["mesh/leave-room", "mesh/unsubscribe-presence"]
    assert not room.joined
    assert room.presence.ended
    assert client._presence_states == {}


async def test_presence_state_commands(fake: FakeServer, make_client: Factory) -> None:
    fake.handlers["mesh/clear-presence-state"] = lambda conn, req: True
    client = await connected(fake, make_client)
    assert await client.publish_presence_state("lobby", {"x": 1}, expire_after=1.5) is True
    assert fake.requests[-1].payload == {
        "roomName": "lobby",
        "state": {"x": 1},
        "expireAfter": 1500,  # seconds in Python, milliseconds on the wire
    }
    assert client._presence_states == {}  # expiring states are not re-published
    await client.publish_presence_state("lobby", {"x": 1}, expire_after=1.1)
    assert fake.requests[-1].payload["expireAfter"] == 1100
    await client.publish_presence_state("lobby", {"x": 1}, expire_after=0.0001)
    assert fake.requests[-1].payload["expireAfter"] == 1  # never rounded down to "no expiry"
    with pytest.raises(ValueError, match="expire_after"):
        await client.publish_presence_state("lobby", {"x": 1}, expire_after=-1)
    await client.publish_presence_state("lobby", {"x": 2})
    assert client._presence_states == {"lobby": ({"x": 2}, False)}
    assert await client.clear_presence_state("lobby") is True
    assert client._presence_states == {}


# --------------------------------------------------------------------------------------------
# Metadata


async def test_metadata_commands(fake: FakeServer, make_client: Factory) -> None:
    fake.handlers["mesh/get-my-connection-metadata"] = lambda conn, req: {"metadata": None}
    fake.handlers["mesh/get-connection-metadata"] = lambda conn, req: {"metadata": {"u": 1}}
    fake.handlers["mesh/get-room-metadata"] = lambda conn, req: {"metadata": [1]}
    fake.handlers["mesh/set-my-connection-metadata"] = lambda conn, req: {"success": True}
    client = await connected(fake, make_client)
    assert await client.get_connection_metadata() is None
    assert await client.get_connection_metadata("conn-x") == {"u": 1}
    assert fake.requests[-1].payload == {"connectionId": "conn-x"}
    assert await client.get_room_metadata("lobby") == [1]
    assert await client.set_connection_metadata({"a": 1}, strategy="merge") is True
    assert fake.requests[-1].payload == {"metadata": {"a": 1}, "options": {"strategy": "merge"}}


# --------------------------------------------------------------------------------------------
# Re-subscription after reconnect (§14)


async def test_resubscribe_after_reconnect(fake: FakeServer, make_client: Factory) -> None:
    peer = RecordPeer(fake, {"title": "a"}, 1)
    client = await connected(fake, make_client)
    recorder = Recorder(client)
    room = await client.join_room("lobby")
    pres = await client.subscribe_presence("lobby")
    chan = await client.subscribe_channel("chat", history_limit=10)
    changes: list[RecordChange[Doc]] = []
    rec = await client.subscribe_record("doc", mode="patch", model=Doc, on_change=changes.append)
    await client.publish_presence_state("lobby", {"s": 1})
    peer.value, peer.version = {"title": "b"}, 7
    fake.reject_status = 503
    fake.connections[0].abort()
    await recorder.wait("disconnect")
    queued = asyncio.ensure_future(client.command("echo", "queued"))
    await asyncio.sleep(0)
    fake.reject_status = None
    assert await wait_for(queued) == "queued"
    await recorder.wait("resubscribed")
    conn2 = fake.connections[1]
    sent = [(r.command, r.payload) for r in fake.requests if r.connection is conn2]
    assert sent[0] == ("mesh/join-room", {"roomName": "lobby"})
    assert set(map(str, sent[1:4])) == {
        str(("mesh/subscribe-presence", {"roomName": "lobby"})),
        str(("mesh/subscribe-channel", {"channel": "chat"})),
        str(("mesh/subscribe-record", {"recordId": "doc", "mode": "patch"})),
    }
    assert sent[4] == ("mesh/publish-presence-state", {"roomName": "lobby", "state": {"s": 1}})
    assert sent[5] == ("echo", "queued")
    assert room.present == [conn2.id]
    assert rec.version == 7
    assert changes[-1].full
    assert changes[-1].value == Doc(title="b")
    assert not pres.ended
    assert not chan.ended
    assert not rec.ended


async def test_record_consumers_agree_and_never_repeat_a_version_across_reconnects(
    fake: FakeServer, make_client: Factory
) -> None:
    """Issue 10: on_change and changes() see the same changes; a renewal repeats nothing."""
    peer = RecordPeer(fake, {"n": 1}, 1)
    client = await connected(fake, make_client)
    recorder = Recorder(client)
    callbacks: list[int] = []
    rec = await client.subscribe_record(
        "doc", mode="patch", on_change=lambda change: callbacks.append(change.version)
    )
    iterated = rec.changes()
    ops = [{"op": "replace", "path": "/n", "value": 2}]
    await fake.connections[0].push(
        "mesh/record-update", {"recordId": "doc", "patch": ops, "version": 2}
    )
    await eventually(lambda: rec.version == 2)
    peer.value, peer.version = {"n": 2}, 2  # nothing written while disconnected
    fake.connections[0].abort()
    await recorder.wait("resubscribed")
    peer.value, peer.version = {"n": 3}, 3  # written while disconnected
    fake.connections[1].abort()
    await recorder.wait("resubscribed", 2)
    await fake.connections[2].push(
        "mesh/record-update", {"recordId": "doc", "full": {"n": 4}, "version": 4}
    )
    await eventually(lambda: rec.version == 4)
    assert fake.commands().count("mesh/subscribe-record") == 3
    assert callbacks == [1, 2, 3, 4]
    assert [(await wait_for(anext(iterated))).version for _ in range(4)] == callbacks


async def test_resubscribe_unavailable_is_retried_and_takes_the_store_as_it_is(
    fake: FakeServer, make_client: Factory
) -> None:
    """Issue 8: a store lost with Redis is no deletion; the subscription renews itself."""
    peer = RecordPeer(fake, {"title": "a"}, 24)
    client = await connected(fake, make_client)
    recorder = Recorder(client)
    changes: list[RecordChange[Doc]] = []
    rec = await client.subscribe_record("doc", mode="patch", model=Doc, on_change=changes.append)
    answers: list[str] = []

    def flaky(conn: FakeConnection, req: FakeRequest) -> Any:
        if not answers:
            answers.append("unavailable")
            raise UnavailableError("service temporarily unavailable")
        answers.append("ok")
        return peer.subscribe(conn, req)

    fake.handlers["mesh/subscribe-record"] = flaky
    peer.value, peer.version = {"title": "b"}, 3  # Redis came back empty, then 3 writes
    fake.connections[0].abort()
    _, error = await recorder.wait("error")
    assert isinstance(error, UnavailableError)
    await eventually(lambda: answers == ["unavailable", "ok"])
    await eventually(lambda: rec.version == 3)
    assert changes[-1].full
    assert changes[-1].value == Doc(title="b")
    assert not rec.ended
    assert not rec.deleted


async def test_resubscribe_denied_ends_subscription(fake: FakeServer, make_client: Factory) -> None:
    client = await connected(fake, make_client)
    recorder = Recorder(client)
    chan = await client.subscribe_channel("chat")
    iterator = aiter(chan)
    fake.handlers["mesh/subscribe-channel"] = lambda conn, req: {"success": False, "history": []}
    fake.connections[0].abort()
    await recorder.wait("resubscribed")
    _, error = await recorder.wait("error")
    assert isinstance(error, SubscriptionDenied)
    assert chan.ended
    with pytest.raises(StopAsyncIteration):
        await wait_for(anext(iterator))


async def test_subscriptions_end_on_close(fake: FakeServer, make_client: Factory) -> None:
    client = await connected(fake, make_client)
    chan = await client.subscribe_channel("chat")
    room = await client.join_room("lobby")
    await client.close()
    assert chan.ended
    assert not room.joined
    assert await chan.unsubscribe() is False


async def test_subscribe_in_flight_when_socket_drops(
    fake: FakeServer, make_client: Factory
) -> None:
    fake.handlers["mesh/subscribe-channel"] = lambda conn, req: HOLD
    client = await connected(fake, make_client)
    task = asyncio.ensure_future(client.subscribe_channel("chat"))
    await fake.wait_request("mesh/subscribe-channel")
    fake.connections[0].abort()
    with pytest.raises(ConnectionError):
        await wait_for(task)
    assert client._channels == {}


# --------------------------------------------------------------------------------------------
# Contract


class EchoIn(BaseModel):
    text: str


class EchoOut(BaseModel):
    text: str


CONTRACT = ContractIndex(
    name="test",
    command_specs=[CommandSpec("echo", EchoIn, EchoOut)],
    channel_specs=[ChannelSpec("chat", re.compile(r"chat:.+"), "chat:{room}", Msg)],
    record_specs=[RecordSpec("doc", re.compile(r"doc:.+"), "doc:{id}", Doc, writable=True)],
)


async def test_contract_validates_commands(fake: FakeServer, make_client: Factory) -> None:
    client = await connected(fake, make_client, contract=CONTRACT)
    result = await client.command("echo", {"text": "hi"})
    assert result == EchoOut(text="hi")
    assert await client.command("echo", EchoIn(text="model")) == EchoOut(text="model")
    before = len(fake.requests)
    with pytest.raises(LocalValidationError) as info:
        await client.command("echo", {"text": 1})
    assert info.value.details[0]["path"] == "/text"
    assert info.value.message.endswith("(refused locally, not sent)")
    assert len(fake.requests) == before  # never sent
    fake.handlers["echo"] = lambda conn, req: {"wrong": True}
    with pytest.raises(ContractViolationError) as broke:
        await client.command("echo", {"text": "x"})
    assert not isinstance(broke.value, ValidationError)
    assert broke.value.details == [{"path": "", "message": "'text' is a required property"}]
    # commands outside the contract pass through
    with pytest.raises(Exception, match="not found"):
        await client.command("other")


async def test_contract_decodes_channels_and_records(
    fake: FakeServer, make_client: Factory
) -> None:
    RecordPeer(fake, {"title": "t"}, 1)
    client = await connected(fake, make_client, contract=CONTRACT)
    chan = await client.subscribe_channel("chat:1")
    iterator = aiter(chan)
    conn = fake.connections[0]
    await conn.push("mesh/subscription-message", {"channel": "chat:1", "message": "not json"})
    await conn.push("mesh/subscription-message", {"channel": "chat:1", "message": '{"text":"ok"}'})
    assert await wait_for(anext(iterator)) == Msg(text="ok")
    assert chan.decode_errors == 1
    rec = await client.subscribe_record("doc:1")
    assert rec.value == Doc(title="t")
    with pytest.raises(ValidationError):
        await rec.update({"title": 5})
    assert await rec.update({"n": 1}, strategy="merge") is True

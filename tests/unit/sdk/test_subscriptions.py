"""Subscription objects driven directly, with a recording owner instead of a client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from mesh_sdk.events import CallbackDispatcher
from mesh_sdk.protocol.errors import ContractViolationError
from mesh_sdk.subscriptions.channels import ChannelSubscription
from mesh_sdk.subscriptions.presence import PresenceSubscription, PresenceUpdate
from mesh_sdk.subscriptions.records import Outcome, RecordChange, RecordSubscription
from mesh_sdk.subscriptions.rooms import RoomHandle
from tests.support.timing import wait_for


class Msg(BaseModel):
    text: str


class Doc(BaseModel):
    title: str
    n: int = 0


class Owner:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def unsubscribe_channel(self, channel: str) -> bool:
        self.calls.append(("unsubscribe_channel", channel))
        return True

    async def unsubscribe_record(self, record_id: str) -> bool:
        self.calls.append(("unsubscribe_record", record_id))
        return True

    async def publish_record_update(
        self,
        record_id: str,
        value: Any,
        strategy: str | None = None,
        *,
        expected_version: int | None = None,
    ) -> bool:
        self.calls.append(("publish_record_update", (record_id, value, strategy, expected_version)))
        return True

    async def unsubscribe_presence(self, room: str) -> bool:
        self.calls.append(("unsubscribe_presence", room))
        return True

    async def leave_room(self, room: str) -> bool:
        self.calls.append(("leave_room", room))
        return True

    def _report_violation(self, violation: ContractViolationError) -> None:
        self.calls.append(("report_violation", violation))


@pytest.fixture
async def dispatcher() -> Any:
    d = CallbackDispatcher()
    yield d
    await d.aclose()


async def test_channel_decodes_with_model(dispatcher: CallbackDispatcher) -> None:
    owner = Owner()
    sub = ChannelSubscription(owner, "chat", Msg.model_validate_json, dispatcher)
    got: list[Msg] = []
    sub.on_message(got.append)
    sub._set_history(['{"text":"m2"}', "garbage", '{"text":"m1"}'])
    assert sub.history == [Msg(text="m2"), Msg(text="m1")]
    assert sub.decode_errors == 1
    sub._deliver('{"text":"live"}')
    sub._deliver({"text": "object"})  # non-string (not per spec) is re-encoded
    sub._deliver('{"nope":1}')
    assert got == [Msg(text="live"), Msg(text="object")]
    assert sub.decode_errors == 2
    assert await sub.unsubscribe() is True
    assert owner.calls == [("unsubscribe_channel", "chat")]


async def test_channel_iteration_and_end(dispatcher: CallbackDispatcher) -> None:
    sub: ChannelSubscription[str] = ChannelSubscription(Owner(), "c", str, dispatcher)
    iterator = aiter(sub)
    sub._deliver("a")
    sub._deliver("b")
    assert await wait_for(anext(iterator)) == "a"
    sub._end()
    assert await wait_for(anext(iterator)) == "b"
    with pytest.raises(StopAsyncIteration):
        await wait_for(anext(iterator))
    # after the end: new iterators end at once, unsubscribe is a no-op
    assert [m async for m in sub] == []
    assert await sub.unsubscribe() is False
    assert sub.ended


async def test_iterator_queue_is_bounded(dispatcher: CallbackDispatcher) -> None:
    sub: ChannelSubscription[str] = ChannelSubscription(Owner(), "c", str, dispatcher, queue_size=3)
    iterator = sub.messages()
    for i in range(10):
        sub._deliver(str(i))
    sub._end()
    assert [m async for m in iterator] == ["8", "9"]  # room for 3: 2 items + the end marker
    assert iterator.dropped == 8


async def test_iterator_aclose_detaches(dispatcher: CallbackDispatcher) -> None:
    sub: ChannelSubscription[str] = ChannelSubscription(Owner(), "c", str, dispatcher)
    iterator = sub.messages()
    await iterator.aclose()
    sub._deliver("x")
    with pytest.raises(StopAsyncIteration):
        await anext(iterator)


async def test_async_callbacks_see_messages_in_order(dispatcher: CallbackDispatcher) -> None:
    sub: ChannelSubscription[str] = ChannelSubscription(Owner(), "c", str, dispatcher)
    got: list[str] = []

    async def slow(message: str) -> None:
        await asyncio.sleep(0)
        got.append(message)

    remove = sub.on_message(slow)
    for i in range(5):
        sub._deliver(str(i))
    remove()
    sub._deliver("after")
    await wait_for(dispatcher.drain())
    assert got == ["0", "1", "2", "3", "4"]


async def test_record_patch_flow(dispatcher: CallbackDispatcher) -> None:
    owner = Owner()
    sub: RecordSubscription[Doc] = RecordSubscription(
        owner, "doc:1", "patch", Doc.model_validate, dispatcher
    )
    changes: list[RecordChange[Doc]] = []
    sub.on_change(changes.append)
    values = aiter(sub)
    sub._apply_snapshot({"title": "a"}, 1)
    assert sub.value == Doc(title="a")
    assert sub.version == 1
    assert changes[-1].full
    outcome = sub._apply_push(
        {"recordId": "doc:1", "version": 2, "patch": [{"op": "add", "path": "/n", "value": 5}]}
    )
    assert outcome is Outcome.APPLIED
    assert sub.value == Doc(title="a", n=5)
    assert changes[-1].patch == [{"op": "add", "path": "/n", "value": 5}]
    assert changes[-1].raw == {"title": "a", "n": 5}
    assert await wait_for(anext(values)) == Doc(title="a")
    assert await wait_for(anext(values)) == Doc(title="a", n=5)
    # gap
    outcome = sub._apply_push({"recordId": "doc:1", "version": 9, "patch": []})
    assert outcome is Outcome.GAP
    assert sub.resyncing
    sub._apply_snapshot({"title": "z", "n": 9}, 9)
    assert not sub.resyncing
    assert changes[-1] == RecordChange(
        "doc:1", Doc(title="z", n=9), 9, None, {"title": "z", "n": 9}
    )
    assert await sub.update({"title": "w"}, "merge") is True
    assert await sub.update({"title": "v"}, expected_version=sub.version) is True
    assert owner.calls == [
        ("publish_record_update", ("doc:1", {"title": "w"}, "merge", None)),
        ("publish_record_update", ("doc:1", {"title": "v"}, "replace", 9)),
    ]


async def test_record_decode_failure_keeps_last_value(dispatcher: CallbackDispatcher) -> None:
    sub: RecordSubscription[Doc] = RecordSubscription(
        Owner(), "d", "full", Doc.model_validate, dispatcher
    )
    changes: list[RecordChange[Doc]] = []
    sub.on_change(changes.append)
    sub._apply_snapshot({"title": "a"}, 1)
    outcome = sub._apply_push({"recordId": "d", "version": 2, "full": {"title": 5}})
    assert outcome is Outcome.INVALID
    assert sub.value == Doc(title="a")
    assert sub.raw == {"title": "a"}
    assert sub.version == 1
    assert sub.decode_errors == 1
    assert len(changes) == 1
    sub._apply_push({"recordId": "d", "version": 3, "full": None})
    assert sub.value is None
    assert changes[-1].value is None


async def test_record_deleted(dispatcher: CallbackDispatcher) -> None:
    owner = Owner()
    sub: RecordSubscription[Any] = RecordSubscription(owner, "d", "full", lambda v: v, dispatcher)
    deleted: list[tuple[str, int]] = []
    sub.on_delete(lambda rid, version: deleted.append((rid, version)))
    changes = sub.changes()
    sub._apply_snapshot({"a": 1}, 4)
    sub._deleted(4)
    assert deleted == [("d", 4)]
    assert sub.deleted
    assert sub.ended
    assert [c.version async for c in changes] == [4]
    assert await sub.unsubscribe() is False
    assert owner.calls == []


async def test_every_record_consumer_starts_from_the_held_state(
    dispatcher: CallbackDispatcher,
) -> None:
    """Issue 10: on_change given at subscribe and changes() made after it see the same changes."""
    sub: RecordSubscription[Any] = RecordSubscription(Owner(), "d", "full", lambda v: v, dispatcher)
    at_subscribe: list[int] = []
    sub.on_change(lambda change: at_subscribe.append(change.version))  # before the answer
    sub._apply_snapshot({"n": 0}, 3)  # the subscribe response
    changes = sub.changes()  # what an application does once subscribe_record returned
    values = aiter(sub)
    later: list[tuple[int, bool]] = []
    sub.on_change(lambda change: later.append((change.version, change.full)))
    for version in range(4, 9):
        sub._apply_push({"recordId": "d", "version": version, "full": {"n": version}})
    sub._end()
    assert at_subscribe == [3, 4, 5, 6, 7, 8]  # 5 writes: 6 changes
    assert [c.version async for c in changes] == at_subscribe
    assert [v async for v in values] == [{"n": 0}, *({"n": v} for v in range(4, 9))]
    assert later == [(3, True), (4, True), (5, True), (6, True), (7, True), (8, True)]


async def test_absent_record_snapshot_is_a_change(dispatcher: CallbackDispatcher) -> None:
    sub: RecordSubscription[Any] = RecordSubscription(
        Owner(), "d", "patch", lambda v: v, dispatcher
    )
    changes: list[RecordChange[Any]] = []
    sub.on_change(changes.append)
    sub._apply_snapshot(None, 0)
    assert changes == [RecordChange("d", None, 0, None, None)]
    sub._apply_snapshot(None, 0)  # renewed after a reconnect: nothing new
    assert len(changes) == 1


async def test_renewed_snapshot_is_delivered_only_when_it_differs(
    dispatcher: CallbackDispatcher,
) -> None:
    sub: RecordSubscription[Any] = RecordSubscription(
        Owner(), "d", "patch", lambda v: v, dispatcher
    )
    changes: list[RecordChange[Any]] = []
    sub.on_change(changes.append)
    iterator = sub.changes()
    sub._apply_snapshot({"n": 1}, 1)
    sub._apply_push(
        {"recordId": "d", "version": 2, "patch": [{"op": "replace", "path": "/n", "value": 2}]}
    )
    sub._apply_snapshot({"n": 2}, 2)  # re-subscription after a reconnect: the held state
    assert [c.version for c in changes] == [1, 2]
    sub._apply_snapshot({"n": 5}, 5)  # written while disconnected
    # A server that lost its records numbers versions anew: a different state, delivered.
    sub._apply_snapshot({"fresh": True}, 1)
    sub._end()
    assert [(c.version, c.full) for c in changes] == [(1, True), (2, False), (5, True), (1, True)]
    assert [c.version async for c in iterator] == [1, 2, 5, 1]
    assert sub.raw == {"fresh": True}


async def test_record_async_context(dispatcher: CallbackDispatcher) -> None:
    owner = Owner()
    sub: RecordSubscription[Any] = RecordSubscription(owner, "d", "full", lambda v: v, dispatcher)
    async with sub as same:
        assert same is sub
    assert owner.calls == [("unsubscribe_record", "d")]


async def test_presence_subscription(dispatcher: CallbackDispatcher) -> None:
    owner = Owner()
    sub = PresenceSubscription(owner, "lobby", dispatcher)
    updates: list[PresenceUpdate] = []
    sub.on_update(updates.append)
    iterator = sub.updates()
    sub._reset(["a"], {"a": 1})
    assert sub.present == frozenset({"a"})
    assert updates == []  # the first snapshot is not an update
    sub._apply({"type": "join", "connectionId": "a", "roomName": "lobby"})
    sub._apply({"type": "join", "connectionId": "b", "roomName": "lobby"})
    assert [u.connection_id for u in updates] == ["b"]
    sub._reset(["b"], {}, notify=True)
    assert [(u.type, u.connection_id) for u in updates[1:]] == [("leave", "a")]
    assert (await wait_for(anext(iterator))).connection_id == "b"
    states = sub.states
    states["x"] = 1
    assert sub.states == {}
    await sub.unsubscribe()
    assert owner.calls == [("unsubscribe_presence", "lobby")]


async def test_room_handle(dispatcher: CallbackDispatcher) -> None:
    owner = Owner()
    room = RoomHandle(owner, "lobby", ["a"])
    async with room:
        pass
    assert owner.calls == [("leave_room", "lobby")]
    room.joined = False
    assert await room.leave() is False
    assert "lobby" in repr(room)

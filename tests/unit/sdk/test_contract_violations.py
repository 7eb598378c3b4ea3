"""Channel messages and record values that break the client's contract (issue 10 item 2).

They are dropped, counted in ``decode_errors`` and emitted to ``"error"`` listeners as a
``ContractViolationError``; the subscription keeps working and a record keeps its last valid state.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from mesh_sdk.client import MeshClient
from mesh_sdk.protocol.contract import ChannelSpec, ContractIndex, RecordSpec
from mesh_sdk.protocol.errors import ContractViolationError, ServerError, ValidationError
from mesh_sdk.subscriptions import RecordChange
from tests.support.timing import eventually, wait_for
from tests.unit.sdk.fake_server import FakeConnection, FakeRequest, FakeServer
from tests.unit.sdk.recorder import Recorder

Factory = Callable[..., MeshClient]

NOT_A_STRING = [{"path": "/title", "message": "Input should be a valid string"}]


class Msg(BaseModel):
    text: str


class Doc(BaseModel):
    title: str
    n: int = 0


class Loose(BaseModel):
    """A model of the caller's own, not the contract's."""

    text: int


CONTRACT = ContractIndex(
    name="test",
    channel_specs=[ChannelSpec("chat", re.compile(r"chat:.+"), "chat:{room}", Msg)],
    record_specs=[RecordSpec("doc", re.compile(r"doc:.+"), "doc:{id}", Doc)],
)


class RecordPeer:
    """Fake-server side of one record: answers subscribe with the current value and version."""

    def __init__(self, fake: FakeServer, value: Any, version: int) -> None:
        self.value = value
        self.version = version
        fake.handlers["mesh/subscribe-record"] = self.subscribe

    def subscribe(self, conn: FakeConnection, req: FakeRequest) -> Any:
        return {"success": True, "record": self.value, "version": self.version}


async def bound(fake: FakeServer, make_client: Factory) -> tuple[MeshClient, Recorder]:
    client = make_client(fake.url, contract=CONTRACT)
    recorder = Recorder(client)
    await wait_for(client.connect())
    return client, recorder


def violations(recorder: Recorder) -> list[ContractViolationError]:
    errors = [event[1] for event in recorder.events if event[0] == "error"]
    assert all(isinstance(error, ContractViolationError) for error in errors)
    return errors


async def message(conn: FakeConnection, channel: str, text: str) -> None:
    await conn.push("mesh/subscription-message", {"channel": channel, "message": text})


async def test_invalid_channel_messages_are_reported_and_skipped(
    fake: FakeServer, make_client: Factory
) -> None:
    fake.handlers["mesh/subscribe-channel"] = lambda conn, req: {
        "success": True,
        "history": ['{"text":"h2"}', '{"text":2}'],
    }
    client, recorder = await bound(fake, make_client)
    chan = await client.subscribe_channel("chat:1", history_limit=2)
    assert chan.history == [Msg(text="h2")]
    iterator = aiter(chan)
    conn = fake.connections[0]
    await message(conn, "chat:1", '{"text":5}')
    await message(conn, "chat:1", "not json")
    await message(conn, "chat:1", '{"text":"ok","unknown":1}')  # tolerant reader: not a violation
    assert await wait_for(anext(iterator)) == Msg(text="ok")
    await recorder.wait("error", 3)
    history, live, garbage = violations(recorder)
    assert (history.target, history.version) == ("chat:1", None)
    assert history.details == [{"path": "/text", "message": "Input should be a valid string"}]
    assert live.message == (
        "Invalid message for channel \"chat\" ('chat:1'): the server broke the contract"
    )
    assert garbage.details == [{"path": "", "message": "not valid JSON"}]
    assert isinstance(live, ServerError)
    assert not isinstance(live, ValidationError)
    assert chan.decode_errors == 3
    assert not chan.ended


async def test_the_contracts_model_reports_but_a_callers_own_does_not(
    fake: FakeServer, make_client: Factory
) -> None:
    fake.handlers["mesh/subscribe-channel"] = lambda conn, req: {"success": True}
    client, recorder = await bound(fake, make_client)
    facade_like = await client.subscribe_channel("chat:1", model=Msg)
    own = await client.subscribe_channel("chat:2", model=Loose)
    first, second = aiter(facade_like), aiter(own)
    conn = fake.connections[0]
    await message(conn, "chat:1", '{"text":5}')
    await message(conn, "chat:2", '{"text":"x"}')
    await message(conn, "chat:1", '{"text":"ok"}')
    await message(conn, "chat:2", '{"text":7}')
    assert await wait_for(anext(first)) == Msg(text="ok")
    assert await wait_for(anext(second)) == Loose(text=7)
    await recorder.wait("error")
    assert [error.target for error in violations(recorder)] == ["chat:1"]
    assert (facade_like.decode_errors, own.decode_errors) == (1, 1)


async def test_invalid_full_value_keeps_the_last_valid_state(
    fake: FakeServer, make_client: Factory
) -> None:
    RecordPeer(fake, {"title": "a"}, 1)
    client, recorder = await bound(fake, make_client)
    changes: list[RecordChange[Doc]] = []
    rec = await client.subscribe_record("doc:1", on_change=changes.append)
    conn = fake.connections[0]
    await conn.push("mesh/record-update", {"recordId": "doc:1", "full": {"title": 5}, "version": 2})
    await recorder.wait("error")
    (violation,) = violations(recorder)
    assert (violation.target, violation.version) == ("doc:1", 2)
    assert violation.details == NOT_A_STRING
    assert violation.message == (
        "Invalid value for record \"doc\" ('doc:1' v2): the server broke the contract"
    )
    assert (rec.value, rec.raw, rec.version, rec.decode_errors) == (
        Doc(title="a"),
        {"title": "a"},
        1,
        1,
    )
    await conn.push(
        "mesh/record-update", {"recordId": "doc:1", "full": {"title": "c"}, "version": 3}
    )
    await eventually(lambda: rec.version == 3)
    assert rec.value == Doc(title="c")
    await eventually(lambda: len(changes) == 2)
    assert [(c.version, c.value) for c in changes] == [(1, Doc(title="a")), (3, Doc(title="c"))]


async def test_invalid_patched_value_is_dropped_and_the_next_patch_resyncs(
    fake: FakeServer, make_client: Factory
) -> None:
    peer = RecordPeer(fake, {"title": "a"}, 1)
    client, recorder = await bound(fake, make_client)
    changes: list[RecordChange[Doc]] = []
    rec = await client.subscribe_record("doc:1", mode="patch", on_change=changes.append)
    conn = fake.connections[0]
    bad = [{"op": "replace", "path": "/title", "value": 5}]
    await conn.push("mesh/record-update", {"recordId": "doc:1", "patch": bad, "version": 2})
    await recorder.wait("error")
    assert (rec.value, rec.raw, rec.version, rec.resyncing) == (
        Doc(title="a"),
        {"title": "a"},
        1,
        False,
    )
    # The resync answers with a still invalid value: reported, state kept, not stuck resyncing.
    peer.value, peer.version = {"title": 6}, 3
    await conn.push("mesh/record-update", {"recordId": "doc:1", "patch": [], "version": 3})
    await fake.wait_request("mesh/subscribe-record", 2)
    await recorder.wait("error", 2)
    assert (rec.version, rec.resyncing) == (1, False)
    # The server's value is valid again: the next patch resyncs onto it.
    peer.value, peer.version = {"title": "d", "n": 4}, 4
    await conn.push("mesh/record-update", {"recordId": "doc:1", "patch": [], "version": 4})
    await eventually(lambda: rec.version == 4)
    assert rec.value == Doc(title="d", n=4)
    assert [(e.target, e.version) for e in violations(recorder)] == [("doc:1", 2), ("doc:1", 3)]
    assert [(c.version, c.full) for c in changes] == [(1, True), (4, True)]
    assert rec.decode_errors == 2


async def test_invalid_first_snapshot_delivers_nothing_until_a_valid_value(
    fake: FakeServer, make_client: Factory
) -> None:
    RecordPeer(fake, {"title": 5}, 7)
    client, recorder = await bound(fake, make_client)
    changes: list[RecordChange[Doc]] = []
    rec = await client.subscribe_record("doc:1", on_change=changes.append)
    await recorder.wait("error")
    assert (violations(recorder)[0].version, rec.version, rec.value, changes) == (7, 0, None, [])
    conn = fake.connections[0]
    await conn.push(
        "mesh/record-update", {"recordId": "doc:1", "full": {"title": "b"}, "version": 8}
    )
    await eventually(lambda: rec.version == 8)
    await eventually(lambda: len(changes) == 1)
    assert (changes[0].value, changes[0].full) == (Doc(title="b"), True)

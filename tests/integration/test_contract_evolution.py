"""Contract evolution end to end: ``mesh/contract-info``, facade checks, tolerant readers."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from examples.chat.generated import CONTRACT, FINGERPRINT, ChatClient, models
from examples.chat.generated.facade import record_id_room_topic
from mesh_sdk import MeshClient
from mesh_sdk.errors import ContractMismatchError, ContractMismatchWarning
from mesh_sdk.protocol.contract import CommandSpec, ContractIndex
from mesh_sdk.protocol.errors import ContractViolationError, ValidationError
from mesh_server import MeshServer
from tests.support.raw_client import RawClient, running_server
from tests.support.timing import eventually, wait_for
from tests.unit.sdk.recorder import Recorder

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("transport")]

OTHER = ContractIndex(
    name="Chat",
    fingerprint="sha256:" + "1" * 64,
    command_specs=[
        CommandSpec("chat/edit", models.SendMessageRequest, models.SendMessageResponse),
    ],
)
"""A redeployed server's contract: ``chat/send`` was renamed to ``chat/edit``."""

SENT_AT = "2026-01-02T03:04:05Z"

AT_LEAST_1 = "Input should be greater than or equal to 1"
ONE_CHARACTER = "String should have at least 1 character"


def _reply(ctx: Any) -> models.SendMessageResponse:
    return models.SendMessageResponse(id=1, sentAt=SENT_AT)


def _client(url: str) -> MeshClient:
    return MeshClient(url, reconnect_base_delay=0.02, reconnect_max_delay=0.1)


async def test_the_server_announces_its_contract() -> None:
    async with (
        running_server(contract=CONTRACT, allow_unimplemented=True) as server,
        RawClient.open(server.url) as raw,
    ):
        # Unknown request members are ignored, as for every built-in (protocol.md §7).
        frame = await raw.request(1, "mesh/contract-info", {"since": 1})
    assert frame["payload"] == {
        "name": "Chat",
        "fingerprint": FINGERPRINT,
        "commands": ["chat/send"],
    }


async def test_a_server_without_contract_announces_nulls() -> None:
    async with running_server() as server, RawClient.open(server.url) as raw:
        frame = await raw.request(1, "mesh/contract-info")
    assert frame["payload"] == {"name": None, "fingerprint": None, "commands": []}


async def test_matching_server_is_checked_on_connect_and_every_reconnect() -> None:
    asked: list[str] = []
    async with running_server(contract=CONTRACT, allow_unimplemented=True) as server:
        server.expose_command("chat/send", _reply)
        server.use_middleware(lambda ctx: asked.append(ctx.command))
        mesh = _client(server.url)
        recorder = Recorder(mesh)
        async with ChatClient(mesh) as app:
            assert asked == ["mesh/contract-info"]
            assert app.contract_mismatch is None
            server.connections.local()[mesh.connection_id].close(4000, "test")  # type: ignore[index]
            await recorder.wait("reconnect")
            response = await app.commands.send_message(
                models.SendMessageRequest(room="a", text="b")
            )
            assert response.id == 1
            await wait_for(app.close())
    assert asked.count("mesh/contract-info") == 2
    assert app.contract_mismatch is None


async def test_a_different_server_contract_warns_with_what_differs() -> None:
    async with running_server(contract=OTHER, allow_unimplemented=True) as server:
        app = ChatClient(_client(server.url))
        expected = "only in the client: chat/send; commands only on the server: chat/edit"
        with pytest.warns(ContractMismatchWarning, match=expected):
            await wait_for(app.connect())
        assert app.client.connected
        await app.close()


async def test_a_server_without_contract_warns() -> None:
    async with running_server() as server:
        app = ChatClient(_client(server.url))
        with pytest.warns(ContractMismatchWarning, match="no application contract"):
            await wait_for(app.connect())
        await app.close()


async def test_strict_mode_refuses_a_redeployed_server_with_another_contract() -> None:
    first = MeshServer(port=0, contract=CONTRACT, close_timeout=2.0, allow_unimplemented=True)
    await first.start()
    port = first.port
    mesh = _client(first.url)
    recorder = Recorder(mesh)
    app = ChatClient(mesh, contract_check="strict")
    await wait_for(app.connect())
    assert app.contract_error is None
    await first.close()
    second = MeshServer(port=port, contract=OTHER, close_timeout=2.0, allow_unimplemented=True)
    await second.start()
    try:
        await recorder.wait("close")
        assert mesh.closed
        assert app.contract_error is not None
        assert app.contract_error.mismatch.only_server == ("chat/edit",)
        # A fresh strict connect to that server fails at once.
        again = ChatClient(_client(second.url), contract_check="strict")
        with pytest.raises(ContractMismatchError, match="only in the client: chat/send"):
            await wait_for(again.connect())
        assert again.client.connected is False
    finally:
        await app.close()
        await second.close()


async def test_old_client_models_read_what_a_newer_server_added() -> None:
    # The server was built from a newer contract (no contract here: it sends what it likes)
    # that added optional members everywhere; the client was generated from the older one.
    extra = {"editedAt": SENT_AT}
    async with running_server() as server:
        server.expose_command("chat/send", lambda ctx: {"id": 3, "sentAt": SENT_AT, **extra})
        server.expose_channel(re.compile(r"chat:.+"))
        server.expose_writable_record(re.compile(r"topic:.+"))
        topic = record_id_room_topic(room="lobby")
        await server.publish_record_update(topic, {"topic": "t", "updatedBy": "u", **extra})
        mesh = MeshClient(server.url, contract=CONTRACT)
        async with ChatClient(mesh, contract_check="off") as app:
            sent = await app.commands.send_message(models.SendMessageRequest(room="a", text="b"))
            assert sent == models.SendMessageResponse(id=3, sentAt=SENT_AT)
            # Through the untyped client with the contract bound: the same tolerant read.
            assert await mesh.command("chat/send", {"room": "a", "text": "b"}) == sent

            received: asyncio.Queue[models.ChatMessage] = asyncio.Queue()
            chat = await app.channels.chat(room="lobby", on_message=received.put_nowait)
            message = {"id": 1, "from": "ann", "text": "hi", "sentAt": SENT_AT}
            await server.publish_to_channel("chat:lobby", {**message, **extra})
            assert await wait_for(received.get()) == models.ChatMessage.model_validate(message)
            assert chat.decode_errors == 0

            record = await app.records.room_topic(room="lobby")
            assert record.value == models.RoomTopic(topic="t", updatedBy="u")
            assert record.raw == {"topic": "t", "updatedBy": "u", **extra}
            # Writing is strict: the older model cannot send a member it does not know.
            with pytest.raises(ValidationError, match="Invalid value"):
                await mesh.publish_record_update(topic, {"topic": "t", "updatedBy": "u", **extra})


async def test_strict_readers_reject_what_a_newer_server_added() -> None:
    strict = ContractIndex(
        name=CONTRACT.name,
        fingerprint=CONTRACT.fingerprint,
        strict_readers=True,
        command_specs=CONTRACT.command_specs,
        channel_specs=CONTRACT.channel_specs,
        record_specs=CONTRACT.record_specs,
    )
    async with running_server() as server:
        server.expose_command("chat/send", lambda ctx: {"id": 3, "sentAt": SENT_AT, "new": 1})
        server.expose_channel(re.compile(r"chat:.+"))
        mesh = MeshClient(server.url, contract=strict)
        async with mesh:
            with pytest.raises(ContractViolationError, match="Invalid response") as info:
                await mesh.command("chat/send", {"room": "a", "text": "b"})
            assert info.value.details == [
                {
                    "path": "",
                    "message": "Additional properties are not allowed ('new' was unexpected)",
                }
            ]
            chat = await mesh.subscribe_channel("chat:lobby")
            messages = chat.messages()
            message = {"id": 1, "from": "ann", "text": "hi", "sentAt": SENT_AT}
            await server.publish_to_channel("chat:lobby", {**message, "new": 1})
            await server.publish_to_channel("chat:lobby", message)
            assert await wait_for(anext(messages)) == models.ChatMessage.model_validate(message)
            assert chat.decode_errors == 1


async def test_what_breaks_the_contract_is_reported_and_the_subscriptions_go_on() -> None:
    # The server has no contract, so nothing stops its code publishing what the client's forbids.
    async with running_server() as server:
        server.expose_channel(re.compile(r"chat:.+"))
        server.expose_writable_record(re.compile(r"topic:.+"))
        patched, replaced = record_id_room_topic(room="lobby"), record_id_room_topic(room="hall")
        await server.publish_record_update(patched, {"topic": "t", "updatedBy": "ann"})
        await server.publish_record_update(replaced, {"topic": "t", "updatedBy": "ann"})
        mesh = MeshClient(server.url)
        recorder = Recorder(mesh)
        async with ChatClient(mesh, contract_check="off") as app:
            chat = await app.channels.chat(room="lobby")
            messages = chat.messages()
            lobby = await app.records.room_topic(room="lobby", mode="patch")
            hall = await app.records.room_topic(room="hall")
            message = {"id": 1, "from": "ann", "text": "hi", "sentAt": SENT_AT}
            await server.publish_to_channel("chat:lobby", {**message, "id": 0})
            await server.publish_to_channel("chat:lobby", message)
            assert await wait_for(anext(messages)) == models.ChatMessage.model_validate(message)
            await recorder.wait("error")
            await server.publish_record_update(patched, {"updatedBy": ""}, "merge")
            await recorder.wait("error", 2)
            await server.publish_record_update(replaced, {"topic": 5, "updatedBy": "bob"})
            await recorder.wait("error", 3)
            errors = [event[1] for event in recorder.events if event[0] == "error"]
            assert all(isinstance(error, ContractViolationError) for error in errors)
            assert [(e.target, e.version, e.details) for e in errors] == [
                ("chat:lobby", None, [{"path": "/id", "message": AT_LEAST_1}]),
                (patched, 2, [{"path": "/updatedBy", "message": ONE_CHARACTER}]),
                (replaced, 2, [{"path": "/topic", "message": "Input should be a valid string"}]),
            ]
            assert (lobby.version, hall.version) == (1, 1)
            assert lobby.value == hall.value == models.RoomTopic(topic="t", updatedBy="ann")
            # A valid value again: patch mode resyncs (the patch follows v2), full mode takes it.
            await server.publish_record_update(patched, {"updatedBy": "bob"}, "merge")
            await server.publish_record_update(replaced, {"topic": "u", "updatedBy": "bob"})
            await eventually(lambda: lobby.version == 3 and hall.version == 3)
            assert lobby.value == models.RoomTopic(topic="t", updatedBy="bob")
            assert hall.value == models.RoomTopic(topic="u", updatedBy="bob")
            assert recorder.count("error") == 3
            assert [chat.ended, lobby.ended, hall.ended] == [False, False, False]

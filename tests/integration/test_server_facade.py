"""The generated server facade (examples/chat) with the SDK over loopback: typed handlers, families.

Also: validation at both ends by default (local refusal vs. the server's rejection vs. a server
that breaks the contract), and every server payload API taking generated models.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from examples.chat.generated import CONTRACT, ChatClient, models
from examples.chat.generated.names import (
    CHANNEL_CHAT,
    COMMAND_SEND_MESSAGE,
    RECORD_ROOM_TOPIC,
    channel_name_chat,
    record_id_room_topic,
)
from examples.chat.generated.server import ChatServer
from mesh_sdk import (
    ConflictError,
    ContractViolationError,
    LocalValidationError,
    MeshClient,
    ValidationError,
)
from mesh_sdk.protocol.contract import ContractIndex, PushSpec
from mesh_server import Context, MeshServer
from tests.support.raw_client import running_server
from tests.support.timing import wait_for

pytestmark = pytest.mark.integration

SENT_AT = "2026-01-02T03:04:05Z"


def _server(**options: Any) -> MeshServer:
    return MeshServer(port=0, close_timeout=2.0, **options)


def _message(text: str, id: int = 1) -> models.ChatMessage:
    return models.ChatMessage.model_validate(
        {"id": id, "from": "srv", "text": text, "sentAt": SENT_AT}
    )


def test_wire_names_are_constants_of_the_contract() -> None:
    assert COMMAND_SEND_MESSAGE == "chat/send"
    assert CONTRACT.command(COMMAND_SEND_MESSAGE) is not None
    assert (CHANNEL_CHAT, RECORD_ROOM_TOPIC) == ("chat:{room}", "topic:{room}")
    assert channel_name_chat(room="a") == "chat:a"
    assert record_id_room_topic(room="a") == "topic:a"
    with pytest.raises(ValueError, match="does not match"):
        channel_name_chat(room="Not Valid")


async def test_typed_handler_families_and_client_facade_end_to_end() -> None:
    seen: list[tuple[Any, Any]] = []
    middleware_calls: list[str] = []
    server = _server()
    app = ChatServer(server)
    assert server.contract is CONTRACT

    def handler(
        ctx: Context[models.SendMessageRequest], request: models.SendMessageRequest
    ) -> models.SendMessageResponse:
        seen.append((ctx.payload, request))
        return models.SendMessageResponse(id=len(request.text), sentAt=SENT_AT)

    assert (
        app.commands.send_message(
            handler, middlewares=[lambda ctx: middleware_calls.append(ctx.command)]
        )
        is handler
    )
    assert app.unimplemented == []
    app.channels.chat.expose()
    app.records.room_topic.expose(guard=lambda connection, record_id: True)

    async with server:
        mesh = MeshClient(server.url)
        await mesh.connect()
        try:
            chat = ChatClient(mesh)
            response = await chat.commands.send_message(
                models.SendMessageRequest(room="lobby", text="hello")
            )
            assert response == models.SendMessageResponse(id=5, sentAt=SENT_AT)
            ((payload, request),) = seen
            assert payload is request
            assert isinstance(request, models.SendMessageRequest)
            assert middleware_calls == ["chat/send"]

            sub = await chat.channels.chat(room="lobby")
            messages = sub.messages()
            await app.channels.chat.publish(room="lobby", message=_message("hi"), history=5)
            assert await wait_for(anext(messages)) == _message("hi")
            with pytest.raises(ValidationError):
                await app.channels.chat.publish(
                    room="lobby", message=models.ChatMessage.model_construct(text="")
                )

            assert await app.records.room_topic.get(room="lobby") == (None, 0)
            await app.records.room_topic.publish(
                room="lobby", value=models.RoomTopic(topic="t", updatedBy="srv")
            )
            value, version = await app.records.room_topic.get(room="lobby")
            assert (value, version) == (models.RoomTopic(topic="t", updatedBy="srv"), 1)
            # x-mesh-writable: the client may write through its facade.
            topic = await chat.records.room_topic(room="lobby")
            await topic.update(models.RoomTopic(topic="u", updatedBy="cli"))
            assert (await app.records.room_topic.get(room="lobby"))[1] == 2
            await app.records.room_topic.delete(room="lobby")
            assert await app.records.room_topic.get(room="lobby") == (None, 0)
        finally:
            await mesh.close()


async def test_invalid_requests_are_refused_locally_with_pointer_details() -> None:
    calls: list[str] = []
    server = _server()
    app = ChatServer(server)

    @app.commands.send_message
    def handler(
        ctx: Context[models.SendMessageRequest], request: models.SendMessageRequest
    ) -> models.SendMessageResponse:
        calls.append(request.text)
        return models.SendMessageResponse(id=1, sentAt=SENT_AT)

    app.records.room_topic.expose()
    async with server:
        mesh = MeshClient(server.url)  # no contract given: the facade binds it
        await mesh.connect()
        try:
            chat = ChatClient(mesh)
            request = models.SendMessageRequest(room="lobby", text="ok")
            request.room = "Not Valid"
            with pytest.raises(LocalValidationError) as info:
                await chat.commands.send_message(request)
            assert isinstance(info.value, ValidationError)
            assert info.value.code == "EVALIDATION"
            assert "refused locally" in info.value.message
            assert info.value.details == [
                {"path": "/room", "message": "String should match pattern '^[a-z0-9-]{1,32}$'"}
            ]
            assert calls == []  # never sent
            topic = await chat.records.room_topic(room="lobby")
            with pytest.raises(LocalValidationError):
                await topic.update({"topic": "no author"})
            # A merge is checked by the server only, against the merged value.
            with pytest.raises(ValidationError) as server_side:
                await topic.update({"topic": 5}, "merge")
            assert not isinstance(server_side.value, LocalValidationError)
            assert [d["path"] for d in server_side.value.details] == ["/topic", ""]
        finally:
            await mesh.close()


async def test_a_server_breaking_the_contract_is_reported_distinctly() -> None:
    errors: list[BaseException] = []
    pushes: list[Any] = []
    push_contract = ContractIndex("Pushy", push_specs=[PushSpec("note", models.RoomTopic)])
    async with running_server(allow_unimplemented=True) as server:
        # No contract on the server: it answers whatever the handler returns.
        server.expose_command("chat/send", lambda ctx: {"id": "one", "sentAt": SENT_AT})
        mesh = MeshClient(server.url)
        pushy = MeshClient(server.url, contract=push_contract)
        await mesh.connect()
        await pushy.connect()
        try:
            chat = ChatClient(mesh, contract_check="off")  # the server has no contract
            with pytest.raises(ContractViolationError, match="broke the contract") as info:
                await chat.commands.send_message(models.SendMessageRequest(room="a", text="b"))
            assert not isinstance(info.value, ValidationError)
            assert info.value.details == [
                {"path": "/id", "message": "Input should be a valid integer"}
            ]

            reported = asyncio.Event()

            def on_error(error: BaseException) -> None:
                errors.append(error)
                reported.set()

            pushy.on("error", on_error)
            pushy.on_push("note", pushes.append)
            assert pushy.connection_id is not None
            await server.send(pushy.connection_id, "note", {"topic": 1})
            await wait_for(reported.wait())
            assert pushes == []
            (error,) = errors
            assert isinstance(error, ContractViolationError)
            assert error.details == [
                {"path": "/topic", "message": "Input should be a valid string"},
                {"path": "", "message": "'updatedBy' is a required property"},
            ]
        finally:
            await pushy.close()
            await mesh.close()


async def test_server_payload_apis_take_generated_models() -> None:
    topic = models.RoomTopic(topic="t", updatedBy="srv")
    wire = {"topic": "t", "updatedBy": "srv"}
    async with running_server() as server:
        server.expose_writable_record("free:1")
        mesh = MeshClient(server.url)
        await mesh.connect()
        try:
            got: list[Any] = []
            arrived = asyncio.Event()

            def on_note(payload: Any) -> None:
                got.append(payload)
                if len(got) == 3:
                    arrived.set()

            mesh.on_push("note", on_note)
            assert mesh.connection_id is not None
            await server.add_to_room("r", mesh.connection_id)
            assert await server.send(mesh.connection_id, "note", topic)
            await server.broadcast("note", topic)
            await server.broadcast_room("r", "note", _message("m"))
            await wait_for(arrived.wait())
            assert got == [wire, wire, {"from": "srv", "id": 1, "text": "m", "sentAt": SENT_AT}]

            await server.publish_record_update("free:1", topic)
            assert await server.get_record("free:1") == (wire, 1)
            await server.rooms.set_metadata("r", topic)
            await server.rooms.update_metadata("r", models.RoomTopic(topic="u", updatedBy="x"))
            assert await server.rooms.get_metadata("r") == {"topic": "u", "updatedBy": "x"}
            await server.connections.set_metadata(mesh.connection_id, topic)
            assert await server.connections.get_metadata(mesh.connection_id) == wire
        finally:
            await mesh.close()


async def test_start_refuses_unimplemented_contract_commands() -> None:
    server = MeshServer(port=0)
    app = ChatServer(server)
    with pytest.raises(RuntimeError, match="without a handler: chat/send") as info:
        await server.start()
    assert "allow_unimplemented=True" in str(info.value)
    assert not server.started
    lenient = _server(contract=CONTRACT, allow_unimplemented=True)
    async with lenient:
        assert lenient.started
    assert app.unimplemented == ["chat/send"]


async def test_binding_checks_the_contract_and_the_commands() -> None:
    other = ContractIndex("Other")
    with pytest.raises(ValueError, match='bound to contract "Other", not "Chat"'):
        ChatServer(MeshServer(contract=other))
    stray = MeshServer()
    stray.expose_command("not-in-chat", lambda ctx: None)
    with pytest.raises(ValueError, match='not defined by contract "Chat": not-in-chat'):
        ChatServer(stray)
    early = MeshServer()
    early.expose_command("chat/send", lambda ctx: ctx.payload)
    ChatServer(early)  # commands registered before binding are validated from then on
    assert early.unimplemented_commands() == []
    async with running_server() as started:
        with pytest.raises(RuntimeError, match="before start"):
            ChatServer(started)
    client = MeshClient("ws://127.0.0.1:1", contract=other)
    with pytest.raises(ValueError, match='bound to contract "Other", not "Chat"'):
        ChatClient(client)


async def test_typed_compare_and_set_and_atomic_update() -> None:
    server = _server(allow_unimplemented=True)
    app = ChatServer(server)
    topics = app.records.room_topic
    seen: list[models.RoomTopic | None] = []

    def retitle(current: models.RoomTopic | None) -> models.RoomTopic:
        seen.append(current)
        count = int(current.topic) if current is not None else 0
        return models.RoomTopic(topic=str(count + 1), updatedBy="srv")

    async with server:
        assert await topics.update(room="lobby", fn=retitle) == (
            models.RoomTopic(topic="1", updatedBy="srv"),
            1,
        )
        value, version = await topics.update(room="lobby", fn=retitle)
        assert (value.topic, version) == ("2", 2)
        assert seen == [None, models.RoomTopic(topic="1", updatedBy="srv")]

        async def invalid(current: models.RoomTopic | None) -> models.RoomTopic:
            return models.RoomTopic.model_construct(topic="t", updatedBy="")

        with pytest.raises(ValidationError):
            await topics.update(room="lobby", fn=invalid)
        fresh = models.RoomTopic(topic="cas", updatedBy="srv")
        await topics.publish(room="lobby", value=fresh, expected_version=2)
        with pytest.raises(ConflictError) as info:
            await topics.publish(room="lobby", value=fresh, expected_version=2)
        assert info.value.details == {"expected": 2, "actual": 3}
        assert await topics.get(room="lobby") == (fresh, 3)

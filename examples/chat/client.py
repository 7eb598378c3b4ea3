"""A client tour of the chat example through the generated typed facade (:class:`ChatClient`).

Commands take and return models, channel messages and record values arrive as models, and the
facade binds the contract to the client it wraps: a request that violates the contract is
refused before it is sent (:class:`~mesh_sdk.LocalValidationError`, an ``EVALIDATION`` error with
JSON-pointer details), and a merged record value the server rejects comes back as
``EVALIDATION`` with pointers into the record value.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

from examples.chat.generated import ChatClient
from examples.chat.generated.models import RoomTopic, SendMessageRequest
from mesh_sdk import LocalValidationError, MeshClient, MeshError

ROOM = "lobby"
TIMEOUT = 5.0
"""Seconds the tour waits for a push that should arrive promptly."""

T = TypeVar("T")


async def _next(iterator: AsyncIterator[T]) -> T:
    return await asyncio.wait_for(anext(iterator), TIMEOUT)


async def run_tour(url: str) -> list[str]:
    """Run the tour against the chat server at ``url``; return the lines it printed."""
    lines: list[str] = []
    say = lines.append
    alice_mesh = MeshClient(url)
    bob_mesh = MeshClient(url)
    try:
        await alice_mesh.connect()
        await bob_mesh.connect()
        alice = ChatClient(alice_mesh)
        bob = ChatClient(bob_mesh)
        say(f"alice connected as {alice_mesh.connection_id}")
        say(f"bob   connected as {bob_mesh.connection_id}")

        say("-- typed command and channel (chat/send -> chat:{room})")
        first = await alice.commands.send_message(
            SendMessageRequest(room=ROOM, text="anyone here?")
        )
        say(f"alice sent #{first.id} at {first.sentAt}")
        chat = await bob.channels.chat(room=ROOM, history_limit=10)
        say(f"bob subscribed to {chat.channel}; history: {[m.text for m in chat.history]}")
        messages = chat.messages()
        sent = await alice.commands.send_message(SendMessageRequest(room=ROOM, text="hi bob"))
        say(f"alice sent #{sent.id}: {type(sent).__name__}(id={sent.id}, sentAt={sent.sentAt!r})")
        message = await _next(messages)
        say(
            f"bob received {type(message).__name__} #{message.id} "
            f"from {message.from_}: {message.text!r}"
        )

        say("-- writable record in patch mode (topic:{room})")
        record = await alice.records.room_topic(room=ROOM, mode="patch")
        changes = record.changes()
        change = await _next(changes)  # every consumer starts from the state held
        state = f"v{change.version} = {change.value}"
        say(f"alice subscribed to {record.record_id} (patch mode): {state}")
        topic = await bob.records.room_topic(room=ROOM)
        await topic.update(RoomTopic(topic="Mesh", updatedBy="bob"))
        change = await _next(changes)
        say(f"alice: v{change.version} = {change.value!r}")
        await topic.update(RoomTopic(topic="Mesh, typed", updatedBy="bob"))
        change = await _next(changes)
        say(f"alice: v{change.version} = {change.value!r} (patch {change.patch})")

        say("-- validation")
        request = SendMessageRequest(room=ROOM, text="ok")
        request.text = "x" * 281  # models do not validate assignments; the contract still does
        try:
            await bob.commands.send_message(request)
        except LocalValidationError as exc:
            say(f"local: chat/send -> {exc.code}: {exc.message}")
            for problem in exc.details or []:
                say(f"  {problem['path']}: {problem['message']}")
        try:
            # Partial merge values are checked by the server, against the merged value.
            await topic.update({"updatedBy": ""}, "merge")
        except MeshError as exc:
            say(f"server: merge into {topic.record_id} -> {exc.code}: {exc.message}")
            for problem in exc.details or []:
                say(f"  {problem['path']}: {problem['message']}")
    finally:
        await bob_mesh.close()
        await alice_mesh.close()
    return lines

"""The chat server, written against the generated typed server facade (:class:`ChatServer`).

``ChatServer(server)`` binds the contract to the server: ``chat/send`` requests are validated
before the handler runs (an invalid payload is answered with ``EVALIDATION`` and JSON-pointer
details), the handler gets the typed :class:`SendMessageRequest` and must return a
:class:`SendMessageResponse` (mypy checks both), messages published on ``chat:{room}`` and values
written to ``topic:{room}`` are validated, and the server refuses to start while a contract
command has no handler.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from examples.chat.generated.models import ChatMessage, SendMessageRequest, SendMessageResponse
from examples.chat.generated.server import ChatServer
from mesh_server import Context, MeshServer

HISTORY = 50
"""Messages each chat channel keeps for late subscribers."""


def now() -> str:
    """Return the current UTC time as an RFC 3339 ``date-time``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_server(port: int = 0) -> MeshServer:
    """Return the chat server (not started) on ``port`` (0: a free port)."""
    server = MeshServer(port=port)
    app = ChatServer(server)
    ids = itertools.count(1)

    @app.commands.send_message
    async def send_message(
        ctx: Context[SendMessageRequest], request: SendMessageRequest
    ) -> SendMessageResponse:
        sent_at = now()
        message = ChatMessage.model_validate(
            {"id": next(ids), "from": ctx.connection.id, "text": request.text, "sentAt": sent_at}
        )
        await app.channels.chat.publish(room=request.room, message=message, history=HISTORY)
        return SendMessageResponse(id=message.id, sentAt=sent_at)

    # Expose exactly what the contract declares (its anchored patterns; topic:{room} is
    # writable because the contract says x-mesh-writable).
    app.channels.chat.expose()
    app.records.room_topic.expose()
    return server

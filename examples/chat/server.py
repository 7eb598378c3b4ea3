"""The chat server: every command, channel message and record value is checked by the contract.

``MeshServer(contract=CONTRACT)`` validates ``chat/send`` requests before the handler runs (an
invalid payload is answered with ``EVALIDATION`` and JSON-pointer details), hands the handler the
typed :class:`SendMessageRequest`, validates its response, and validates messages published on
``chat:{room}`` and values written to ``topic:{room}``.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime

from examples.chat.generated import CONTRACT
from examples.chat.generated.facade import channel_name_chat
from examples.chat.generated.models import ChatMessage, SendMessageRequest, SendMessageResponse
from mesh_server import Context, MeshServer

HISTORY = 50
"""Messages each chat channel keeps for late subscribers."""


def _channel_pattern(template: str) -> re.Pattern[str]:
    return next(spec.pattern for spec in CONTRACT.channels if spec.template == template)


def _record_pattern(template: str) -> re.Pattern[str]:
    return next(spec.pattern for spec in CONTRACT.records if spec.template == template)


def now() -> str:
    """Return the current UTC time as an RFC 3339 ``date-time``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_server(port: int = 0) -> MeshServer:
    """Return the chat server (not started) on ``port`` (0: a free port)."""
    server = MeshServer(port=port, contract=CONTRACT)
    ids = itertools.count(1)

    @server.command("chat/send")
    async def send_message(ctx: Context) -> SendMessageResponse:
        request: SendMessageRequest = ctx.payload  # already validated and typed by the contract
        sent_at = now()
        message = ChatMessage.model_validate(
            {"id": next(ids), "from": ctx.connection.id, "text": request.text, "sentAt": sent_at}
        )
        await server.publish_to_channel(channel_name_chat(room=request.room), message, HISTORY)
        return SendMessageResponse(id=message.id, sentAt=sent_at)

    # Expose exactly what the contract declares (its anchored, full-match patterns).
    server.expose_channel(_channel_pattern("chat:{room}"))
    server.expose_writable_record(_record_pattern("topic:{room}"))
    return server

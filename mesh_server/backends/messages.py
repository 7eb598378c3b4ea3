r"""Internal pub/sub channel names and message layouts shared by all backends and the server.

Every backend publishes byte-compatible messages, so the server decodes them in one place.

Channels (``ns`` = namespace, default ``mesh:``):

* ``{ns}inbox:{instance_id}`` — messages for one instance: :func:`encode_envelope` with header
  ``{"t":"send","c":connection_id}`` and an encoded frame as body, or a control header such as
  ``{"t":"room","op":"join"|"leave","r":room,"c":connection_id}`` with an empty body.
* ``{ns}broadcast`` — ``{"t":"bc","r":room|null,"x":[excluded ids]}`` + frame body, resolved by
  each instance against its local connections / local room index; ``{"t":"clear","r":room}``
  tells every instance that a room was cleared.
* ``{ns}presence:{room}`` — one JSON object per event, exactly the ``mesh/presence-update``
  push payload (protocol.md §8): ``{"type","connectionId","roomName","timestamp"[,"state"]}``.
* ``{ns}record:{record_id}`` — ``{"t":"update","recordId","version","value","patch"}`` or
  ``{"t":"deleted","recordId","version"}`` (JSON).

An *envelope* is ``<compact JSON header>\n<body bytes>``; compact JSON never holds a raw newline.
"""

from __future__ import annotations

from typing import Any, Final

from mesh_sdk.protocol.codec import dumps, loads

__all__ = [
    "BROADCAST",
    "decode_envelope",
    "encode_envelope",
    "inbox_channel",
    "presence_channel",
    "record_channel",
]

BROADCAST: Final = "broadcast"
"""Suffix of the broadcast channel (prefix it with the namespace)."""


def inbox_channel(namespace: str, instance_id: str) -> str:
    """Return the pub/sub channel of one instance's inbox."""
    return f"{namespace}inbox:{instance_id}"


def presence_channel(namespace: str, room: str) -> str:
    """Return the pub/sub channel carrying a room's presence events."""
    return f"{namespace}presence:{room}"


def record_channel(namespace: str, record_id: str) -> str:
    """Return the pub/sub channel carrying a record's updates and deletion."""
    return f"{namespace}record:{record_id}"


def encode_envelope(header: dict[str, Any], body: bytes = b"") -> bytes:
    """Join a JSON header and a raw body into one pub/sub message."""
    return dumps(header) + b"\n" + body


def decode_envelope(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a pub/sub message into its JSON header and raw body.

    Raises:
        ValueError: The message is not an envelope (no newline or the header is not an object).
    """
    head, sep, body = data.partition(b"\n")
    if not sep:
        raise ValueError("envelope without header separator")
    header = loads(head)
    if not isinstance(header, dict):
        raise ValueError("envelope header is not an object")
    return header, body

"""Sans-I/O envelope codec (PROTOCOL §2, §3, §4, §8).

Turns frames (``bytes`` or ``str``) into typed events and events into compact JSON bytes. It never
touches a socket: the asyncio adapters feed it frames and write what it returns. Both directions
are here because the server and the SDK share one definition of the envelope.

Decoding is strict JSON (RFC 8259): ``NaN``/``Infinity`` and invalid UTF-8 make a frame malformed.
Decoding never raises: every outcome, including garbage, is a value of the documented event types.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from mesh_sdk.protocol.errors import MeshError, error_from_wire

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "LIVENESS_COMMANDS",
    "ClientFrame",
    "ErrorResponse",
    "Liveness",
    "Malformed",
    "Push",
    "Request",
    "Response",
    "ServerFrame",
    "decode_client_frame",
    "decode_server_frame",
    "dumps",
    "encode_error_response",
    "encode_push",
    "encode_request",
    "encode_response",
    "loads",
]

DEFAULT_MAX_MESSAGE_SIZE: Final = 1024 * 1024
"""Default inbound frame limit of the server (PROTOCOL §2, §15)."""

LIVENESS_COMMANDS: Final = frozenset({"pong", "latency:response"})
"""Client frames that are never answered (PROTOCOL §3.2 step 2)."""

_MISSING: Final = object()


class JSONDecodeError(ValueError):
    """Raised by :func:`loads` for anything that is not strict JSON."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def loads(data: bytes | str) -> Any:
    """Parse strict JSON from bytes or text.

    orjson handles the common case; integers beyond 64 bits (valid JSON that orjson refuses) fall
    back to the standard library, still rejecting ``NaN``/``Infinity``.

    Raises:
        JSONDecodeError: The input is not valid UTF-8 or not strict JSON.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        try:
            text = (
                data.decode("utf-8") if isinstance(data, bytes | bytearray | memoryview) else data
            )
            if isinstance(data, str):
                text.encode("utf-8")  # lone surrogates are not valid UTF-8 text
            value = json.loads(text, parse_constant=_reject_constant)
            # orjson refuses escaped lone surrogates ("\ud800"); so do we: not valid UTF-8.
            json.dumps(value, ensure_ascii=False).encode("utf-8")
            return value
        except (ValueError, UnicodeError, RecursionError):
            raise JSONDecodeError(str(exc)) from None


def dumps(value: Any) -> bytes:
    """Serialize ``value`` as compact JSON bytes.

    NaN and ±Infinity are never emitted (PROTOCOL §2): like JavaScript's ``JSON.stringify``,
    they become ``null``.

    Raises:
        TypeError: ``value`` is not representable as strict JSON.
    """
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        # Integers beyond 64 bits are valid JSON orjson will not write; NaN must never be sent.
        try:
            return json.dumps(
                value, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode("utf-8")
        except ValueError as exc:
            raise TypeError(str(exc)) from None


# --------------------------------------------------------------------------------------------
# Client → server frames (decoded by the server)


@dataclass(frozen=True, slots=True)
class Request:
    """A request to answer exactly once (PROTOCOL §3.2 step 4).

    Attributes:
        id: The client's id, echoed verbatim (any JSON value, ``None`` included).
        command: The command name, or ``None`` if absent or not a string (→ ``ENOTFOUND``).
        payload: The payload; an absent payload is ``{}`` (§3.4).
        has_command: Whether the frame had a ``command`` member (echoed in the response).
        raw_command: The ``command`` member as sent, echoed in the response when present.
    """

    id: Any
    command: str | None
    payload: Any
    has_command: bool = True
    raw_command: Any = None


@dataclass(frozen=True, slots=True)
class Liveness:
    """A ``pong`` or ``latency:response`` frame: never answered (§3.2 step 2, §6)."""

    command: Literal["pong", "latency:response"]
    payload: Any


@dataclass(frozen=True, slots=True)
class Malformed:
    """A frame to ignore and count (§3.2, §15).

    Attributes:
        reason: Why it is malformed (for logs only).
        too_large: The frame exceeded the size limit (close 1009 rather than count it).
    """

    reason: str
    too_large: bool = False


ClientFrame = Request | Liveness | Malformed


def decode_client_frame(
    data: bytes | bytearray | memoryview | str, max_size: int | None = DEFAULT_MAX_MESSAGE_SIZE
) -> ClientFrame:
    """Classify one inbound frame as PROTOCOL §3.2 prescribes. Never raises.

    Args:
        data: The frame as received (text frames as ``str``, binary frames as bytes).
        max_size: Limit in bytes (UTF-8 length for text); ``None`` for no limit.

    Returns:
        A :class:`Request`, a :class:`Liveness` frame, or :class:`Malformed`.
    """
    if max_size is not None:
        size = len(data) if not isinstance(data, str) else _utf8_len(data, max_size)
        if size > max_size:
            return Malformed(f"frame of {size} bytes exceeds {max_size}", too_large=True)
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    try:
        obj = loads(data)
    except JSONDecodeError as exc:
        return Malformed(f"invalid JSON: {exc}")
    if not isinstance(obj, dict):
        return Malformed(f"not a JSON object but {type(obj).__name__}")
    command = obj.get("command", _MISSING)
    if command in LIVENESS_COMMANDS:
        return Liveness(command, obj.get("payload"))
    if "id" not in obj:
        return Malformed("request without id")
    payload = obj.get("payload", _MISSING)
    if payload is _MISSING:
        payload = {}
    if command is _MISSING:
        return Request(obj["id"], None, payload, has_command=False)
    return Request(
        obj["id"],
        command if isinstance(command, str) else None,
        payload,
        has_command=True,
        raw_command=command,
    )


def _utf8_len(text: str, limit: int) -> int:
    # A str's UTF-8 size is at most 4 bytes per code point: skip the encode when clearly small.
    if len(text) * 4 <= limit:
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


# --------------------------------------------------------------------------------------------
# Server → client frames (encoded by the server)


def encode_response(request: Request, payload: Any) -> bytes:
    """Encode a success response to ``request`` (§3.5): ``payload`` is always present."""
    if request.has_command:
        return dumps({"id": request.id, "command": request.raw_command, "payload": payload})
    return dumps({"id": request.id, "payload": payload})


def encode_error_response(request: Request, error: MeshError) -> bytes:
    """Encode an error response (§4): the reference payload object plus a top-level ``error``."""
    frame: dict[str, Any] = {"id": request.id}
    if request.has_command:
        frame["command"] = request.raw_command
    frame["payload"] = error.to_payload()
    frame["error"] = error.to_wire()
    return dumps(frame)


def encode_push(command: str, payload: Any) -> bytes:
    """Encode a push (§3.6): ``{"command","payload"}``, never ``id`` or ``error``."""
    return dumps({"command": command, "payload": payload})


def encode_request(id: Any, command: str, payload: Any) -> bytes:
    """Encode a client request or liveness answer (used by the SDK)."""
    return dumps({"id": id, "command": command, "payload": payload})


# --------------------------------------------------------------------------------------------
# Server → client frames (decoded by the SDK)


@dataclass(frozen=True, slots=True)
class Response:
    """A success response to the request with ``id``."""

    id: Any
    command: str | None
    payload: Any


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """An error response: it has a top-level ``error`` (§4); ``error`` is the typed exception."""

    id: Any
    command: str | None
    payload: Any
    error: MeshError


@dataclass(frozen=True, slots=True)
class Push:
    """A server push (no ``id``): ``mesh/*`` events, ``ping``, ``latency``, application sends."""

    command: str
    payload: Any


ServerFrame = Response | ErrorResponse | Push | Malformed


def decode_server_frame(
    data: bytes | bytearray | memoryview | str, max_size: int | None = None
) -> ServerFrame:
    """Classify one frame received by a client. Never raises.

    Args:
        data: The frame as received.
        max_size: Optional limit in bytes (the SDK accepts up to 16 MiB by default).

    Returns:
        A :class:`Response`, :class:`ErrorResponse`, :class:`Push` or :class:`Malformed`.
    """
    if max_size is not None and len(data) > max_size:
        return Malformed(f"frame of {len(data)} bytes exceeds {max_size}", too_large=True)
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    try:
        obj = loads(data)
    except JSONDecodeError as exc:
        return Malformed(f"invalid JSON: {exc}")
    if not isinstance(obj, dict):
        return Malformed(f"not a JSON object but {type(obj).__name__}")
    command = obj.get("command")
    command = command if isinstance(command, str) else None
    payload = obj.get("payload")
    if "id" not in obj:
        if command is None:
            return Malformed("push without a command")
        return Push(command, payload)
    if "error" in obj:
        return ErrorResponse(obj["id"], command, payload, error_from_wire(obj["error"]))
    return Response(obj["id"], command, payload)

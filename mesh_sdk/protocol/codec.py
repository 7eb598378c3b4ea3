"""Sans-I/O envelope codec (protocol.md §2, §3, §4, §8).

Turns frames (``bytes`` or ``str``) into typed events and events into compact JSON bytes. It never
touches a socket: the asyncio adapters feed it frames and write what it returns. Both directions
are here because the server and the SDK share one definition of the envelope.

Decoding is strict JSON (RFC 8259): ``NaN``/``Infinity`` and invalid UTF-8 make a frame malformed.
Decoding never raises: every outcome, including garbage, is a value of the documented event types.

Hostile input is bounded here, once, before anything recurses over a decoded value (PROTOCOL
§15): a request whose ``id`` is nested deeper than ``max_id_depth`` is malformed, one whose
``payload`` or ``command`` is nested deeper than ``max_json_depth`` is :class:`Rejected` with
``ETOOLARGE``. Depth is measured without recursion. Nesting levels count containers: a scalar
has depth 0, ``[]`` and ``{"a": 1}`` depth 1, ``[[1]]`` depth 2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal

from mesh_sdk.protocol.errors import MeshError, TooLargeError, error_from_wire
from mesh_sdk.protocol.strictjson import (
    JSONDecodeError,
    dumps,
    loads,
    may_nest_deeper,
    member_text,
    nested_deeper_than,
)

__all__ = [
    "DEFAULT_MAX_ID_DEPTH",
    "DEFAULT_MAX_JSON_DEPTH",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_SDK_MAX_JSON_DEPTH",
    "LIVENESS_COMMANDS",
    "MAX_SUPPORTED_JSON_DEPTH",
    "ClientFrame",
    "ErrorResponse",
    "Liveness",
    "Malformed",
    "Push",
    "Rejected",
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
"""Default inbound frame limit of the server (protocol.md §2, §15)."""

DEFAULT_MAX_JSON_DEPTH: Final = 64
"""Default nesting limit of a request's ``payload`` and ``command`` (protocol.md §15)."""

DEFAULT_MAX_ID_DEPTH: Final = 32
"""Default nesting limit of a request ``id`` (protocol.md §15)."""

DEFAULT_SDK_MAX_JSON_DEPTH: Final = 128
"""Default nesting limit of the members of a frame the SDK receives.

Above the server's request limit: pushes wrap client values in a few levels of their own.
"""

MAX_SUPPORTED_JSON_DEPTH: Final = 128
"""Largest configurable nesting limit: deeper values would come near Python's recursion limit in
the code that compares, merges, diffs and encodes them."""

LIVENESS_COMMANDS: Final = frozenset({"pong", "latency:response"})
"""Client frames that are never answered (protocol.md §3.2 step 2)."""

_MISSING: Final = object()
# Ids that would not encode back to the client's text (orjson reads integers beyond 64 bits as
# floats; floats lose their spelling): they keep it (§3.3).
_RAW_ID_TYPES: Final = frozenset({float, list, dict})


# --------------------------------------------------------------------------------------------
# Client → server frames (decoded by the server)


@dataclass(frozen=True, slots=True)
class Request:
    """A request to answer exactly once (protocol.md §3.2 step 4).

    Attributes:
        id: The client's id (any JSON value, ``None`` included); integers are exact.
        command: The command name, or ``None`` if absent or not a string (→ ``ENOTFOUND``).
        payload: The payload; an absent payload is ``{}`` (§3.4).
        has_command: Whether the frame had a ``command`` member (echoed in the response).
        raw_command: The ``command`` member as sent, echoed in the response when present.
        raw_id: The id's JSON text as sent when it is a float or a container (also integers
            beyond 64 bits, which orjson reads as floats): responses echo this text, so every
            id round-trips exactly (§3.3), ``1e400`` included. ``None`` for strings, integers,
            booleans and ``null``, which encode back to what was sent.
    """

    id: Any
    command: str | None
    payload: Any
    has_command: bool = True
    raw_command: Any = None
    raw_id: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A request to answer with ``error`` at once, without running it (protocol.md §15).

    Its ``payload`` or ``command`` is nested deeper than the limit; ``request`` keeps the id (and
    the command when that is not what was too deep) and an empty payload.
    """

    request: Request
    error: MeshError


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


ClientFrame = Request | Rejected | Liveness | Malformed


def decode_client_frame(
    data: bytes | bytearray | memoryview | str,
    max_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
    *,
    max_depth: int = DEFAULT_MAX_JSON_DEPTH,
    max_id_depth: int = DEFAULT_MAX_ID_DEPTH,
) -> ClientFrame:
    """Classify one inbound frame as protocol.md §3.2 prescribes. Never raises.

    Args:
        data: The frame as received (text frames as ``str``, binary frames as bytes).
        max_size: Limit in bytes (UTF-8 length for text); ``None`` for no limit.
        max_depth: Nesting limit of ``payload`` and ``command`` (→ :class:`Rejected`).
        max_id_depth: Nesting limit of ``id`` (→ :class:`Malformed`: the id is unusable).

    Returns:
        A :class:`Request`, a :class:`Rejected` request, a :class:`Liveness` frame, or
        :class:`Malformed`.
    """
    if max_size is not None:
        size = len(data) if not isinstance(data, str) else _utf8_len(data, max_size)
        if size > max_size:
            return Malformed(f"frame of {size} bytes exceeds {max_size}", too_large=True)
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    obj = _decode_object(data)
    if isinstance(obj, Malformed):
        return obj
    command = obj.get("command", _MISSING)
    # §3.2 step 2. Compared, never hashed: a command may be any JSON value, lists included.
    if command == "pong" or command == "latency:response":
        return Liveness(command, obj.get("payload"))
    if "id" not in obj:
        return Malformed("request without id")
    request_id = obj["id"]
    payload = obj.get("payload", _MISSING)
    if payload is _MISSING:
        payload = {}
    limit = max_id_depth if max_id_depth < max_depth else max_depth
    if type(request_id) in _RAW_ID_TYPES or (
        len(data) > 2 * limit + 2 and may_nest_deeper(data, limit)
    ):
        return _unusual(data, request_id, command, payload, max_depth, max_id_depth)
    if command is _MISSING:
        return Request(request_id, None, payload, False)
    return Request(request_id, command if type(command) is str else None, payload, True, command)


def _unusual(
    data: bytes | str,
    request_id: Any,
    command: Any,
    payload: Any,
    max_depth: int,
    max_id_depth: int,
) -> ClientFrame:
    # The slow path of decode_client_frame: a frame that may be nested too deeply, or an id
    # that must keep its text.
    too_deep: str | None = None
    if nested_deeper_than(request_id, max_id_depth):
        return Malformed(f"id nested deeper than {max_id_depth} levels")
    if command is not _MISSING and nested_deeper_than(command, max_depth):
        too_deep, command, payload = "command", _MISSING, {}
    elif nested_deeper_than(payload, max_depth):
        too_deep, payload = "payload", {}
    raw_id: str | None = None
    if type(request_id) in _RAW_ID_TYPES:
        raw_id = member_text(data if isinstance(data, str) else data.decode("utf-8"), "id")
        if raw_id is not None:
            request_id = json.loads(raw_id)  # exact integers; bounded depth, checked above
    if command is _MISSING:
        request = Request(request_id, None, payload, False, None, raw_id)
    else:
        real = command if type(command) is str else None
        request = Request(request_id, real, payload, True, command, raw_id)
    if too_deep is None:
        return request
    error = TooLargeError(
        f"Request {too_deep} nested deeper than {max_depth} levels", details={"limit": max_depth}
    )
    return Rejected(request, error)


def _decode_object(data: bytes | str) -> dict[str, Any] | Malformed:
    """Parse a frame that must be one JSON object (both directions, protocol.md §3)."""
    try:
        obj = loads(data)
    except JSONDecodeError as exc:
        return Malformed(f"invalid JSON: {exc}")
    if type(obj) is not dict:
        return Malformed(f"not a JSON object but {type(obj).__name__}")
    return obj


def _utf8_len(text: str, limit: int) -> int:
    # A str's UTF-8 size is at most 4 bytes per code point: skip the encode when clearly small.
    if len(text) * 4 <= limit:
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


# --------------------------------------------------------------------------------------------
# Server → client frames (encoded by the server)


def encode_response(request: Request, payload: Any) -> bytes:
    """Encode a success response to ``request`` (§3.5): ``payload`` is always present."""
    if request.raw_id is None:
        if request.has_command:
            return dumps({"id": request.id, "command": request.raw_command, "payload": payload})
        return dumps({"id": request.id, "payload": payload})
    if request.has_command:
        return _with_raw_id(request.raw_id, {"command": request.raw_command, "payload": payload})
    return _with_raw_id(request.raw_id, {"payload": payload})


def encode_error_response(request: Request, error: MeshError) -> bytes:
    """Encode an error response (§4): the reference payload object plus a top-level ``error``."""
    frame: dict[str, Any] = {} if request.raw_id is not None else {"id": request.id}
    if request.has_command:
        frame["command"] = request.raw_command
    frame["payload"] = error.to_payload()
    frame["error"] = error.to_wire()
    if request.raw_id is not None:
        return _with_raw_id(request.raw_id, frame)
    return dumps(frame)


def _with_raw_id(raw_id: str, members: dict[str, Any]) -> bytes:
    # §3.3: the id exactly as sent. ``members`` is never empty (``payload`` is always there), so
    # its encoding is "{…}": splice the id's text in front of its first member.
    return b'{"id":' + raw_id.encode("utf-8") + b"," + dumps(members)[1:]


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
    data: bytes | bytearray | memoryview | str,
    max_size: int | None = None,
    *,
    max_depth: int = DEFAULT_SDK_MAX_JSON_DEPTH,
) -> ServerFrame:
    """Classify one frame received by a client. Never raises.

    Args:
        data: The frame as received.
        max_size: Optional limit in bytes (the SDK accepts up to 16 MiB by default).
        max_depth: Nesting limit of ``id``, ``payload`` and ``error``: a response beyond it
            becomes an :class:`ErrorResponse` with ``ETOOLARGE`` (its id, when usable, still
            settles the request), any other frame :class:`Malformed`.

    Returns:
        A :class:`Response`, :class:`ErrorResponse`, :class:`Push` or :class:`Malformed`.
    """
    if max_size is not None and len(data) > max_size:
        return Malformed(f"frame of {len(data)} bytes exceeds {max_size}", too_large=True)
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    obj = _decode_object(data)
    if isinstance(obj, Malformed):
        return obj
    command = obj.get("command")
    command = command if type(command) is str else None
    payload = obj.get("payload")
    has_id = "id" in obj
    if may_nest_deeper(data, max_depth):
        if has_id and nested_deeper_than(obj["id"], max_depth):
            return Malformed(f"id nested deeper than {max_depth} levels")
        if nested_deeper_than(payload, max_depth) or nested_deeper_than(
            obj.get("error"), max_depth
        ):
            if not has_id:
                return Malformed(f"push nested deeper than {max_depth} levels")
            error = TooLargeError(
                f"Response nested deeper than {max_depth} levels", details={"limit": max_depth}
            )
            return ErrorResponse(obj["id"], command, None, error)
    if not has_id:
        if command is None:
            return Malformed("push without a command")
        return Push(command, payload)
    if "error" in obj:
        return ErrorResponse(obj["id"], command, payload, error_from_wire(obj["error"]))
    return Response(obj["id"], command, payload)

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from mesh_sdk.protocol.codec import (
    ErrorResponse,
    Liveness,
    Malformed,
    Push,
    Rejected,
    Request,
    Response,
    decode_client_frame,
    decode_server_frame,
    dumps,
    encode_error_response,
    encode_push,
    encode_request,
    encode_response,
)
from mesh_sdk.protocol.errors import CommandNotFoundError, TooLargeError, ValidationError


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (b'{"id":1,"command":"echo","payload":2}', Request(1, "echo", 2, True, "echo")),
        ('{"id":null,"command":"echo","payload":1}', Request(None, "echo", 1, True, "echo")),
        (b'{"id":"abc","command":"echo"}', Request("abc", "echo", {}, True, "echo")),
        (b'{"id":3,"payload":1}', Request(3, None, 1, False, None)),
        (b'{"id":3,"command":7}', Request(3, None, {}, True, 7)),
        (b'{"id":3,"command":"x","payload":null}', Request(3, "x", None, True, "x")),
        (b'{"id":1,"id":2,"command":"x"}', Request(2, "x", {}, True, "x")),
    ],
)
def test_requests(frame: bytes | str, expected: Request) -> None:
    assert decode_client_frame(frame) == expected


@pytest.mark.parametrize(
    "frame",
    [
        b'{"id":0,"command":"pong","payload":{}}',
        b'{"command":"pong"}',
        b'{"id":1,"command":"latency:response","payload":{}}',
    ],
)
def test_liveness_frames_are_never_requests(frame: bytes) -> None:
    assert isinstance(decode_client_frame(frame), Liveness)


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"not json",
        b"[1,2]",
        b"42",
        b'"s"',
        b"null",
        b'{"id":1,"command":"x","payload":NaN}',
        b'{"id":1,"payload":Infinity}',
        b'{"id":1,"payload":-Infinity}',
        b'{"id":1,"payload":"\xff"}',
        b'{"command":"echo","payload":"no id here"}',
        b'{"id":1,"payload":"\\ud800"}',
    ],
)
def test_malformed(frame: bytes) -> None:
    result = decode_client_frame(frame)
    assert isinstance(result, Malformed)
    assert not result.too_large
    assert result.reason


def test_lone_surrogate_in_text_frame_is_malformed() -> None:
    assert isinstance(decode_client_frame('{"id":1,"payload":"\ud800"}'), Malformed)


@pytest.mark.parametrize(
    "id_text",
    [
        str(10**30),
        str(2**64),
        str(-(2**63) - 1),
        "1e400",
        "-1E+400",
        "1.50",
        "0.1e1",
        '{"a": [1.0, 2e0]}',
        '[10000000000000000000000000000000, "x"]',
    ],
)
def test_ids_round_trip_verbatim(id_text: str) -> None:
    # Issue 8 item 5: ids that orjson would turn into (other) floats keep their exact text.
    frame = f'{{"payload": [1], "id" : {id_text} , "command":"echo"}}'.encode()
    request = decode_client_frame(frame)
    assert isinstance(request, Request)
    assert request.raw_id == id_text
    for encoded in (
        encode_response(request, {"n": 1}),
        encode_error_response(request, CommandNotFoundError.for_command("echo")),
        encode_response(Request(request.id, None, {}, False, None, id_text), 2),
    ):
        assert encoded.startswith(b'{"id":' + id_text.encode() + b",")
        assert json.loads(encoded)["id"] == json.loads(id_text)


def test_big_integer_ids_are_exact() -> None:
    request = decode_client_frame(f'{{"id":{2**80},"command":"x"}}'.encode())
    assert request == Request(2**80, "x", {}, True, "x", str(2**80))
    assert type(request.id) is int  # type: ignore[union-attr]
    infinite = decode_client_frame(b'{"id":1e400,"command":"x"}')
    assert isinstance(infinite, Request)
    assert infinite.id == float("inf")


@pytest.mark.parametrize("id_value", [1, -(2**63), 2**64 - 1, "s", None, True])
def test_ids_that_encode_back_keep_no_text(id_value: Any) -> None:
    request = decode_client_frame(orjson.dumps({"id": id_value, "command": "x"}))
    assert request == Request(id_value, "x", {}, True, "x")


def test_duplicate_ids_echo_the_last_one() -> None:
    request = decode_client_frame(b'{"id":1.5,"command":"x","id":2.5e0}')
    assert isinstance(request, Request)
    assert (request.id, request.raw_id) == (2.5, "2.5e0")


@pytest.mark.parametrize(
    ("frame", "raw_command"),
    [
        (b'{"id":1,"command":{}}', {}),
        (b'{"id":1,"command":["echo"],"payload":1}', ["echo"]),
        (b'{"id":1,"command":{"pong":1}}', {"pong": 1}),
        (b'{"id":1,"command":["pong"]}', ["pong"]),
    ],
)
def test_unhashable_commands_are_requests_for_enotfound(frame: bytes, raw_command: Any) -> None:
    # Issue 8 item 1: `command in LIVENESS_COMMANDS` raised TypeError for unhashable commands.
    request = decode_client_frame(frame)
    assert isinstance(request, Request)
    assert request.command is None
    assert request.raw_command == raw_command


def test_unhashable_command_without_id_is_malformed() -> None:
    assert decode_client_frame(b'{"command":{"x":1}}') == Malformed("request without id")


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def test_nesting_limits() -> None:
    def decode(**members: Any) -> Any:
        return decode_client_frame(orjson.dumps(members), max_depth=5, max_id_depth=3)

    assert decode(id=nested(3), command="x", payload=nested(5)) == Request(
        nested(3), "x", nested(5), True, "x", orjson.dumps(nested(3)).decode()
    )
    assert decode(id=nested(4), command="x") == Malformed("id nested deeper than 3 levels")
    too_deep = decode(id=1, command="x", payload=nested(6))
    assert too_deep == Rejected(
        Request(1, "x", {}, True, "x"),
        TooLargeError("Request payload nested deeper than 5 levels", details={"limit": 5}),
    )
    # A command too deep to echo is left out of the answer.
    deep_command = decode(id="a", command=nested(6))
    assert isinstance(deep_command, Rejected)
    assert deep_command.request == Request("a", None, {}, False, None)
    assert deep_command.error.details == {"limit": 5}
    # Unknown members are never used, so never measured.
    assert isinstance(decode(id=1, command="x", other=nested(50)), Request)
    # Liveness frames are never answered, whatever their payload.
    assert isinstance(decode(command="pong", payload=nested(50)), Liveness)


def test_nesting_limits_of_text_frames_and_brackets_in_strings() -> None:
    text = '{"id":1,"command":"x","payload":' + json.dumps(nested(70)) + "}"
    assert isinstance(decode_client_frame(text), Rejected)
    brackets = '{"id":1,"command":"x","payload":"' + "[" * 200 + '"}'
    assert decode_client_frame(brackets) == Request(1, "x", "[" * 200, True, "x")


def test_nesting_beyond_the_parsers_is_malformed() -> None:
    deep = b'{"id":1,"command":"x","payload":' + b"[" * 2000 + b"]" * 2000 + b"}"
    result = decode_client_frame(deep, max_size=None)
    assert isinstance(result, Malformed)
    assert "nested deeper than 256 levels" in result.reason
    # orjson parses up to 1024 levels: such a request still gets its ETOOLARGE answer.
    parsed = b'{"id":1e400,"command":"x","payload":' + b"[" * 200 + b"]" * 200 + b"}"
    rejected = decode_client_frame(parsed)
    assert isinstance(rejected, Rejected)
    assert rejected.request.raw_id == "1e400"


def test_size_limit() -> None:
    frame = b'{"id":1,"command":"x","payload":"' + b"a" * 100 + b'"}'
    assert decode_client_frame(frame, max_size=len(frame)) == Request(1, "x", "a" * 100, True, "x")
    too_big = decode_client_frame(frame, max_size=len(frame) - 1)
    assert isinstance(too_big, Malformed)
    assert too_big.too_large
    text = '{"id":1,"command":"x","payload":"' + "é" * 100 + '"}'
    assert isinstance(decode_client_frame(text, max_size=len(text)), Malformed)
    assert isinstance(decode_client_frame(text, max_size=len(text.encode())), Request)
    assert isinstance(decode_client_frame(bytearray(frame), max_size=None), Request)


def test_dumps_rejects_nan_and_is_compact() -> None:
    assert dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()
    assert dumps([float("nan"), float("inf")]) == b"[null,null]"
    assert dumps(2**70) == str(2**70).encode()
    with pytest.raises(TypeError):
        dumps({"a": object()})


def test_encode_response_echoes_id_and_command() -> None:
    req = Request({"x": [1]}, "echo", {}, True, "echo")
    assert orjson.loads(encode_response(req, None)) == {
        "id": {"x": [1]},
        "command": "echo",
        "payload": None,
    }
    no_cmd = Request(1, None, {}, False, None)
    assert orjson.loads(encode_response(no_cmd, 5)) == {"id": 1, "payload": 5}


def test_encode_error_response_has_payload_and_top_level_error() -> None:
    req = Request(7, "no-such-command", {"x": 1}, True, "no-such-command")
    frame = orjson.loads(
        encode_error_response(req, CommandNotFoundError.for_command("no-such-command"))
    )
    expected = {
        "error": 'Command "no-such-command" not found',
        "code": "ENOTFOUND",
        "name": "CommandError",
    }
    assert frame == {"id": 7, "command": "no-such-command", "payload": expected, "error": expected}
    err = ValidationError.for_command("c", [{"path": "/a", "message": "m"}])
    frame = orjson.loads(encode_error_response(Request(1, None, {}, False, None), err))
    assert "command" not in frame
    assert frame["error"]["details"] == [{"path": "/a", "message": "m"}]
    assert "details" not in frame["payload"]


def test_push_and_request_encoding() -> None:
    assert orjson.loads(encode_push("ping", {})) == {"command": "ping", "payload": {}}
    assert orjson.loads(encode_request(3, "pong", {})) == {
        "id": 3,
        "command": "pong",
        "payload": {},
    }


def test_server_frames() -> None:
    assert decode_server_frame(b'{"command":"mesh/assign-id","payload":"conn-1"}') == Push(
        "mesh/assign-id", "conn-1"
    )
    assert decode_server_frame(b'{"id":1,"command":"echo","payload":{"error":"x"}}') == Response(
        1, "echo", {"error": "x"}
    )
    err = decode_server_frame(
        b'{"id":1,"command":"c","payload":{},"error":{"error":"m","code":"EFORBIDDEN","name":"ForbiddenError"}}'
    )
    assert isinstance(err, ErrorResponse)
    assert err.error.code == "EFORBIDDEN"
    for bad in (b"[]", b"{", b'{"payload":1}'):
        assert isinstance(decode_server_frame(bad), Malformed)
    assert isinstance(decode_server_frame(b'{"command":"x"}' * 2, max_size=5), Malformed)
    assert decode_server_frame(bytearray(b'{"id":1,"command":5}')) == Response(1, None, None)


def test_server_frame_nesting_limit() -> None:
    deep = nested(6)
    response = decode_server_frame(orjson.dumps({"id": 3, "payload": deep}), max_depth=5)
    assert isinstance(response, ErrorResponse)
    assert (response.id, response.payload, response.error.code) == (3, None, "ETOOLARGE")
    assert response.error.details == {"limit": 5}
    error = orjson.dumps({"id": 3, "command": "c", "payload": {}, "error": deep})
    assert isinstance(decode_server_frame(error, max_depth=5), ErrorResponse)
    push = decode_server_frame(orjson.dumps({"command": "p", "payload": deep}), max_depth=5)
    assert push == Malformed("push nested deeper than 5 levels")
    bad_id = decode_server_frame(orjson.dumps({"id": deep, "payload": 1}), max_depth=5)
    assert bad_id == Malformed("id nested deeper than 5 levels")
    assert decode_server_frame(orjson.dumps({"id": 1, "payload": nested(5)}), max_depth=5) == (
        Response(1, None, nested(5))
    )
    # Default: deep enough for every push wrapping a client value the server accepted.
    push = orjson.dumps({"command": "mesh/record-update", "payload": {"full": nested(64)}})
    assert isinstance(decode_server_frame(push), Push)

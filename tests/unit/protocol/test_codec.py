from __future__ import annotations

import orjson
import pytest

from mesh_sdk.protocol.codec import (
    ErrorResponse,
    Liveness,
    Malformed,
    Push,
    Request,
    Response,
    decode_client_frame,
    decode_server_frame,
    dumps,
    encode_error_response,
    encode_push,
    encode_request,
    encode_response,
    loads,
)
from mesh_sdk.protocol.errors import CommandNotFoundError, ValidationError


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


def test_big_integers_are_valid_json() -> None:
    big = 2**80
    assert decode_client_frame(f'{{"id":{big},"command":"x"}}'.encode()) == Request(
        big, "x", {}, True, "x"
    )
    assert loads(dumps(big)) == big


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

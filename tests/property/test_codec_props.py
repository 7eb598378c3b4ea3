"""Property tests of the sans-I/O codec: garbage never raises; encode→decode round-trips."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

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
    encode_error_response,
    encode_push,
    encode_request,
    encode_response,
)
from mesh_sdk.protocol.errors import MeshError

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
commands = st.text(min_size=1, max_size=30).filter(lambda c: c not in {"pong", "latency:response"})


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_to_documented_outcomes(data: bytes) -> None:
    assert isinstance(decode_client_frame(data), Request | Liveness | Malformed)
    assert isinstance(decode_server_frame(data), Response | ErrorResponse | Push | Malformed)


@settings(max_examples=200)
@given(st.text(max_size=200))
def test_arbitrary_text_decodes_to_documented_outcomes(text: str) -> None:
    assert isinstance(decode_client_frame(text), Request | Liveness | Malformed)


@given(json_values)
def test_arbitrary_json_documents_never_raise(value: Any) -> None:
    data = orjson.dumps(value)
    assert isinstance(decode_client_frame(data), Request | Liveness | Malformed)


@given(json_values, commands, json_values)
def test_request_round_trip(id_: Any, command: str, payload: Any) -> None:
    frame = encode_request(id_, command, payload)
    decoded = decode_client_frame(frame)
    assert isinstance(decoded, Request)
    assert dataclasses.replace(decoded, raw_id=None) == Request(
        id_, command, payload, True, command
    )
    # Ids that would not encode back as sent keep their text, so every answer echoes it exactly.
    keeps_text = isinstance(id_, float | list | dict)
    assert (decoded.raw_id is not None) is keeps_text
    assert orjson.loads(encode_response(decoded, None))["id"] == orjson.loads(frame)["id"]
    if keeps_text:
        assert encode_response(decoded, None).startswith(b'{"id":' + orjson.dumps(id_) + b",")


@given(st.integers(0, 300), st.integers(0, 300), st.sampled_from(["[", "{"]))
def test_any_nesting_decodes_to_documented_outcomes(id_depth: int, depth: int, open_: str) -> None:
    def nest(levels: int) -> str:
        if open_ == "[":
            return "[" * levels + "1" + "]" * levels
        return '{"a":' * levels + "1" + "}" * levels

    frame = f'{{"id":{nest(id_depth)},"command":"x","payload":{nest(depth)}}}'
    decoded = decode_client_frame(frame, max_size=None)
    if id_depth > 32:
        assert isinstance(decoded, Malformed)
    elif depth > 64:
        assert isinstance(decoded, Rejected)
        assert decoded.error.code == "ETOOLARGE"
    else:
        assert isinstance(decoded, Request)
    assert isinstance(decode_server_frame(frame), Response | ErrorResponse | Malformed)


@given(json_values, commands, json_values)
def test_response_round_trip(id_: Any, command: str, payload: Any) -> None:
    req = Request(id_, command, {}, True, command)
    assert decode_server_frame(encode_response(req, payload)) == Response(id_, command, payload)


@given(
    json_values,
    commands,
    st.text(max_size=20),
    st.from_regex(r"E[A-Z0-9_]{2,31}", fullmatch=True),
    st.text(min_size=1, max_size=10),
    json_values,
)
def test_error_response_round_trip(
    id_: Any, command: str, message: str, code: str, name: str, details: Any
) -> None:
    err = MeshError(message, code=code, name=name, details=details)
    decoded = decode_server_frame(
        encode_error_response(Request(id_, command, {}, True, command), err)
    )
    assert isinstance(decoded, ErrorResponse)
    assert (decoded.id, decoded.command, decoded.payload) == (id_, command, err.to_payload())
    assert (decoded.error.code, decoded.error.name, decoded.error.message) == (code, name, message)
    assert decoded.error.details == details


@given(commands, json_values)
def test_push_round_trip(command: str, payload: Any) -> None:
    assert decode_server_frame(encode_push(command, payload)) == Push(command, payload)

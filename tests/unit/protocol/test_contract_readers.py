"""Validation mode per direction: tolerant client readers, strict writers and server reads."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pydantic
import pytest

from examples.chat.generated import CONTRACT as CHAT
from examples.chat.generated import models
from mesh_sdk.protocol.contract import read_model, read_model_json, to_jsonable
from mesh_sdk.protocol.errors import ValidationError

SEND = CHAT.commands["chat/send"]
CHANNEL = CHAT.channels[0]
TOPIC = CHAT.records[0]
MESSAGE = {"id": 1, "from": "ann", "text": "hi", "sentAt": "2026-01-02T03:04:05Z"}


def test_a_response_with_an_unknown_member_is_read_and_the_member_dropped() -> None:
    # A newer server added an optional member: the older client still reads the response.
    newer = {"id": 7, "sentAt": "2026-01-02T03:04:05Z", "editedAt": None}
    response = SEND.read_response(newer)
    assert isinstance(response, models.SendMessageResponse)
    assert response.id == 7
    assert "editedAt" not in response.model_fields_set
    assert to_jsonable(response) == {"id": 7, "sentAt": "2026-01-02T03:04:05Z"}


def test_strict_readers_reject_the_unknown_member() -> None:
    newer = {"id": 7, "sentAt": "2026-01-02T03:04:05Z", "editedAt": None}
    with pytest.raises(ValidationError) as info:
        SEND.read_response(newer, strict=True)
    assert info.value.message == 'Invalid response for "chat/send"'
    assert info.value.details == [
        {"path": "", "message": "Additional properties are not allowed ('editedAt' was unexpected)"}
    ]


def test_tolerance_covers_unknown_members_only() -> None:
    with pytest.raises(ValidationError) as info:
        SEND.read_response({"id": "seven", "sentAt": "2026-01-02T03:04:05Z", "new": 1})
    assert [d["path"] for d in info.value.details] == ["/id"]
    with pytest.raises(ValidationError):
        SEND.read_response({"sentAt": "2026-01-02T03:04:05Z"})


def test_the_server_still_rejects_an_unknown_request_member() -> None:
    with pytest.raises(ValidationError) as info:
        SEND.validate_request({"room": "lobby", "text": "hi", "urgent": True})
    assert info.value.details == [
        {"path": "", "message": "Additional properties are not allowed ('urgent' was unexpected)"}
    ]


def test_channel_messages_are_read_tolerantly_unless_strict() -> None:
    text = orjson.dumps({**MESSAGE, "reactions": []}).decode()
    message = CHANNEL.decode_message(text)
    assert isinstance(message, models.ChatMessage)
    assert to_jsonable(message) == MESSAGE
    with pytest.raises(ValidationError, match="Invalid message"):
        CHANNEL.decode_message(text, strict=True)
    # Publishing (the writer) stays strict.
    with pytest.raises(ValidationError):
        CHANNEL.validate_message({**MESSAGE, "reactions": []})


def test_record_values_read_tolerantly_but_written_strictly() -> None:
    value = {"topic": "Mesh", "updatedBy": "bob", "pinned": True}
    assert to_jsonable(TOPIC.read_value(value)) == {"topic": "Mesh", "updatedBy": "bob"}
    with pytest.raises(ValidationError):
        TOPIC.read_value(value, strict=True)
    # A write (client-side check before sending, and the server's check) rejects it.
    with pytest.raises(ValidationError) as info:
        TOPIC.validate_value(value)
    assert info.value.message == 'Invalid value for record "RoomTopic"'


def test_pushes_are_read_tolerantly() -> None:
    from mesh_sdk.protocol.generated import CONTRACT as BUILTIN

    spec = BUILTIN.pushes["mesh/record-deleted"]
    payload = spec.read_payload({"recordId": "r", "version": 3, "reason": "gone"})
    assert payload.recordId == "r"


def test_nested_unknown_members_are_ignored_too() -> None:
    class Inner(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid", strict=True)
        a: int

    class Outer(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid", strict=True)
        inner: Inner
        items: list[Inner]

    data: dict[str, Any] = {"inner": {"a": 1, "b": 2}, "items": [{"a": 2, "c": 3}], "d": 4}
    outer = read_model(Outer, data)
    assert outer.model_dump() == {"inner": {"a": 1}, "items": [{"a": 2}]}
    assert read_model_json(Outer, orjson.dumps(data)) == outer
    with pytest.raises(pydantic.ValidationError) as info:
        read_model(Outer, data, strict=True)
    assert {error["type"] for error in info.value.errors()} == {"extra_forbidden"}
    with pytest.raises(pydantic.ValidationError):
        read_model_json(Outer, orjson.dumps(data), strict=True)


def test_the_index_records_the_generated_mode_and_fingerprint() -> None:
    assert CHAT.strict_readers is False
    assert CHAT.fingerprint is not None
    assert CHAT.fingerprint.startswith("sha256:")
    strict = dataclasses.replace(CHAT, strict_readers=True)
    assert strict.strict_readers is True
    assert strict.command("chat/send") is SEND

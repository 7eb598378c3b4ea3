"""The contract runtime: specs, index lookups, validation problems, formats; generated facades."""

from __future__ import annotations

import re
from typing import Any

import pytest

from examples.chat.generated import CONTRACT as chat_contract
from examples.chat.generated import ChatClient
from examples.chat.generated import models as chat_models
from mesh_sdk.facade import CommandGroup
from mesh_sdk.protocol.codec import dumps
from mesh_sdk.protocol.contract import (
    ChannelSpec,
    ContractIndex,
    RecordSpec,
    fill_template,
    to_jsonable,
    to_wire,
)
from mesh_sdk.protocol.errors import ContractViolationError, ValidationError
from mesh_sdk.protocol.generated import CONTRACT, models


def _details(name: str, payload: Any) -> Any:
    spec = CONTRACT.command(name)
    assert spec is not None
    with pytest.raises(ValidationError) as info:
        spec.validate_request(payload)
    assert info.value.message == f'Invalid payload for "{name}"'
    return info.value.details


def test_all_builtin_commands_are_indexed() -> None:
    assert len(CONTRACT.commands) == 19
    assert CONTRACT.command("nope") is None
    assert CONTRACT.push("mesh/record-update") is not None


def test_missing_member_reported_at_parent() -> None:
    # protocol.md Appendix A.2.
    assert _details("mesh/join-room", {}) == [
        {"path": "", "message": "'roomName' is a required property"}
    ]


@pytest.mark.parametrize("payload", [[], "x", None, 1, True])
def test_non_object_payload_reported_at_root(payload: Any) -> None:
    details = _details("mesh/noop", payload)
    assert [d["path"] for d in details] == [""]


def test_unknown_members_ignored_and_null_is_absent() -> None:
    spec = CONTRACT.command("mesh/subscribe-channel")
    assert spec is not None
    request = spec.validate_request({"channel": "c", "historyLimit": None, "future": 1})
    assert request.channel == "c"
    assert request.historyLimit is None
    assert spec.dump_request(request) == {"channel": "c", "historyLimit": None}


def test_builtin_schemas_leave_the_upper_name_bound_to_the_server() -> None:
    # max_name_length is configurable, so the schema must not cap names (protocol.md §15).
    spec = CONTRACT.command("mesh/join-room")
    assert spec is not None
    assert spec.validate_request({"roomName": "r" * 10_000}).roomName == "r" * 10_000


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"channel": ""}, "/channel"),
        ({"channel": "c", "historyLimit": -1}, "/historyLimit"),
        ({"channel": "c", "historyLimit": "1"}, "/historyLimit"),
        ({"channel": "c", "historyLimit": True}, "/historyLimit"),
        ({"channel": 5}, "/channel"),
    ],
)
def test_builtin_request_violations(payload: Any, path: str) -> None:
    assert path in {d["path"] for d in _details("mesh/subscribe-channel", payload)}


def test_publish_record_update_fields() -> None:
    spec = CONTRACT.command("mesh/publish-record-update")
    assert spec is not None
    request = spec.validate_request(
        {"recordId": "r", "newValue": None, "options": {"strategy": "deepMerge"}}
    )
    assert request.newValue is None
    assert request.options.strategy == "deepMerge"
    assert "/options/strategy" in {
        d["path"]
        for d in _details(
            "mesh/publish-record-update",
            {"recordId": "r", "newValue": 1, "options": {"strategy": "x"}},
        )
    }
    assert _details("mesh/publish-record-update", {"recordId": "r"}) == [
        {"path": "", "message": "'newValue' is a required property"}
    ]


def test_presence_state_non_null_and_big_ints() -> None:
    spec = CONTRACT.command("mesh/publish-presence-state")
    assert spec is not None
    request = spec.validate_request({"roomName": "r", "state": 5, "expireAfter": 2**80})
    assert request.state == 5
    assert type(request.state) is int
    assert request.expireAfter == 2**80
    assert {
        d["path"] for d in _details("mesh/publish-presence-state", {"roomName": "r", "state": None})
    } == {"/state"}


def test_response_alternatives_and_dump_round_trip() -> None:
    spec = CONTRACT.command("mesh/subscribe-channel")
    assert spec is not None
    for payload in ({"success": True, "history": ["m2"]}, {"success": False, "history": []}):
        assert spec.dump_response(spec.read_response(payload)) == payload
    with pytest.raises(ValidationError):
        spec.read_response({"success": False, "history": ["x"]})
    assert spec.dump_response({"success": True, "history": []}) == {
        "success": True,
        "history": [],
    }
    unsub = CONTRACT.command("mesh/unsubscribe-channel")
    assert unsub is not None
    assert unsub.dump_response(unsub.read_response(True)) is True


def test_pointer_escaping_and_nested_paths() -> None:
    spec = CONTRACT.push("mesh/record-update")
    assert spec is not None
    with pytest.raises(ValidationError) as info:
        spec.read_payload({"recordId": "r", "version": 1, "patch": [{"op": "move", "path": ""}]})
    assert "/patch/0/op" in {d["path"] for d in info.value.details}


def test_index_pattern_lookup_and_templates() -> None:
    chat = ChannelSpec("Chat", re.compile(r"^chat:[a-z~/]+$"), "chat:{room}", models.PingPush)
    user = RecordSpec("User", re.compile(r"^user:\d+$"), "user:{id}", models.PingPush, True)
    index = ContractIndex("X", channel_specs=[chat], record_specs=[user])
    assert index.channel_for("chat:abc") is chat
    assert index.channel_for("xchat:abc") is None
    assert index.channel_for("chat:abc\n") is None
    assert index.record_for("user:1") is user
    assert index.record_for("admin:user:1") is None
    assert chat.build_name(room="abc") == "chat:abc"
    assert user.build_id(id="7") == "user:7"
    with pytest.raises(ValueError, match="does not match"):
        user.build_id(id="x")
    with pytest.raises(ValueError, match="missing parameter"):
        fill_template("user:{id}", user.pattern, {})
    assert chat.decode_message("{}") == models.PingPush()
    assert chat.encode_message(models.PingPush()) == "{}"
    with pytest.raises(ValidationError):
        chat.decode_message("not json")
    with pytest.raises(ValidationError):
        user.validate_value([])
    assert user.dump_value({}) == {}
    assert list(index.channels) == [chat]
    assert list(index.records) == [user]


class FakeClient:
    """A recording stand-in for mesh_sdk.MeshClient."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.calls: list[tuple[Any, ...]] = []
        self.contract: ContractIndex | None = None

    def bind_contract(self, contract: ContractIndex) -> None:
        self.contract = contract

    async def command(self, name: str, payload: Any = None, *, timeout: Any = None) -> Any:
        self.calls.append(("command", name, payload, timeout))
        return self.result

    async def subscribe_channel(
        self,
        channel: str,
        on_message: Any = None,
        *,
        history_limit: Any = 0,
        model: Any = None,
        strict_reader: Any = None,
    ) -> Any:
        self.calls.append(("channel", channel, on_message, history_limit, model, strict_reader))
        return "sub"

    async def subscribe_record(
        self,
        record_id: str,
        *,
        mode: Any = "full",
        model: Any = None,
        on_change: Any = None,
        strict_reader: Any = None,
    ) -> Any:
        self.calls.append(("record", record_id, mode, model, on_change, strict_reader))
        return "rec"

    def on(self, event: str, callback: Any) -> Any:
        raise AssertionError("contract_check='off' never listens")

    async def connect(self) -> None:
        raise AssertionError("not used")

    async def close(self) -> None:
        raise AssertionError("not used")

    @property
    def connected(self) -> bool:
        return False


async def test_generated_facade_delegates_and_validates() -> None:
    # The built-in package has no facade (it is shared with the server): use an app's.
    fake = FakeClient({"id": 7, "sentAt": "2026-01-02T03:04:05Z"})
    client = ChatClient(fake, contract_check="off")
    assert fake.contract is chat_contract  # the facade binds its contract to the client
    request = chat_models.SendMessageRequest(room="r", text="hi")
    response = await client.commands.send_message(request, timeout=2.0)
    assert response.id == 7
    assert fake.calls == [("command", "chat/send", {"room": "r", "text": "hi"}, 2.0)]
    fake.result = {"id": "seven"}
    with pytest.raises(ContractViolationError, match="the server broke the contract") as info:
        await client.commands.send_message(request)
    assert not isinstance(info.value, ValidationError)
    assert info.value.code == "ESERVER"
    assert {"path": "/id", "message": "Input should be a valid integer"} in info.value.details
    assert isinstance(client.commands, CommandGroup)


def test_unexpected_and_missing_members_are_reported_at_their_parent() -> None:
    spec = chat_contract.command("chat/send")
    assert spec is not None
    with pytest.raises(ValidationError) as info:
        spec.validate_request({"room": "r", "extra": 1, "nested": {"x": 1}})
    assert info.value.details == [
        {"path": "", "message": "'text' is a required property"},
        {"path": "", "message": "Additional properties are not allowed ('extra' was unexpected)"},
        {"path": "", "message": "Additional properties are not allowed ('nested' was unexpected)"},
    ]
    with pytest.raises(ValidationError) as info:
        spec.validate_request({"room": "Lobby!", "text": ""})
    assert info.value.details == [
        {"path": "/room", "message": "String should match pattern '^[a-z0-9-]{1,32}$'"},
        {"path": "/text", "message": "String should have at least 1 character"},
    ]


def test_to_jsonable_dumps_models_by_alias_and_keeps_unset_absent() -> None:
    wire = {"from": "ann", "id": 1, "text": "hi", "sentAt": "2026-01-02T03:04:05Z"}
    assert to_jsonable(chat_models.ChatMessage.model_validate(wire, strict=True)) == wire
    assert to_jsonable(models.SubscribeRecordRequest(recordId="r")) == {"recordId": "r"}
    explicit = models.SubscribeRecordRequest(recordId="r", mode=None)
    assert to_jsonable(explicit) == {"recordId": "r", "mode": None}
    plain = {"a": [1, None]}
    assert to_jsonable(plain) is plain


# ------------------------------------------------------------------ to_wire (built-in payloads)


def test_to_wire_is_the_to_jsonable_document_without_copying_values() -> None:
    record = {"a": [1, {"b": None}]}
    cases = [
        models.SubscribeRecordSuccess.model_construct(success=True, record=record, version=3),
        models.SubscribeRecordSuccess(success=True, record=None, version=0),
        models.SubscribeChannelResponse(models.SubscribeChannelDenied(success=False, history=[])),
        models.UnsubscribeChannelResponse.model_construct(True),
        models.PublishRecordUpdateRequest.model_construct(
            recordId="r",
            newValue=record,
            options=models.RecordWriteOptions.model_construct(strategy="merge"),
        ),
        models.SubscribeChannelRequest.model_construct(channel="c"),
    ]
    for model in cases:
        assert dumps(to_wire(model)) == dumps(to_jsonable(model)), model
    wire = to_wire(cases[0])
    assert list(wire) == ["success", "record", "version"]  # schema order (built-in models)
    assert wire["record"] is record
    assert "historyLimit" not in to_wire(cases[-1])  # absent stays absent

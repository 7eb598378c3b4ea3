"""Generated facades: tolerant readers and the contract check on connect, over a fake client."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import pytest

from examples.chat.generated import CONTRACT, FINGERPRINT, ChatClient, models
from examples.chat.generated.facade import ChatChannels, ChatCommands, ChatRecords
from mesh_sdk.contract_check import ContractMismatch, compare_contract, parse_contract_info
from mesh_sdk.errors import ContractMismatchError, ContractMismatchWarning
from mesh_sdk.protocol.contract import ContractIndex
from mesh_sdk.protocol.errors import (
    CommandNotFoundError,
    ContractViolationError,
    MeshConnectionError,
    MeshTimeoutError,
    ValidationError,
)
from tests.support.timing import wait_for

OTHER = "sha256:" + "0" * 64
SAME = {"name": "Chat", "fingerprint": FINGERPRINT, "commands": ["chat/send"]}
REQUEST = models.SendMessageRequest(room="lobby", text="hi")


class FakeMesh:
    """A MeshClientLike that answers ``mesh/contract-info`` with ``info`` (or raises it)."""

    def __init__(self, info: Any = None, *, connected: bool = False) -> None:
        self.info = info if info is not None else dict(SAME)
        self.result: Any = None
        self.connected = connected
        self.closed = False
        self.sent: list[tuple[str, Any]] = []
        self.subscriptions: list[dict[str, Any]] = []
        self.listeners: dict[str, list[Callable[..., Any]]] = {}
        self.contract: ContractIndex | None = None

    def bind_contract(self, contract: ContractIndex) -> None:
        self.contract = contract

    async def command(self, name: str, payload: Any = None, *, timeout: Any = None) -> Any:
        self.sent.append((name, payload))
        if name != "mesh/contract-info":
            return self.result
        if isinstance(self.info, Exception):
            raise self.info
        return self.info

    async def subscribe_channel(self, channel: str, on_message: Any = None, **options: Any) -> Any:
        self.subscriptions.append({"channel": channel, **options})
        return "sub"

    async def subscribe_record(self, record_id: str, **options: Any) -> Any:
        self.subscriptions.append({"record": record_id, **options})
        return "rec"

    def on(self, event: str, callback: Callable[..., Any]) -> None:
        self.listeners.setdefault(event, []).append(callback)

    async def connect(self) -> None:
        if not self.connected:
            self.connected = True
            self.emit_connect()

    def emit_connect(self) -> None:
        for callback in self.listeners.get("connect", []):
            callback("conn-1")

    async def close(self) -> None:
        self.closed = True
        self.connected = False

    def checks(self) -> int:
        return sum(1 for name, _ in self.sent if name == "mesh/contract-info")


async def test_matching_fingerprint_connects_quietly() -> None:
    fake = FakeMesh()
    app = ChatClient(fake)
    await wait_for(app.connect())
    assert fake.sent == [("mesh/contract-info", {})]
    assert app.contract_mismatch is None
    assert app.contract_error is None
    assert not fake.closed


async def test_mismatch_warns_naming_the_commands_on_one_side_only() -> None:
    fake = FakeMesh({"name": "Chat", "fingerprint": OTHER, "commands": ["chat/edit"]})
    app = ChatClient(fake)
    expected = "commands only in the client: chat/send; commands only on the server: chat/edit"
    with pytest.warns(ContractMismatchWarning, match=expected) as record:
        await wait_for(app.connect())
    assert len(record) == 1
    assert FINGERPRINT in str(record[0].message)
    assert OTHER in str(record[0].message)
    assert app.contract_mismatch == ContractMismatch(
        "Chat", FINGERPRINT, "Chat", OTHER, only_client=("chat/send",), only_server=("chat/edit",)
    )
    assert not fake.closed


async def test_same_commands_with_another_fingerprint_points_at_contract_diff() -> None:
    fake = FakeMesh({"name": "Chat", "fingerprint": OTHER, "commands": ["chat/send"]})
    with pytest.warns(ContractMismatchWarning, match="same commands.*mesh contract diff"):
        await wait_for(ChatClient(fake).connect())


async def test_strict_mode_closes_the_client_and_raises() -> None:
    fake = FakeMesh({"name": "Chat", "fingerprint": OTHER, "commands": []})
    app = ChatClient(fake, contract_check="strict")
    with pytest.raises(ContractMismatchError, match="commands only in the client: chat/send") as e:
        await wait_for(app.connect())
    assert isinstance(e.value, MeshConnectionError)
    assert e.value.mismatch.server_fingerprint == OTHER
    assert app.contract_error is e.value
    assert fake.closed
    # Connecting again once the server runs our contract clears the error.
    fake.info = dict(SAME)
    await wait_for(app.connect())
    assert app.contract_error is None
    assert app.contract_mismatch is None


async def test_server_without_contract_warns_or_fails_in_strict_mode() -> None:
    nulls = {"name": None, "fingerprint": None, "commands": []}
    with pytest.warns(ContractMismatchWarning, match="the server has no application contract"):
        await wait_for(ChatClient(FakeMesh(dict(nulls))).connect())
    fake = FakeMesh(dict(nulls))
    with pytest.raises(ContractMismatchError, match="no application contract"):
        await wait_for(ChatClient(fake, contract_check="strict").connect())
    assert fake.closed


async def test_older_server_without_contract_info_cannot_be_checked() -> None:
    fake = FakeMesh(CommandNotFoundError.for_command("mesh/contract-info"))
    with pytest.warns(ContractMismatchWarning, match="does not announce its contract"):
        await wait_for(ChatClient(fake).connect())
    mismatch = compare_contract(CONTRACT, None)
    assert mismatch is not None
    assert not mismatch.announced


async def test_every_reconnect_is_checked_again() -> None:
    fake = FakeMesh()
    app = ChatClient(fake, contract_check="strict")
    await wait_for(app.connect())
    # The server was redeployed with another contract; the client reconnects to it.
    fake.info = {"name": "Chat", "fingerprint": OTHER, "commands": ["chat/send"]}
    fake.emit_connect()
    await wait_for(app.close())
    assert fake.checks() == 2
    assert app.contract_error is not None
    assert app.contract_error.mismatch.only_client == ()


async def test_a_facade_over_a_connected_client_checks_at_once() -> None:
    fake = FakeMesh({"name": "Chat", "fingerprint": OTHER, "commands": ["chat/send"]})
    fake.connected = True
    app = ChatClient(fake)  # starts the check: the client is already connected
    with pytest.warns(ContractMismatchWarning):
        await wait_for(app.connect())  # connected already: waits for the running check
    assert fake.checks() == 1


async def test_contract_check_off_never_asks() -> None:
    fake = FakeMesh({"name": "Chat", "fingerprint": OTHER, "commands": []})
    app = ChatClient(fake, contract_check="off")
    await wait_for(app.connect())
    assert fake.sent == []
    assert fake.listeners == {}
    with pytest.raises(ValueError, match="contract_check"):
        ChatClient(fake, contract_check="loud")  # type: ignore[arg-type]


async def test_a_failed_check_is_logged_and_retried_on_the_next_connect(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeMesh(MeshTimeoutError("no answer"))
    app = ChatClient(fake)
    with caplog.at_level(logging.WARNING, logger="mesh_sdk"):
        await wait_for(app.connect())
    assert "could not check the server's contract" in caplog.text
    assert app.contract_mismatch is None
    # A connection lost during the check is not worth a warning: the next connect checks.
    fake.info = MeshConnectionError("gone")
    caplog.clear()
    fake.emit_connect()
    await wait_for(app.close())
    assert caplog.text == ""
    assert fake.checks() == 2


async def test_an_invalid_announcement_is_a_validation_error() -> None:
    app = ChatClient(FakeMesh({"name": 1, "fingerprint": None}), contract_check="off")
    with pytest.raises(ValidationError, match="mesh/contract-info") as info:
        await app.check_contract()
    assert {d["path"] for d in info.value.details} == {"", "/name"}
    # Unknown members of the announcement are ignored like any other read.
    parsed = parse_contract_info({**SAME, "version": 2})
    assert parsed.fingerprint == FINGERPRINT


async def test_async_with_connects_checks_and_closes() -> None:
    fake = FakeMesh()
    async with ChatClient(fake) as app:
        assert app.client is fake
        assert fake.checks() == 1
    assert fake.closed


async def test_facade_reads_tolerantly_and_strictly_when_generated_so() -> None:
    fake = FakeMesh()
    fake.result = {"id": 1, "sentAt": "2026-01-02T03:04:05Z", "editedAt": None}
    response = await ChatCommands(fake, CONTRACT).send_message(REQUEST)
    assert response == models.SendMessageResponse(id=1, sentAt="2026-01-02T03:04:05Z")
    strict = dataclasses.replace(CONTRACT, strict_readers=True)
    with pytest.raises(ContractViolationError, match="Invalid response") as info:
        await ChatCommands(fake, strict).send_message(REQUEST)
    assert info.value.details == [
        {"path": "", "message": "Additional properties are not allowed ('editedAt' was unexpected)"}
    ]
    # Channels and records hand the mode to the client's decoder.
    await ChatChannels(fake, strict).chat(room="lobby")
    await ChatRecords(fake, CONTRACT).room_topic(room="lobby")
    assert [
        (s.get("channel") or s.get("record"), s["strict_reader"]) for s in fake.subscriptions
    ] == [
        ("chat:lobby", True),
        ("topic:lobby", False),
    ]

"""The generated golden facade type-checks under mypy --strict, and catches a wrong call."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
from __future__ import annotations

from typing import Any

from expected import FINGERPRINT, ChatAppClient, models
from expected.facade import channel_name_chat, record_id_user_profile
from mesh_sdk import MeshClient
from mesh_sdk.contract_check import ContractMismatch
from mesh_sdk.facade import ChannelSubscriptionLike, RecordSubscriptionLike
from mesh_sdk.subscriptions import RecordChange


async def on_event(event: models.ChatEvent) -> None:
    print(event.root)


def on_profile(change: RecordChange[models.UserProfile]) -> None:
    if change.value is not None:
        print(change.value.name.upper(), change.version + 1)


async def use_real_client(client: MeshClient) -> None:
    app = ChatAppClient(client, contract_check="strict")
    await app.connect()
    mismatch: ContractMismatch | None = await app.check_contract()
    print(mismatch, app.contract_error, FINGERPRINT.upper())
    rec = await app.records.user_profile(id="u1", on_change=on_profile)
    profile: models.UserProfile | None = rec.value
    print(profile, rec.version + 1)


async def use(client: Any) -> None:
    app = ChatAppClient(client)
    response: models.SendMessageResponse = await app.commands.send_message(
        models.SendMessageRequest(room="lobby", text="hi"), timeout=5.0
    )
    print(response.id + 1, response.sentAt.upper())
    sub: ChannelSubscriptionLike[models.ChatEvent] = await app.channels.chat(
        room="lobby", on_message=on_event, history_limit=10
    )
    await sub.unsubscribe()
    rec: RecordSubscriptionLike[models.UserProfile] = await app.records.user_profile(
        id="u1", mode="patch"
    )
    await rec.unsubscribe()
    name: str = channel_name_chat(room="lobby") + record_id_user_profile(id="u1")
    print(name)
"""

BAD = """
from __future__ import annotations

from typing import Any

from expected import ChatAppClient, models


async def use(client: Any) -> None:
    app = ChatAppClient(client)
    await app.commands.send_message(models.GetUserMetadataRequest(userId="u1"))
    await app.records.user_profile(id="u1", mode="diff")
    rec = await app.records.user_profile(id="u1")
    print(rec.value.no_such_field if rec.value else None)
    ChatAppClient(client, contract_check="loud")
"""

SERVER_GOOD = """
from __future__ import annotations

from expected import ChatAppServer, models
from expected.names import COMMAND_SEND_MESSAGE, RECORD_USER_PROFILE
from mesh_server import Context, MeshServer


def build(server: MeshServer) -> ChatAppServer:
    app = ChatAppServer(server)

    @app.commands.send_message
    async def send(
        ctx: Context[models.SendMessageRequest], request: models.SendMessageRequest
    ) -> models.SendMessageResponse:
        room: str = ctx.payload.room
        return models.SendMessageResponse(id=len(room + request.text), sentAt="2026-01-01Z")

    def metadata(
        ctx: Context, request: models.GetUserMetadataRequest
    ) -> models.GetUserMetadataResponse:
        return models.GetUserMetadataResponse(userId=request.userId, tags=[])

    app.commands.get_user_metadata(metadata, middlewares=[lambda ctx: None])
    app.channels.chat.expose(guard=lambda connection, channel: channel.startswith("chat:"))
    app.records.user_profile.expose()
    print(COMMAND_SEND_MESSAGE + RECORD_USER_PROFILE, app.records.user_profile.writable)
    return app


async def use(app: ChatAppServer) -> None:
    profile, version = await app.records.user_profile.get(id="u1")
    if profile is not None:
        await app.records.user_profile.publish(id="u1", value=profile)
        print(profile.name.upper(), version + 1)
    await app.records.room_topic.delete(room="lobby")

    def rename(current: models.UserProfile | None) -> models.UserProfile:
        if current is None:
            raise LookupError("no profile")
        return current.model_copy(update={"name": current.name.title()})

    updated, version = await app.records.user_profile.update(id="u1", fn=rename)
    await app.records.user_profile.publish(id="u1", value=updated, expected_version=version)
    print(updated.name.upper())
    event = models.ChatEvent.model_validate({"type": "join", "user": "u1"})
    await app.channels.chat.publish(room="lobby", message=event, history=10)
"""

# Each line marked ``# E: text`` must get a mypy error containing ``text``; no other line may.
SERVER_BAD = """
from __future__ import annotations

from typing import Any

from expected import ChatAppServer, models
from mesh_server import Context


async def use(app: ChatAppServer) -> None:
    @app.commands.send_message  # E: GetUserMetadataRequest
    def wrong_request(
        ctx: Context, request: models.GetUserMetadataRequest
    ) -> models.SendMessageResponse:
        raise NotImplementedError

    @app.commands.send_message  # E: GetUserMetadataResponse
    async def wrong_response(
        ctx: Context, request: models.SendMessageRequest
    ) -> models.GetUserMetadataResponse:
        raise NotImplementedError

    @app.commands.get_user_metadata  # E: dict[str, Any]
    def untyped_response(ctx: Context, request: models.GetUserMetadataRequest) -> dict[str, Any]:
        return {}

    def payload_typed(ctx: Context[models.SendMessageRequest]) -> None:
        wrong: models.GetUserMetadataRequest = ctx.payload  # E: Incompatible types in assignment

    print(payload_typed)
    profile, _ = await app.records.user_profile.get(id="u1")
    print(profile.name)  # E: None
    await app.records.user_profile.publish(id="u1", value={"totally": "wrong"})  # E: dict
    await app.channels.chat.publish(room="lobby", message=models.RoomTopic("t"))  # E: RoomTopic
    await app.records.room_topic.get(id="u1")  # E: Unexpected keyword argument
    await app.records.user_profile.update(id="u1", fn=lambda current: {"name": "x"})  # E: dict
    await app.records.user_profile.publish(id="u1", value=profile, expected_version=1)  # E: None
"""


@pytest.mark.slow
def test_golden_facade_type_checks(tmp_path: Path) -> None:
    (tmp_path / "good_usage.py").write_text(GOOD, encoding="utf-8")
    (tmp_path / "bad_usage.py").write_text(BAD, encoding="utf-8")
    (tmp_path / "server_good.py").write_text(SERVER_GOOD, encoding="utf-8")
    (tmp_path / "server_bad.py").write_text(SERVER_BAD, encoding="utf-8")
    env = {**os.environ, "MYPYPATH": str(ROOT / "tests" / "codegen" / "golden")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--strict",
            str(tmp_path / "good_usage.py"),
            str(tmp_path / "bad_usage.py"),
            str(tmp_path / "server_good.py"),
            str(tmp_path / "server_bad.py"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=env,
    )
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert not [e for e in errors if "good_usage.py" in e or "server_good.py" in e], proc.stdout
    bad = [e for e in errors if "bad_usage.py" in e]
    assert any(":11:" in e and "GetUserMetadataRequest" in e for e in bad), proc.stdout
    assert any(":12:" in e and "mode" in e for e in bad), proc.stdout
    assert any(":14:" in e and "no_such_field" in e for e in bad), proc.stdout
    assert any(":15:" in e and "contract_check" in e for e in bad), proc.stdout
    server_errors: dict[int, list[str]] = {}
    for line in errors:
        if "server_bad.py:" in line:
            number = int(line.split("server_bad.py:")[1].split(":")[0])
            server_errors.setdefault(number, []).append(line)
    expected = {
        number: text.split("# E: ")[1]
        for number, text in enumerate(SERVER_BAD.splitlines(), start=1)
        if "# E: " in text
    }
    assert sorted(server_errors) == sorted(expected), proc.stdout
    for number, needle in expected.items():
        assert any(needle in e for e in server_errors[number]), (number, needle, proc.stdout)

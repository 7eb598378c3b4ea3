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


@pytest.mark.slow
def test_golden_facade_type_checks(tmp_path: Path) -> None:
    (tmp_path / "good_usage.py").write_text(GOOD, encoding="utf-8")
    (tmp_path / "bad_usage.py").write_text(BAD, encoding="utf-8")
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
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=env,
    )
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert not [e for e in errors if "good_usage.py" in e], proc.stdout
    bad = [e for e in errors if "bad_usage.py" in e]
    assert any(":11:" in e and "GetUserMetadataRequest" in e for e in bad), proc.stdout
    assert any(":12:" in e and "mode" in e for e in bad), proc.stdout
    assert any(":14:" in e and "no_such_field" in e for e in bad), proc.stdout
    assert any(":15:" in e and "contract_check" in e for e in bad), proc.stdout

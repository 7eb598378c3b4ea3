"""The SDK's public typing: ``model=X`` gives ``Subscription[X]`` and MeshClient fits the facade."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

USAGE = """
from __future__ import annotations

from typing import Any, assert_type

from pydantic import BaseModel

from mesh_sdk import ChannelSubscription, MeshClient, RecordChange, RecordSubscription
from mesh_sdk.facade import MeshClientLike


class Msg(BaseModel):
    text: str


def on_change(change: RecordChange[Msg]) -> None:
    print(change.value, change.version, change.patch)


async def use(client: MeshClient) -> None:
    facade_client: MeshClientLike = client
    print(facade_client)
    typed = await client.subscribe_channel("c", history_limit=3, model=Msg)
    assert_type(typed, ChannelSubscription[Msg])
    assert_type(typed.history, list[Msg])
    async for message in typed:
        assert_type(message, Msg)
    raw = await client.subscribe_channel("c")
    assert_type(raw, ChannelSubscription[Any])
    record = await client.subscribe_record("r", mode="patch", model=Msg, on_change=on_change)
    assert_type(record, RecordSubscription[Msg])
    assert_type(record.value, Msg | None)
    async for change in record.changes():
        assert_type(change, RecordChange[Msg])
    plain = await client.subscribe_record("r")
    assert_type(plain, RecordSubscription[Any])
    await client.subscribe_record("r", mode="diff")  # error: invalid mode
"""


@pytest.mark.slow
def test_public_typing(tmp_path: Path) -> None:
    (tmp_path / "usage.py").write_text(USAGE, encoding="utf-8")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--strict",
            str(tmp_path / "usage.py"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, proc.stdout
    assert "mode" in errors[0] or "overload" in errors[0], proc.stdout
    assert 'mode="diff"' in USAGE.splitlines()[36]
    assert ":37:" in errors[0], proc.stdout

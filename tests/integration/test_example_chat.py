"""The contract-first chat example (examples/chat): its tour end to end, and codegen drift."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from codegen.cli import _existing, compare_trees, generate
from examples.chat.client import run_tour
from examples.chat.generated.models import RoomTopic
from examples.chat.server import build_server
from tests.support.timing import TIMEOUT, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_DIR = ROOT / "examples/chat/contract"
GENERATED = ROOT / "examples/chat/generated"


async def test_tour_shows_typed_messages_records_and_validation() -> None:
    async with build_server() as server:
        lines = await wait_for(run_tour(server.url), timeout=TIMEOUT * 6)
        value, version = await server.get_record("topic:lobby")
    text = "\n".join(lines)
    alice_id = lines[0].removeprefix("alice connected as ")
    assert alice_id.startswith("conn-")
    # Typed command responses and typed channel messages, history included.
    assert "bob subscribed to chat:lobby; history: ['anyone here?']" in lines
    assert "alice sent #2: SendMessageResponse(id=2, sentAt='" in text
    assert f"bob received ChatMessage #2 from {alice_id}: 'hi bob'" in lines
    # The topic record converged in patch mode, typed on the client.
    assert "alice subscribed to topic:lobby (patch mode): v0 = None" in lines
    assert "alice: v1 = RoomTopic(topic='Mesh', updatedBy='bob')" in lines
    final = (
        "alice: v2 = RoomTopic(topic='Mesh, typed', updatedBy='bob') "
        "(patch [{'op': 'replace', 'path': '/topic', 'value': 'Mesh, typed'}])"
    )
    assert final in lines
    assert (value, version) == (RoomTopic(topic="Mesh, typed", updatedBy="bob").model_dump(), 2)
    # The contract rejects invalid payloads locally and on the server (EVALIDATION + pointers).
    assert any(line.startswith("local: SendMessageRequest(text='') rejected") for line in lines)
    assert 'server: chat/send -> EVALIDATION: Invalid payload for "chat/send"' in lines
    assert "  /room: String should match pattern '^[a-z0-9-]{1,32}$'" in lines
    assert "  /text: String should have at most 280 characters" in lines
    assert any(
        line.startswith("server: write topic:lobby -> EVALIDATION:") and "updatedBy" in line
        for line in lines
    )


def test_generated_package_has_not_drifted_from_contract() -> None:
    assert compare_trees(generate(CONTRACT_DIR, GENERATED), _existing(GENERATED)) == []


async def test_main_runs_the_tour_and_exits_cleanly() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "examples.chat",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), TIMEOUT * 6)
    assert proc.returncode == 0, stderr.decode()
    out = stdout.decode()
    assert "bob received ChatMessage #2" in out
    assert "EVALIDATION" in out
    assert out.rstrip().endswith("chat example finished")

"""The contract-first chat example (examples/chat): its tour end to end, and codegen drift."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from codegen.cli import _existing, compare_trees, generate
from examples.chat.client import run_tour
from examples.chat.generated.models import RoomTopic
from examples.chat.generated.server import ChatServer
from examples.chat.server import build_server
from mesh_sdk import LocalValidationError, MeshClient, ValidationError
from mesh_server import MeshServer
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
    # The facade refuses an invalid request locally; the server rejects an invalid merged value
    # with pointers into the record value (not into the request wrapper).
    assert (
        'local: chat/send -> EVALIDATION: Invalid payload for "chat/send" (refused locally, '
        "not sent)"
    ) in lines
    assert "  /text: String should have at most 280 characters" in lines
    assert (
        'server: merge into topic:lobby -> EVALIDATION: Invalid value for record "RoomTopic"'
    ) in lines
    assert "  /updatedBy: String should have at least 1 character" in lines


async def test_server_validates_what_an_untyped_client_sends() -> None:
    async with build_server() as server:
        client = MeshClient(server.url)
        await client.connect()
        try:
            with pytest.raises(ValidationError) as info:
                await client.command("chat/send", {"room": "Lobby!", "text": "x", "extra": 1})
        finally:
            await client.close()
    assert not isinstance(info.value, LocalValidationError)
    assert info.value.message == 'Invalid payload for "chat/send"'
    assert info.value.details == [
        {"path": "/room", "message": "String should match pattern '^[a-z0-9-]{1,32}$'"},
        {"path": "", "message": "Additional properties are not allowed ('extra' was unexpected)"},
    ]


def test_server_without_the_send_handler_refuses_to_start() -> None:
    app = ChatServer(MeshServer(port=0))
    assert app.unimplemented == ["chat/send"]
    with pytest.raises(
        RuntimeError, match=r'contract "Chat" commands without a handler: chat/send'
    ):
        asyncio.run(app.server.start())


def test_the_server_imports_no_client_code() -> None:
    code = (
        "import sys, examples.chat.server\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('mesh_sdk.client',"
        " 'mesh_sdk.subscriptions', 'mesh_sdk.facade', 'examples.chat.generated.facade')))\n"
        "print(loaded)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "[]"


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

"""Import purity of the sans-I/O layers (STYLE.md "Sans-I/O core"; docs/architecture.md).

Each check runs in a fresh interpreter, because this test process has long since imported
asyncio, websockets and the SDK. The child imports the module under test, *uses* it (lazy imports
inside pydantic or our code would otherwise hide), and prints the forbidden modules it finds in
``sys.modules``. No dependency imports asyncio on these paths today (pydantic and pydantic-core,
orjson, jsonpatch/jsonpointer: checked by this test), so the assertions are exact, with no
allow-list.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.support.timing import TIMEOUT

FORBIDDEN = ("asyncio", "websockets", "redis", "mesh_sdk.subscriptions")
"""Modules (and their submodules) that the sans-I/O layers must not load."""

_REPORT = """
import json, sys
forbidden = {forbidden!r}
loaded = sorted(
    name for name in sys.modules
    if any(name == f or name.startswith(f + ".") for f in forbidden)
)
print(json.dumps({{"forbidden": loaded, "mesh_sdk": sorted(
    name for name in sys.modules if name == "mesh_sdk" or name.startswith("mesh_sdk.")
)}}))
"""

_USE_PROTOCOL = """
import importlib, pkgutil
import mesh_sdk.protocol
for info in pkgutil.walk_packages(mesh_sdk.protocol.__path__, "mesh_sdk.protocol."):
    importlib.import_module(info.name)
from mesh_sdk.protocol import codec, patch
from mesh_sdk.protocol.errors import ValidationError
from mesh_sdk.protocol.generated import CONTRACT, models

spec = CONTRACT.command("mesh/join-room")
assert spec is not None
spec.dump_request(spec.validate_request({"roomName": "lobby"}))
try:
    spec.validate_request({"roomName": 1})
except ValidationError:
    pass
frame = codec.decode_client_frame(b'{"id": 1, "command": "mesh/noop", "payload": {}}')
response = CONTRACT.command("mesh/join-room").dump_response(
    models.JoinRoomResponse(success=True, present=[])
)
codec.encode_response(frame, response)
patch.apply_patch({"a": 1}, patch.diff({"a": 1}, {"a": 2}))
"""

_USE_SESSION = """
import mesh_server.session
from mesh_server.limits import Limits
from mesh_server.session import ServerSession

session = ServerSession("c1", limits=Limits())
session.start(0)
session.receive(b'{"id": 1, "command": "echo", "payload": {}}', 1)
session.receive(b"not json", 2)
session.on_timer(60_000)
"""

_USE_CLIENT_SESSION = """
import mesh_sdk.session
from mesh_sdk.session import ClientSession

session = ClientSession(ping_timeout=30.0)
session.connection_opened(0.0)
session.receive(b'{"command": "mesh/assign-id", "payload": "c1"}', 0.0)
assert session.request("echo", {}, None, 0.0, 5.0).queued
assert session.mark_ready(0.0)
session.receive(b'{"id": 0, "payload": {"ok": true}}', 0.1)
session.receive(b"not json", 0.2)
session.tick(60.0)
session.connection_lost(61.0)
"""

_USE_SERVER = """
import importlib, pkgutil
import mesh_server
from mesh_server import *  # noqa: F403 - every export, as an application would
for info in pkgutil.walk_packages(mesh_server.__path__, "mesh_server."):
    if info.name != "mesh_server.__main__":  # runs the CLI
        importlib.import_module(info.name)
"""


def _loaded_after(code: str) -> dict[str, list[str]]:
    script = textwrap.dedent(code) + _REPORT.format(forbidden=FORBIDDEN)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        # A fresh interpreter builds every pydantic model: allow for a loaded machine.
        timeout=TIMEOUT * 12,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, list[str]] = json.loads(proc.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize(
    "code",
    [_USE_PROTOCOL, _USE_SESSION, _USE_CLIENT_SESSION],
    ids=["mesh_sdk.protocol", "mesh_server.session", "mesh_sdk.session"],
)
def test_sans_io_layers_load_no_io_and_no_subscriptions(code: str) -> None:
    assert _loaded_after(code)["forbidden"] == []


def test_session_loads_only_the_protocol_package_from_the_sdk() -> None:
    loaded = _loaded_after(_USE_SESSION)["mesh_sdk"]
    assert "mesh_sdk.protocol.codec" in loaded
    assert [name for name in loaded if not name.startswith("mesh_sdk.protocol")] == ["mesh_sdk"]


def test_client_session_loads_no_client_adapter() -> None:
    # The sans-I/O client session (and its events) stand alone: no client, subscriptions, facade.
    loaded = _loaded_after(_USE_CLIENT_SESSION)["mesh_sdk"]
    assert "mesh_sdk.session_events" in loaded
    assert [name for name in loaded if not name.startswith("mesh_sdk.protocol")] == [
        "mesh_sdk",
        "mesh_sdk.reconnect",
        "mesh_sdk.session",
        "mesh_sdk.session_events",
    ]


def test_whole_server_loads_only_the_protocol_package_from_the_sdk() -> None:
    # The server side is asyncio-based, but of the SDK it may use only mesh_sdk.protocol:
    # no client, subscriptions, facade or client session (docs/architecture.md).
    loaded = _loaded_after(_USE_SERVER)["mesh_sdk"]
    assert "mesh_sdk.protocol.generated" in loaded
    assert [name for name in loaded if not name.startswith("mesh_sdk.protocol")] == ["mesh_sdk"]


def test_bare_package_imports_load_nothing_else() -> None:
    loaded = _loaded_after("import mesh_server, mesh_sdk")
    assert loaded["forbidden"] == []
    assert loaded["mesh_sdk"] == ["mesh_sdk"]

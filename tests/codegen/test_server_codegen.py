"""The generated wire names and server facade for shapes the golden contract lacks.

A contract with commands only (empty family groups) and a record family whose id template has no
parameter; the generated package is imported and driven against a real (unstarted) server.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codegen.cli import codegen_command
from mesh_server import MeshServer

pytestmark = pytest.mark.slow  # two codegen runs

COMMAND = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Poke",
    "$defs": {
        "PokeRequest": {"title": "PokeRequest", "type": "object", "additionalProperties": False},
        "PokeResponse": {
            "title": "PokeResponse",
            "type": "object",
            "additionalProperties": False,
            "required": ["ok"],
            "properties": {"ok": {"type": "boolean"}},
        },
    },
}
SETTINGS = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Settings",
    "x-mesh-record": "settings",
    "x-mesh-pattern": "^settings$",
    "type": "object",
    "additionalProperties": False,
    "properties": {"theme": {"type": "string"}},
}


def _write(root: Path, files: dict[str, Any]) -> None:
    for rel, doc in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc), encoding="utf-8")


@pytest.fixture
def generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def build(name: str, files: dict[str, Any]) -> Any:
        contract = tmp_path / f"{name}_contract"
        _write(contract, {"contract.json": {"name": name.capitalize()}, **files})
        out = tmp_path / name
        out.mkdir()
        assert codegen_command(contract, out, check=False, stdout=sys.stderr) == 0
        return importlib.import_module(name)

    monkeypatch.syspath_prepend(str(tmp_path))
    yield build
    for module in [m for m in sys.modules if m.split(".")[0] in ("pokeonly", "prefs")]:
        del sys.modules[module]


def test_commands_only_contract(generated: Any) -> None:
    package = generated("pokeonly", {"commands/poke.json": COMMAND})
    server_module = importlib.import_module("pokeonly.server")
    names = package.names
    assert names.COMMAND_POKE == "poke"
    assert names.__all__ == ["COMMAND_POKE"]
    server = MeshServer()
    app = server_module.PokeonlyServer(server)
    assert app.unimplemented == ["poke"]

    @app.commands.poke
    def poke(ctx: Any, request: Any) -> Any:
        return package.models.PokeResponse(ok=True)

    assert app.unimplemented == []
    assert server._core.pipeline.command_names == ["poke"]
    assert app.channels.__slots__ == ()
    assert app.records.__slots__ == ()


async def test_record_family_without_parameters(generated: Any) -> None:
    package = generated("prefs", {"commands/poke.json": COMMAND, "records/settings.json": SETTINGS})
    server_module = importlib.import_module("prefs.server")
    assert package.names.RECORD_SETTINGS == "settings"
    assert package.names.record_id_settings() == "settings"
    server = MeshServer(port=0, close_timeout=2.0, allow_unimplemented=True)
    app = server_module.PrefsServer(server)
    family = app.records.settings
    assert (family.record_id(), family.template, family.writable) == ("settings", "settings", False)
    family.expose()
    async with server:
        assert await family.get() == (None, 0)
        await family.publish(value=package.models.Settings(theme="dark"))
        assert await family.get() == (package.models.Settings(theme="dark"), 1)
        await family.delete()
        assert await family.get() == (None, 0)

"""`mesh export asyncapi`: official-schema validity, golden document, references, determinism."""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator  # type: ignore[import-untyped]

from codegen.asyncapi import ERROR_OBJECT, dumps, export_asyncapi
from codegen.fingerprint import contract_fingerprint
from codegen.loader import Contract, load_contract
from codegen.tools import export_asyncapi_command

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests/codegen/golden/contract"
GOLDEN_DOC = ROOT / "tests/codegen/golden/asyncapi.json"
BUILTIN = ROOT / "contract/mesh"
SPEC = json.loads(
    (ROOT / "tests/codegen/asyncapi/asyncapi-3.0.0.schema.json").read_text(encoding="utf-8")
)
VALIDATOR = Draft7Validator(SPEC)


@pytest.fixture(scope="module")
def golden() -> Contract:
    return load_contract(GOLDEN)


@pytest.fixture(scope="module")
def builtin() -> Contract:
    return load_contract(BUILTIN)


def _errors(doc: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(doc)]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for token in ref[2:].split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def test_spec_is_the_official_asyncapi_3_schema() -> None:
    assert SPEC["properties"]["asyncapi"]["const"] == "3.0.0"
    Draft7Validator.check_schema(SPEC)


def test_golden_document_is_pinned(golden: Contract) -> None:
    assert dumps(export_asyncapi(golden)) == GOLDEN_DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize("with_builtins", [False, True])
def test_export_validates_against_the_official_schema(
    golden: Contract, builtin: Contract, with_builtins: bool
) -> None:
    doc = export_asyncapi(golden, builtins=builtin if with_builtins else None)
    assert _errors(doc) == []
    channels = doc["channels"]
    assert ("mesh.commands.subscribe-record" in channels) is with_builtins
    assert ("mesh.pushes.record-update" in channels) is with_builtins


def test_validation_is_not_vacuous(golden: Contract) -> None:
    doc = export_asyncapi(golden)
    broken = copy.deepcopy(doc)
    broken["operations"]["commands.send-message"]["action"] = "publish"
    assert _errors(broken)
    broken = copy.deepcopy(doc)
    broken["components"]["schemas"]["UserId"]["type"] = "strnig"
    assert _errors(broken), "message payload schemas are checked as AsyncAPI Schema Objects"


def test_every_reference_resolves_and_operations_use_their_channels_messages(
    golden: Contract, builtin: Contract
) -> None:
    doc = export_asyncapi(golden, builtins=builtin)
    for ref in _refs(doc):
        _resolve(doc, ref)
    for operation in doc["operations"].values():
        channel = operation["channel"]["$ref"]
        refs = [m["$ref"] for m in operation["messages"]]
        if "reply" in operation:
            assert operation["reply"]["channel"]["$ref"] == channel
            refs += [m["$ref"] for m in operation["reply"]["messages"]]
        for ref in refs:
            assert ref.startswith(channel + "/messages/"), (channel, ref)


def test_contract_mapping(golden: Contract) -> None:
    doc = export_asyncapi(golden, api_version="2.1.0")
    assert doc["info"]["version"] == "2.1.0"
    assert doc["info"]["x-mesh-fingerprint"] == contract_fingerprint(golden)
    command = doc["channels"]["commands.send-message"]
    assert command["address"] == "chat/send"
    assert command["messages"]["request"]["headers"]["properties"]["command"] == {
        "const": "chat/send"
    }
    assert doc["operations"]["commands.send-message"]["action"] == "receive"
    chat = doc["channels"]["channels.chat"]
    assert chat["address"] == "chat:{room}"
    assert list(chat["parameters"]) == ["room"]
    assert chat["messages"]["message"]["payload"] == {"$ref": "#/components/schemas/ChatEvent"}
    assert "records.user-profile.write" in doc["operations"]
    assert "records.room-topic.write" not in doc["operations"]
    # $defs are gone: references point at components.
    assert "$defs" not in json.dumps(doc)


def test_error_object_matches_the_builtin_contract() -> None:
    envelope = json.loads((BUILTIN / "shared/envelope.json").read_text(encoding="utf-8"))
    assert envelope["$defs"]["ErrorObject"] == ERROR_OBJECT


def test_cli_writes_file_and_refuses_missing_builtins(tmp_path: Path) -> None:
    out = tmp_path / "api.json"
    stream = io.StringIO()
    assert export_asyncapi_command(GOLDEN, out=out, stdout=stream) == 0
    assert out.read_text(encoding="utf-8") == GOLDEN_DOC.read_text(encoding="utf-8")
    stream = io.StringIO()
    code = export_asyncapi_command(
        GOLDEN, include_builtins=True, builtins_dir=tmp_path / "none", stdout=stream
    )
    assert code == 2
    assert "built-in contract not found" in stream.getvalue()
    stream = io.StringIO()
    assert export_asyncapi_command(GOLDEN, out=tmp_path / "no" / "dir.json", stdout=stream) == 2
    assert stream.getvalue().startswith(f"cannot write {tmp_path / 'no' / 'dir.json'}: ")


def test_output_does_not_depend_on_hash_seed(tmp_path: Path) -> None:
    out = tmp_path / "api.json"
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    mesh = [sys.executable, "-c", "from mesh_server.cli import main; main()"]
    subprocess.run(
        [*mesh, "export", "asyncapi", str(GOLDEN), "--out", str(out)],
        check=True,
        capture_output=True,
        env=env,
        cwd=tmp_path,
    )
    assert out.read_text(encoding="utf-8") == GOLDEN_DOC.read_text(encoding="utf-8")

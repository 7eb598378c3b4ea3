"""Contract fingerprint: format, stability, invariances (diff_cases.json covers sensitivity)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from codegen.fingerprint import (
    FINGERPRINT_VERSION,
    canonical_json,
    contract_fingerprint,
    normalized_contract,
)
from codegen.loader import load_contract
from codegen.tools import fingerprint_command

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests/codegen/golden/contract"
# Deployed clients compare fingerprints: a change to the normal form must change
# FINGERPRINT_VERSION (which is hashed too), never silently move this value.
GOLDEN_FINGERPRINT = "sha256:a73c96c8ba75c277c25b6f43abe4c9f6a6816b2f8033bdb0d1002bbc4e379d65"


def test_golden_fingerprint_is_stable() -> None:
    fingerprint = contract_fingerprint(load_contract(GOLDEN))
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", fingerprint)
    assert fingerprint == GOLDEN_FINGERPRINT


def test_fingerprint_hashes_the_canonical_normal_form() -> None:
    contract = load_contract(GOLDEN)
    normal = normalized_contract(contract)
    assert normal["fingerprint"] == FINGERPRINT_VERSION
    assert sorted(normal) == ["channels", "commands", "fingerprint", "pushes", "records"]
    assert sorted(normal["commands"]) == ["chat/send", "get-user-metadata"]
    assert normal["records"]["user:{id}"]["writable"] is True
    digest = hashlib.sha256(canonical_json(normal).encode("utf-8")).hexdigest()
    assert contract_fingerprint(contract) == "sha256:" + digest
    text = json.dumps(normal)
    for dropped in ('"title"', '"description"', "$ref", "$defs", "x-mesh-example"):
        assert dropped not in text


def _variant(tmp_path: Path, edit: str) -> Path:
    target = tmp_path / edit / "contract"
    shutil.copytree(GOLDEN, target)
    path = target / "commands" / "get-user-metadata.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    response = doc["$defs"]["GetUserMetadataResponse"]
    if edit == "float":
        response["properties"]["score"]["maximum"] = 100.0
    elif edit == "order":
        response["required"].reverse()
        response["properties"] = dict(reversed(list(response["properties"].items())))
    elif edit == "enum":
        shared = target / "shared" / "common.json"
        common = json.loads(shared.read_text(encoding="utf-8"))
        common["$defs"]["Tag"]["enum"].reverse()
        shared.write_text(json.dumps(common), encoding="utf-8")
    elif edit == "default":
        response["properties"]["score"]["default"] = 50
    path.write_text(json.dumps(doc), encoding="utf-8")
    return target


def test_equivalent_spellings_share_a_fingerprint(tmp_path: Path) -> None:
    for edit in ("float", "order", "enum", "default"):
        fingerprint = contract_fingerprint(load_contract(_variant(tmp_path, edit)))
        assert fingerprint == GOLDEN_FINGERPRINT, edit


def test_recursive_reference_becomes_a_cycle_marker(tmp_path: Path) -> None:
    (tmp_path / "app" / "records").mkdir(parents=True)
    tree = {
        "title": "Tree",
        "type": "object",
        "additionalProperties": False,
        "properties": {"children": {"type": "array", "items": {"$ref": "#"}}},
        "x-mesh-record": "tree:{id}",
        "x-mesh-pattern": "^tree:[a-z]+$",
    }
    (tmp_path / "app" / "records" / "tree.json").write_text(json.dumps(tree), encoding="utf-8")
    normal = normalized_contract(load_contract(tmp_path / "app"))
    value = normal["records"]["tree:{id}"]["value"]
    assert value["properties"]["children"]["items"] == {"$cycle": 1}


def test_cli_prints_fingerprint_and_normal_form() -> None:
    stream = io.StringIO()
    assert fingerprint_command(GOLDEN, stdout=stream) == 0
    assert stream.getvalue() == GOLDEN_FINGERPRINT + "\n"
    stream = io.StringIO()
    assert fingerprint_command(GOLDEN, normalized=True, stdout=stream) == 0
    assert json.loads(stream.getvalue()) == normalized_contract(load_contract(GOLDEN))


def test_fingerprint_does_not_depend_on_hash_seed_or_directory(tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere"
    shutil.copytree(GOLDEN, copy)
    mesh = [sys.executable, "-c", "from mesh_server.cli import main; main()"]
    proc = subprocess.run(
        [*mesh, "contract", "fingerprint", str(copy)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "99"},
        cwd=tmp_path,
    )
    assert proc.stdout == GOLDEN_FINGERPRINT + "\n"

"""Shape of the generated Python models and headers (issue 10 item 5).

Fields follow the contract's property order; the models hold no stray bundle root and no root
model that nothing uses; the regenerate command in every committed header works when copied.
"""

from __future__ import annotations

import ast
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codegen.cli import codegen_command
from codegen.loader import load_contract
from codegen.render import MARKER, REGENERATE, _inlinable
from tests.codegen.golden.expected import models as golden_models

ROOT = Path(__file__).resolve().parents[2]
PYTHON_TREES = [
    ("contract/mesh", "mesh_sdk/protocol/generated"),
    ("examples/chat/contract", "examples/chat/generated"),
    ("examples/tictactoe/contract", "examples/tictactoe/generated"),
    ("tests/codegen/golden/contract", "tests/codegen/golden/expected"),
]
TS_TREES = [
    ("tests/codegen/golden/contract", "tests/codegen/golden/expected-ts"),
    ("examples/chat/contract", "examples/chat/web/generated"),
]


def _classes(models_py: Path) -> list[str]:
    tree = ast.parse(models_py.read_text(encoding="utf-8"))
    return [node.name for node in tree.body if isinstance(node, ast.ClassDef)]


def test_fields_follow_the_contract_property_order() -> None:
    contract = load_contract(ROOT / "tests/codegen/golden/contract")
    checked = 0
    for definition in contract.definitions.values():
        properties = definition.schema.get("properties")
        model = getattr(golden_models, definition.title, None)
        if not properties or model is None:
            continue
        aliases = [field.alias or name for name, field in model.model_fields.items()]
        assert aliases == list(properties), definition.title
        checked += 1
    # Every object class of the golden contract, several of them not in alphabetical order.
    assert checked == 9


@pytest.mark.parametrize(("contract_dir", "out"), PYTHON_TREES)
def test_models_hold_only_named_or_referenced_classes(contract_dir: str, out: str) -> None:
    contract = load_contract(ROOT / contract_dir)
    named = {e.request for e in contract.entries} | {e.response for e in contract.entries}
    named |= {e.title for e in contract.entries if e.kind != "commands"}
    classes = set(_classes(ROOT / out / "models.py"))
    assert "ContractRoot" not in classes
    for definition in contract.definitions.values():
        if definition.title in classes and _inlinable(definition.schema):
            # A scalar definition is inlined where referenced: its class exists only when a
            # spec of the contract index names it.
            assert definition.title in named, definition.title
    assert classes <= {d.title for d in contract.definitions.values()}


def test_scalar_shared_definitions_are_inlined_without_a_class() -> None:
    classes = _classes(ROOT / "tests/codegen/golden/expected/models.py")
    shared = json.loads((ROOT / "tests/codegen/golden/contract/shared/common.json").read_text())
    assert {"UserId", "Tag"} <= set(shared["$defs"])
    assert not {"UserId", "Tag"} & set(classes)
    assert "RoomTopic" in classes  # a scalar record value: the contract index names it


def _regenerate_command(out: Path) -> list[str]:
    for line in (out / MARKER).read_text(encoding="utf-8").splitlines():
        for prefix in (REGENERATE, "// Regenerate with: "):
            if line.startswith(prefix):
                return shlex.split(line.removeprefix(prefix))
    raise AssertionError(f"no regenerate command in {out / MARKER}")


def _shell_env() -> dict[str, str]:
    """A shell where mesh-py is installed: its scripts folder first on PATH."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    return {**os.environ, "PATH": path}


def _run_copied(out: str) -> subprocess.CompletedProcess[str]:
    argv = _regenerate_command(ROOT / out)
    assert argv[:2] == ["mesh", "codegen"]
    env = _shell_env()
    return subprocess.run(
        [*argv, "--check"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.slow
@pytest.mark.parametrize(("contract_dir", "out"), PYTHON_TREES)
def test_header_command_works_when_copied(contract_dir: str, out: str) -> None:
    argv = _regenerate_command(ROOT / out)
    assert argv[2:5] == [contract_dir, "--out", out]
    proc = _run_copied(out)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.node
@pytest.mark.slow
@pytest.mark.parametrize(("contract_dir", "out"), TS_TREES)
def test_ts_header_command_works_when_copied(contract_dir: str, out: str) -> None:
    assert _regenerate_command(ROOT / out)[2:] == [contract_dir, "--out", out, "--lang", "ts"]
    proc = _run_copied(out)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_without_project_markers_paths_are_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No pyproject.toml or .git above tmp_path: the header names paths from where codegen ran,
    # so the copied command works from there.
    assert not any(
        (p / "pyproject.toml").exists() or (p / ".git").exists() for p in tmp_path.parents
    )
    shutil.copytree(ROOT / "tests/codegen/golden/contract", tmp_path / "app" / "contract")
    monkeypatch.chdir(tmp_path)
    assert (
        codegen_command(Path("app/contract"), Path("out"), check=False, stdout=io.StringIO()) == 0
    )
    assert _regenerate_command(tmp_path / "out") == [
        "mesh",
        "codegen",
        "app/contract",
        "--out",
        "out",
    ]
    env = _shell_env()
    proc = subprocess.run(
        [*_regenerate_command(tmp_path / "out"), "--check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

"""The `mesh` contract commands: check, --version, help flags, missing codegen dependencies."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from codegen.deps import CODEGEN_DEPENDENCIES
from mesh_server.cli import app

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests/codegen/golden/contract"
RUNNER = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = RUNNER.invoke(app, list(args))
    return result.exit_code, result.output


def test_version() -> None:
    code, output = _run("--version")
    assert code == 0
    assert output == f"mesh-py {importlib.metadata.version('mesh-py')}\n"


@pytest.mark.parametrize("command", [["codegen"], ["contract", "diff"], ["export", "asyncapi"]])
def test_boolean_options_are_shown_as_flags(command: list[str]) -> None:
    code, output = _run(*command, "--help")
    assert code == 0
    assert "<bool>" not in output
    assert re.search(r"^\s+--(check|json|include-builtins)\s{2,}\S", output, re.MULTILINE)


def test_python_m_codegen_help_shows_check_as_flag() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "codegen", "--help"], capture_output=True, text=True, check=True
    )
    assert re.search(r"^\s+--check\s{2,}Only compare", proc.stdout, re.MULTILINE)


def test_check_valid_contract() -> None:
    code, output = _run("check", str(GOLDEN))
    assert code == 0
    assert "contract ChatApp is valid (2 commands, 1 channels, 2 records, 0 pushes)" in output


def test_check_reports_every_problem_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "commands").mkdir()
    (tmp_path / "commands" / "bad.json").write_text("{", encoding="utf-8")
    (tmp_path / "channels").mkdir()
    (tmp_path / "channels" / "chat.json").write_text('{"title": "Chat"}', encoding="utf-8")
    code, output = _run("check", str(tmp_path))
    assert code == 2
    assert "commands/bad.json: /: not valid JSON" in output
    assert "channels/chat.json: /: missing required key 'x-mesh-channel'" in output
    assert not (tmp_path / "out").exists()


BLOCK_JSONSCHEMA = "import sys; sys.modules['jsonschema'] = None; "


@pytest.mark.parametrize(
    "argv",
    [
        ["-c", BLOCK_JSONSCHEMA + "from mesh_server.cli import main; main()", "check", "X"],
        ["-c", BLOCK_JSONSCHEMA + "from mesh_server.cli import main; main()", "codegen", "X",
         "--out", "Y"],
        ["-c", BLOCK_JSONSCHEMA + "import runpy; runpy.run_module('codegen', run_name='__main__')",
         "X", "--out", "Y"],
    ],
    ids=["mesh check", "mesh codegen", "python -m codegen"],
)  # fmt: skip
def test_missing_codegen_dependency_is_one_line_hint(argv: list[str], tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert proc.returncode == 3
    assert proc.stderr == ""
    assert proc.stdout == (
        "jsonschema is not installed; codegen tools need the codegen extra: "
        "pip install 'mesh-py[codegen]'\n"
    )


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_codegen_extra_installs_every_codegen_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    base = _requirement_names(project["dependencies"])
    extra = _requirement_names(project["optional-dependencies"]["codegen"])
    first_party = {"codegen", "mesh_sdk", "mesh_server"}
    imported: set[str] = set()
    for path in sorted((ROOT / "codegen").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - first_party
    distributions = importlib.metadata.packages_distributions()
    for module in sorted(third_party | CODEGEN_DEPENDENCIES):
        names = {d.lower() for d in distributions[module]}
        assert names & (base | extra), (
            f"{module} ({names}) is in neither dependencies nor [codegen]"
        )
    for module in sorted(CODEGEN_DEPENDENCIES):
        names = {d.lower() for d in distributions[module]}
        assert names & extra, f"{module} is a codegen dependency but not in [codegen]"


def test_import_tool_reraises_unrelated_missing_modules() -> None:
    from codegen.deps import MissingDependencyError, import_tool

    with pytest.raises(ModuleNotFoundError) as caught:
        import_tool("codegen.no_such_module")
    assert not isinstance(caught.value, MissingDependencyError)

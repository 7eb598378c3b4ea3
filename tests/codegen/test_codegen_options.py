"""Codegen options recorded in the output (``--strict-readers``) and the generated fingerprint."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from codegen.cli import _existing, codegen_command, generate, recorded_strict_readers
from codegen.fingerprint import contract_fingerprint
from codegen.loader import load_contract
from codegen.render import MARKER
from mesh_server.cli import app

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests/codegen/golden/contract"
EXPECTED = ROOT / "tests/codegen/golden/expected"


def _body(text: str) -> str:
    """A generated file without its two header lines (they name the command and the folder)."""
    return text.split("\n", 2)[2]


def test_generated_index_carries_the_fingerprint_and_tolerant_readers() -> None:
    index = (EXPECTED / "contract_index.py").read_text(encoding="utf-8")
    fingerprint = contract_fingerprint(load_contract(GOLDEN))
    assert f'FINGERPRINT: Final = "{fingerprint}"' in index
    assert "fingerprint=FINGERPRINT," in index
    assert "strict_readers=False," in index
    assert not recorded_strict_readers(EXPECTED)


def test_strict_readers_are_recorded_and_reproduced_by_check(tmp_path: Path) -> None:
    out = tmp_path / "strict"
    quiet = io.StringIO()
    assert codegen_command(GOLDEN, out, check=False, strict_readers=True, stdout=quiet) == 0
    files = _existing(out)
    assert "strict_readers=True," in files["contract_index.py"]
    assert files[MARKER].splitlines()[1].endswith(" --strict-readers")
    assert recorded_strict_readers(out)
    # Only the index differs from tolerant output: the models are the same classes.
    tolerant = generate(GOLDEN, out, strict_readers=False)
    assert _body(tolerant["models.py"]) == _body(files["models.py"])
    assert _body(tolerant["facade.py"]) == _body(files["facade.py"])
    # The drift check (and a plain regeneration) reproduce the recorded option ...
    assert codegen_command(GOLDEN, out, check=True, stdout=quiet) == 0
    assert codegen_command(GOLDEN, out, check=False, stdout=quiet) == 0
    assert recorded_strict_readers(out)
    # ... and --tolerant-readers switches it off again.
    stream = io.StringIO()
    assert codegen_command(GOLDEN, out, check=True, strict_readers=False, stdout=stream) == 1
    assert "+    strict_readers=False," in stream.getvalue()
    assert codegen_command(GOLDEN, out, check=False, strict_readers=False, stdout=quiet) == 0
    assert not recorded_strict_readers(out)


def test_help_shows_the_reader_options() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "codegen", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={"COLUMNS": "200", "PATH": ""},
    )
    assert proc.returncode == 0, proc.stderr
    assert "--strict-readers / --tolerant-readers" in proc.stdout
    result = CliRunner().invoke(app, ["codegen", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--strict-readers / --tolerant-readers" in result.output


@pytest.mark.parametrize(
    ("contract", "client_ts"),
    [
        (GOLDEN, "tests/codegen/golden/expected-ts/client.ts"),
        (ROOT / "examples/chat/contract", "examples/chat/web/generated/client.ts"),
    ],
)
def test_typescript_bindings_carry_the_same_fingerprint(contract: Path, client_ts: str) -> None:
    fingerprint = contract_fingerprint(load_contract(contract))
    text = (ROOT / client_ts).read_text(encoding="utf-8")
    # prettier breaks the long line after ``=``.
    assert f'export const FINGERPRINT =\n  "{fingerprint}";' in text

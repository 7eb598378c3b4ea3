"""Golden output, built-in drift, determinism and CLI behaviour of codegen."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codegen.cli import _existing, codegen_command, compare_trees, generate
from codegen.render import MARKER

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests/codegen/golden/contract"
EXPECTED = ROOT / "tests/codegen/golden/expected"
BUILTIN = ROOT / "contract/mesh"
GENERATED = ROOT / "mesh_sdk/protocol/generated"


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # Headers name paths relative to the project root, whatever the working directory:
    # run from elsewhere to prove it.
    monkeypatch.chdir(ROOT / "tests")


def test_golden_contract_regenerates_to_expected_tree() -> None:
    started = time.perf_counter()
    files = generate(GOLDEN, EXPECTED)
    elapsed = time.perf_counter() - started
    print(f"codegen of the golden contract: {elapsed:.2f} s")
    assert compare_trees(files, _existing(EXPECTED)) == []


def test_builtin_contract_has_not_drifted_from_generated_package() -> None:
    assert compare_trees(generate(BUILTIN, GENERATED), _existing(GENERATED)) == []


def test_builtin_contract_is_generated_without_a_client_facade() -> None:
    # mesh_sdk.protocol.generated is shared with the server: no client code in it.
    files = generate(BUILTIN, GENERATED)
    assert sorted(files) == [MARKER, "__init__.py", "contract_index.py", "models.py"]
    assert ".facade" not in files["__init__.py"]
    assert "facade.py" in generate(GOLDEN, EXPECTED)


def test_check_mode_reports_missing_extra_and_changed(tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    out_rel = out
    assert codegen_command(GOLDEN, out_rel, check=False, stdout=io.StringIO()) == 0
    assert codegen_command(GOLDEN, out_rel, check=True, stdout=io.StringIO()) == 0
    (out / "facade.py").write_text("changed\n", encoding="utf-8")
    (out / "stale.py").write_text("x = 1\n", encoding="utf-8")
    (out / "models.py").unlink()
    stream = io.StringIO()
    assert codegen_command(GOLDEN, out_rel, check=True, stdout=stream) == 1
    text = stream.getvalue()
    assert "missing: models.py" in text
    assert "extra: stale.py" in text
    assert "changed: facade.py" in text
    assert "-changed" in text
    # Regenerating deletes the stale file and restores the tree.
    assert codegen_command(GOLDEN, out_rel, check=False, stdout=io.StringIO()) == 0
    assert not (out / "stale.py").exists()
    assert codegen_command(GOLDEN, out_rel, check=True, stdout=io.StringIO()) == 0


def test_refuses_to_clobber_folder_without_marker(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text("keep = True\n", encoding="utf-8")
    stream = io.StringIO()
    assert codegen_command(GOLDEN, tmp_path, check=False, stdout=stream) == 2
    assert MARKER in stream.getvalue()
    assert (tmp_path / "mine.py").exists()


def test_invalid_contract_exits_2_with_problems_and_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "commands").mkdir()
    (tmp_path / "commands" / "bad.json").write_text("{not json", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "codegen", str(tmp_path), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert "commands/bad.json: /: not valid JSON" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_missing_generator_prints_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datamodel_code_generator", None)
    stream = io.StringIO()
    assert codegen_command(GOLDEN, EXPECTED, check=True, stdout=stream) == 3
    assert "pip install 'mesh-py[codegen]'" in stream.getvalue()


@pytest.mark.slow
def test_output_is_byte_identical_across_hash_seeds(tmp_path: Path) -> None:
    outputs = []
    for seed in ("1", "4242"):
        out = tmp_path / f"seed{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run(
            [sys.executable, "-m", "codegen", str(GOLDEN), "--out", str(out)],
            check=True,
            capture_output=True,
            env=env,
            cwd=ROOT,
        )
        files = _existing(out)
        outputs.append({k: v.replace(out.name, "OUT") for k, v in files.items()})
    assert outputs[0] == outputs[1]
    for text in outputs[0].values():
        assert text.endswith("\n")
        assert "\r" not in text
        assert str(ROOT) not in text

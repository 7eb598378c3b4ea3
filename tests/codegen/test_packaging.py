"""The wheel ships the built-in contract: `mesh export asyncapi --include-builtins` works installed.

``codegen/builtin_contract`` is a symbolic link to ``contract/mesh`` (one copy in the source
tree); building a wheel must turn it into the files themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from codegen.tools import BUILTIN_CONTRACT

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "contract/mesh"
SKIPPED = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "__pycache__", "*.egg-info", "build", "dist", ".*_cache"
)


def test_builtin_contract_is_a_link_to_contract_mesh() -> None:
    link = ROOT / "codegen/builtin_contract"
    assert link.is_symlink()
    assert os.readlink(link) == "../contract/mesh"
    assert BUILTIN_CONTRACT.resolve() == CONTRACT.resolve()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the working tree (so the repository stays untouched)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "src"
    shutil.copytree(ROOT, source, symlinks=True, ignore=SKIPPED)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(base), "."],
        cwd=source,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = base.glob("mesh_py-*.whl")
    return built


@pytest.mark.slow
def test_wheel_holds_the_builtin_contract_and_no_node_modules(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        files = sorted(p for p in CONTRACT.rglob("*") if p.is_file())
        assert len(files) >= 30
        for path in files:
            member = "codegen/builtin_contract/" + path.relative_to(CONTRACT).as_posix()
            assert archive.read(member) == path.read_bytes(), member
    assert not [n for n in names if "node_modules" in n]
    for name in ("contract.ts", "runtime.ts", "subscriptions.ts", "generate.mjs", "package.json"):
        assert f"codegen/ts/{name}" in names


@pytest.mark.slow
def test_export_with_builtins_runs_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    # Outside any checkout, importing the unpacked wheel first (dependencies from this venv).
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = tmp_path / "asyncapi.json"
    script = (
        "import sys, codegen; from mesh_server.cli import main; "
        "print(codegen.__file__, file=sys.stderr); main()"
    )
    contract = ROOT / "tests/codegen/golden/contract"
    export = ["export", "asyncapi", str(contract), "--include-builtins", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-c", script, *export],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.startswith(str(site / "codegen")), proc.stderr
    channels = json.loads(out.read_text(encoding="utf-8"))["channels"]
    assert "mesh.commands.contract-info" in channels

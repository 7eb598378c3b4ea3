"""The README's contract-first quickstart: every code block says what checks it, and is checked.

A block preceded by ``<!-- excerpt: PATH ... -->`` must be a verbatim run of lines of ``PATH``
(compared after removing the common indentation, as the README shows code out of its function);
a block preceded by ``<!-- run: ... -->`` is a ``mesh codegen`` command, run here with
``--check``. The examples and the test excerpted are exercised by their own tests.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SECTION = README[
    README.index("## Quickstart: contract first") : README.index("## Without a contract")
]
BLOCK = re.compile(r"^(?:<!-- (excerpt|run): (\S+)[^\n]*-->\n)?```\w*\n(.*?)^```$", re.M | re.S)
BLOCKS = [match.groups() for match in BLOCK.finditer(SECTION)]
EXCERPTS = [(path, body) for kind, path, body in BLOCKS if kind == "excerpt"]
RUNS = [body for kind, _, body in BLOCKS if kind == "run"]


def _is_run_of_lines(excerpt: str, text: str) -> bool:
    wanted = excerpt.rstrip("\n").splitlines()
    lines = text.splitlines()
    return any(
        textwrap.dedent("\n".join(lines[start : start + len(wanted)])) == "\n".join(wanted)
        for start in range(len(lines) - len(wanted) + 1)
    )


def test_every_quickstart_block_says_what_checks_it() -> None:
    assert len(BLOCKS) >= 5
    assert [kind for kind, _, _ in BLOCKS if kind is None] == []


@pytest.mark.parametrize(("path", "body"), EXCERPTS, ids=[path for path, _ in EXCERPTS])
def test_excerpts_are_verbatim(path: str, body: str) -> None:
    assert _is_run_of_lines(body, (ROOT / path).read_text(encoding="utf-8")), path


def test_the_excerpt_check_rejects_an_edited_line() -> None:
    text = "def f():\n    a = 1\n    b = 2\n"
    assert _is_run_of_lines("a = 1\nb = 2\n", text)
    assert not _is_run_of_lines("a = 1\nb = 3\n", text)
    assert not _is_run_of_lines("a = 1\n\nb = 2\n", text)


@pytest.mark.parametrize("command", RUNS)
def test_the_codegen_command_reproduces_the_committed_package(command: str) -> None:
    program, *args = shlex.split(command)
    assert program == ".venv/bin/mesh"
    assert args[0] == "codegen"
    mesh = Path(sys.executable).with_name("mesh")  # the mesh of the environment under test
    result = subprocess.run(
        [str(mesh), *args, "--check"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr

"""The ``codegen`` command: generate (or ``--check``) a package from a contract directory.

Exit codes: 0 success (or up to date), 1 ``--check`` found differences, 2 invalid contract or
usage error, 3 generator not installed. Contract problems are printed one per line as
``file: /json/pointer: message``, never as a traceback.
"""

from __future__ import annotations

import difflib
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Final, TextIO

from codegen.loader import ContractError, load_contract
from codegen.render import MARKER, REGENERATE, MissingGeneratorError, render
from codegen.ts_render import NodeToolsMissingError, render_ts

__all__ = [
    "codegen_command",
    "compare_trees",
    "generate",
    "recorded_strict_readers",
    "report_problems",
]

INSTALL_HINT: Final = (
    "codegen needs datamodel-code-generator and black: pip install 'mesh-py[codegen]'"
)
IGNORED: Final = frozenset({"__pycache__"})
LANGUAGES: Final = ("python", "ts")
STRICT_READERS: Final = "--strict-readers"


def project_root(start: Path) -> Path:
    """Return the nearest ancestor of ``start`` holding ``pyproject.toml`` or ``.git``.

    Without either, the working directory: the regenerate command of the header is then run
    from where codegen ran (it names paths relative to the returned folder).
    """
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / "pyproject.toml").is_file() or (candidate / ".git").exists():
            return candidate
    return Path.cwd()


def _relative(path: Path, root: Path) -> str:
    """Path as written in headers: relative to the project root, POSIX.

    Using the project root (not the working directory) keeps output byte-identical wherever
    codegen runs from.
    """
    try:
        return Path(os.path.relpath(path.resolve(), root)).as_posix()
    except ValueError:  # pragma: no cover - other drive on Windows
        return path.name


def recorded_strict_readers(out: Path) -> bool:
    """Whether the package in ``out`` was generated with ``--strict-readers``.

    The option is recorded in the regenerate command of the marker file's header, so ``--check``
    and a plain regeneration reproduce the output without repeating it.
    """
    marker = out / MARKER
    if not marker.is_file():
        return False
    for line in marker.read_text(encoding="utf-8").splitlines():
        if line.startswith(REGENERATE):
            return STRICT_READERS in shlex.split(line.removeprefix(REGENERATE))
    return False


def generate(
    contract_dir: Path, out: Path, lang: str = "python", *, strict_readers: bool | None = None
) -> dict[str, str]:
    """Load, meta-check and render ``contract_dir``; return ``{relative path: text}``.

    Header paths are relative to the project root of the contract (the nearest ancestor with a
    ``pyproject.toml``), so the output does not depend on the working directory.

    Args:
        contract_dir: The contract directory.
        out: The output folder (named in the regenerate command of the header; the marker of
            an existing Python package there holds its recorded options).
        lang: ``python`` (pydantic package) or ``ts`` (TypeScript bindings).
        strict_readers: Python only: generate strict client readers; ``None``: as recorded in
            ``out`` (:func:`recorded_strict_readers`).

    Raises:
        ContractError: The contract is invalid.
        MissingGeneratorError: The generator of ``lang`` is missing.
    """
    contract = load_contract(contract_dir)
    root = project_root(contract_dir)
    rel_contract = _relative(contract_dir, root)
    # The installed console script: ``python`` may name another interpreter than mesh-py's.
    command = shlex.join(["mesh", "codegen", rel_contract, "--out", _relative(out, root)])
    if lang == "ts":
        return render_ts(contract, rel_contract, command + " --lang ts")
    if strict_readers is None:
        strict_readers = recorded_strict_readers(out)
    if strict_readers:
        command += " " + STRICT_READERS
    return render(contract, rel_contract, command, strict_readers=strict_readers)


def _existing(out: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    if not out.is_dir():
        return files
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if path.is_file() and not IGNORED.intersection(rel.parts):
            files[rel.as_posix()] = path.read_text(encoding="utf-8", errors="replace")
    return files


def compare_trees(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """Return human-readable differences (missing, extra, changed with unified diff)."""
    lines: list[str] = []
    for rel in sorted(set(expected) | set(actual)):
        if rel not in actual:
            lines.append(f"missing: {rel}")
        elif rel not in expected:
            lines.append(f"extra: {rel}")
        elif expected[rel] != actual[rel]:
            lines.append(f"changed: {rel}")
            lines.extend(
                difflib.unified_diff(
                    actual[rel].splitlines(),
                    expected[rel].splitlines(),
                    fromfile=f"{rel} (on disk)",
                    tofile=f"{rel} (generated)",
                    lineterm="",
                )
            )
    return lines


def _write(out: Path, files: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for rel in sorted(set(_existing(out)) - set(files)):
        (out / rel).unlink()
    for rel, text in files.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_bytes() != text.encode("utf-8"):
            target.write_bytes(text.encode("utf-8"))
    for path in sorted(out.rglob("*"), reverse=True):
        if path.is_dir() and path.name in IGNORED:
            shutil.rmtree(path)
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def report_problems(contract_dir: Path, error: ContractError, stream: TextIO) -> None:
    """Print every meta-check problem of ``error``, one per line (``file: /pointer: message``)."""
    print(f"invalid contract {contract_dir}: {len(error.problems)} problem(s)", file=stream)
    for problem in error.problems:
        print(problem, file=stream)


def codegen_command(
    contract_dir: Path,
    out: Path,
    check: bool,
    *,
    lang: str = "python",
    strict_readers: bool | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Generate ``out`` from ``contract_dir`` (or compare with ``check``); return the exit code.

    Args:
        contract_dir: The contract directory (contract/README.md).
        out: The package directory codegen owns entirely (it deletes stale files). A non-empty
            directory without codegen's marker file is refused.
        check: Compare only; exit 1 and print a diff when ``out`` is not up to date.
        lang: ``python`` (pydantic models and facade) or ``ts`` (TypeScript bindings).
        strict_readers: Python only: ``--strict-readers`` (``True``) or ``--tolerant-readers``
            (``False``); ``None`` keeps what ``out`` records (tolerant for a new package).
        stdout: Stream for messages (default: ``sys.stdout``; problems go there too).

    Returns:
        0, 1 (check found differences), 2 (bad contract or output folder) or 3 (no generator).
    """
    stream = stdout if stdout is not None else sys.stdout
    if lang not in LANGUAGES:
        print(f"unknown language {lang!r}: choose one of {', '.join(LANGUAGES)}", file=stream)
        return 2
    try:
        files = generate(contract_dir, out, lang, strict_readers=strict_readers)
    except ContractError as exc:
        report_problems(contract_dir, exc, stream)
        return 2
    except NodeToolsMissingError as exc:
        print(exc, file=stream)
        return 3
    except MissingGeneratorError:
        print(INSTALL_HINT, file=stream)
        return 3
    existing = _existing(out)
    if check:
        differences = compare_trees(files, existing)
        if differences:
            print(f"{out} is out of date with {contract_dir}:", file=stream)
            for line in differences:
                print(line, file=stream)
            return 1
        print(f"{out} is up to date", file=stream)
        return 0
    if existing and MARKER not in existing:
        print(f"refusing to overwrite {out}: it has no {MARKER} marker file", file=stream)
        return 2
    _write(out, files)
    print(f"generated {len(files)} files in {out}", file=stream)
    return 0

"""The contract tools behind ``mesh check``, ``mesh export asyncapi`` and ``mesh contract …``.

Each command returns its exit code and writes to a stream, like :func:`codegen.cli.codegen_command`:
0 success, 1 ``contract diff`` found a breaking change for the mode, 2 invalid contract or usage
error (problems one per line as ``file: /pointer: message``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final, TextIO

from codegen.asyncapi import dumps, export_asyncapi
from codegen.cli import report_problems
from codegen.diff import MODES, breaking, diff_contracts
from codegen.fingerprint import contract_fingerprint, normalized_contract
from codegen.loader import Contract, ContractError, load_contract

__all__ = [
    "BUILTIN_CONTRACT",
    "SourceError",
    "check_command",
    "contract_source",
    "diff_command",
    "export_asyncapi_command",
    "fingerprint_command",
]

BUILTIN_CONTRACT: Final = Path(__file__).resolve().parent / "builtin_contract"
"""The built-in protocol contract (``--builtins`` overrides it).

``codegen/builtin_contract`` is a symbolic link to ``contract/mesh`` in the source tree (the one
copy); a wheel holds the files themselves, so installed packages have them too.
"""


class SourceError(Exception):
    """A contract argument is neither a directory nor a readable git revision."""


def _load(contract_dir: Path, stream: TextIO) -> Contract | None:
    try:
        return load_contract(contract_dir)
    except ContractError as exc:
        report_problems(contract_dir, exc, stream)
        return None


def check_command(contract_dir: Path, *, stdout: TextIO | None = None) -> int:
    """Meta-check ``contract_dir`` without generating; return 0, or 2 with every problem."""
    stream = stdout if stdout is not None else sys.stdout
    contract = _load(contract_dir, stream)
    if contract is None:
        return 2
    counts = ", ".join(
        f"{len(contract.entries_of(kind))} {kind}"
        for kind in ("commands", "channels", "records", "pushes")
    )
    print(f"{contract_dir}: contract {contract.name} is valid ({counts})", file=stream)
    return 0


def export_asyncapi_command(
    contract_dir: Path,
    *,
    out: Path | None = None,
    include_builtins: bool = False,
    builtins_dir: Path | None = None,
    api_version: str = "0.0.0",
    stdout: TextIO | None = None,
) -> int:
    """Write the AsyncAPI 3.0.0 document of ``contract_dir`` to ``out`` (default: ``stdout``)."""
    stream = stdout if stdout is not None else sys.stdout
    contract = _load(contract_dir, stream)
    if contract is None:
        return 2
    builtins = None
    if include_builtins:
        location = builtins_dir if builtins_dir is not None else BUILTIN_CONTRACT
        if not location.is_dir():
            print(f"built-in contract not found at {location}; pass --builtins DIR", file=stream)
            return 2
        builtins = _load(location, stream)
        if builtins is None:
            return 2
    text = dumps(export_asyncapi(contract, builtins=builtins, api_version=api_version))
    if out is None:
        stream.write(text)
        return 0
    try:
        out.write_bytes(text.encode("utf-8"))
    except OSError as exc:
        print(f"cannot write {out}: {exc.strerror}", file=stream)
        return 2
    print(f"wrote {out}", file=stream)
    return 0


def fingerprint_command(
    contract_dir: Path, *, normalized: bool = False, stdout: TextIO | None = None
) -> int:
    """Print the contract fingerprint (or, with ``normalized``, the normal form it hashes)."""
    stream = stdout if stdout is not None else sys.stdout
    contract = _load(contract_dir, stream)
    if contract is None:
        return 2
    if normalized:
        stream.write(json.dumps(normalized_contract(contract), indent=2, ensure_ascii=False))
        stream.write("\n")
    else:
        print(contract_fingerprint(contract), file=stream)
    return 0


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, check=False)


@contextlib.contextmanager
def contract_source(spec: str, like: Path) -> Iterator[Path]:
    """Yield a contract directory for ``spec``: a directory, ``REV`` or ``REV:PATH``.

    The repository is the one holding ``like`` (the NEW contract; else the working directory).
    ``REV`` alone reads the path of ``like`` at that revision; ``PATH`` in ``REV:PATH`` is
    relative to the repository root. The files are extracted (``git archive``)
    into a temporary directory under their repository path, so the directory name, and with it
    the default contract name, is unchanged.

    Raises:
        SourceError: ``spec`` is neither a directory nor a revision holding the path.
    """
    if Path(spec).is_dir():
        yield Path(spec)
        return
    rev, sep, path = spec.partition(":")
    anchor = like if like.is_dir() else Path.cwd()
    top = _git(anchor, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise SourceError(f"{spec!r} is not a directory, and {anchor} is not in a git repository")
    root = Path(top.stdout.decode().strip())
    if _git(root, "rev-parse", "--verify", "--quiet", rev + "^{commit}").returncode != 0:
        raise SourceError(f"{spec!r} is neither a directory nor a git revision of {root}")
    rel = path.strip("/") if sep else Path(os.path.relpath(like.resolve(), root)).as_posix()
    archive = _git(root, "archive", "--format=tar", rev, "--", rel)
    if archive.returncode != 0:
        detail = archive.stderr.decode(errors="replace").strip().splitlines()
        reason = detail[-1] if detail else "git archive failed"
        raise SourceError(f"cannot read {rel} at git revision {rev!r}: {reason}")
    with tempfile.TemporaryDirectory(prefix="mesh-contract-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp) / rel


def diff_command(
    old: str,
    new: Path,
    *,
    mode: str = "backward",
    as_json: bool = False,
    strict_clients: bool = False,
    stdout: TextIO | None = None,
) -> int:
    """Compare contract ``old`` (directory or git revision) with ``new``; return the exit code.

    Returns:
        0 (no change breaks ``mode``), 1 (some change does) or 2 (invalid input).
    """
    stream = stdout if stdout is not None else sys.stdout
    if mode not in MODES:
        print(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}", file=stream)
        return 2
    try:
        with contract_source(old, new) as old_dir:
            before = _load(old_dir, stream)
    except SourceError as exc:
        print(exc, file=stream)
        return 2
    after = _load(new, stream)
    if before is None or after is None:
        return 2
    changes = diff_contracts(before, after, strict_clients=strict_clients)
    failing = breaking(changes, mode)
    if as_json:
        report = {
            "old": old,
            "new": str(new),
            "mode": mode,
            "breaking": bool(failing),
            "changes": [
                {
                    "class": change.impact.label,
                    "breaks": change.impact.broken,
                    "subject": change.subject,
                    "part": change.part,
                    "path": change.path,
                    "rule": change.rule,
                    "message": change.message,
                }
                for change in changes
            ],
        }
        stream.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    else:
        safe = sum(1 for c in changes if not c.impact)
        print(f"{old} → {new}: {len(changes)} change(s), {safe} safe", file=stream)
        for change in changes:
            print(f"  {change}", file=stream)
        verdict = f"FAIL: {len(failing)} breaking change(s)" if failing else "OK"
        print(f"mode {mode} ({_MODE_TEXT[mode]}): {verdict}", file=stream)
    return 1 if failing else 0


_MODE_TEXT: Final = {
    "backward": "old clients against the new server",
    "forward": "new clients against the old server",
    "full": "both",
}

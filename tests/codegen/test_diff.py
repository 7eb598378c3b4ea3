"""`mesh contract diff`: the change corpus (diff_cases.json), modes, git revisions and output."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from codegen.diff import MODES, Impact, breaking, diff_contracts
from codegen.fingerprint import contract_fingerprint
from codegen.loader import load_contract
from codegen.tools import SourceError, contract_source, diff_command

ROOT = Path(__file__).resolve().parents[2]
BASES = {"golden": ROOT / "tests/codegen/golden/contract", "builtin": ROOT / "contract/mesh"}
CORPUS = json.loads((Path(__file__).with_name("diff_cases.json")).read_text(encoding="utf-8"))
CASES = CORPUS["cases"]
SOURCE_ONLY = {"ANNOTATION_CHANGED", "CLASS_RENAMED", "METHOD_RENAMED", "CONTRACT_RENAMED"}


def _apply(case: dict[str, Any], tmp_path: Path) -> tuple[Path, Path]:
    base = BASES[case.get("base", "golden")]
    old = tmp_path / "old" / base.name
    new = tmp_path / "new" / base.name
    shutil.copytree(base, old)
    shutil.copytree(base, new)
    edits = [
        (old, case.get("setup", {})),
        (new, case.get("setup", {})),
        (new, case.get("edit", {})),
    ]
    for root, patches in edits:
        for rel, ops in patches.items():
            path = root / rel
            doc = json.loads(path.read_text(encoding="utf-8"))
            path.write_text(json.dumps(jsonpatch.apply_patch(doc, ops)), encoding="utf-8")
    for rel in case.get("reformat", []):
        path = new / rel
        doc = json.loads(path.read_text(encoding="utf-8"))
        path.write_text(json.dumps(doc, indent=7, sort_keys=True), encoding="utf-8")
    for rel in case.get("delete", []):
        (new / rel).unlink()
    for rel, doc in case.get("create", {}).items():
        (new / rel).write_text(json.dumps(doc), encoding="utf-8")
    for rel, target in case.get("rename", {}).items():
        (new / rel).rename(new / target)
    return old, new


def test_corpus_is_large_and_covers_every_class() -> None:
    assert len(CASES) >= 30
    seen = {row[4] for case in CASES for row in case["expect"]}
    assert seen == set(CORPUS["classes"])
    assert len({case["name"] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_change_case(case: dict[str, Any], tmp_path: Path) -> None:
    old_dir, new_dir = _apply(case, tmp_path)
    old, new = load_contract(old_dir), load_contract(new_dir)
    changes = diff_contracts(old, new, strict_clients=case.get("strict_clients", False))
    got = [[c.subject, c.part, c.path, c.rule, c.impact.label] for c in changes]
    assert got == case["expect"]
    # Each mode fails exactly when some change breaks whom it protects.
    for mode, protects in MODES.items():
        assert breaking(changes, mode) == [c for c in changes if c.impact & protects]
    stream = io.StringIO()
    strict = case.get("strict_clients", False)
    code = diff_command(str(old_dir), new_dir, strict_clients=strict, stdout=stream)
    assert code == (1 if breaking(changes, "backward") else 0)
    assert stream.getvalue().count("\n") == len(changes) + 2
    # The fingerprint moves exactly when a change reaches the wire.
    wire = any(c.rule not in SOURCE_ONLY for c in changes)
    assert (contract_fingerprint(old) != contract_fingerprint(new)) == wire


def test_diff_is_antisymmetric_for_members(tmp_path: Path) -> None:
    case = next(c for c in CASES if c["name"] == "request: required member added")
    old_dir, new_dir = _apply(case, tmp_path)
    forward = diff_contracts(load_contract(old_dir), load_contract(new_dir))
    backward = diff_contracts(load_contract(new_dir), load_contract(old_dir))
    assert [c.rule for c in forward] == ["MEMBER_ADDED_REQUIRED"]
    assert [c.rule for c in backward] == ["MEMBER_REMOVED_REQUIRED"]
    # Removing a required request member: new clients omit it (old servers break); old clients
    # still send it and the strict new server rejects the unknown member.
    assert backward[0].impact == Impact.OLD_CLIENTS | Impact.OLD_SERVERS


def test_recursive_schemas_terminate(tmp_path: Path) -> None:
    tree = {
        "title": "Tree",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#"}},
        },
        "x-mesh-record": "tree:{id}",
        "x-mesh-pattern": "^tree:[a-z]+$",
    }
    for side, max_length in (("old", 10), ("new", 20)):
        (tmp_path / side / "app" / "records").mkdir(parents=True)
        schema = json.loads(json.dumps(tree))
        schema["properties"]["name"]["maxLength"] = max_length
        (tmp_path / side / "app" / "records" / "tree.json").write_text(json.dumps(schema))
    old, new = load_contract(tmp_path / "old" / "app"), load_contract(tmp_path / "new" / "app")
    changes = diff_contracts(old, new)
    assert [(c.path, c.rule) for c in changes] == [("/name", "CONSTRAINT_LOOSENED")]
    assert contract_fingerprint(old) != contract_fingerprint(new)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository whose HEAD~1 holds the golden contract and HEAD a changed copy."""
    contract = tmp_path / "app" / "contract"
    shutil.copytree(BASES["golden"], contract)
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "first")
    path = contract / "commands" / "send-message.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    del doc["$defs"]["SendMessageRequest"]["properties"]["replyTo"]
    path.write_text(json.dumps(doc), encoding="utf-8")
    _git(tmp_path, "commit", "-q", "-am", "second")
    return contract


def test_old_side_from_git_revision(repo: Path) -> None:
    stream = io.StringIO()
    assert diff_command("HEAD~1", repo, stdout=stream) == 1
    text = stream.getvalue()
    assert "command chat/send request /replyTo: optional member removed" in text
    assert "FAIL: 1 breaking change(s)" in text
    assert diff_command("HEAD", repo, stdout=io.StringIO()) == 0
    assert diff_command("HEAD~1:app/contract", repo, mode="forward", stdout=io.StringIO()) == 0


def test_git_revision_keeps_directory_name(repo: Path) -> None:
    with contract_source("HEAD~1", repo) as old_dir:
        assert old_dir.name == repo.name
        assert (old_dir / "commands" / "send-message.json").is_file()
    assert not old_dir.exists()


def test_bad_revision_and_bad_mode_exit_2(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stream = io.StringIO()
    assert diff_command("no-such-rev", repo, stdout=stream) == 2
    assert "'no-such-rev' is neither a directory nor a git revision of" in stream.getvalue()
    stream = io.StringIO()
    assert diff_command("HEAD~1:app/missing", repo, stdout=stream) == 2
    assert "cannot read app/missing at git revision 'HEAD~1'" in stream.getvalue()
    plain = tmp_path_factory.mktemp("plain")
    with (
        pytest.raises(SourceError, match="not in a git repository"),
        contract_source("HEAD", plain),
    ):
        pass
    stream = io.StringIO()
    assert diff_command(str(repo), repo, mode="sideways", stdout=stream) == 2
    assert "unknown mode 'sideways'" in stream.getvalue()


def test_invalid_contract_exits_2_with_problems(tmp_path: Path) -> None:
    (tmp_path / "commands").mkdir()
    (tmp_path / "commands" / "bad.json").write_text("{", encoding="utf-8")
    stream = io.StringIO()
    assert diff_command(str(BASES["golden"]), tmp_path, stdout=stream) == 2
    assert "commands/bad.json: /: not valid JSON" in stream.getvalue()


def test_json_report(repo: Path) -> None:
    stream = io.StringIO()
    assert diff_command("HEAD~1", repo, mode="full", as_json=True, stdout=stream) == 1
    report = json.loads(stream.getvalue())
    assert report["mode"] == "full"
    assert report["breaking"] is True
    assert report["changes"] == [
        {
            "class": "breaking for old clients",
            "breaks": ["old-clients"],
            "subject": "command chat/send",
            "part": "request",
            "path": "/replyTo",
            "rule": "MEMBER_REMOVED",
            "message": "optional member removed",
        }
    ]

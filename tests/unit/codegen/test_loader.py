"""Contract meta-check: one broken contract per rule, asserting file and pointer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from codegen.loader import ContractError, ContractProblem, load_contract

S = "https://json-schema.org/draft/2020-12/schema"


def _obj(title: str, props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "title": title,
        "type": "object",
        "additionalProperties": False,
        "properties": props,
        "required": required or [],
    }


def _command(title: str = "Echo", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "$schema": S,
        "title": title,
        "$defs": {
            f"{title}Request": _obj(f"{title}Request", {"text": {"type": "string"}}),
            f"{title}Response": _obj(f"{title}Response", {"text": {"type": "string"}}),
        },
    }
    doc.update(extra)
    return doc


def _channel(**extra: Any) -> dict[str, Any]:
    doc = {
        "$schema": S,
        **_obj("ChatMessage", {"text": {"type": "string"}}),
        "x-mesh-channel": "chat:{room}",
        "x-mesh-pattern": "^chat:[a-z0-9]+$",
    }
    doc.update(extra)
    return doc


def _write(root: Path, files: dict[str, Any]) -> Path:
    for rel, doc in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return root


def _problems(root: Path) -> list[ContractProblem]:
    with pytest.raises(ContractError) as info:
        load_contract(root)
    return info.value.problems


def _assert_problem(root: Path, file: str, pointer: str, fragment: str) -> None:
    problems = _problems(root)
    matching = [p for p in problems if p.file == file and p.pointer == pointer]
    assert matching, problems
    assert any(fragment in p.message for p in matching), matching


def test_valid_contract_loads(tmp_path: Path) -> None:
    contract = load_contract(
        _write(tmp_path, {"commands/echo.json": _command(), "channels/chat.json": _channel()})
    )
    assert [e.wire for e in contract.entries_of("commands")] == ["echo"]
    assert contract.entries_of("channels")[0].template == "chat:{room}"


CASES: list[tuple[str, dict[str, Any], str, str, str]] = [
    ("not-json", {"commands/echo.json": "{"}, "commands/echo.json", "", "not valid JSON"),
    (
        "invalid-2020-12",
        {"commands/echo.json": _command(description=5)},
        "commands/echo.json",
        "/description",
        "invalid JSON Schema",
    ),
    (
        "wrong-dialect",
        {"commands/echo.json": _command(**{"$schema": "http://json-schema.org/draft-07/schema#"})},
        "commands/echo.json",
        "/$schema",
        "must be",
    ),
    (
        "missing-response",
        {"commands/echo.json": {"$schema": S, "title": "Echo", "$defs": {}}},
        "commands/echo.json",
        "/$defs",
        "EchoResponse",
    ),
    (
        "missing-title",
        {"channels/chat.json": {k: v for k, v in _channel().items() if k != "title"}},
        "channels/chat.json",
        "",
        "title",
    ),
    (
        "def-title-mismatch",
        {
            "commands/echo.json": {
                **_command(),
                "$defs": {
                    "EchoRequest": _obj("Other", {}),
                    "EchoResponse": _obj("EchoResponse", {}),
                },
            }
        },
        "commands/echo.json",
        "/$defs/EchoRequest/title",
        "must equal",
    ),
    (
        "class-name-collision",
        {"commands/echo.json": _command(), "channels/chat.json": _channel(title="EchoRequest")},
        "commands/echo.json",
        "/$defs/EchoRequest",
        "also used",
    ),
    (
        "wire-name-collision",
        {
            "commands/a.json": _command("A", **{"x-mesh-command": "chat/send"}),
            "commands/b.json": _command("B", **{"x-mesh-command": "chat/send"}),
        },
        "commands/b.json",
        "",
        "'chat/send' also in commands/a.json",
    ),
    (
        "reserved-wire-name",
        {"commands/echo.json": _command(**{"x-mesh-command": "mesh/join-room"})},
        "commands/echo.json",
        "/x-mesh-command",
        "reserved",
    ),
    (
        "template-collision",
        {"channels/a.json": _channel(title="A"), "channels/b.json": _channel(title="B")},
        "channels/b.json",
        "",
        "also in channels/a.json",
    ),
    (
        "pattern-does-not-compile",
        {"channels/chat.json": _channel(**{"x-mesh-pattern": "^chat:[a-z$"})},
        "channels/chat.json",
        "/x-mesh-pattern",
        "does not compile",
    ),
    (
        "pattern-unanchored",
        {"channels/chat.json": _channel(**{"x-mesh-pattern": "chat:[a-z0-9]+"})},
        "channels/chat.json",
        "/x-mesh-pattern",
        "anchored",
    ),
    (
        "pattern-not-portable",
        {"channels/chat.json": _channel(**{"x-mesh-pattern": "^chat:(?!admin)[a-z]+$"})},
        "channels/chat.json",
        "/x-mesh-pattern",
        "lookaround",
    ),
    (
        "template-vs-pattern",
        {"channels/chat.json": _channel(**{"x-mesh-channel": "room:{room}"})},
        "channels/chat.json",
        "/x-mesh-channel",
        "never matches",
    ),
    (
        "placeholder-not-identifier",
        {"channels/chat.json": _channel(**{"x-mesh-channel": "chat:{room-id}"})},
        "channels/chat.json",
        "/x-mesh-channel",
        "not a valid parameter name",
    ),
    (
        "missing-template",
        {"channels/chat.json": {k: v for k, v in _channel().items() if k != "x-mesh-channel"}},
        "channels/chat.json",
        "",
        "'x-mesh-channel'",
    ),
    (
        "writable-not-bool",
        {
            "records/user.json": {
                "$schema": S,
                **_obj("User", {}),
                "x-mesh-record": "user:{id}",
                "x-mesh-pattern": "^user:[0-9]+$",
                "x-mesh-writable": "yes",
            }
        },
        "records/user.json",
        "/x-mesh-writable",
        "boolean",
    ),
    (
        "unresolvable-ref",
        {
            "commands/echo.json": {
                **_command(),
                "$defs": {
                    "EchoRequest": _obj(
                        "EchoRequest", {"u": {"$ref": "../shared/common.json#/$defs/Nope"}}
                    ),
                    "EchoResponse": _obj("EchoResponse", {}),
                },
            },
            "shared/common.json": {"$schema": S, "$defs": {}},
        },
        "commands/echo.json",
        "/$defs/EchoRequest/properties/u/$ref",
        "unresolvable",
    ),
    (
        "additional-properties",
        {
            "commands/echo.json": {
                **_command(),
                "$defs": {
                    "EchoRequest": {"title": "EchoRequest", "type": "object", "properties": {}},
                    "EchoResponse": _obj("EchoResponse", {}),
                },
            }
        },
        "commands/echo.json",
        "/$defs/EchoRequest",
        "additionalProperties",
    ),
    (
        "null-only-via-type-list",
        {
            "commands/echo.json": {
                **_command(),
                "$defs": {
                    "EchoRequest": _obj(
                        "EchoRequest",
                        {"x": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
                    ),
                    "EchoResponse": _obj("EchoResponse", {}),
                },
            }
        },
        "commands/echo.json",
        "/$defs/EchoRequest/properties/x/anyOf/1",
        "null only via type",
    ),
    (
        "unsupported-keyword",
        {
            "commands/echo.json": {
                **_command(),
                "$defs": {
                    "EchoRequest": _obj(
                        "EchoRequest", {"x": {"type": "array", "uniqueItems": True}}
                    ),
                    "EchoResponse": _obj("EchoResponse", {}),
                },
            }
        },
        "commands/echo.json",
        "/$defs/EchoRequest/properties/x/uniqueItems",
        "not supported",
    ),
    (
        "unsupported-format",
        {
            "commands/echo.json": {
                **_command(),
                "$defs": {
                    "EchoRequest": _obj(
                        "EchoRequest", {"x": {"type": "string", "format": "hostname"}}
                    ),
                    "EchoResponse": _obj("EchoResponse", {}),
                },
            }
        },
        "commands/echo.json",
        "/$defs/EchoRequest/properties/x/format",
        "not supported",
    ),
    (
        "inline-object-without-title",
        {
            "commands/echo.json": {
                **_command(),
                "$defs": {
                    "EchoRequest": _obj(
                        "EchoRequest",
                        {
                            "x": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {"a": {"type": "string"}},
                            }
                        },
                    ),
                    "EchoResponse": _obj("EchoResponse", {}),
                },
            }
        },
        "commands/echo.json",
        "/$defs/EchoRequest/properties/x",
        "inline object",
    ),
    (
        "schema-pattern-unanchored",
        {
            "commands/echo.json": {
                **_command(),
                "$defs": {
                    "EchoRequest": _obj(
                        "EchoRequest", {"x": {"type": "string", "pattern": "[a-z]+"}}
                    ),
                    "EchoResponse": _obj("EchoResponse", {}),
                },
            }
        },
        "commands/echo.json",
        "/$defs/EchoRequest/properties/x/pattern",
        "anchored",
    ),
]


@pytest.mark.parametrize(
    ("files", "file", "pointer", "fragment"),
    [pytest.param(f, fi, p, m, id=i) for i, f, fi, p, m in CASES],
)
def test_meta_check_rule(
    tmp_path: Path, files: dict[str, Any], file: str, pointer: str, fragment: str
) -> None:
    _assert_problem(_write(tmp_path, files), file, pointer, fragment)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "commands/a.json": "[",
            "channels/chat.json": _channel(**{"x-mesh-pattern": "chat"}),
        },
    )
    problems = _problems(root)
    assert {p.file for p in problems} == {"commands/a.json", "channels/chat.json"}
    assert str(problems[0]).count(": ") >= 2


def test_template_with_explicit_example(tmp_path: Path) -> None:
    record = {
        "$schema": S,
        **_obj("User", {}),
        "x-mesh-record": "user:{id}",
        "x-mesh-pattern": "^user:u[0-9]+$",
        "x-mesh-example": "user:u7",
    }
    load_contract(_write(tmp_path, {"records/user.json": record}))
    record["x-mesh-example"] = "user:7"
    _write(tmp_path, {"records/user.json": record})
    _assert_problem(tmp_path, "records/user.json", "/x-mesh-example", "fully match")


def test_builtin_contract_loads() -> None:
    contract = load_contract(Path(__file__).resolve().parents[3] / "contract" / "mesh")
    assert contract.builtin
    assert len(contract.entries_of("commands")) == 19

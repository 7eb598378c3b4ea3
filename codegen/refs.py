"""Follow relative ``$ref`` inside a loaded contract (shared by export, diff and fingerprint).

The meta-check (:mod:`codegen.metacheck`) guarantees every ``$ref`` is relative, resolvable and
points at a file root or a ``$defs`` entry, so resolution here never fails on a loaded contract.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from codegen.loader import Contract, Entry

__all__ = ["Target", "deref", "entry_schemas", "resolve_ref"]


@dataclass(frozen=True)
class Target:
    """A schema found in a contract: the file it lives in, its pointer and the node itself."""

    file: str
    pointer: str
    schema: Any


def resolve_ref(file: str, ref: str) -> tuple[str, str]:
    """Resolve ``ref`` written in contract file ``file`` to (contract-relative file, pointer)."""
    file_part, _, fragment = ref.partition("#")
    target = file
    if file_part:
        stack = file.split("/")[:-1]
        for part in file_part.split("/"):
            if part == "..":
                stack.pop()
            elif part not in ("", "."):
                stack.append(part)
        target = "/".join(stack)
    return target, unquote(fragment)


def _node(contract: Contract, file: str, pointer: str) -> Any:
    node: Any = contract.documents[file]
    for token in pointer.split("/")[1:]:
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def deref(contract: Contract, file: str, schema: Any) -> Target:
    """Follow ``$ref`` from ``schema`` (written in ``file``) to the schema it names.

    A schema without ``$ref`` is returned as is, with an empty pointer.
    """
    pointer = ""
    seen: set[tuple[str, str]] = set()
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        file, pointer = resolve_ref(file, schema["$ref"])
        if (file, pointer) in seen:  # a pure $ref cycle: nothing more to follow
            break
        seen.add((file, pointer))
        schema = _node(contract, file, pointer)
    return Target(file, pointer, schema)


def entry_schemas(contract: Contract, entry: Entry) -> Iterator[tuple[str, Target]]:
    """The payload schemas of an entry, as (part, target).

    Parts: commands have ``request`` and ``response``; channels ``message``; records ``value``;
    pushes ``payload``.
    """
    if entry.kind == "commands":
        for part, title in (("request", entry.request), ("response", entry.response)):
            pointer = "/$defs/" + title
            yield part, Target(entry.file, pointer, _node(contract, entry.file, pointer))
        return
    part = {"channels": "message", "records": "value", "pushes": "payload"}[entry.kind]
    yield part, Target(entry.file, "", contract.documents[entry.file])

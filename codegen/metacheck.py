"""The schema rules of the contract meta-check (contract/README.md, STYLE.md "Contract schemas").

:class:`SchemaRules` checks one schema (recursively), its ``$ref`` targets, regex patterns and
``x-mesh-*`` templates: the JSON Schema subset codegen supports, null only via ``[T, "null"]``,
closed objects in application contracts, anchored regexes in the ECMA/Python/Rust common subset.
It is the base of the loader's checker (:mod:`codegen.loader`), which reads the files, builds the
index of entries and definitions and collects every problem these rules report.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote

# Codegen runs at build time and may use the protocol package; neither package imports codegen.
from mesh_sdk.protocol.patch import json_pointer

if TYPE_CHECKING:
    from codegen.loader import Contract

__all__ = ["FORMAT_TYPES", "SchemaRules", "ptr"]

FORMAT_TYPES: Final = {
    "date-time": "DateTimeStr",
    "date": "DateStr",
    "email": "EmailStr",
    "uri": "UriStr",
    "uuid": "UuidStr",
}
ALLOWED_KEYWORDS: Final = frozenset(
    {
        "$schema", "$id", "$ref", "$defs", "$comment", "title", "description", "type",
        "properties", "required", "additionalProperties", "items", "enum", "const", "oneOf",
        "anyOf", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
        "maxLength", "pattern", "minItems", "maxItems", "minProperties", "maxProperties",
        "format", "default", "examples", "deprecated",
    }
)  # fmt: skip
SUBSCHEMA_MAPS: Final = ("properties", "$defs")
SUBSCHEMA_LISTS: Final = ("oneOf", "anyOf")
SUBSCHEMA_SINGLE: Final = ("items", "additionalProperties")
# Regex features outside the ECMA/Python/Rust common subset (STYLE.md "Contract schemas").
NON_PORTABLE: Final = (
    (re.compile(r"\(\?[=!<]"), "lookaround is not portable"),
    (re.compile(r"\(\?P"), "Python named groups are not portable"),
    (re.compile(r"\(\?[aiLmsux-]+[):]"), "inline flags are not portable"),
    (re.compile(r"\\[1-9]"), "backreferences are not portable"),
    (re.compile(r"\\[AZzGQEpP]"), "this escape is not portable"),
    (re.compile(r"[*+?}]\+"), "possessive quantifiers are not portable"),
    (re.compile(r"\(\?>"), "atomic groups are not portable"),
)
SAMPLES: Final = ("a", "1", "abc", "a1", "room1", "A", "x-y", "x_y", "x.y", "42")
RESERVED_PARAMS: Final = frozenset({"on_message", "on_change", "history_limit", "mode", "self"})
"""Template placeholders that would clash with the generated facade methods' own parameters."""


def ptr(*tokens: str | int) -> str:
    """The RFC 6901 JSON pointer of a path of tokens."""
    return json_pointer(tokens)


class SchemaRules(ABC):
    """The per-schema meta-check rules; the base of the loader's checker."""

    contract: Contract

    @abstractmethod
    def add(self, file: str, pointer: str, message: str) -> None:
        """Record one problem (implemented by the checker)."""

    @abstractmethod
    def define(self, rel: str, pointer: str, schema: dict[str, Any]) -> None:
        """Index a titled schema as a generated class (implemented by the checker)."""

    def check_schema(self, rel: str, path: list[str | int], schema: Any) -> None:
        """Check ``schema`` at ``path`` in file ``rel`` and its subschemas; index inline objects."""
        if not isinstance(schema, dict):
            if schema is not True:
                self.add(rel, ptr(*path), "boolean schemas other than true are not supported")
            return
        here = ptr(*path)
        for key in sorted(schema):
            if key not in ALLOWED_KEYWORDS and not key.startswith("x-mesh-"):
                self.add(rel, ptr(*path, key), f"keyword {key!r} is not supported by codegen")
        if path and "$defs" in schema and path[0] == "$defs":
            self.add(rel, ptr(*path, "$defs"), "nested $defs are not supported")
        if path and any(k.startswith("x-mesh-") for k in schema):
            for key in sorted(k for k in schema if k.startswith("x-mesh-")):
                self.add(rel, ptr(*path, key), "x-mesh-* keys belong at the file root")
        types = schema.get("type")
        type_list = types if isinstance(types, list) else [types] if types else []
        if "null" in type_list and len(type_list) == 1:
            self.add(rel, ptr(*path, "type"), "null only via type [T, 'null']")
        raw_enum = schema.get("enum")
        enum: list[Any] = raw_enum if isinstance(raw_enum, list) else []
        if schema.get("const", 0) is None or (None in enum and "null" not in type_list):
            self.add(rel, here, "null only via type [T, 'null'], not const/enum")
        if "$ref" in schema:
            self.check_ref(rel, path, schema["$ref"])
            if set(schema) - {"$ref", "description", "$comment"}:
                self.add(rel, here, "$ref cannot be combined with other keywords")
        is_object = "object" in type_list or "properties" in schema
        if is_object and not self.contract.builtin:
            extra = schema.get("additionalProperties")
            if extra is not False and not (isinstance(extra, dict) and "properties" not in schema):
                self.add(
                    rel,
                    here,
                    "objects need additionalProperties: false (or a schema, for maps)",
                )
        if is_object and schema.get("properties") and path and not _is_def(path):
            if not isinstance(schema.get("title"), str):
                self.add(rel, here, "inline object schemas need a 'title' (= class name)")
            else:
                self.define(rel, here, schema)
        if "pattern" in schema and isinstance(schema["pattern"], str):
            self.check_regex(rel, ptr(*path, "pattern"), schema["pattern"])
        fmt = schema.get("format")
        if fmt is not None:
            if fmt not in FORMAT_TYPES:
                self.add(rel, ptr(*path, "format"), f"format {fmt!r} is not supported")
            elif set(type_list) - {"null"} != {"string"}:
                self.add(rel, ptr(*path, "format"), "format needs type 'string'")
            elif set(schema) - {"type", "format", "title", "description", "examples"}:
                self.add(rel, ptr(*path, "format"), "format cannot be combined with constraints")
        for key in SUBSCHEMA_MAPS:
            sub = schema.get(key)
            if isinstance(sub, dict) and not (key == "$defs" and not path):
                for name in sorted(sub):
                    if key != "$defs":
                        self.check_schema(rel, [*path, key, name], sub[name])
        for key in SUBSCHEMA_LISTS:
            sub = schema.get(key)
            if isinstance(sub, list):
                for index, item in enumerate(sub):
                    if isinstance(item, dict) and item.get("type") == "null":
                        self.add(rel, ptr(*path, key, index), "null only via type [T, 'null']")
                    self.check_schema(rel, [*path, key, index], item)
        for key in SUBSCHEMA_SINGLE:
            sub = schema.get(key)
            if isinstance(sub, dict):
                self.check_schema(rel, [*path, key], sub)

    def check_ref(self, rel: str, path: list[str | int], ref: Any) -> None:
        """Check that ``ref`` resolves to a file root or ``$defs`` entry (not a command root)."""
        where = ptr(*path, "$ref")
        if not isinstance(ref, str):
            return
        target = self.resolve(rel, ref)
        if target is None:
            self.add(rel, where, f"unresolvable $ref {ref!r}")
            return
        file, pointer = target
        doc = self.contract.documents.get(file)
        node: Any = doc
        for token in pointer.split("/")[1:]:
            token = token.replace("~1", "/").replace("~0", "~")
            node = node.get(token) if isinstance(node, dict) else None
        if node is None:
            self.add(rel, where, f"unresolvable $ref {ref!r}")
        elif not (pointer == "" or re.fullmatch(r"/\$defs/[^/]+", pointer)):
            self.add(rel, where, "$ref must point at a file root or a $defs entry")
        elif file.startswith("commands/") and pointer == "":
            self.add(rel, where, "$ref cannot point at a command file root")

    def resolve(self, rel: str, ref: str) -> tuple[str, str] | None:
        """Resolve ``ref`` from file ``rel`` to (contract-relative file, pointer)."""
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", ref):
            return None
        file_part, _, fragment = ref.partition("#")
        if file_part:
            parts = [*Path(rel).parent.parts, *file_part.split("/")]
            stack: list[str] = []
            for part in parts:
                if part == "..":
                    if not stack:
                        return None
                    stack.pop()
                elif part not in ("", "."):
                    stack.append(part)
            file = "/".join(stack)
        else:
            file = rel
        if file not in self.contract.documents:
            return None
        return file, unquote(fragment)

    def check_regex(self, rel: str, pointer: str, pattern: str) -> re.Pattern[str] | None:
        """Check that ``pattern`` compiles, is anchored and portable; return it compiled."""
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            self.add(rel, pointer, f"regex does not compile: {exc}")
            return None
        if not (pattern.startswith("^") and pattern.endswith("$") and not pattern.endswith("\\$")):
            self.add(rel, pointer, "regex must be anchored with ^…$")
        for rule, message in NON_PORTABLE:
            if rule.search(pattern):
                self.add(rel, pointer, message)
        return compiled

    def check_template(
        self, rel: str, key: str, template: str, pattern: re.Pattern[str] | None
    ) -> None:
        """Check an ``x-mesh-channel``/``x-mesh-record`` template against its pattern."""
        names = re.findall(r"\{([^{}]*)\}", template)
        stripped = re.sub(r"\{[^{}]*\}", "", template)
        if "{" in stripped or "}" in stripped:
            self.add(rel, ptr(key), "unbalanced braces in template")
            return
        for name in names:
            if not name.isidentifier() or name.startswith("_") or name in RESERVED_PARAMS:
                self.add(rel, ptr(key), f"placeholder {name!r} is not a valid parameter name")
                return
        if len(set(names)) != len(names):
            self.add(rel, ptr(key), "duplicate placeholder")
            return
        if pattern is None:
            return
        example = self.contract.documents[rel].get("x-mesh-example")
        if example is not None:
            shape = "".join(
                "(.+)" if i % 2 else re.escape(part)
                for i, part in enumerate(re.split(r"\{[^{}]*\}", template))
            )
            if not isinstance(example, str) or not pattern.fullmatch(example):
                self.add(rel, "/x-mesh-example", "example must fully match x-mesh-pattern")
            elif not re.fullmatch(shape, example):
                self.add(rel, "/x-mesh-example", f"example does not fit template {template!r}")
            return
        if not any(
            pattern.fullmatch(template.format_map(dict.fromkeys(names, sample)))
            for sample in SAMPLES
        ):
            self.add(
                rel,
                ptr(key),
                f"template {template!r} filled with sample parameters never matches x-mesh-pattern",
            )


def _is_def(path: list[str | int]) -> bool:
    return len(path) == 2 and path[0] == "$defs"

"""Load a contract directory and meta-check it (contract/README.md).

The loader reads the files (manifest, schemas, error table), builds the index of entries
(commands, channels, records, pushes) and definitions (the classes codegen generates) and checks
what spans files (collisions); the rules for a single schema are in :mod:`codegen.metacheck`.
Every problem is collected, never just the first: :class:`ContractError` carries the whole list of
:class:`ContractProblem` (file, JSON pointer, message), sorted, so the CLI prints them all.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from codegen.metacheck import FORMAT_TYPES, SchemaRules, ptr

# Codegen runs at build time and may use the protocol package; neither package imports codegen.
from mesh_sdk.protocol.patch import pointer_escape

__all__ = [
    "FORMAT_TYPES",
    "Contract",
    "ContractError",
    "ContractProblem",
    "Definition",
    "Entry",
    "load_contract",
]

SCHEMA_URI: Final = "https://json-schema.org/draft/2020-12/schema"
KINDS: Final = ("commands", "channels", "records", "pushes")
RESERVED_TITLES: Final = frozenset(
    {"ContractRoot", "ContractModel", "BaseModel", "RootModel", "Field", "ConfigDict"}
    | {f"MeshFormat{n}" for n in FORMAT_TYPES.values()}
)
RESERVED_WIRE: Final = frozenset({"ping", "pong", "latency", "latency:request", "latency:response"})
TITLE_RE: Final = re.compile(r"[A-Z][A-Za-z0-9]*")


@dataclass(frozen=True, order=True)
class ContractProblem:
    """One meta-check failure: contract-relative file, RFC 6901 pointer, message."""

    file: str
    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.pointer or '/'}: {self.message}"


class ContractError(Exception):
    """The contract is invalid; ``problems`` lists every failure found."""

    def __init__(self, problems: list[ContractProblem]) -> None:
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Definition:
    """A titled schema that becomes one generated class (a root or a ``$defs`` entry)."""

    title: str
    file: str
    pointer: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class Entry:
    """A command, channel, record or push declared by one file."""

    kind: str
    file: str
    stem: str
    wire: str
    title: str
    description: str = ""
    request: str = ""
    response: str = ""
    pattern: str = ""
    template: str = ""
    writable: bool = False


@dataclass
class Contract:
    """A loaded, meta-checked contract."""

    root: Path
    name: str
    builtin: bool
    definitions: dict[tuple[str, str], Definition] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)

    def entries_of(self, kind: str) -> list[Entry]:
        """Entries of one kind, sorted by wire name."""
        return sorted((e for e in self.entries if e.kind == kind), key=lambda e: e.wire)


def pascal(stem: str) -> str:
    """``get-user-metadata`` → ``GetUserMetadata``."""
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", stem) if p)


class _Checker(SchemaRules):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[ContractProblem] = []
        self.contract = Contract(root=root, name="", builtin=False)

    def add(self, file: str, pointer: str, message: str) -> None:
        self.problems.append(ContractProblem(file, pointer, message))

    # -- files --------------------------------------------------------------------------------

    def read(self, path: Path) -> dict[str, Any] | None:
        rel = path.relative_to(self.root).as_posix()
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeError, ValueError) as exc:
            self.add(rel, "", f"not valid JSON: {exc}")
            return None
        if not isinstance(doc, dict):
            self.add(rel, "", "a contract file must be a JSON object")
            return None
        for error in Draft202012Validator(Draft202012Validator.META_SCHEMA).iter_errors(doc):
            self.add(rel, ptr(*error.absolute_path), f"invalid JSON Schema: {error.message}")
        if doc.get("$schema", SCHEMA_URI) != SCHEMA_URI:
            self.add(rel, "/$schema", f"must be {SCHEMA_URI!r}")
        self.contract.documents[rel] = doc
        return doc

    def load(self) -> Contract:
        if not self.root.is_dir():
            self.add(".", "", "contract directory does not exist")
            return self.contract
        manifest: dict[str, Any] = {}
        manifest_path = self.root / "contract.json"
        if manifest_path.is_file():
            try:
                loaded = json.loads(manifest_path.read_text(encoding="utf-8"))
            except (OSError, UnicodeError, ValueError) as exc:
                self.add("contract.json", "", f"not valid JSON: {exc}")
                loaded = {}
            if isinstance(loaded, dict):
                manifest = loaded
            else:
                self.add("contract.json", "", "must be an object")
        name = manifest.get("name", pascal(self.root.resolve().name))
        if not isinstance(name, str) or not TITLE_RE.fullmatch(name):
            self.add("contract.json", "/name", "must be a PascalCase identifier")
            name = "Contract"
        builtin = manifest.get("builtin", False)
        if not isinstance(builtin, bool):
            self.add("contract.json", "/builtin", "must be a boolean")
            builtin = False
        self.contract.name = name
        self.contract.builtin = builtin
        for sub in (*KINDS, "shared"):
            folder = self.root / sub
            if folder.is_dir():
                for path in sorted(folder.iterdir()):
                    if path.suffix == ".json" and path.is_file():
                        self.read(path)
        errors_path = self.root / "errors.json"
        if errors_path.is_file():
            self.check_error_table(errors_path)
        for rel in sorted(self.contract.documents):
            kind = rel.split("/", 1)[0]
            self.check_document(rel, kind, self.contract.documents[rel])
        self.check_collisions()
        return self.contract

    # -- per document -------------------------------------------------------------------------

    def check_document(self, rel: str, kind: str, doc: dict[str, Any]) -> None:
        defs = doc.get("$defs", {})
        if not isinstance(defs, dict):
            defs = {}
        for key in sorted(defs):
            sub = defs[key]
            if isinstance(sub, dict):
                if sub.get("title") != key:
                    self.add(rel, ptr("$defs", key, "title"), f"must equal the $defs key {key!r}")
                self.define(rel, ptr("$defs", key), sub)
        if kind == "shared":
            extra = sorted(set(doc) - {"$schema", "$id", "$comment", "$defs", "description"})
            for key in extra:
                self.add(rel, ptr(key), "shared files hold only $defs")
            for key in sorted(defs):
                self.check_schema(rel, ["$defs", key], defs[key])
            return
        stem = Path(rel).stem
        title = doc.get("title")
        if not isinstance(title, str):
            self.add(rel, "", "missing required key 'title'")
            title = pascal(stem)
        description = doc.get("description", "")
        description = description if isinstance(description, str) else ""
        for key in sorted(defs):
            self.check_schema(rel, ["$defs", key], defs[key])
        if kind == "commands":
            self.check_command(rel, stem, title, description, doc)
            return
        self.define(rel, "", doc)
        self.check_schema(rel, [], doc)
        if kind == "pushes":
            wire = self.wire_name(rel, doc, "x-mesh-push", stem)
            self.contract.entries.append(Entry("pushes", rel, stem, wire, title, description))
            return
        key = "x-mesh-channel" if kind == "channels" else "x-mesh-record"
        template, pattern = doc.get(key), doc.get("x-mesh-pattern")
        for k, v in ((key, template), ("x-mesh-pattern", pattern)):
            if v is None:
                self.add(rel, "", f"missing required key {k!r}")
            elif not isinstance(v, str) or not v:
                self.add(rel, ptr(k), "must be a non-empty string")
        writable = doc.get("x-mesh-writable", False)
        if kind == "records" and not isinstance(writable, bool):
            self.add(rel, "/x-mesh-writable", "must be a boolean")
            writable = False
        if kind == "channels" and "x-mesh-writable" in doc:
            self.add(rel, "/x-mesh-writable", "only records are writable")
        if not (isinstance(template, str) and isinstance(pattern, str) and template and pattern):
            return
        compiled = self.check_regex(rel, "/x-mesh-pattern", pattern)
        self.check_template(rel, key, template, compiled)
        self.contract.entries.append(
            Entry(
                kind,
                rel,
                stem,
                template,
                title,
                description,
                pattern=pattern,
                template=template,
                writable=bool(writable),
            )
        )

    def check_command(
        self, rel: str, stem: str, title: str, description: str, doc: dict[str, Any]
    ) -> None:
        wire = self.wire_name(rel, doc, "x-mesh-command", stem)
        defs = doc.get("$defs")
        names = (f"{title}Request", f"{title}Response")
        for name in names:
            if not isinstance(defs, dict) or not isinstance(defs.get(name), dict):
                self.add(rel, "/$defs", f"missing required key {name!r}")
        extra = sorted(
            set(doc)
            - {"$schema", "$id", "$comment", "$defs", "title", "description", "x-mesh-command"}
        )
        for key in extra:
            self.add(rel, ptr(key), "command files hold only title, description, $defs")
        self.contract.entries.append(
            Entry("commands", rel, stem, wire, title, description, names[0], names[1])
        )

    def wire_name(self, rel: str, doc: dict[str, Any], key: str, stem: str) -> str:
        wire = doc.get(key, stem)
        if not isinstance(wire, str) or not wire:
            self.add(rel, ptr(key), "must be a non-empty string")
            return stem
        reserved = wire in RESERVED_WIRE or wire.startswith("mesh/")
        if reserved and not self.contract.builtin:
            self.add(rel, ptr(key) if key in doc else "", f"{wire!r} is a reserved name")
        return wire

    def define(self, rel: str, pointer: str, schema: dict[str, Any]) -> None:
        title = schema.get("title")
        if not isinstance(title, str):
            self.add(rel, pointer, "every root and $defs entry needs a 'title' (= class name)")
            return
        if not TITLE_RE.fullmatch(title) or title in RESERVED_TITLES:
            self.add(rel, _join(pointer, "title"), f"{title!r} is not a usable class name")
        self.contract.definitions[(rel, pointer)] = Definition(title, rel, pointer, schema)

    # -- error table and collisions -----------------------------------------------------------

    def check_error_table(self, path: Path) -> None:
        doc = self.read(path)
        if doc is None:
            return
        rows = doc.get("oneOf")
        if doc.get("type") != "string" or not isinstance(rows, list):
            self.add("errors.json", "", "error table must be a string schema with oneOf rows")
            return
        for index, row in enumerate(rows):
            ok = (
                isinstance(row, dict)
                and isinstance(row.get("const"), str)
                and isinstance(row.get("x-mesh-error-name"), str)
                and isinstance(row.get("description"), str)
            )
            if not ok:
                self.add(
                    "errors.json",
                    ptr("oneOf", index),
                    "rows need const (code), x-mesh-error-name and description",
                )
        del self.contract.documents["errors.json"]

    def check_collisions(self) -> None:
        seen: dict[str, str] = {}
        for (rel, pointer), definition in sorted(self.contract.definitions.items()):
            where = f"{rel}#{pointer}"
            if definition.title in seen and seen[definition.title] != where:
                self.add(
                    rel,
                    pointer,
                    f"class name {definition.title!r} also used in {seen[definition.title]}",
                )
            seen.setdefault(definition.title, where)
        for kind in KINDS:
            wires: dict[str, str] = {}
            for entry in sorted(self.contract.entries, key=lambda e: e.file):
                if entry.kind != kind:
                    continue
                if entry.wire in wires:
                    self.add(
                        entry.file, "", f"{kind[:-1]} {entry.wire!r} also in {wires[entry.wire]}"
                    )
                wires.setdefault(entry.wire, entry.file)
        idents: dict[str, str] = {}
        for entry in sorted(self.contract.entries, key=lambda e: e.file):
            ident = f"{entry.kind}:{snake(entry.stem)}"
            if ident in idents:
                self.add(entry.file, "", f"method name clashes with {idents[ident]}")
            idents.setdefault(ident, entry.file)


def _join(pointer: str, key: str) -> str:
    return pointer + "/" + pointer_escape(key)


def snake(stem: str) -> str:
    """``get-user-metadata`` / ``chatSend`` → ``get_user_metadata`` / ``chat_send``."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", stem)
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    if not text or text[0].isdigit() or not text.isidentifier():
        text = "x_" + text
    import keyword

    return text + "_" if keyword.iskeyword(text) else text


def load_contract(root: Path) -> Contract:
    """Load and meta-check the contract in ``root``.

    Raises:
        ContractError: With every problem found.
    """
    checker = _Checker(root)
    contract = checker.load()
    if checker.problems:
        raise ContractError(checker.problems)
    return contract

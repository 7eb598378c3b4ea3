"""Render a loaded contract into a generated package (models, index, names, facades).

The built-in contract (``"builtin": true`` in ``contract.json``) gets no facade: its package lives
in the pure :mod:`mesh_sdk.protocol`, which must not import the SDK's client side.

Models come from datamodel-code-generator run on one *bundle* schema: every titled root and
``$defs`` entry of the contract, keyed by title, with relative ``$ref`` rewritten to
``#/$defs/<Title>`` and string formats replaced by references to the runtime format types of
:mod:`mesh_sdk.protocol.contract` (via ``--type-overrides``). The client facade, the contract
index (:mod:`codegen.templates`), the wire names and the server facade
(:mod:`codegen.server_templates`) are Python string templates. Everything iterates in sorted order;
output is formatted with the pinned black and is byte-identical across runs.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

from codegen import server_templates, templates
from codegen.fingerprint import contract_fingerprint
from codegen.loader import Contract, Entry, pascal, snake
from codegen.metacheck import FORMAT_TYPES

__all__ = ["DCG_OPTIONS", "MissingGeneratorError", "render"]

DCG_OPTIONS: Final = (
    "--input-file-type=jsonschema",
    "--output-model-type=pydantic_v2.BaseModel",
    "--use-annotated",
    "--field-constraints",
    "--use-union-operator",
    "--use-standard-collections",
    "--use-title-as-name",
    "--enum-field-as-literal=all",
    "--strict-nullable",
    "--disable-timestamp",
    "--strict-types",
    "str",
    "int",
    "float",
    "bool",
    "--base-class=mesh_sdk.protocol.contract.ContractModel",
    "--use-schema-description",
    "--use-double-quotes",
    "--target-python-version=3.11",
    "--formatters",
    "black",
    "isort",
)
"""datamodel-code-generator options (contract/README.md explains each choice)."""

MARKER: Final = ".mesh-codegen"
REGENERATE: Final = "# Regenerate with: "
"""How the header line naming the regenerate command (and so its options) starts."""


class MissingGeneratorError(RuntimeError):
    """datamodel-code-generator (or black) is not installed."""


def _bundle(contract: Contract) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """Return the one schema datamodel-code-generator compiles, and its type overrides.

    The bundle's root *is* one of the definitions (the first object class by title; references
    to it become ``#``): a root of ``$defs`` only would come out as a stray ``RootModel[Any]``.
    ``None`` when the contract has no definition at all (its models module is only a header).
    Scalar definitions that are inlined everywhere and that no spec names are left out, so no
    unused root model is generated. Properties keep their contract order (the field order).
    """
    defs: dict[str, Any] = {}
    overrides: dict[str, str] = {}
    by_location = {
        key: d.title
        for key, d in contract.definitions.items()
        if key[1] == "" or (key[1].count("/") == 2 and key[1].startswith("/$defs/"))
    }

    by_title = {d.title: d for key, d in contract.definitions.items() if key in by_location}
    named = _named(contract)
    kept = {t for t, d in by_title.items() if t in named or not _inlinable(d.schema)}
    # Prefer an object class as the root; any kept definition will do (none: no models).
    ranked = sorted(kept, key=lambda t: (not _is_object(by_title[t].schema), t))
    root_title = ranked[0] if ranked else None

    def resolve(file: str, ref: str) -> str:
        file_part, _, fragment = ref.partition("#")
        if file_part:
            parts: list[str] = []
            for part in [*Path(file).parent.parts, *file_part.split("/")]:
                if part == "..":
                    parts.pop()
                elif part not in ("", "."):
                    parts.append(part)
            target = "/".join(parts)
        else:
            target = file
        return by_location[(target, fragment)]

    def rewrite(node: Any, file: str, top: bool) -> Any:
        if isinstance(node, list):
            return [rewrite(item, file, False) for item in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key in sorted(node):
            if key in ("$schema", "$id", "$comment", "examples") or key.startswith("x-mesh-"):
                continue
            if key == "$defs" and top:
                continue
            value = node[key]
            if key == "$ref":
                title = resolve(file, value)
                target = by_title[title]
                if _inlinable(target.schema):
                    # Scalar definitions (string patterns, enums…) are inlined so fields get
                    # plain types instead of RootModel wrappers (``--collapse-root-models``
                    # would also drop the format type overrides).
                    inlined = rewrite(target.schema, target.file, True)
                    inlined.pop("title", None)
                    return {**inlined, **{k: node[k] for k in ("description",) if k in node}}
                out[key] = "#" if title == root_title else "#/$defs/" + title
            elif key == "properties":
                # Contract order: it is the field order of the generated model, so models dump
                # their members in the schemas' order (for the built-ins, the order of the
                # reference frames, protocol.md §7: handlers return models, the wire is unchanged).
                out[key] = {name: rewrite(value[name], file, False) for name in value}
            elif key in ("enum", "const", "default", "required"):
                out[key] = copy.deepcopy(value)
            else:
                out[key] = rewrite(value, file, False)
        fmt = out.get("format")
        if isinstance(fmt, str) and fmt in FORMAT_TYPES:
            name = "MeshFormat" + FORMAT_TYPES[fmt]
            overrides[name] = "mesh_sdk.protocol.contract." + FORMAT_TYPES[fmt]
            ref = {"$ref": "#/$defs/" + name}
            types = out.get("type")
            replaced: dict[str, Any] = (
                {"anyOf": [ref, {"type": "null"}]}
                if isinstance(types, list) and "null" in types
                else dict(ref)
            )
            for keep in ("title", "description"):
                if keep in out and not top:
                    replaced[keep] = out[keep]
            if top:
                replaced = {"title": out["title"], "allOf": [ref]}
            return replaced
        return out

    for (file, _pointer), title in sorted(by_location.items(), key=lambda kv: kv[1]):
        if title in kept:
            schema = contract.definitions[(file, _pointer)].schema
            defs[title] = rewrite(schema, file, True)
    for name in sorted(overrides):
        defs[name] = {"title": name, "type": "string"}
    if root_title is None:
        return None, {}
    bundle = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **defs.pop(root_title),
        "$defs": dict(sorted(defs.items())),
    }
    return bundle, dict(sorted(overrides.items()))


def _named(contract: Contract) -> set[str]:
    """Titles the contract index names: requests, responses, messages, values and pushes."""
    named: set[str] = set()
    for entry in contract.entries:
        if entry.kind == "commands":
            named.update((entry.request, entry.response))
        else:
            named.add(entry.title)
    return named


def _is_object(schema: dict[str, Any]) -> bool:
    return "properties" in schema or schema.get("type") == "object"


def _inlinable(schema: dict[str, Any]) -> bool:
    """A definition without objects or unions at its root can be inlined where referenced."""
    types = schema.get("type")
    type_list = types if isinstance(types, list) else [types]
    return not (
        "object" in type_list
        or "properties" in schema
        or "oneOf" in schema
        or "anyOf" in schema
        or "$ref" in schema
    )


def header(rel_contract: str, command: str) -> str:
    """The header every generated file starts with (STYLE.md "Generated code")."""
    return f"# @generated by codegen from {rel_contract} — DO NOT EDIT.\n{REGENERATE}{command}\n"


def _run_dcg(bundle: dict[str, Any], overrides: dict[str, str], head: str) -> str:
    try:
        import datamodel_code_generator  # noqa: F401
    except ImportError as exc:
        raise MissingGeneratorError(str(exc)) from None
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "contract.json"
        source.write_text(json.dumps(bundle, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        target = Path(tmp) / "models.py"
        args = [
            sys.executable,
            "-m",
            "datamodel_code_generator",
            f"--input={source.name}",
            f"--output={target.name}",
            f"--custom-file-header={head.rstrip()}",
            *DCG_OPTIONS,
        ]
        if overrides:
            args.append("--type-overrides=" + json.dumps(overrides, sort_keys=True))
        env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run(args, cwd=tmp, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"datamodel-code-generator failed:\n{proc.stderr}")
        return target.read_text(encoding="utf-8")


def _black(source: str) -> str:
    try:
        import black
    except ImportError as exc:  # pragma: no cover - black is pinned with the codegen extra
        raise MissingGeneratorError(str(exc)) from None
    mode = black.Mode(line_length=100, target_versions={black.mode.TargetVersion.PY311})
    return black.format_str(source, mode=mode)


def _params(entry: Entry) -> list[str]:
    import re

    return re.findall(r"\{([^{}]*)\}", entry.template)


def _family(entry: Entry) -> server_templates.Family:
    return server_templates.Family(
        method=snake(entry.stem),
        cls=pascal(entry.stem),
        title=entry.title,
        params=_params(entry),
        template=entry.template,
        writable=entry.writable,
    )


def render(
    contract: Contract, rel_contract: str, command: str, *, strict_readers: bool = False
) -> dict[str, str]:
    """Return ``{relative path: text}`` of the generated package.

    Args:
        contract: The loaded contract.
        rel_contract: The contract path named in the header.
        command: The regenerate command named in the header (it carries the options).
        strict_readers: Clients reject unknown members of what they read (``--strict-readers``);
            recorded in ``contract_index.py`` as ``strict_readers=True``.

    Raises:
        MissingGeneratorError: datamodel-code-generator or black is missing.
    """
    head = header(rel_contract, command)
    bundle, overrides = _bundle(contract)
    models = head if bundle is None else _run_dcg(bundle, overrides, head)
    name = contract.name
    ctx = templates.Context(
        name=name,
        header=head,
        fingerprint=contract_fingerprint(contract),
        strict_readers=strict_readers,
    )
    commands = contract.entries_of("commands")
    channels = sorted(contract.entries_of("channels"), key=lambda e: e.file)
    records = sorted(contract.entries_of("records"), key=lambda e: e.file)
    pushes = contract.entries_of("pushes")
    index = templates.contract_index(
        ctx,
        [(e.wire, e.request, e.response, e.description) for e in commands],
        [(pascal(e.stem), e.pattern, e.template, e.title) for e in channels],
        [(pascal(e.stem), e.pattern, e.template, e.title, e.writable) for e in records],
        [(e.wire, e.title) for e in pushes],
    )
    files = {
        "models.py": models,
        "contract_index.py": _black(index),
        "__init__.py": _black(templates.package_init(ctx, facade=not contract.builtin)),
        MARKER: head,
    }
    # The built-in contract is generated into the shared protocol package, which the server
    # imports too: a client facade there would pull the SDK's subscriptions into the server.
    if not contract.builtin:
        command_rows = [
            (snake(e.stem), e.wire, e.request, e.response, e.description) for e in commands
        ]
        facade = templates.facade(
            ctx,
            command_rows,
            [(snake(e.stem), e.title, _params(e), e.template) for e in channels],
            [(snake(e.stem), e.title, _params(e), e.template) for e in records],
        )
        files["facade.py"] = _black(facade)
        channel_families = [_family(e) for e in channels]
        record_families = [_family(e) for e in records]
        names = server_templates.names(
            ctx, [(row[0], row[1]) for row in command_rows], channel_families, record_families
        )
        files["names.py"] = _black(names)
        server = server_templates.server(ctx, command_rows, channel_families, record_families)
        files["server.py"] = _black(server)
    return {path: _normalise(text) for path, text in sorted(files.items())}


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n")
    return text.rstrip("\n") + "\n"

"""Contract fingerprint: a stable hash of what a contract puts on the wire.

The fingerprint is ``sha256:`` + the SHA-256 of the canonical JSON text of
:func:`normalized_contract`. The normal form keeps everything that changes which frames are valid
and drops everything that does not (contract/README.md "Fingerprint"):

* kept: wire names and templates, ``x-mesh-pattern``, ``x-mesh-writable``, and every validation
  keyword of every payload schema;
* dropped: annotations (``title`` = class names, ``description``, ``default``, ``examples``,
  ``deprecated``, ``$comment``), ``x-mesh-example``, the contract ``name``, file stems (facade
  method names) and file layout:
  ``$ref`` is inlined, so moving a definition into ``shared/`` keeps the fingerprint; a recursive
  reference becomes ``{"$cycle": n}`` (n = how many references up the path it points).

Canonical JSON: sorted keys, no whitespace, UTF-8, integral floats written as integers (JSON
Schema treats ``1.0`` and ``1`` alike); ``required`` and ``type`` lists and ``enum`` values are
sorted, and so are ``oneOf``/``anyOf`` branches: their order does not change which frames are
valid. So the fingerprint changes exactly when ``mesh contract diff`` reports a change other than
``ANNOTATION_CHANGED``, ``CLASS_RENAMED``, ``METHOD_RENAMED`` or ``CONTRACT_RENAMED``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

from codegen.loader import Contract
from codegen.refs import deref, entry_schemas

__all__ = ["FINGERPRINT_VERSION", "canonical_json", "contract_fingerprint", "normalized_contract"]

FINGERPRINT_VERSION: Final = "mesh-contract-fingerprint/1"
"""Identifies the normal form; it is part of the hashed document, so a new form never collides."""

ANNOTATIONS: Final = frozenset(
    {"title", "description", "default", "examples", "deprecated", "$comment", "$schema", "$id"}
    | {"$defs"}
)
SET_LIKE: Final = frozenset({"required", "type"})
SCHEMA_MAPS: Final = frozenset({"properties"})
SCHEMA_LISTS: Final = frozenset({"oneOf", "anyOf"})
SCHEMA_SINGLE: Final = frozenset({"items", "additionalProperties"})


def _value(value: Any) -> Any:
    """A JSON value with integral floats as ints, recursively (``1.0`` ≡ ``1``)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _value(v) for k, v in value.items()}
    return value


def canonical_json(value: Any) -> str:
    """The canonical text hashed by :func:`contract_fingerprint`."""
    return json.dumps(
        _value(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _schema(contract: Contract, file: str, schema: Any, stack: list[tuple[str, str]]) -> Any:
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        target = deref(contract, file, schema)
        key = (target.file, target.pointer)
        if key in stack:
            return {"$cycle": len(stack) - stack.index(key)}
        return _schema(contract, target.file, target.schema, [*stack, key])
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ANNOTATIONS or key.startswith("x-mesh-"):
            continue
        if key in SCHEMA_MAPS:
            out[key] = {name: _schema(contract, file, sub, stack) for name, sub in value.items()}
        elif key in SCHEMA_LISTS:
            branches = [_schema(contract, file, sub, stack) for sub in value]
            out[key] = sorted(branches, key=canonical_json)
        elif key in SCHEMA_SINGLE:
            out[key] = _schema(contract, file, value, stack)
        elif key == "enum":
            out[key] = sorted((_value(v) for v in value), key=canonical_json)
        elif key in SET_LIKE and isinstance(value, list):
            out[key] = sorted(value)
        else:
            out[key] = _value(value)
    return out


def normalized_contract(contract: Contract) -> dict[str, Any]:
    """The wire-relevant normal form of ``contract`` (module docstring), keyed by wire identity."""
    kinds: dict[str, dict[str, Any]] = {"commands": {}, "channels": {}, "records": {}, "pushes": {}}
    for entry in contract.entries:
        item: dict[str, Any] = {}
        if entry.kind in ("channels", "records"):
            item["pattern"] = entry.pattern
        if entry.kind == "records":
            item["writable"] = entry.writable
        for part, target in entry_schemas(contract, entry):
            item[part] = _schema(
                contract, target.file, target.schema, [(target.file, target.pointer)]
            )
        kinds[entry.kind][entry.wire] = item
    return {"fingerprint": FINGERPRINT_VERSION, **kinds}


def contract_fingerprint(contract: Contract) -> str:
    """Return ``sha256:<64 hex digits>`` for ``contract`` (module docstring)."""
    digest = hashlib.sha256(canonical_json(normalized_contract(contract)).encode("utf-8"))
    return "sha256:" + digest.hexdigest()

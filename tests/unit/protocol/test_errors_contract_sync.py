"""mesh_sdk/protocol/errors.py ERROR_CLASSES match contract/mesh/errors.json (protocol.md §4)."""

from __future__ import annotations

import json
from pathlib import Path

from mesh_sdk.protocol import errors as errors_module
from mesh_sdk.protocol.errors import ERROR_CLASSES, MeshError

TABLE = Path(__file__).resolve().parents[3] / "contract" / "mesh" / "errors.json"


def _rows() -> list[dict[str, object]]:
    rows = json.loads(TABLE.read_text(encoding="utf-8"))["oneOf"]
    assert isinstance(rows, list)
    return rows


def test_codes_and_names_match_the_contract_table() -> None:
    table = {row["const"]: row["x-mesh-error-name"] for row in _rows()}
    classes = {code: cls.default_name for code, cls in ERROR_CLASSES.items()}
    assert classes == table


def test_every_class_is_a_mesh_error_keyed_by_its_code() -> None:
    for code, cls in ERROR_CLASSES.items():
        assert issubclass(cls, MeshError)
        assert cls.default_code == code


def test_client_only_codes_are_the_builtin_exception_subclasses() -> None:
    client_only = {row["const"] for row in _rows() if row.get("x-mesh-client-only")}
    assert client_only == {"ETIMEOUT", "ECONNECTION"}
    assert issubclass(ERROR_CLASSES["ETIMEOUT"], TimeoutError)
    assert issubclass(ERROR_CLASSES["ECONNECTION"], ConnectionError)


def test_the_module_tree_lists_every_code_with_its_class_and_name() -> None:
    tree = errors_module.__doc__ or ""
    for code, cls in ERROR_CLASSES.items():
        row = next((line for line in tree.splitlines() if f" {code} " in line), "")
        assert cls.__name__ in row, code
        assert cls.default_name in row.split(code, 1)[1], code

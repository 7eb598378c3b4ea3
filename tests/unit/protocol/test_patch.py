"""mesh_sdk.protocol.patch: the one RFC 6901 pointer builder (patches, details, codegen)."""

from __future__ import annotations

from mesh_sdk.protocol.patch import diff, json_pointer, pointer_escape


def test_pointer_escapes_tilde_before_slash() -> None:
    assert pointer_escape("~/") == "~0~1"
    assert pointer_escape(3) == "3"


def test_json_pointer_joins_escaped_tokens() -> None:
    assert json_pointer([]) == ""
    assert json_pointer(["a/b", "m~n", 0]) == "/a~1b/m~0n/0"


def test_diff_paths_use_the_same_escaping() -> None:
    assert diff({"a/b": 1}, {"a/b": 2}) == [{"op": "replace", "path": "/a~1b", "value": 2}]

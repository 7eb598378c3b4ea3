"""JSON values: equality, merge strategies and RFC 6902 diffs (protocol.md §11.3–§11.4).

Pure functions shared by the server (record writes, metadata merges) and the SDK (applying
patches in patch-mode record subscriptions). No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import jsonpatch

__all__ = [
    "apply_patch",
    "changes",
    "combine",
    "deep_merge",
    "diff",
    "json_equal",
    "json_pointer",
    "pointer_escape",
]


def json_equal(a: Any, b: Any) -> bool:
    """Compare two JSON values as JSON does: numbers by value, booleans never equal numbers.

    Python's ``True == 1`` and ``{"a": True} == {"a": 1}`` are wrong here (§11.3).
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict):
        if not isinstance(b, dict) or a.keys() != b.keys():
            return False
        return all(json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            return False
        return all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def deep_merge(base: Any, new: Any) -> Any:
    """Merge objects recursively; anything else (arrays too) is replaced; ``null`` is stored."""
    if isinstance(base, dict) and isinstance(new, dict):
        merged = dict(base)
        for key, value in new.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return new


def combine(
    old: Any, new: Any, strategy: Literal["replace", "merge", "deepMerge"] = "replace"
) -> Any:
    """Return the value a write of ``new`` with ``strategy`` stores over ``old`` (§11.3)."""
    if strategy == "merge":
        if isinstance(old, dict) and isinstance(new, dict):
            return {**old, **new}
        return new
    if strategy == "deepMerge":
        return deep_merge(old, new)
    return new


def pointer_escape(token: str | int) -> str:
    """Escape one RFC 6901 reference token (``~`` → ``~0``, ``/`` → ``~1``; ints are indexes)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def json_pointer(tokens: Iterable[str | int]) -> str:
    """Return the RFC 6901 pointer made of ``tokens`` (``""``, the whole document, for none)."""
    return "".join("/" + pointer_escape(token) for token in tokens)


def diff(old: Any, new: Any) -> list[dict[str, Any]]:
    """Return RFC 6902 operations turning ``old`` into ``new`` (§11.4).

    Only ``add``, ``remove`` and ``replace``; no ``-`` index; containers of the same kind recurse
    (trailing array elements added ascending, removed descending); anything else, including a
    kind change at the root, is one root ``replace``. Never empty: equal values give a root
    ``replace`` (callers skip unchanged writes before diffing).
    """
    same_kind = (isinstance(old, dict) and isinstance(new, dict)) or (
        isinstance(old, list) and isinstance(new, list)
    )
    if same_kind:
        ops: list[dict[str, Any]] = []
        _diff_into(old, new, "", ops)
        if ops:
            return ops
    return [{"op": "replace", "path": "", "value": new}]


def changes(old: Any, new: Any) -> list[dict[str, Any]] | None:
    """Return :func:`diff` ``(old, new)``, or ``None`` when the values are :func:`json_equal`.

    One walk of both values instead of an equality check followed by a diff (record writes).
    """
    same_kind = (isinstance(old, dict) and isinstance(new, dict)) or (
        isinstance(old, list) and isinstance(new, list)
    )
    if same_kind:
        ops: list[dict[str, Any]] = []
        _diff_into(old, new, "", ops)
        return ops or None
    return None if json_equal(old, new) else [{"op": "replace", "path": "", "value": new}]


# Leaves of one of these types (both the same type) are json_equal exactly when ``==``: for two
# bools ``==`` is ``is``, and a bool never meets an int here since the types must match.
_SCALARS: frozenset[type] = frozenset({str, int, float, bool, type(None)})


def _diff_into(old: Any, new: Any, path: str, ops: list[dict[str, Any]]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in old:
            if key not in new:
                ops.append({"op": "remove", "path": f"{path}/{pointer_escape(key)}"})
        for key, value in new.items():
            if key not in old:
                ops.append({"op": "add", "path": f"{path}/{pointer_escape(key)}", "value": value})
                continue
            before = old[key]
            kind = type(value)
            if kind is type(before) and kind in _SCALARS:
                # The common case of a large record: an unchanged leaf costs no path.
                if before != value:
                    sub = f"{path}/{pointer_escape(key)}"
                    ops.append({"op": "replace", "path": sub, "value": value})
                continue
            _diff_into(before, value, f"{path}/{pointer_escape(key)}", ops)
        return
    if isinstance(old, list) and isinstance(new, list):
        common = min(len(old), len(new))
        for index in range(common):
            before, value = old[index], new[index]
            kind = type(value)
            if kind is type(before) and kind in _SCALARS:
                if before != value:
                    ops.append({"op": "replace", "path": f"{path}/{index}", "value": value})
                continue
            _diff_into(before, value, f"{path}/{index}", ops)
        for index in range(common, len(new)):
            ops.append({"op": "add", "path": f"{path}/{index}", "value": new[index]})
        for index in range(len(old) - 1, common - 1, -1):
            ops.append({"op": "remove", "path": f"{path}/{index}"})
        return
    if not json_equal(old, new):
        ops.append({"op": "replace", "path": path, "value": new})


def apply_patch(value: Any, ops: list[dict[str, Any]]) -> Any:
    """Apply RFC 6902 ``ops`` to ``value`` and return the new document (``value`` is not changed).

    Root operations (path ``""``) replace the whole document, so always use the return value.

    Raises:
        ValueError: The patch does not apply (a resync is needed).
    """
    try:
        return jsonpatch.apply_patch(value, ops, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as exc:
        raise ValueError(f"patch does not apply: {exc}") from exc

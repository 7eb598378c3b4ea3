"""Compare two versions of one payload schema, keyword by keyword (used by :mod:`codegen.diff`).

Each difference is a :class:`SchemaChange` saying what it does to data crossing versions, in both
directions: ``old_to_new`` (data written under the OLD schema, read with the NEW one) and
``new_to_old``. An :class:`Effect` is ``NONE``, ``UNKNOWN_MEMBER`` (the reader sees a member its
schema does not declare and rejects it only if it enforces ``additionalProperties: false``) or
``VALUE`` (some valid data is rejected by every conforming reader).

Writers are strict: they emit only the members their schema declares (generated models do), so a
member added to one side is unknown to the other side's readers, never a value they validate.
Containment of regexes and formats is undecidable here, so a changed ``pattern`` or ``format``
counts as both narrowing and widening.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, Final

from codegen.loader import Contract
from codegen.refs import Target, deref

__all__ = ["Effect", "SchemaChange", "compare_schemas"]


class Effect(enum.IntEnum):
    """What a change does to data crossing from one version to the other."""

    NONE = 0
    UNKNOWN_MEMBER = 1
    VALUE = 2


@dataclass(frozen=True)
class SchemaChange:
    """One difference between two versions of a schema, at ``path`` inside the payload."""

    path: str
    rule: str
    message: str
    old_to_new: Effect = Effect.NONE
    new_to_old: Effect = Effect.NONE


TYPES: Final = ("array", "boolean", "integer", "null", "number", "object", "string")
LOWER: Final = ("minLength", "minItems", "minProperties")
UPPER: Final = ("maxLength", "maxItems", "maxProperties")
ANNOTATIONS: Final = ("description", "default", "examples", "deprecated", "$comment")
N, U, V = Effect.NONE, Effect.UNKNOWN_MEMBER, Effect.VALUE


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _covered(kind: str, types: set[str]) -> bool:
    return kind in types or (kind == "integer" and "number" in types)


def _allows(schema: dict[str, Any], kind: str) -> bool:
    types = _types(schema)
    return types is None or kind in types


def _has_ref(schema: Any) -> bool:
    return isinstance(schema, dict) and "$ref" in schema


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    names = {float: "number", str: "string", list: "array", dict: "object"}
    return names[type(value)]


def _types(schema: dict[str, Any]) -> set[str] | None:
    """Declared types, else the types of the enum/const values, else None (unconstrained)."""
    raw = schema.get("type")
    if raw is not None:
        return set(raw) if isinstance(raw, list) else {raw}
    values = _values(schema)
    return None if values is None else {_json_type(v) for v in values}


def _values(schema: dict[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    raw = schema.get("enum")
    return list(raw) if isinstance(raw, list) else None


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str, lower: bool) -> Any:
    """The effective numeric bound as (value, exclusive), tightest of the two keywords."""
    candidates = [(schema[k], k == exclusive) for k in (inclusive, exclusive) if k in schema]
    if not candidates:
        return None

    def key(c: tuple[float, bool]) -> tuple[float, int]:
        return (c[0], c[1]) if lower else (-c[0], c[1])

    return max(candidates, key=key)


def _tighter(old: Any, new: Any, lower: bool) -> bool:
    """True if numeric bound ``new`` excludes a value ``old`` admits (None = unbounded)."""
    if new is None:
        return False
    if old is None:
        return True
    if old[0] != new[0]:
        return bool(new[0] > old[0]) if lower else bool(new[0] < old[0])
    return new[1] and not old[1]


def _fmt_bound(bound: Any, lower: bool) -> str:
    if bound is None:
        return "unbounded"
    op = (">" if bound[1] else "≥") if lower else ("<" if bound[1] else "≤")
    return f"{op} {_text(bound[0])}"


class _Walker:
    def __init__(self, old: Contract, new: Contract) -> None:
        self.old, self.new = old, new
        self.changes: list[SchemaChange] = []

    def add(self, path: list[str], rule: str, message: str, o2n: Effect, n2o: Effect) -> None:
        self.changes.append(SchemaChange("/" + "/".join(path), rule, message, o2n, n2o))

    def walk(self, old: Target, new: Target, path: list[str], stack: frozenset[Any]) -> None:
        o, n = deref(self.old, old.file, old.schema), deref(self.new, new.file, new.schema)
        key = ((o.file, o.pointer), (n.file, n.pointer))
        if (_has_ref(old.schema) or _has_ref(new.schema)) and key in stack:
            return  # a recursive schema: this pair is already being compared further up
        stack = stack | {key}
        os_ = o.schema if isinstance(o.schema, dict) else {}
        ns = n.schema if isinstance(n.schema, dict) else {}
        self.annotations(os_, ns, path)
        self.type_and_values(os_, ns, path)
        self.bounds(os_, ns, path)
        for keyword in ("pattern", "format"):
            self.opaque(os_, ns, path, keyword)
        # Member and item keywords only apply to objects and arrays: skip them when a type
        # change already rules those out on one side.
        if _allows(os_, "object") and _allows(ns, "object"):
            self.members(o, n, os_, ns, path, stack)
        if ("items" in os_ or "items" in ns) and _allows(os_, "array") and _allows(ns, "array"):
            self.walk(
                Target(o.file, "", os_.get("items", True)),
                Target(n.file, "", ns.get("items", True)),
                [*path, "*"],
                stack,
            )
        self.unions(o, n, os_, ns, path, stack)

    # -- keywords -----------------------------------------------------------------------------

    def annotations(self, old: dict[str, Any], new: dict[str, Any], path: list[str]) -> None:
        if old.get("title") != new.get("title"):
            message = f"class name {old.get('title')!r} → {new.get('title')!r} (source only)"
            self.add(path, "CLASS_RENAMED", message, N, N)
        for keyword in ANNOTATIONS:
            if _text(old.get(keyword)) != _text(new.get(keyword)):
                self.add(path, "ANNOTATION_CHANGED", f"{keyword} changed", N, N)

    def type_and_values(self, old: dict[str, Any], new: dict[str, Any], path: list[str]) -> None:
        ot, nt = _types(old), _types(new)
        if ot is not None or nt is not None:
            o_set, n_set = ot or set(TYPES), nt or set(TYPES)
            lost = sorted(t for t in o_set if not _covered(t, n_set))
            gained = sorted(t for t in n_set if not _covered(t, o_set))
            if lost or gained:
                rule = (
                    "TYPE_CHANGED"
                    if lost and gained
                    else "TYPE_NARROWED"
                    if lost
                    else "TYPE_WIDENED"
                )
                shown = [", ".join(sorted(t)) if t is not None else "any" for t in (ot, nt)]
                message = f"type {shown[0]} → {shown[1]}"
                self.add(path, rule, message, V if lost else N, V if gained else N)
        ov, nv = _values(old), _values(new)
        if ov is None and nv is None:
            return
        if ov is None or nv is None:
            if nv is not None:
                values = ", ".join(map(_text, nv))
                self.add(path, "ENUM_ADDED", f"values restricted to {values}", V, N)
            else:
                self.add(path, "ENUM_REMOVED", "value restriction removed", N, V)
            return
        o_texts, n_texts = {_text(v) for v in ov}, {_text(v) for v in nv}
        if removed := sorted(o_texts - n_texts):
            self.add(path, "ENUM_VALUE_REMOVED", f"value(s) {', '.join(removed)} removed", V, N)
        if added := sorted(n_texts - o_texts):
            self.add(path, "ENUM_VALUE_ADDED", f"value(s) {', '.join(added)} added", N, V)

    def bounds(self, old: dict[str, Any], new: dict[str, Any], path: list[str]) -> None:
        for inclusive, exclusive, lower in (
            ("minimum", "exclusiveMinimum", True),
            ("maximum", "exclusiveMaximum", False),
        ):
            ob, nb = (
                _bound(old, inclusive, exclusive, lower),
                _bound(new, inclusive, exclusive, lower),
            )
            if _tighter(ob, nb, lower) or _tighter(nb, ob, lower):
                self.constraint(
                    path,
                    f"value {_fmt_bound(ob, lower)} → {_fmt_bound(nb, lower)}",
                    narrows=_tighter(ob, nb, lower),
                    widens=_tighter(nb, ob, lower),
                )
        for keyword in (*LOWER, *UPPER):
            ob, nb = old.get(keyword), new.get(keyword)
            if ob == nb:
                continue
            lower = keyword in LOWER
            unbounded = 0 if lower else float("inf")
            o_val = ob if ob is not None else unbounded
            n_val = nb if nb is not None else unbounded
            narrows = n_val > o_val if lower else n_val < o_val
            message = f"{keyword} {_text(ob) if ob is not None else 'none'} → " + (
                _text(nb) if nb is not None else "none"
            )
            self.constraint(path, message, narrows=narrows, widens=not narrows)

    def constraint(self, path: list[str], message: str, *, narrows: bool, widens: bool) -> None:
        rule = "CONSTRAINT_TIGHTENED" if narrows else "CONSTRAINT_LOOSENED"
        self.add(path, rule, message, V if narrows else N, V if widens else N)

    def opaque(self, old: dict[str, Any], new: dict[str, Any], path: list[str], key: str) -> None:
        ov, nv = old.get(key), new.get(key)
        if ov == nv:
            return
        name = key.upper()
        if ov is None:
            self.add(path, f"{name}_ADDED", f"{key} {nv!r} added", V, N)
        elif nv is None:
            self.add(path, f"{name}_REMOVED", f"{key} {ov!r} removed", N, V)
        else:
            self.add(path, f"{name}_CHANGED", f"{key} {ov!r} → {nv!r}", V, V)

    # -- objects ------------------------------------------------------------------------------

    def members(
        self,
        o: Target,
        n: Target,
        old: dict[str, Any],
        new: dict[str, Any],
        path: list[str],
        stack: frozenset[Any],
    ) -> None:
        op, np_ = old.get("properties", {}), new.get("properties", {})
        oa, na = old.get("additionalProperties", True), new.get("additionalProperties", True)
        oreq, nreq = set(old.get("required", [])), set(new.get("required", []))
        for name in op.keys() | np_.keys():
            where = [*path, name]
            if name in op and name in np_:
                self.walk(Target(o.file, "", op[name]), Target(n.file, "", np_[name]), where, stack)
                if name in nreq and name not in oreq:
                    self.add(where, "MEMBER_NOW_REQUIRED", "member is now required", V, N)
                elif name in oreq and name not in nreq:
                    self.add(where, "MEMBER_NOW_OPTIONAL", "member is now optional", N, V)
            elif name in op:
                o2n = self.unknown(
                    Target(o.file, "", op[name]), Target(n.file, "", na), where, stack
                )
                if name in oreq:
                    self.add(where, "MEMBER_REMOVED_REQUIRED", "required member removed", o2n, V)
                else:
                    self.add(where, "MEMBER_REMOVED", "optional member removed", o2n, N)
            else:
                n2o = self.unknown(
                    Target(n.file, "", np_[name]),
                    Target(o.file, "", oa),
                    where,
                    stack,
                    reverse=True,
                )
                if name in nreq:
                    self.add(where, "MEMBER_ADDED_REQUIRED", "required member added", V, n2o)
                else:
                    self.add(where, "MEMBER_ADDED", "optional member added", N, n2o)
        if (oa is False) != (na is False):
            message = f"additionalProperties {_text(oa)} → {_text(na)}"
            narrows = na is False
            if op or np_:
                # Declared members exist: only undeclared (unknown) members are affected.
                rule = "UNKNOWN_MEMBERS_FORBIDDEN" if narrows else "UNKNOWN_MEMBERS_ALLOWED"
                self.add(path, rule, message, U if narrows else N, N if narrows else U)
            else:
                rule = "MAP_ENTRIES_FORBIDDEN" if narrows else "MAP_ENTRIES_ALLOWED"
                self.add(path, rule, message, V if narrows else N, N if narrows else V)
        elif isinstance(oa, dict) or isinstance(na, dict):
            self.walk(Target(o.file, "", oa), Target(n.file, "", na), [*path, "*"], stack)

    def unknown(
        self,
        member: Target,
        rest: Target,
        path: list[str],
        stack: frozenset[Any],
        *,
        reverse: bool = False,
    ) -> Effect:
        """Effect of a member only one side declares, read under the other side's rest schema."""
        if rest.schema is False:
            return U
        if isinstance(rest.schema, dict) and rest.schema:
            # The other side validates undeclared members against a map schema.
            old, new = (rest, member) if reverse else (member, rest)
            self.walk(old, new, path, stack)
        return N

    # -- unions -------------------------------------------------------------------------------

    def branches(self, target: Target, contract: Contract) -> dict[str, tuple[str, Target]]:
        """Union branches keyed for matching: by title, else by their exact text.

        Values are (label for paths, branch): the title, else ``#<index>``.
        """
        schema = target.schema if isinstance(target.schema, dict) else {}
        keyword = "oneOf" if "oneOf" in schema else "anyOf"
        out: dict[str, tuple[str, Target]] = {}
        for index, branch in enumerate(schema.get(keyword, [])):
            resolved = deref(contract, target.file, branch).schema
            title = resolved.get("title") if isinstance(resolved, dict) else None
            key = title if isinstance(title, str) else "=" + _text(branch)
            out.setdefault(
                key,
                (title if isinstance(title, str) else f"#{index}", Target(target.file, "", branch)),
            )
        return out

    def unions(
        self,
        o: Target,
        n: Target,
        old: dict[str, Any],
        new: dict[str, Any],
        path: list[str],
        stack: frozenset[Any],
    ) -> None:
        o_kind = "oneOf" if "oneOf" in old else "anyOf" if "anyOf" in old else None
        n_kind = "oneOf" if "oneOf" in new else "anyOf" if "anyOf" in new else None
        if o_kind is None and n_kind is None:
            return
        if o_kind is None or n_kind is None:
            message = (
                f"{'became' if o_kind is None else 'is no longer'} a union ({o_kind or n_kind})"
            )
            self.add(path, "UNION_REPLACED", message, V, V)
            return
        if o_kind != n_kind:
            widens = n_kind == "anyOf"
            self.add(
                path,
                "UNION_KIND_CHANGED",
                f"{o_kind} → {n_kind}",
                N if widens else V,
                V if widens else N,
            )
        ob, nb = self.branches(o, self.old), self.branches(n, self.new)
        left = [k for k in ob if k not in nb]
        right = [k for k in nb if k not in ob]
        pairs = [(nb[k][0], ob[k][1], nb[k][1]) for k in nb if k in ob]
        if len(left) == len(right):
            # As many unmatched branches on both sides: compare them in order (a renamed class,
            # an edited untitled branch).
            pairs += [
                (f"{ob[a][0]}|{nb[b][0]}" if ob[a][0] != nb[b][0] else nb[b][0], ob[a][1], nb[b][1])
                for a, b in zip(left, right, strict=True)
            ]
            left = right = []
        for label, old_branch, new_branch in pairs:
            self.walk(old_branch, new_branch, [*path, f"({label})"], stack)
        for key in left:
            where = [*path, f"({ob[key][0]})"]
            self.add(where, "VARIANT_REMOVED", f"{o_kind} branch removed", V, N)
        for key in right:
            where = [*path, f"({nb[key][0]})"]
            self.add(where, "VARIANT_ADDED", f"{n_kind} branch added", N, V)


def compare_schemas(
    old: Contract, old_at: Target, new: Contract, new_at: Target
) -> list[SchemaChange]:
    """Every difference between ``old_at`` (in ``old``) and ``new_at`` (in ``new``).

    Paths are instance paths inside the payload: member names, ``*`` for array items and map
    values, ``(Title)`` for a union branch; ``/`` is the payload itself.
    """
    walker = _Walker(old, new)
    walker.walk(
        old_at,
        new_at,
        [],
        frozenset({((old_at.file, old_at.pointer), (new_at.file, new_at.pointer))}),
    )
    return walker.changes

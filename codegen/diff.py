"""Compatibility check between two contract versions (``mesh contract diff OLD NEW``).

Every change is listed with a rule id (in the spirit of ``buf breaking``) and an :class:`Impact`:
whom it breaks when the two versions meet (contract/README.md "Evolving a contract"):

* ``OLD_CLIENTS``: clients built from OLD talking to a server built from NEW (the usual
  server-first deploy; checked by ``--mode backward``, the default);
* ``OLD_SERVERS``: clients built from NEW talking to a server still on OLD (clients deployed
  first; ``--mode forward``); ``--mode full`` checks both.

Payload schemas are compared by :mod:`codegen.schema_diff`; what a schema change breaks depends
on who writes and who reads the payload. Requests are written by clients and read by the server,
which is strict (``additionalProperties: false`` rejects unknown members). Responses, pushes,
channel messages and record values are written by the server and read by clients, which ignore
unknown members (tolerant readers, :func:`mesh_sdk.protocol.contract.read_model`) unless
``strict_clients`` is set (clients generated with ``--strict-readers``). Values of records writable
in both versions flow both ways.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from codegen.loader import Contract, Entry
from codegen.refs import entry_schemas
from codegen.schema_diff import Effect, SchemaChange, compare_schemas

__all__ = ["MODES", "Change", "Impact", "breaking", "diff_contracts"]


class Impact(enum.IntFlag):
    """Whom a change breaks; no flag set means safe."""

    OLD_CLIENTS = 1
    OLD_SERVERS = 2

    @property
    def broken(self) -> list[str]:
        """``["old-clients"]``, ``["old-servers"]``, both, or ``[]`` (safe)."""
        return [_AUDIENCE[flag] for flag in Impact if self & flag]

    @property
    def label(self) -> str:
        """``safe``, ``breaking for old clients``, ``… for old servers`` or both."""
        names = [name.removeprefix("old-") for name in self.broken]
        return "breaking for old " + " and ".join(names) if names else "safe"


_AUDIENCE: Final = {Impact.OLD_CLIENTS: "old-clients", Impact.OLD_SERVERS: "old-servers"}
SAFE: Final = Impact(0)
BOTH: Final = Impact.OLD_CLIENTS | Impact.OLD_SERVERS
MODES: Final = {"backward": Impact.OLD_CLIENTS, "forward": Impact.OLD_SERVERS, "full": BOTH}
"""``--mode`` → the impacts that fail the check."""


@dataclass(frozen=True, order=True)
class Change:
    """One difference between two contracts."""

    subject: str
    """``contract``, ``command chat/send``, ``channel chat:{room}``, ``record user:{id}`` …"""
    part: str
    """``request``, ``response``, ``message``, ``value``, ``payload``, or ``""`` (the entry)."""
    path: str
    """Instance path inside the payload (:func:`codegen.schema_diff.compare_schemas`)."""
    rule: str
    message: str
    impact: Impact

    def __str__(self) -> str:
        where = " ".join(x for x in (self.subject, self.part, self.path) if x)
        return f"{self.impact.label}: {where}: {self.message} [{self.rule}]"


_KIND: Final = {"commands": "command", "channels": "channel", "records": "record", "pushes": "push"}


def _impact(effect: Effect, strict_reader: bool, flag: Impact) -> Impact:
    hit = effect is Effect.VALUE or (effect is Effect.UNKNOWN_MEMBER and strict_reader)
    return flag if hit else SAFE


def _classify(change: SchemaChange, flows: tuple[str, ...], strict_clients: bool) -> Impact:
    impact = SAFE
    for flow in flows:
        if flow == "client-writes":  # read by the (always strict) server
            impact |= _impact(change.old_to_new, True, Impact.OLD_CLIENTS)
            impact |= _impact(change.new_to_old, True, Impact.OLD_SERVERS)
        else:  # server writes, clients read
            impact |= _impact(change.new_to_old, strict_clients, Impact.OLD_CLIENTS)
            impact |= _impact(change.old_to_new, strict_clients, Impact.OLD_SERVERS)
    return impact


def _flows(part: str, old: Entry, new: Entry) -> tuple[str, ...]:
    if part == "request":
        return ("client-writes",)
    if part == "value" and old.writable and new.writable:
        return ("server-writes", "client-writes")
    return ("server-writes",)


def _match(old: list[Entry], new: list[Entry]) -> tuple[list[tuple[Entry, Entry]], ...]:
    """Pair entries by wire identity, then leftovers by file stem (a rename)."""
    new_by_wire = {e.wire: e for e in new}
    pairs = [(e, new_by_wire[e.wire]) for e in old if e.wire in new_by_wire]
    matched = {id(b) for _, b in pairs} | {id(a) for a, _ in pairs}
    left = [e for e in old if id(e) not in matched]
    right = {e.stem: e for e in new if id(e) not in matched}
    renamed = [(e, right[e.stem]) for e in left if e.stem in right]
    renamed_ids = {id(x) for pair in renamed for x in pair}
    removed = [(e, e) for e in left if id(e) not in renamed_ids]
    added = [(e, e) for e in right.values() if id(e) not in renamed_ids]
    return pairs, renamed, removed, added


def _entry_changes(old: Entry, new: Entry) -> list[Change]:
    kind = _KIND[old.kind]
    subject = f"{kind} {new.wire}"
    out: list[Change] = []

    def add(rule: str, message: str, impact: Impact) -> None:
        out.append(Change(subject, "", "", rule, message, impact))

    if old.stem != new.stem:
        add("METHOD_RENAMED", f"file stem {old.stem!r} → {new.stem!r} (source only)", SAFE)
    # A command file's title and description belong to no payload schema; other kinds' roots
    # are their payload schema, whose title and description the schema comparison reports.
    if old.kind == "commands" and old.title != new.title:
        add("CLASS_RENAMED", f"class names {old.title!r} → {new.title!r} (source only)", SAFE)
    if old.kind == "commands" and old.description != new.description:
        add("ANNOTATION_CHANGED", "description changed", SAFE)
    if old.kind in ("channels", "records") and old.pattern != new.pattern:
        # Regex containment is undecidable here: either direction may now deny a name.
        message = f"x-mesh-pattern {old.pattern!r} → {new.pattern!r}"
        add(f"{kind.upper()}_PATTERN_CHANGED", message, BOTH)
    if old.writable != new.writable:
        if new.writable:
            add("RECORD_WRITABLE_ENABLED", "x-mesh-writable false → true", Impact.OLD_SERVERS)
        else:
            add("RECORD_WRITABLE_DISABLED", "x-mesh-writable true → false", Impact.OLD_CLIENTS)
    return out


def diff_contracts(old: Contract, new: Contract, *, strict_clients: bool = False) -> list[Change]:
    """Every change from ``old`` to ``new``, classified (module docstring), in a stable order.

    Args:
        old: The previous contract.
        new: The changed contract.
        strict_clients: Classify as if client readers rejected unknown members too (clients
            generated with ``mesh codegen --strict-readers``), so adding an optional response
            member breaks old clients.
    """
    changes: list[Change] = []
    if old.name != new.name:
        message = f"contract name {old.name!r} → {new.name!r} (class prefix; source only)"
        changes.append(Change("contract", "", "", "CONTRACT_RENAMED", message, SAFE))
    for kind_key, kind in _KIND.items():
        pairs, renamed, removed, added = _match(old.entries_of(kind_key), new.entries_of(kind_key))
        rule = kind.upper()
        for a, _ in removed:
            message = f"{kind} removed"
            changes.append(
                Change(f"{kind} {a.wire}", "", "", f"{rule}_REMOVED", message, Impact.OLD_CLIENTS)
            )
        for b, _ in added:
            message = f"{kind} added (old servers answer ENOTFOUND or deny it)"
            changes.append(
                Change(f"{kind} {b.wire}", "", "", f"{rule}_ADDED", message, Impact.OLD_SERVERS)
            )
        for a, b in renamed:
            named = kind_key in ("commands", "pushes")
            message = f"{'wire name' if named else 'template'} {a.wire!r} → {b.wire!r}"
            rename = f"{rule}_RENAMED" if named else f"{rule}_TEMPLATE_CHANGED"
            changes.append(Change(f"{kind} {b.wire}", "", "", rename, message, BOTH))
        for a, b in pairs + renamed:
            changes.extend(_entry_changes(a, b))
            old_parts = dict(entry_schemas(old, a))
            for part, target in entry_schemas(new, b):
                flows = _flows(part, a, b)
                for change in compare_schemas(old, old_parts[part], new, target):
                    impact = _classify(change, flows, strict_clients)
                    changes.append(
                        Change(
                            f"{kind} {b.wire}",
                            part,
                            change.path,
                            change.rule,
                            change.message,
                            impact,
                        )
                    )
    return sorted(set(changes), key=lambda c: (c.subject, c.part, c.path, c.rule, c.message))


def breaking(changes: list[Change], mode: str) -> list[Change]:
    """The changes that fail ``mode`` (``backward``, ``forward`` or ``full``)."""
    fails = MODES[mode]
    return [c for c in changes if c.impact & fails]

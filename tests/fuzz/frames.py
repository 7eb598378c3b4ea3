"""Seeded hostile frames, each with what the server must do with it (the fuzz suite's oracle).

:class:`FrameFactory` starts from a valid frame (a built-in of ``contract/mesh`` with a valid
payload, an application command, a liveness frame) and mutates it: wrong types in every field,
huge/negative/float/nested ids, deep nesting, long strings, invalid UTF-8 in binary frames,
duplicate and escaped keys, unknown commands, byte-level damage. The same seed gives the same
frames.

The expectation of a frame is judged from its bytes with the standard library's parser (an
implementation independent of the server's orjson path) and protocol.md §2, §3.2 and §15: whether
it is answered (and the id the answer must carry), malformed (counted toward close 1008), or too
large (close 1009). Frames nested deeper than that parser can go are only ever built from known
shapes, so their expectation is known by construction.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from pathlib import Path
from typing import Any, Final

__all__ = [
    "BUILTIN_COMMANDS",
    "LIMITS",
    "Expect",
    "Frame",
    "FrameFactory",
    "id_key",
    "judge",
    "parse_exact",
]

CONTRACT: Final = Path(__file__).resolve().parents[2] / "contract" / "mesh"
BUILTIN_COMMANDS: Final = sorted(
    json.loads(path.read_text())["x-mesh-command"]
    for path in (CONTRACT / "commands").glob("*.json")
)
"""Every built-in command of the contract: each is fuzzed (a test checks the samples cover it)."""

LIMITS: Final = {
    "max_message_size": 64 * 1024,
    "max_malformed_frames": 20,
    "malformed_window": 3_600.0,  # longer than any run: the count is per connection
    "max_json_depth": 64,
    "max_id_depth": 32,
}
"""Limits of the fuzzed server (the oracle applies the same)."""

_EXACT: Final = Context(prec=100_000, Emax=MAX_EMAX, Emin=MIN_EMIN)  # ids compare exactly
_SHALLOW: Final = 200  # the stdlib parser judges frames up to this depth
_MISSING: Final = object()


@dataclass(frozen=True, slots=True)
class Expect:
    """What the server must do with one frame.

    Attributes:
        answered: A response carrying ``key`` must arrive (unless the connection is closed
            legitimately first).
        key: :func:`id_key` of the id the answer must echo.
        code: The error code the answer must carry, when it is known (``None``: any
            documented outcome).
        malformed: The frame counts toward the malformed-frame limit (close 1008).
        too_large: The frame exceeds ``max_message_size`` (close 1009).
    """

    answered: bool = False
    key: str | None = None
    code: str | None = None
    malformed: bool = False
    too_large: bool = False


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame to send: ``data`` is ``str`` for a text frame, ``bytes`` for a binary one."""

    data: str | bytes
    expect: Expect
    mutation: str


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _number(text: str) -> str:
    try:
        value = Decimal(text)
        return f"number:{value.normalize(_EXACT) if value else 0}"  # -0 is 0
    except ArithmeticError:  # an exponent beyond even Decimal's range
        return f"number:{text.lower()}"


def parse_exact(text: str) -> Any:
    """Strict JSON with every number replaced by a string of its exact value (``1`` = ``1.0``).

    Ids then compare exactly, whatever their size (``10**30 + 1`` ≠ ``10**30``).

    Raises:
        ValueError: Not strict JSON.
    """
    return json.loads(text, parse_float=_number, parse_int=_number, parse_constant=_reject_constant)


def id_key(id_text: str) -> str:
    """A key equal for two id texts iff they are the same JSON value, numbers compared exactly."""
    return json.dumps(parse_exact(id_text), ensure_ascii=False)


def _depth(value: Any) -> int:
    # Iterative: values may be deep.
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            level += 1
            deepest = max(deepest, level)
            stack.extend(
                (child, level) for child in (node.values() if isinstance(node, dict) else node)
            )
    return deepest


def _text_depth(text: str) -> int:
    deepest = level = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            level += 1
            deepest = max(deepest, level)
        elif char in "]}":
            level -= 1
    return deepest


def judge(data: str | bytes) -> Expect:
    """The expectation of a frame nested at most 200 levels (protocol.md §2, §3.2, §15)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > LIMITS["max_message_size"]:
        return Expect(too_large=True)
    malformed = Expect(malformed=True)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return malformed
    if _text_depth(text) > _SHALLOW:
        raise ValueError("judge() is for shallow frames; build deep ones with a known shape")
    try:
        obj = parse_exact(text)
        # Escaped lone surrogates are not Unicode text (orjson refuses them too).
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError):
        return malformed
    if not isinstance(obj, dict):
        return malformed
    command = obj.get("command", _MISSING)
    if isinstance(command, str) and command in ("pong", "latency:response"):
        return Expect()  # liveness: never answered, never counted
    if "id" not in obj or _depth(obj["id"]) > LIMITS["max_id_depth"]:
        return malformed
    key = json.dumps(obj["id"], ensure_ascii=False)
    too_deep = _depth(obj.get("payload")) > LIMITS["max_json_depth"] or (
        command is not _MISSING and _depth(command) > LIMITS["max_json_depth"]
    )
    if too_deep:
        return Expect(answered=True, key=key, code="ETOOLARGE")
    if not isinstance(command, str):
        return Expect(answered=True, key=key, code="ENOTFOUND")
    return Expect(answered=True, key=key)


# --------------------------------------------------------------------------------------------
# Valid frames


def _name(rng: random.Random, prefix: str) -> str:
    return f"{prefix}:{rng.randrange(6)}"


SAMPLES: Final[dict[str, Callable[[random.Random], dict[str, Any]]]] = {
    "mesh/noop": lambda r: {},
    "mesh/join-room": lambda r: {"roomName": _name(r, "room")},
    "mesh/leave-room": lambda r: {"roomName": _name(r, "room")},
    "mesh/get-room-metadata": lambda r: {"roomName": _name(r, "room")},
    "mesh/subscribe-presence": lambda r: {"roomName": _name(r, "room")},
    "mesh/unsubscribe-presence": lambda r: {"roomName": _name(r, "room")},
    "mesh/get-presence-state": lambda r: {"roomName": _name(r, "room")},
    "mesh/clear-presence-state": lambda r: {"roomName": _name(r, "room")},
    "mesh/publish-presence-state": lambda r: {
        "roomName": _name(r, "room"),
        "state": {"typing": r.random() < 0.5},
        "expireAfter": r.choice([None, 0, 50, 2000]),
    },
    "mesh/subscribe-channel": lambda r: {"channel": _name(r, "chat"), "historyLimit": 5},
    "mesh/unsubscribe-channel": lambda r: {"channel": _name(r, "chat")},
    "mesh/get-channel-history": lambda r: {"channel": _name(r, "chat"), "limit": 3},
    "mesh/subscribe-record": lambda r: {
        "recordId": _name(r, r.choice(["doc", "test"])),
        "mode": r.choice(["full", "patch"]),
    },
    "mesh/unsubscribe-record": lambda r: {"recordId": _name(r, "doc")},
    "mesh/publish-record-update": lambda r: {
        "recordId": _name(r, "doc"),
        "newValue": {"n": r.randrange(100), "tags": ["a"] * r.randrange(3)},
        "options": {"strategy": r.choice(["replace", "merge", "deepMerge"])},
    },
    "mesh/get-connection-metadata": lambda r: {"connectionId": f"conn-{r.randrange(99)}"},
    "mesh/get-my-connection-metadata": lambda r: {},
    "mesh/contract-info": lambda r: {},
    "mesh/set-my-connection-metadata": lambda r: {"metadata": {"name": f"u{r.randrange(9)}"}},
    "echo": lambda r: {"v": r.randrange(1000)},
    "publish": lambda r: {"channel": _name(r, "chat"), "message": "hi"},
}
"""A valid payload for every command the fuzzed server knows."""


# --------------------------------------------------------------------------------------------
# Hostile pieces


def _nest(depth: int, leaf: str, kind: str) -> str:
    if kind == "[":
        return "[" * depth + leaf + "]" * depth
    return '{"k":' * depth + leaf + "}" * depth


class FrameFactory:
    """Reproducible hostile frames: ``FrameFactory(seed).next()`` → :class:`Frame`."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seq = 0
        self.counts: dict[str, int] = {}

    def next(self) -> Frame:
        """Return the next frame of the sequence."""
        self.seq += 1
        rng = self.rng
        roll = rng.random()
        if roll < 0.06:
            frame = self._deep()
        elif roll < 0.12:
            frame = self._garbage()
        elif roll < 0.20:
            frame = self._bytes_damaged()
        else:
            frame = self._structured()
        self.counts[frame.mutation] = self.counts.get(frame.mutation, 0) + 1
        return frame

    # ---------------------------------------------------------------- values

    def _id_text(self) -> str:
        rng, seq = self.rng, self.seq
        choice = rng.randrange(16)
        if choice < 4:
            return str(seq)
        texts = [
            f'"s{seq}"',
            f'"\\u0073{seq}\\n\\"é😀"',
            str(10**30 + seq),
            str(2**64 + seq),
            str(-(2**63) - 1 - seq),
            f"{seq}.50",
            f"{seq}e0",
            rng.choice(["1e400", "-1E+400", "0", "-0", "null", "true", "false"]),
            f'[{seq}, {{"n" : {seq}.0}}]',
            _nest(rng.randrange(1, 33), str(seq), rng.choice("[{")),
            f'"{"x" * rng.randrange(100, 5000)}{seq}"',
            "{}",
        ]
        return texts[choice - 4]

    def _hostile_value(self, budget: int = 3) -> Any:
        rng = self.rng
        choice = rng.randrange(12 if budget > 0 else 8)
        if choice == 0:
            return None
        if choice == 1:
            return rng.choice([True, False])
        if choice == 2:
            return rng.choice([0, -1, 2**53 + 1, 2**63, 10**40, -(10**40)])
        if choice == 3:
            return rng.choice([0.5, -0.0, 1e308, 5e-324])
        if choice == 4:
            return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(8)))
        if choice == 5:
            return "y" * rng.choice([513, 5000, 40_000])
        if choice == 6:
            return rng.choice(["", "room:0", "chat:0", "doc:0", "mesh:presence:room:0", "secret:x"])
        if choice == 7:
            return rng.choice([{}, []])
        if choice < 10:
            return [self._hostile_value(budget - 1) for _ in range(rng.randrange(4))]
        return {
            rng.choice(["a", "roomName", "state", "__proto__", ""]): self._hostile_value(budget - 1)
            for _ in range(rng.randrange(4))
        }

    # ---------------------------------------------------------------- frame kinds

    def _structured(self) -> Frame:
        """A valid frame with field-level mutations: its text is built member by member."""
        rng = self.rng
        command: Any = rng.choice(list(SAMPLES) + BUILTIN_COMMANDS)
        payload: Any = SAMPLES[command](rng)
        mutation = "valid"
        members: list[tuple[str, str]] = [("id", self._id_text())]
        roll = rng.random()
        if roll < 0.25:
            mutation = "field-type"
            if payload and rng.random() < 0.8:
                field = rng.choice(list(payload))
                payload[field] = self._hostile_value()
            else:
                payload = self._hostile_value()
        elif roll < 0.33:
            mutation = "missing-field"
            if payload:
                del payload[rng.choice(list(payload))]
        elif roll < 0.40:
            mutation = "extra-field"
            payload = (
                {**payload, "extra": self._hostile_value()}
                if isinstance(payload, dict)
                else payload
            )
        elif roll < 0.48:
            mutation = "command-type"
            command = self._hostile_value(1)
        elif roll < 0.53:
            mutation = "unknown-command"
            command = rng.choice(
                ["ping", "latency", "mesh/unknown", "mesh/subscribe-collection", "", "x" * 600]
            )
        elif roll < 0.57:
            mutation = "liveness"
            command = rng.choice(["pong", "latency:response"])
            payload = self._hostile_value()
        elif roll < 0.61:
            mutation = "no-id"
            members = []
        elif roll < 0.65:
            mutation = "duplicate-keys"
            members.insert(0, ("id", str(-self.seq)))
            members.append(("command", json.dumps("mesh/noop")))
        members.append(("command", json.dumps(command)))
        if rng.random() < 0.9:
            members.append(("payload", json.dumps(payload, ensure_ascii=rng.random() < 0.5)))
        if mutation == "duplicate-keys":
            members.append(("payload", "{}"))
        if rng.random() < 0.3:
            rng.shuffle(members)  # key order never matters (§3.6); duplicates: the last wins
        text = self._render(members)
        binary = rng.random() < 0.2
        data: str | bytes = text.encode() if binary else text
        return Frame(data, judge(data), mutation)

    def _render(self, members: list[tuple[str, str]]) -> str:
        rng = self.rng
        space = rng.choice(["", "", " ", "\n\t "])
        parts = []
        for key, value in members:
            key_text = (
                json.dumps(key)
                if rng.random() < 0.95
                else '"' + "".join(f"\\u{ord(c):04x}" for c in key) + '"'
            )
            parts.append(f"{key_text}{space}:{space}{value}")
        return "{" + space + ("," + space).join(parts) + space + "}"

    def _deep(self) -> Frame:
        """Nesting beyond the limits, built from known shapes (expectation by construction)."""
        rng, seq = self.rng, self.seq
        kind = rng.choice("[{")
        where = rng.choice(["id", "payload", "command", "value"])
        depth = rng.choice([33, 65, 100, 300, 1000, 1023, 1500])
        deep = _nest(depth, "1", kind)
        command = rng.choice(
            [
                "echo",
                "mesh/noop",
                "mesh/publish-record-update",
                "mesh/publish-presence-state",
                "mesh/set-my-connection-metadata",
            ]
        )
        id_text = str(seq)
        if where == "id":
            text = f'{{"id":{deep},"command":"{command}"}}'
        elif where == "command":
            text = f'{{"id":{id_text},"command":{deep}}}'
        elif where == "payload":
            text = f'{{"id":{id_text},"command":"{command}","payload":{deep}}}'
        else:
            value = {
                "mesh/publish-presence-state": '{{"roomName":"room:1","state":{}}}',
                "mesh/set-my-connection-metadata": '{{"metadata":{}}}',
            }.get(command, '{{"recordId":"doc:1","newValue":{}}}')
            text = f'{{"id":{id_text},"command":"{command}","payload":{value.format(deep)}}}'
            depth += 1
        frame_depth = depth + 1
        if frame_depth > 1024:
            expect = Expect(malformed=True)  # beyond orjson's limit, refused before the stdlib
        elif where == "id":
            expect = Expect(malformed=depth > LIMITS["max_id_depth"])
        elif where == "command" and depth <= LIMITS["max_json_depth"]:
            expect = Expect(answered=True, key=id_key(id_text), code="ENOTFOUND")
        elif depth > LIMITS["max_json_depth"]:
            expect = Expect(answered=True, key=id_key(id_text), code="ETOOLARGE")
        else:
            expect = Expect(answered=True, key=id_key(id_text))
        if len(text) > LIMITS["max_message_size"]:
            expect = Expect(too_large=True)
        return Frame(text, expect, f"deep-{where}")

    def _garbage(self) -> Frame:
        rng, seq = self.rng, self.seq
        options: list[str | bytes] = [
            "",
            "null",
            "[1,2]",
            '"text"',
            "42",
            f'{{"id":{seq},"command":"echo","payload":NaN}}',
            f'{{"id":{seq},"command":"echo","payload":Infinity}}',
            f'{{"id":{seq},"command":"echo","payload":"\\ud800"}}',
            b'{"id":%d,"command":"echo","payload":"\xff\xfe"}' % seq,
            b'{"id":%d,"command":"echo","payload":"\xc3"}' % seq,
            bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))),
            f'{{"id":{seq},"command":"echo","payload":"'
            + "z" * (LIMITS["max_message_size"] + 1)
            + '"}',
        ]
        weights = [1] * (len(options) - 1) + [0.1]
        data = rng.choices(options, weights)[0]
        return Frame(data, judge(data), "garbage")

    def _bytes_damaged(self) -> Frame:
        """A valid frame damaged at the byte level: the judge decides what it became."""
        rng = self.rng
        base = self._structured().data
        raw = bytearray(base.encode() if isinstance(base, str) else base)
        for _ in range(rng.randrange(1, 4)):
            if not raw:
                break
            at = rng.randrange(len(raw))
            action = rng.randrange(4)
            if action == 0:
                del raw[at:]
            elif action == 1:
                raw[at] = rng.randrange(256)
            elif action == 2:
                raw[at:at] = rng.choice([b"{", b"]", b'"', b",", b"\\", b"\x00", b"\xed\xa0\x80"])
            else:
                del raw[at]
        data = bytes(raw)
        return Frame(data, judge(data), "bytes")

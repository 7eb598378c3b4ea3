"""The fuzz load generator: lanes of raw websockets clients, and what they check on every frame.

A :class:`Lane` is one sequential client (what a JS client does): it sends its frames on one
connection with up to ``window`` answers outstanding, answers ``ping`` and ``latency:request``,
and checks every frame the server sends against the documented shapes (protocol.md §3, §4, §8). When
a frame must close the connection (the 21st malformed frame → 1008, an oversized one → 1009) it
waits for everything outstanding to be answered, sends it, waits for exactly that close and opens
a new connection. Any other close is a failure, and so is any answer still missing. At
the end each lane's connection must answer everything outstanding plus a final ``echo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.fuzz.frames import CONTRACT, LIMITS, Frame, FrameFactory, id_key, parse_exact
from tests.support.timing import TIMEOUT

__all__ = ["Lane", "Report", "run_lanes"]

_ERRORS = json.loads((CONTRACT / "errors.json").read_text())["oneOf"]
SERVER_CODES: Final = frozenset(e["const"] for e in _ERRORS if not e.get("x-mesh-client-only"))
"""Codes a server may send (contract/mesh/errors.json without the client-only ones)."""
PUSHES: Final = frozenset(
    json.loads(path.read_text())["x-mesh-push"] for path in (CONTRACT / "pushes").glob("*.json")
)
"""Push names of the built-in contract."""
_RESPONSE_KEYS: Final = frozenset({"id", "command", "payload", "error"})


@dataclass
class Report:
    """What the lanes saw; the test asserts on it and prints it."""

    frames: int = 0
    answers: int = 0
    pushes: int = 0
    connections: int = 0
    excused: int = 0
    closes: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    mutations: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        """Record a failure (the first few hundred are kept)."""
        if len(self.problems) < 200:
            self.problems.append(text)


def check_response(frame: dict[str, Any]) -> str | None:
    """Return why ``frame`` is not a documented response (§3.5, §4), or ``None``."""
    if not set(frame) <= _RESPONSE_KEYS or "payload" not in frame:
        return f"response members {sorted(frame)}"
    if "error" not in frame:
        return None
    error = frame["error"]
    if not isinstance(error, dict) or error.get("code") not in SERVER_CODES:
        return f"error {error!r} has no documented code"
    if not isinstance(error.get("error"), str) or not isinstance(error.get("name"), str):
        return f"error {error!r} without message or name"
    if frame["payload"] != {k: error[k] for k in ("error", "code", "name")}:
        return "error payload is not the reference object"
    return None


class Lane:
    """One sequential raw client (see the module docstring)."""

    def __init__(self, url: str, index: int, seed: int, report: Report, window: int = 32) -> None:
        self.url = url
        self.name = f"lane{index}"
        self.factory = FrameFactory(seed * 1000 + index)
        self.report = report
        self.window = window
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        # key → (expected code, description) of each answer still awaited, per connection.
        self.outstanding: dict[str, list[tuple[str | None, str]]] = {}
        self.malformed = 0
        self.changed = asyncio.Event()
        self.close_expected: int | None = None
        self.closing = False
        self._pong = 0

    async def run(self, count: int) -> None:
        """Send ``count`` frames, then the final request; record everything in the report."""
        await self._open()
        for _ in range(count):
            frame = self.factory.next()
            self.report.frames += 1
            self.report.mutations[frame.mutation] += 1
            await self._send(frame)
        await self._finish()

    # ---------------------------------------------------------------- connections

    async def _open(self) -> None:
        self.ws = await connect(
            self.url, max_size=None, ping_interval=None, compression=None, open_timeout=TIMEOUT
        )
        self.report.connections += 1
        first = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
        if first.get("command") != "mesh/assign-id":
            self.report.problem(f"{self.name}: first frame {first!r}")
        self.outstanding = {}
        self.malformed = 0
        self.close_expected = None
        self.closing = False
        self.reader = asyncio.create_task(self._read(self.ws))

    async def _reopen_after_close(self, code: int) -> None:
        assert self.ws is not None
        assert self.reader is not None
        self.close_expected = code
        try:
            await asyncio.wait_for(asyncio.shield(self.reader), 4 * TIMEOUT)
        except TimeoutError:
            self.report.problem(f"{self.name}: expected close {code} did not come")
            self.closing = True
            await self.ws.close()
        self.report.excused += sum(len(v) for v in self.outstanding.values())
        await self._open()

    # ---------------------------------------------------------------- sending

    async def _send(self, frame: Frame) -> None:
        expect = frame.expect
        assert self.ws is not None
        if expect.answered:
            assert expect.key is not None
            await self._wait(lambda: self._pending() < self.window, "window")
            what = f"{frame.mutation} {frame.data[:120]!r}"
            self.outstanding.setdefault(expect.key, []).append((expect.code, what))
        closes = expect.too_large or (
            expect.malformed and self.malformed >= LIMITS["max_malformed_frames"]
        )
        if closes:
            # Let every answer arrive first, so that none is excused by the close.
            await self._wait(lambda: self._pending() == 0, "the answers before a close")
        if expect.malformed:
            self.malformed += 1
        with contextlib.suppress(ConnectionClosed):  # the reader records the close
            await self.ws.send(frame.data)
        if expect.too_large:
            await self._reopen_after_close(1009)
        elif self.malformed > LIMITS["max_malformed_frames"]:
            await self._reopen_after_close(1008)
        elif self.reader is not None and self.reader.done():
            await self._open()  # closed unexpectedly (recorded by the reader): go on

    def _pending(self) -> int:
        return sum(len(v) for v in self.outstanding.values())

    async def _wait(self, predicate: Any, what: str) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 4 * TIMEOUT
        while not predicate():
            if self.reader is None or self.reader.done():
                return False
            self.changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                self.report.problem(f"{self.name}: stalled waiting for {what}")
                return False
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                continue
        return True

    async def _finish(self) -> None:
        assert self.ws is not None
        final = f'"final-{self.name}"'
        self.outstanding.setdefault(id_key(final), []).append((None, "final echo"))
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(f'{{"id":{final},"command":"echo","payload":"final"}}')
        await self._wait(lambda: self._pending() == 0, "the last answers")
        for key, waiting in self.outstanding.items():
            for _code, what in waiting:
                self.report.unanswered.append(f"{self.name}: id {key} ({what})")
        self.closing = True
        await self.ws.close()
        if self.reader is not None:
            await self.reader

    # ---------------------------------------------------------------- receiving

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                reply = self._receive(message)
                self.changed.set()
                if reply is not None:
                    await ws.send(reply)
        except ConnectionClosed:
            pass
        finally:
            self.changed.set()
        code = ws.close_code if ws.close_code is not None else 1006
        self.report.closes[code] += 1
        if self.closing:
            return  # we closed it (end of the run or a missing expected close)
        if code != self.close_expected:
            self.report.problem(
                f"{self.name}: closed with {code} (expected {self.close_expected}) "
                f"after {self.malformed} malformed frames"
            )

    def _receive(self, message: str | bytes) -> str | None:
        """Check one frame from the server; return the liveness answer to send, if any."""
        report = self.report
        if not isinstance(message, str):
            report.problem(f"{self.name}: binary frame from the server")
            return None
        try:
            frame = parse_exact(message)
        except ValueError:
            report.problem(f"{self.name}: not strict JSON {message[:200]!r}")
            return None
        if not isinstance(frame, dict):
            report.problem(f"{self.name}: not an object {message[:200]!r}")
        elif "id" in frame:
            self._answer(frame, message)
        elif frame.get("command") not in PUSHES or "payload" not in frame or "error" in frame:
            report.problem(f"{self.name}: undocumented push {message[:200]!r}")
        else:
            report.pushes += 1
            # §6: answer like the JS client (a pong with an id; latency:response echoes).
            if frame["command"] == "ping":
                self._pong += 1
                return f'{{"id":{-self._pong},"command":"pong","payload":{{}}}}'
            if frame["command"] == "latency:request":
                return '{"id":0,"command":"latency:response","payload":{}}'
        return None

    def _answer(self, frame: dict[str, Any], message: str) -> None:
        report = self.report
        report.answers += 1
        shape = check_response(frame)
        if shape is not None:
            report.problem(f"{self.name}: {shape}: {message[:200]!r}")
        code = frame["error"]["code"] if isinstance(frame.get("error"), dict) else "success"
        report.codes[str(code)] += 1
        key = json.dumps(frame["id"], ensure_ascii=False)
        waiting = self.outstanding.get(key)
        if not waiting:
            report.problem(f"{self.name}: answer nobody awaits: {message[:200]!r}")
            return
        # Equal ids may be in flight together (§3.3): an exact expectation first, then any.
        codes = [expected for expected, _what in waiting]
        if code in codes:
            del waiting[codes.index(code)]
        elif None in codes:
            del waiting[codes.index(None)]
        else:
            report.problem(f"{self.name}: {code} instead of {waiting[0]}: {message[:200]!r}")
            waiting.pop(0)
        if not waiting:
            del self.outstanding[key]


async def run_lanes(url: str, frames: int, lanes: int, seed: int) -> Report:
    """Run ``frames`` frames over ``lanes`` concurrent lanes; return the report."""
    report = Report()
    share, extra = divmod(frames, lanes)
    await asyncio.gather(
        *(Lane(url, i, seed, report).run(share + (1 if i < extra else 0)) for i in range(lanes))
    )
    return report


def scan_log(path: Path) -> tuple[int, list[str]]:
    """Return the number of lines of a server log and the lines that must never appear."""
    lines = path.read_text(errors="replace").splitlines()
    bad = [
        line
        for line in lines
        if line.startswith(("ERROR", "CRITICAL", "Traceback"))
        or "Traceback" in line
        or "Task exception was never retrieved" in line
        or "Fatal error" in line
    ]
    return len(lines), bad

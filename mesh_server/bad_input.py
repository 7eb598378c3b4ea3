"""The rate-limited log of bad client input (protocol.md §15: abuse handling without log floods).

Bad input is the client's problem, not the server's: a malformed frame, an unknown command, an
invalid payload, a request over a limit, a close for abuse. One attacker must not be able to turn
each 20-byte frame into log lines, so each occurrence is logged at DEBUG only, and one INFO line
per interval sums them up by kind::

    bad client input in the last 60 s: 4 malformed, 120 unknown_command, 2 too_deep

The first occurrence after a quiet interval is summarised at once; later ones wait for the next
summary, which is written by the first occurrence after the interval has passed. Tracebacks are
for server bugs only (see :mod:`mesh_server.pipeline`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Final

__all__ = ["KINDS", "BadInputLog"]

KINDS: Final = (
    "malformed",
    "too_large",
    "too_deep",
    "rate_limited",
    "unknown_command",
    "invalid_payload",
    "policy_close",
)
"""The kinds of bad input counted (their order in the summary line)."""


class BadInputLog:
    """Counts bad client input and logs it without amplification.

    Args:
        log: Where to write (the server's logger).
        interval: Seconds between summary lines.
        clock: Monotonic clock in seconds (tests pass a fake one).

    Attributes:
        totals: Counts per kind since the server started (never reset).
    """

    def __init__(
        self,
        log: logging.Logger,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._interval = interval
        self._clock = clock
        self._pending: Counter[str] = Counter()
        self._next_summary = clock()
        self._since = self._next_summary
        self.totals: Counter[str] = Counter()

    def record(self, kind: str, connection_id: str, detail: str = "") -> None:
        """Count one occurrence of ``kind`` on ``connection_id`` (``detail``: for DEBUG only)."""
        self._pending[kind] += 1
        self.totals[kind] += 1
        log = self._log
        if log.isEnabledFor(logging.DEBUG):
            log.debug("bad input from %s: %s %s", connection_id, kind, detail)
        now = self._clock()
        if now >= self._next_summary:
            self._summarise(now)

    def _summarise(self, now: float) -> None:
        pending = self._pending
        counts = ", ".join(f"{pending[kind]} {kind}" for kind in _ordered(pending))
        self._log.info("bad client input in the last %.1f s: %s", now - self._since, counts)
        pending.clear()
        self._since = now
        self._next_summary = now + self._interval


def _ordered(counts: Counter[str]) -> list[str]:
    known = [kind for kind in KINDS if counts[kind]]
    return known + sorted(kind for kind in counts if kind not in KINDS and counts[kind])

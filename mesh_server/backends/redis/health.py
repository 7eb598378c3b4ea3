"""Outage bookkeeping of one Redis backend: one log line when an outage starts, one when it ends.

During an outage every operation, every pub/sub reconnect attempt and every refused connection
fails; logging each of them buried the one fact an operator needs (protocol.md §15 keeps logs
bounded under abuse, and an outage is no different). :class:`Health` turns the stream of
failures and successes into two lines per outage: a warning with the first failure's detail when
it starts and an info line with its duration and the number of failures when it ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["Health"]

logger = logging.getLogger("mesh_server.backends.redis")


class Health:
    """Whether the backend currently reaches Redis, and since when it does not.

    Args:
        clock: Monotonic clock in seconds (``time.monotonic`` by default).
        log: Logger for the two lines per outage.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, log: logging.Logger = logger
    ) -> None:
        self._clock = clock
        self._log = log
        self.down_since: float | None = None
        """Clock reading when the current outage started (``None`` while available)."""
        self.failures = 0
        """Failed operations and reconnect attempts in the current outage."""
        self.outages = 0
        """Outages that started since the backend was created."""
        self.errors = 0
        """Failures since the backend was created (never reset, for metrics)."""

    @property
    def available(self) -> bool:
        """Whether the last operation (or pub/sub attempt) reached Redis."""
        return self.down_since is None

    def failed(self, detail: str) -> None:
        """Record a failure; the first one of an outage logs a warning naming ``detail``."""
        self.failures += 1
        self.errors += 1
        if self.down_since is None:
            self.down_since = self._clock()
            self.outages += 1
            self._log.warning("Redis backend outage started: %s", detail)

    def succeeded(self) -> None:
        """Record that Redis answered; it ends the current outage (logged with its duration).

        Called only where an answer is certain (a heartbeat, a confirmed pub/sub subscription),
        not on every operation: some operations finish without reaching Redis at all.
        """
        if self.down_since is None:
            return
        duration = self._clock() - self.down_since
        failures, self.failures, self.down_since = self.failures, 0, None
        self._log.info(
            "Redis backend outage ended after %.1f s (%d failed operations)",
            duration,
            failures,
        )

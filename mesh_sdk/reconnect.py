"""Reconnect policy of the SDK (protocol.md §14, §16): which closes to recover from, and when.

Pure functions and a small policy object; no I/O. The asyncio client asks :func:`should_reconnect`
after every close it did not request and sleeps :meth:`Backoff.delay` seconds between attempts.
The random source is injectable so tests are deterministic.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final

__all__ = [
    "DO_NOT_RECONNECT_CODES",
    "UNAVAILABLE_STATUS",
    "Backoff",
    "should_reconnect",
    "should_reconnect_after_status",
]

DO_NOT_RECONNECT_CODES: Final = frozenset({1002, 1003, 1007, 1008, 1010})
"""Close codes below 4500 after which the client stays closed (§16: protocol bugs, policy)."""

AUTHENTICATION_STATUSES: Final = frozenset({401, 403})
"""HTTP statuses at upgrade that end reconnection (§14): retrying cannot succeed by itself."""


def should_reconnect(code: int | None) -> bool:
    """Return whether a close the client did not initiate should be followed by a reconnect.

    §16: 1008 and the WebSocket-layer protocol errors 1002, 1003, 1007, 1010 mean "do not
    reconnect", and so does the application range 4500–4999; everything else (1000, 1001, 1006,
    1009, 1011–1014, 4000–4499, a missing code) means "reconnect with backoff".

    Args:
        code: The close code received from the server, or ``None`` if none was received.
    """
    if code is None:
        return True
    if code in DO_NOT_RECONNECT_CODES:
        return False
    return not 4500 <= code <= 4999


UNAVAILABLE_STATUS: Final = 503
"""HTTP status of a server that is up but cannot register connections yet (§5.1): it is asked
again soon (``reconnect_unavailable_delay`` seconds at most) rather than after the full backoff."""


def should_reconnect_after_status(status: int) -> bool:
    """Return whether an HTTP status answering the upgrade allows a retry (§14: not 401/403)."""
    return status not in AUTHENTICATION_STATUSES


class Backoff:
    """Full-jitter exponential backoff: ``random(0, min(max_delay, base_delay × 2^attempt))``.

    Attempt numbers start at 0 for the first reconnect after a drop; the client resets its
    counter once ``mesh/assign-id`` arrives on a new socket (§14).

    Args:
        base_delay: Seconds of the first ceiling (0.5).
        max_delay: Cap of the ceiling in seconds (30.0).
        rng: Returns a float in ``[0, 1)``; defaults to :func:`random.random`.

    Raises:
        ValueError: A delay is negative.
    """

    def __init__(
        self,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        rng: Callable[[], float] | None = None,
    ) -> None:
        if base_delay < 0 or max_delay < 0:
            raise ValueError("backoff delays must be non-negative")
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._rng = rng if rng is not None else random.random

    def ceiling(self, attempt: int) -> float:
        """Return the upper bound in seconds for ``attempt`` (0-based)."""
        # Cap the exponent: 2**attempt overflows floats long after the cap is reached anyway.
        exponent = min(max(attempt, 0), 62)
        return float(min(self.max_delay, self.base_delay * (2**exponent)))

    def delay(self, attempt: int, cap: float | None = None) -> float:
        """Return a random delay in seconds in ``[0, ceiling(attempt)]``.

        Args:
            attempt: The 0-based attempt number.
            cap: A lower ceiling in seconds for this attempt only (e.g. after HTTP 503).
        """
        ceiling = self.ceiling(attempt)
        if cap is not None:
            ceiling = min(ceiling, max(cap, 0.0))
        return self._rng() * ceiling

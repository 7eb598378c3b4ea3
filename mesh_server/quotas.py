"""Per-connection quotas on what a client can make the backend store (protocol.md §15).

Two ledgers, both kept by the instance that holds the connection and dropped when it closes:

* :class:`PresenceStateLedger` — ``max_presence_state_bytes``: the sum over rooms of the
  serialized size of the connection's presence states. A state counts from the moment it is
  stored until the connection replaces or clears it, leaves the room (or is removed from it),
  disconnects, or its ``expireAfter`` passes (by this instance's clock). A state the backend
  drops on its own (presence expiry) still counts until one of those happens: the ledger errs
  towards refusing, never towards letting a connection store more than its quota.
* :class:`RecordWriteBudget` — for ``mesh/publish-record-update``: ``record_write_rate``
  (writes/s, a token bucket of ``record_write_burst``) counts every write request that passed
  the exposure guard, stored or not; ``max_record_bytes_per_connection`` bounds the storage a
  connection can be held responsible for: for every distinct record it wrote, the serialized
  size of the value it left there plus the UTF-8 length of the record id plus
  :data:`RECORD_OVERHEAD_BYTES`. Many small records therefore add up like one large one (the
  per-record overhead makes even empty values count). A record keeps its share of the budget
  for the connection's lifetime, whoever writes or deletes it afterwards.

Writes by server code (``server.records.publish_update``) are trusted and not counted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Final

from mesh_sdk.protocol.errors import RateLimitError, TooLargeError

__all__ = ["RECORD_OVERHEAD_BYTES", "PresenceStateLedger", "RecordWriteBudget"]

RECORD_OVERHEAD_BYTES: Final = 64
"""Bytes counted per distinct record on top of its id and value (the store's per-key cost)."""

Clock = Callable[[], float]


class PresenceStateLedger:
    """Presence state bytes per local connection (``max_presence_state_bytes``).

    Args:
        limit: Most bytes of presence state one connection may hold over all rooms
            (``None``: no quota).
        clock: Seconds, monotonic (for ``expireAfter``).
    """

    def __init__(self, limit: int | None, clock: Clock = time.monotonic) -> None:
        self._limit = limit
        self._clock = clock
        # connection id -> room -> (bytes, expiry time in clock seconds or None)
        self._states: dict[str, dict[str, tuple[int, float | None]]] = {}

    def used(self, connection_id: str, *, excluding: str | None = None) -> int:
        """Bytes counted for ``connection_id`` (not counting room ``excluding``)."""
        now = self._clock()
        return sum(
            size
            for room, (size, expires) in self._states.get(connection_id, {}).items()
            if room != excluding and (expires is None or expires > now)
        )

    def check(self, connection_id: str, room: str, size: int) -> None:
        """Refuse a state of ``size`` bytes in ``room`` that would exceed the quota.

        Raises:
            TooLargeError: With details ``{"limit", "quota": "max_presence_state_bytes",
                "used"}``; nothing may be stored.
        """
        limit = self._limit
        if limit is None:
            return
        used = self.used(connection_id, excluding=room)
        if used + size > limit:
            raise TooLargeError(
                f"Presence state quota of {limit} bytes per connection exceeded",
                details={"limit": limit, "quota": "max_presence_state_bytes", "used": used},
            )

    def stored(self, connection_id: str, room: str, size: int, expire_after_ms: int | None) -> None:
        """Count a state the backend stored (replacing the room's previous one)."""
        if self._limit is None:
            return
        expires = self._clock() + expire_after_ms / 1000 if expire_after_ms else None
        self._states.setdefault(connection_id, {})[room] = (size, expires)

    def forget(self, connection_id: str, room: str) -> None:
        """The connection's state in ``room`` is gone (cleared, left, not present)."""
        rooms = self._states.get(connection_id)
        if rooms is not None:
            rooms.pop(room, None)
            if not rooms:
                del self._states[connection_id]

    def drop(self, connection_id: str) -> None:
        """The connection closed."""
        self._states.pop(connection_id, None)


class _Budget:
    __slots__ = ("records", "tokens", "tokens_at", "used")

    def __init__(self, burst: float, now: float) -> None:
        self.tokens = burst
        self.tokens_at = now
        self.records: dict[str, int] = {}
        self.used = 0


class RecordWriteBudget:
    """Record write rate and bytes per local connection (see the module docstring).

    Args:
        rate: ``record_write_rate`` in writes/s (``None``: no rate quota).
        burst: ``record_write_burst``, the bucket capacity in writes.
        max_bytes: ``max_record_bytes_per_connection`` (``None``: no bytes quota).
        clock: Seconds, monotonic.
    """

    def __init__(
        self, rate: float | None, burst: int, max_bytes: int | None, clock: Clock = time.monotonic
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("record_write_rate must be > 0 (or None)")
        if burst < 1:
            raise ValueError("record_write_burst must be >= 1")
        self._rate = rate
        self._burst = float(burst)
        self._max_bytes = max_bytes
        self._clock = clock
        self._budgets: dict[str, _Budget] = {}

    def _budget(self, connection_id: str) -> _Budget:
        budget = self._budgets.get(connection_id)
        if budget is None:
            budget = self._budgets[connection_id] = _Budget(self._burst, self._clock())
        return budget

    def take(self, connection_id: str) -> None:
        """Spend one write token.

        Raises:
            RateLimitError: With details ``{"retryAfterMs", "quota": "record_write_rate",
                "limit"}``; the write must not run.
        """
        rate = self._rate
        if rate is None:
            return
        budget = self._budget(connection_id)
        now = self._clock()
        budget.tokens = min(self._burst, budget.tokens + (now - budget.tokens_at) * rate)
        budget.tokens_at = now
        if budget.tokens >= 1.0:
            budget.tokens -= 1.0
            return
        retry_after = max(1, math.ceil((1.0 - budget.tokens) * 1000.0 / rate))
        raise RateLimitError(
            f"Record write rate of {rate:g}/s per connection exceeded",
            details={"retryAfterMs": retry_after, "quota": "record_write_rate", "limit": rate},
        )

    def allowance(self, connection_id: str, record_id: str) -> int | None:
        """Most serialized bytes the next value of ``record_id`` may have under the quota.

        ``None``: no bytes quota. Negative: nothing may be written at all.
        """
        if self._max_bytes is None:
            return None
        budget = self._budget(connection_id)
        others = budget.used - budget.records.get(record_id, 0)
        return self._max_bytes - others - _record_cost(record_id, 0)

    def refused(self, record_id: str) -> TooLargeError:
        """The error for a write the bytes quota refuses (nothing was stored)."""
        limit = self._max_bytes
        return TooLargeError(
            f"Record storage quota of {limit} bytes per connection exceeded by {record_id!r}",
            details={"limit": limit, "quota": "max_record_bytes_per_connection"},
        )

    def stored(self, connection_id: str, record_id: str, size: int) -> None:
        """Count a value of ``size`` bytes the connection left in ``record_id``."""
        if self._max_bytes is None:
            return
        budget = self._budget(connection_id)
        cost = _record_cost(record_id, size)
        budget.used += cost - budget.records.get(record_id, 0)
        budget.records[record_id] = cost

    def drop(self, connection_id: str) -> None:
        """The connection closed."""
        self._budgets.pop(connection_id, None)


def _record_cost(record_id: str, size: int) -> int:
    return len(record_id.encode()) + size + RECORD_OVERHEAD_BYTES

"""One event-loop timer for the liveness deadlines of every connection (protocol.md §6).

A ``loop.call_at`` handle per connection costs ~0.6 KB of an idle connection's memory (issue 12);
here deadlines are rounded *up* to ticks of ``resolution`` seconds, the connections due in one
tick share a set, and one handle is armed for the earliest tick. A deadline never fires early,
and at most one resolution late.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from typing import Protocol

__all__ = ["DEFAULT_RESOLUTION", "TimerWheel"]

DEFAULT_RESOLUTION = 0.01
"""Seconds per tick."""

_log = logging.getLogger("mesh_server.timer_wheel")


class Timed(Protocol):
    """What the wheel calls back when its deadline is due."""

    def on_deadline(self, when: float) -> None:
        """The deadline ``when`` (loop time, seconds) has passed."""


class TimerWheel:
    """Deadlines (loop time, seconds) of many objects on one ``loop.call_at`` handle.

    Args:
        loop: The event loop whose clock and timer are used.
        resolution: Seconds per tick (> 0).
    """

    __slots__ = ("_buckets", "_handle", "_handle_tick", "_loop", "_resolution", "_ticks")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, resolution: float = DEFAULT_RESOLUTION
    ) -> None:
        if not resolution > 0:
            raise ValueError("resolution must be > 0 seconds")
        self._loop = loop
        self._resolution = resolution
        self._buckets: dict[int, set[Timed]] = {}
        self._ticks: list[int] = []  # heap of the buckets' ticks
        self._handle: asyncio.TimerHandle | None = None
        self._handle_tick = 0

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets.values())

    def schedule(self, item: Timed, when: float) -> int:
        """Call ``item.on_deadline`` once ``when`` has passed; return the tick to :meth:`cancel`."""
        tick = math.ceil(when / self._resolution)
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = set()
            heapq.heappush(self._ticks, tick)
        bucket.add(item)
        if self._handle is None or tick < self._handle_tick:
            self._arm(tick)
        return tick

    def cancel(self, item: Timed, tick: int) -> None:
        """Forget ``item``'s deadline in ``tick`` (its bucket is dropped once empty)."""
        bucket = self._buckets.get(tick)
        if bucket is not None:
            bucket.discard(item)
            if not bucket:
                del self._buckets[tick]  # its heap entry is skipped when it comes up

    def _arm(self, tick: int) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle_tick = tick
        self._handle = self._loop.call_at(tick * self._resolution, self._fire)

    def _fire(self) -> None:
        self._handle = None
        # call_at may run up to one clock resolution early: the armed tick is due regardless.
        due = max(math.floor(self._loop.time() / self._resolution), self._handle_tick)
        ticks = self._ticks
        while ticks and ticks[0] <= due:
            tick = heapq.heappop(ticks)
            bucket = self._buckets.pop(tick, None)
            if not bucket:
                continue
            when = tick * self._resolution
            for item in bucket:
                try:
                    item.on_deadline(when)
                except Exception:  # one connection's failure never stops the others' timers
                    _log.exception("deadline callback failed")
        while ticks and ticks[0] not in self._buckets:
            heapq.heappop(ticks)  # cancelled buckets
        # Callbacks may have armed a later tick than a bucket still waiting.
        if ticks and (self._handle is None or ticks[0] < self._handle_tick):
            self._arm(ticks[0])

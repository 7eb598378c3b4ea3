"""The shared in-process store and pub/sub behind one or more memory backends."""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from mesh_server.backends.interfaces.broker import MessageHandler

__all__ = ["PRESENCE", "STATE", "Endpoint", "MemoryHub", "Store"]

log = logging.getLogger(__name__)

_MIN_COMPACT_AT: Final = 1024
PRESENCE: Final = 0
"""Kind of a deadline entry that ends a presence."""
STATE: Final = 1
"""Kind of a deadline entry that expires a presence state."""


def _monotonic_ms() -> float:
    return time.monotonic() * 1000.0


class Endpoint:
    """One backend's pub/sub connection: its handler and its subscribed channels."""

    __slots__ = ("channels", "closed", "handler")

    def __init__(self, handler: MessageHandler) -> None:
        self.handler = handler
        self.channels: set[str] = set()
        self.closed = False

    def deliver(self, channel: str, data: bytes) -> None:
        """Hand one message to the handler unless the subscription is gone (at most once)."""
        # Checked at delivery time: a message in flight to a dropped subscription is lost, as
        # at-most-once delivery allows.
        if self.closed or channel not in self.channels:
            return
        try:
            self.handler(channel, data)
        except Exception:
            log.exception("message handler failed on channel %r", channel)


@dataclass(eq=False)
class Store:
    """Everything one namespace holds; values are encoded JSON bytes (or immutable str)."""

    instances: dict[str, float] = field(default_factory=dict)
    instance_conns: dict[str, set[str]] = field(default_factory=dict)
    routes: dict[str, str] = field(default_factory=dict)
    conn_meta: dict[str, bytes] = field(default_factory=dict)
    room_meta: dict[str, bytes] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)
    conn_rooms: dict[str, set[str]] = field(default_factory=dict)
    presence: dict[str, dict[str, float]] = field(default_factory=dict)
    states: dict[tuple[str, str], tuple[bytes, float | None]] = field(default_factory=dict)
    deadlines: list[tuple[float, int, int, str, str]] = field(default_factory=list)
    history: dict[str, deque[str]] = field(default_factory=dict)
    records: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    seq: int = 0
    compact_at: int = _MIN_COMPACT_AT

    def schedule(self, deadline: float, kind: int, room: str, conn: str) -> None:
        """Index a presence or state deadline (stale heap entries are skipped when popped)."""
        self.seq += 1
        heapq.heappush(self.deadlines, (deadline, self.seq, kind, room, conn))
        if len(self.deadlines) > self.compact_at:
            # Refreshes leave stale entries behind; rebuilding when the heap has grown 4-fold
            # since the last rebuild keeps memory bounded at amortized O(log n) per entry.
            self.deadlines = [entry for entry in self.deadlines if self.is_current(entry)]
            heapq.heapify(self.deadlines)
            self.compact_at = max(_MIN_COMPACT_AT, 4 * len(self.deadlines))

    def is_current(self, entry: tuple[float, int, int, str, str]) -> bool:
        """Whether a heap entry is still the live deadline of its presence or state."""
        deadline, _, kind, room, conn = entry
        if kind == PRESENCE:
            return self.presence.get(room, {}).get(conn) == deadline
        state = self.states.get((room, conn))
        return state is not None and state[1] == deadline


class MemoryHub:
    """The shared in-process store and pub/sub behind one or more memory backends.

    Each namespace has its own store (like keys prefixed per namespace on one Redis); pub/sub
    channels are global, as Redis pub/sub ignores prefixes and databases.

    Args:
        clock: The store clock in milliseconds (monotonic by default); all deadlines (presence,
            states, heartbeats) use it, never an instance's clock. Tests inject a fake one.
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock if clock is not None else _monotonic_ms
        self._stores: dict[str, Store] = {}
        self._subscribers: dict[str, dict[Endpoint, None]] = {}

    def now(self) -> float:
        """Return the store clock in milliseconds."""
        return self._clock()

    def _store(self, namespace: str) -> Store:
        store = self._stores.get(namespace)
        if store is None:
            store = self._stores[namespace] = Store()
        return store

    def _subscribe(self, channel: str, endpoint: Endpoint) -> None:
        endpoint.channels.add(channel)
        self._subscribers.setdefault(channel, {})[endpoint] = None

    def _unsubscribe(self, channel: str, endpoint: Endpoint) -> None:
        endpoint.channels.discard(channel)
        subscribers = self._subscribers.get(channel)
        if subscribers is not None:
            subscribers.pop(endpoint, None)
            if not subscribers:
                del self._subscribers[channel]

    def publish(self, channel: str, data: bytes) -> int:
        """Queue ``data`` for every current subscriber of ``channel``; return their number.

        Delivery happens later on the running event loop, never inside the publisher's call
        stack (as with Redis, handlers cannot re-enter the publisher). ``call_soon`` runs
        callbacks in FIFO order, so every subscriber sees messages in publication order.
        """
        subscribers = self._subscribers.get(channel)
        if not subscribers:
            return 0
        loop = asyncio.get_running_loop()
        for endpoint in subscribers:
            loop.call_soon(endpoint.deliver, channel, data)
        return len(subscribers)

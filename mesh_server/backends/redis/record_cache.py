"""The last known state of recently written records, per Redis backend instance.

A bounded LRU cache (by entry count and by stored bytes) of ``(incarnation, version, encoded
value)``: with it an uncontended record write is one command (see
:mod:`mesh_server.backends.redis.records`, which keeps it current).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from mesh_sdk.protocol.codec import loads

__all__ = ["RecordState", "StateCache"]


@dataclass(frozen=True, slots=True)
class RecordState:
    """What a record held at one moment: ``version`` 0 means absent."""

    incarnation: bytes
    version: int
    encoded: bytes | None

    @classmethod
    def from_raw(cls, raw_value: Any, raw_version: Any, raw_incarnation: Any) -> RecordState:
        """Build from an ``HMGET v n i`` reply (or the conflict reply of ``record_commit``)."""
        if raw_version is None:
            return cls(b"", 0, None)
        return cls(bytes(raw_incarnation or b""), int(raw_version), bytes(raw_value or b"null"))

    def decode(self) -> Any:
        """Return the stored value (``None`` when absent), a new object on every call."""
        return loads(self.encoded) if self.encoded is not None else None

    def same(self, other: RecordState) -> bool:
        """Whether both describe the same stored value (same incarnation and version)."""
        return self.version == other.version and self.incarnation == other.incarnation

    @property
    def size(self) -> int:
        """Bytes this state costs in the cache."""
        return len(self.encoded or b"") + len(self.incarnation)


class StateCache:
    """A bounded LRU map record id → :class:`RecordState` (by entry count and stored bytes)."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self._entries: OrderedDict[str, RecordState] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0

    def get(self, record_id: str) -> RecordState | None:
        """Return the cached state (and mark it recently used), or ``None``."""
        state = self._entries.get(record_id)
        if state is not None:
            self._entries.move_to_end(record_id)
        return state

    def put(self, record_id: str, state: RecordState) -> None:
        """Cache ``state``, evicting the least recently used past the limits."""
        self.drop(record_id)
        if state.size > self._max_bytes or self._max_entries <= 0:
            return
        self._entries[record_id] = state
        self._bytes += state.size
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size

    def drop(self, record_id: str) -> None:
        """Forget the cached state of ``record_id``, if any."""
        state = self._entries.pop(record_id, None)
        if state is not None:
            self._bytes -= state.size

    def clear(self) -> None:
        """Forget every cached state."""
        self._entries.clear()
        self._bytes = 0

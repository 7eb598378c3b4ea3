"""Memory implementation of :class:`~mesh_server.backends.interfaces.presence.PresenceStore`."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

from mesh_sdk.protocol.codec import dumps, loads
from mesh_server.backends.interfaces.presence import PresenceSnapshot, PresenceStore
from mesh_server.backends.memory.hub import PRESENCE, STATE
from mesh_server.backends.memory.state import MemoryState

__all__ = ["MemoryPresence"]


class MemoryPresence(MemoryState, PresenceStore):
    """Presence and state deadlines in one heap per namespace, swept in deadline order."""

    async def refresh_presence(
        self, connection_id: str, rooms_ttl_ms: Sequence[tuple[str, int]]
    ) -> None:
        """Extend presence in each member room; re-join (publishing ``join``) where it expired."""
        for room, ttl_ms in rooms_ttl_ms:
            if connection_id in self._s.members.get(room, ()):
                self._set_presence(room, connection_id, ttl_ms)

    async def sweep_presence(self) -> int:
        """Expire due presence (``leave``) and due states (``state`` null); return the count."""
        now = self._now()
        heap = self._s.deadlines
        expired = 0
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if not self._s.is_current(entry):
                continue
            _, _, kind, room, connection_id = entry
            if kind == PRESENCE:
                self._end_presence(room, connection_id)
            else:
                del self._s.states[(room, connection_id)]
                self._presence_event("state", room, connection_id, None)
            expired += 1
        return expired

    async def presence_snapshot(self, room: str) -> PresenceSnapshot:
        """Return present ids and the states of those that have one."""
        present = list(self._s.presence.get(room, ()))
        states = {}
        for connection_id in present:
            state = self._s.states.get((room, connection_id))
            if state is not None:
                states[connection_id] = loads(state[0])
        return PresenceSnapshot(present=present, states=states)

    async def set_presence_state(
        self,
        room: str,
        connection_id: str,
        state: Any,
        *,
        expire_after_ms: int | None = None,
        silent: bool = False,
    ) -> bool:
        """Replace the state and its expiry; publish ``state`` unless ``silent`` (§10.5)."""
        if connection_id not in self._s.presence.get(room, ()):
            return False
        encoded = dumps(state)
        deadline = None
        if expire_after_ms:
            deadline = self._now() + expire_after_ms
            self._s.schedule(deadline, STATE, room, connection_id)
        self._s.states[(room, connection_id)] = (encoded, deadline)
        if not silent:
            self._presence_event("state", room, connection_id, loads(encoded))
        return True

    async def clear_presence_state(self, room: str, connection_id: str) -> bool:
        """Remove the state; publish ``state`` null iff there was one."""
        if connection_id not in self._s.presence.get(room, ()):
            return False
        if self._s.states.pop((room, connection_id), None) is not None:
            self._presence_event("state", room, connection_id, None)
        return True

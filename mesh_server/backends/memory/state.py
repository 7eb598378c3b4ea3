"""What every part of a memory backend shares: its store, and the steps several interfaces take.

A presence ends (with its one ``leave``) on a leave, a room clear, an unregistration, a
dead-instance cleanup and an expiry; those transitions live here once, so each interface's
module (:mod:`.broker`, :mod:`.registry`, :mod:`.rooms`, :mod:`.presence`, :mod:`.records`,
:mod:`.metadata`) builds on the same steps.
"""

from __future__ import annotations

import time
from typing import Any

from mesh_sdk.protocol.codec import dumps
from mesh_server.backends.memory.hub import PRESENCE, Endpoint, MemoryHub, Store
from mesh_server.backends.messages import presence_channel

__all__ = ["MemoryState"]


def _wall_ms() -> int:
    # protocol.md §8: the presence-update timestamp is the producing instance's wall clock.
    return int(time.time() * 1000)


class MemoryState:
    """The state of one memory backend; the base of each interface's implementation."""

    namespace: str
    hub: MemoryHub
    _s: Store
    _instance_id: str | None
    _endpoint: Endpoint | None

    @property
    def instance_id(self) -> str:
        """The id given to ``start``.

        Raises:
            RuntimeError: The backend was not started.
        """
        if self._instance_id is None:
            raise RuntimeError("MemoryBackend used before start()")
        return self._instance_id

    def _now(self) -> float:
        return self.hub.now()

    def _emit(self, channel: str, payload: Any) -> None:
        self.hub.publish(channel, dumps(payload))

    # ------------------------------------------------------------------ shared transitions

    def _presence_event(self, kind: str, room: str, connection_id: str, state: Any = None) -> None:
        event: dict[str, Any] = {
            "type": kind,
            "connectionId": connection_id,
            "roomName": room,
            "timestamp": _wall_ms(),
        }
        if kind == "state":
            event["state"] = state
        self._emit(presence_channel(self.namespace, room), event)

    def _set_presence(self, room: str, connection_id: str, ttl_ms: int) -> bool:
        """Set the presence deadline; publish ``join`` and return ``True`` if newly present."""
        present = self._s.presence.setdefault(room, {})
        joined = connection_id not in present
        deadline = self._now() + ttl_ms
        present[connection_id] = deadline
        self._s.schedule(deadline, PRESENCE, room, connection_id)
        if joined:
            self._presence_event("join", room, connection_id)
        return joined

    def _end_presence(self, room: str, connection_id: str) -> bool:
        """End presence and state silently but for one ``leave``; ``False`` if not present."""
        present = self._s.presence.get(room)
        if present is None or connection_id not in present:
            return False
        del present[connection_id]
        if not present:
            del self._s.presence[room]
        self._s.states.pop((room, connection_id), None)
        self._presence_event("leave", room, connection_id)
        return True

    def _remove_member(self, room: str, connection_id: str) -> bool:
        members = self._s.members.get(room)
        if members is None or connection_id not in members:
            return False
        members.discard(connection_id)
        if not members:
            del self._s.members[room]
        rooms = self._s.conn_rooms.get(connection_id)
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._s.conn_rooms[connection_id]
        return True

"""Memory implementation of :class:`~mesh_server.backends.interfaces.registry.InstanceRegistry`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mesh_sdk.protocol.codec import dumps
from mesh_server.backends.interfaces.registry import DeadInstanceReport, InstanceRegistry
from mesh_server.backends.memory.state import MemoryState

__all__ = ["MemoryRegistry"]


class MemoryRegistry(MemoryState, InstanceRegistry):
    """Heartbeats on the hub clock; a sweep claims and cleans a dead instance in one step."""

    # ------------------------------------------------------------------ instances (§13.3–§13.5)

    async def reregister_connections(self, connections: Mapping[str, Any]) -> None:
        """Do nothing: the in-process store cannot lose state while this instance lives."""

    async def heartbeat(self, ttl_ms: int) -> bool:
        """Refresh the heartbeat; ``False`` if it had lapsed or was removed (re-created anyway)."""
        instance_id = self.instance_id
        now = self._now()
        deadline = self._s.instances.get(instance_id)
        alive = deadline is not None and deadline > now
        self._s.instances[instance_id] = now + ttl_ms
        self._s.instance_conns.setdefault(instance_id, set())
        return alive

    async def sweep_dead_instances(self) -> list[DeadInstanceReport]:
        """Claim and clean every instance whose heartbeat lapsed (protocol.md §13.4)."""
        now = self._now()
        dead = sorted(i for i, deadline in self._s.instances.items() if deadline <= now)
        return [self._remove_instance(instance_id) for instance_id in dead]

    def _remove_instance(self, instance_id: str) -> DeadInstanceReport:
        self._s.instances.pop(instance_id, None)
        connections = sorted(self._s.instance_conns.pop(instance_id, set()))
        for connection_id in connections:
            if self._s.routes.get(connection_id) == instance_id:
                self._drop_connection(connection_id, ())
        return DeadInstanceReport(instance_id, connections)

    # ------------------------------------------------------------------ connections (§5)

    async def register_connection(self, connection_id: str, metadata: Any = None) -> None:
        """Add the routing entry (connection → this instance) and initial metadata."""
        instance_id = self.instance_id
        previous = self._s.routes.get(connection_id)
        if previous is not None and previous != instance_id:
            self._s.instance_conns.get(previous, set()).discard(connection_id)
        self._s.routes[connection_id] = instance_id
        self._s.instance_conns.setdefault(instance_id, set()).add(connection_id)
        if metadata is None:
            self._s.conn_meta.pop(connection_id, None)
        else:
            self._s.conn_meta[connection_id] = dumps(metadata)

    async def unregister_connection(self, connection_id: str, tracked_rooms: Sequence[str]) -> None:
        """Remove presence (one ``leave`` per present room), memberships, metadata and route."""
        self._drop_connection(connection_id, tracked_rooms)

    def _drop_connection(self, connection_id: str, tracked_rooms: Iterable[str]) -> None:
        # protocol.md §5.3 steps 3–5. Presence implies membership here, so scanning the
        # connection's rooms also ends presence in rooms the caller did not list.
        rooms = dict.fromkeys(tracked_rooms)
        rooms.update(dict.fromkeys(sorted(self._s.conn_rooms.get(connection_id, ()))))
        for room in rooms:
            self._end_presence(room, connection_id)
            self._remove_member(room, connection_id)
        self._s.conn_rooms.pop(connection_id, None)
        self._s.conn_meta.pop(connection_id, None)
        instance_id = self._s.routes.pop(connection_id, None)
        if instance_id is not None:
            self._s.instance_conns.get(instance_id, set()).discard(connection_id)

    async def connection_instance(self, connection_id: str) -> str | None:
        """Return the instance holding ``connection_id``, or ``None``."""
        return self._s.routes.get(connection_id)

"""Redis implementation of :class:`~mesh_server.backends.interfaces.registry.InstanceRegistry`.

Heartbeat keys with a TTL; a sweeping survivor claims a dead instance atomically
(``claim_instance``: ``SET NX``), cleans each of its connections with ``unregister_connection``
and releases the instance. Routing is the ``{ns}conns`` hash.

Concurrent :meth:`RedisRegistry.register_connection` calls are coalesced
(:class:`~mesh_server.backends.redis.batching.GroupCommit`): while one ``register_connections``
script call is in flight, later registrations queue and go out together as the next one, at most
``register_batch`` connections per call. Unregistration is not coalesced: each one is its own
``unregister_connection`` script (rooms, presence and ``leave`` events of one connection).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mesh_sdk.protocol.codec import dumps
from mesh_server.backends.interfaces.registry import DeadInstanceReport, InstanceRegistry
from mesh_server.backends.redis.batching import GroupCommit
from mesh_server.backends.redis.state import RedisState, text

__all__ = ["RedisRegistry"]

Registration = tuple[str, bytes | None]
"""A connection id and its encoded initial metadata (``None``: keep what is stored, or none)."""


def _registration(connection_id: str, metadata: Any) -> Registration:
    # Encoded by the caller: metadata that cannot be encoded fails its own call, not a batch.
    return connection_id, None if metadata is None else dumps(metadata)


class RedisRegistry(RedisState, InstanceRegistry):
    """Instances, heartbeats, dead-instance sweeps and connection routing on Redis."""

    _registrations: GroupCommit[Registration]

    # ------------------------------------------------------------------ instances (§13.3–§13.5)

    async def _register_instance(self, ttl_ms: int) -> bool:
        existed = await self._scripts.run(
            "heartbeat", self._keys.for_heartbeat(self._instance_id), self._instance_id, ttl_ms
        )
        return bool(existed)

    async def heartbeat(self, ttl_ms: int) -> bool:
        """Refresh the heartbeat; ``False`` if it had lapsed or the registration was lost."""
        async with self._guard("heartbeat"):
            existed = await self._register_instance(ttl_ms)
        # The heartbeat runs every probe interval during an outage: it notices the end.
        self.health.succeeded()
        lost, self._registration_lost = self._registration_lost, False
        return existed and not lost

    async def sweep_dead_instances(self) -> list[DeadInstanceReport]:
        """Claim each registered instance whose heartbeat lapsed and clean it up (§13.4)."""
        reports: list[DeadInstanceReport] = []
        async with self._guard("sweep dead instances"):
            instances = await self._client.smembers(self._keys.instances)
            for raw in sorted(instances):
                instance = text(raw)
                if instance == self._instance_id:
                    continue
                claimed = await self._scripts.run(
                    "claim_instance",
                    self._keys.for_claim_instance(instance),
                    instance,
                    self._claim_ttl_ms,
                )
                if claimed is None:
                    continue
                connections = sorted(text(c) for c in claimed)
                for connection_id in connections:
                    await self._scripts.run(
                        "unregister_connection",
                        self._keys.for_unregister_connection(connection_id, instance),
                        connection_id,
                    )
                await self._scripts.run(
                    "release_instance", self._keys.for_release_instance(instance), instance, "0"
                )
                reports.append(DeadInstanceReport(instance, connections))
        return reports

    async def reregister_connections(self, connection_ids_with_metadata: Mapping[str, Any]) -> None:
        """Re-create routing entries (and metadata) of live connections after Redis lost them.

        Args:
            connection_ids_with_metadata: Connection id → metadata (``None``: keep/none).
        """
        registrations = [_registration(c, m) for c, m in connection_ids_with_metadata.items()]
        if registrations:
            await self._register(registrations, "re-register connections")

    async def _register(self, registrations: Iterable[Registration], operation: str) -> None:
        """Run one ``register_connections`` script call for ``registrations``."""
        args: list[str | bytes | int] = [self._instance_id]
        for connection_id, encoded in registrations:
            args += [connection_id, "0", ""] if encoded is None else [connection_id, "1", encoded]
        async with self._guard(operation):
            await self._scripts.run(
                "register_connections",
                self._keys.for_register_connections(self._instance_id),
                *args,
            )

    async def _register_batch(self, registrations: Sequence[Registration]) -> None:
        """Flush one batch of coalesced :meth:`register_connection` calls."""
        await self._register(registrations, "register connections")

    # ------------------------------------------------------------------ connections (§5)

    async def register_connection(self, connection_id: str, metadata: Any = None) -> None:
        """Add the routing entry (and initial metadata) for a connection of this instance.

        Shares one script call with the registrations queued while the previous one was in
        flight; returns once that call stored this entry.

        Raises:
            UnavailableError: Redis failed for the batch carrying this registration, or the
                operation deadline passed while it waited for its batch.
        """
        registration = _registration(connection_id, metadata)
        # Waiting behind the batch in flight is contention: a hanging Redis tells Health
        # through the batch's own deadline.
        async with self._guard("register connection", deadline_is_failure=False):
            await self._registrations.submit(registration)

    async def unregister_connection(self, connection_id: str, tracked_rooms: Sequence[str]) -> None:
        """Remove presence (one ``leave`` each), memberships, metadata and routing entry."""
        async with self._guard("unregister connection"):
            await self._scripts.run(
                "unregister_connection",
                self._keys.for_unregister_connection(connection_id, self._instance_id),
                connection_id,
                *tracked_rooms,
            )

    async def connection_instance(self, connection_id: str) -> str | None:
        """Return the instance holding ``connection_id``."""
        async with self._guard("connection instance"):
            raw = await self._client.hget(self._keys.conns, connection_id)
        return text(raw) if raw is not None else None

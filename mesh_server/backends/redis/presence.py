"""Redis implementation of :class:`~mesh_server.backends.interfaces.presence.PresenceStore`.

Presence and state deadlines are one sorted set of backend-clock deadlines (``{ns}deadlines``),
swept by every instance with one script that removes due entries and publishes their events, so
each expiry yields exactly one event (protocol.md §10.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mesh_sdk.protocol.codec import dumps, loads
from mesh_server.backends.interfaces.presence import PresenceSnapshot, PresenceStore
from mesh_server.backends.redis.state import RedisState, text

__all__ = ["RedisPresence"]


class RedisPresence(RedisState, PresenceStore):
    """Presence sets, state hashes and the deadline index on Redis."""

    async def refresh_presence(
        self, connection_id: str, rooms_ttl_ms: Sequence[tuple[str, int]]
    ) -> None:
        """Extend presence deadlines in one script (re-joining expired members)."""
        if not rooms_ttl_ms:
            return
        args: list[str | bytes | int] = [connection_id]
        for room, ttl in rooms_ttl_ms:
            args += [room, ttl]
        async with self._guard("refresh presence"):
            rooms = [room for room, _ in rooms_ttl_ms]
            await self._scripts.run(
                "refresh_presence", self._keys.for_refresh_presence(rooms), *args
            )

    async def sweep_presence(self) -> int:
        """Expire due presence and states (one script per batch of due entries)."""
        total = 0
        async with self._guard("sweep presence"):
            while True:
                expired = int(
                    await self._scripts.run(
                        "sweep_presence", [self._keys.deadlines], self._sweep_batch
                    )
                )
                total += expired
                if expired < self._sweep_batch:
                    return total

    async def presence_snapshot(self, room: str) -> PresenceSnapshot:
        """Read present ids and their states in one ``MULTI``/``EXEC``."""
        async with (
            self._guard("presence snapshot"),
            self._client.pipeline(transaction=True) as pipe,
        ):
            pipe.smembers(self._keys.room_presence(room))
            pipe.hgetall(self._keys.room_states(room))
            present_raw, states_raw = await pipe.execute()
        present = [text(c) for c in present_raw]
        present_set = set(present)
        states = {text(c): loads(v) for c, v in states_raw.items() if text(c) in present_set}
        return PresenceSnapshot(present, states)

    async def set_presence_state(
        self,
        room: str,
        connection_id: str,
        state: Any,
        *,
        expire_after_ms: int | None = None,
        silent: bool = False,
    ) -> bool:
        """Replace the state of a present connection (``state`` event unless silent)."""
        expire = expire_after_ms if expire_after_ms else ""
        async with self._guard("set presence state"):
            stored = await self._scripts.run(
                "set_presence_state",
                self._keys.for_presence_state(room),
                room,
                connection_id,
                dumps(state),
                expire,
                "1" if silent else "0",
            )
        return bool(stored)

    async def clear_presence_state(self, room: str, connection_id: str) -> bool:
        """Remove the state (``state`` null iff one existed)."""
        async with self._guard("clear presence state"):
            present = await self._scripts.run(
                "clear_presence_state", self._keys.for_presence_state(room), room, connection_id
            )
        return bool(present)

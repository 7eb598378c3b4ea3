"""Redis implementation of :class:`~mesh_server.backends.interfaces.broker.Broker`.

One pub/sub connection per instance (:mod:`.pubsub`): one reader task, delivery in arrival
order, subscriptions confirmed before :meth:`RedisBroker.subscribe` returns. A direct send is
one script call (route lookup + publish); a broadcast one ``PUBLISH`` that every instance
resolves locally (protocol.md §13.2).
"""

from __future__ import annotations

from collections.abc import Iterable

from mesh_server.backends.interfaces.broker import Broker
from mesh_server.backends.messages import BROADCAST, encode_envelope
from mesh_server.backends.redis.pubsub import Subscriber
from mesh_server.backends.redis.state import RedisState

__all__ = ["RedisBroker"]


class RedisBroker(RedisState, Broker):
    """Pub/sub, channel history (a capped list per channel), direct sends and broadcasts."""

    # ------------------------------------------------------------------ pub/sub

    def _require_subscriber(self) -> Subscriber:
        if self._subscriber is None:
            raise RuntimeError("RedisBackend.start() was not called")
        return self._subscriber

    async def subscribe(self, channel: str) -> None:
        """Subscribe and return once Redis confirmed it."""
        await self._require_subscriber().subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        """Unsubscribe (``UNSUBSCRIBE`` is sent and confirmed)."""
        await self._require_subscriber().unsubscribe(channel)

    async def publish(self, channel: str, data: bytes) -> None:
        """``PUBLISH`` raw bytes."""
        async with self._guard("publish"):
            await self._client.publish(channel, data)

    # ------------------------------------------------------------------ application channels (§9)

    async def publish_channel(self, channel: str, message: str, history: int = 0) -> None:
        """Publish verbatim; with history, append + trim to exactly N + publish in one script."""
        async with self._guard("publish channel"):
            if history > 0:
                await self._scripts.run(
                    "publish_channel", [self._keys.history(channel)], channel, message, history
                )
            else:
                await self._client.publish(channel, message)

    async def channel_history(self, channel: str, limit: int) -> list[str]:
        """Return up to ``limit`` most recent messages, newest first."""
        if limit <= 0:
            return []
        async with self._guard("channel history"):
            raw = await self._client.lrange(self._keys.history(channel), 0, limit - 1)
        return [m.decode("utf-8", "replace") if isinstance(m, bytes) else m for m in raw]

    # ------------------------------------------------------------------ connections (§13.2)

    async def send_to_connection(self, connection_id: str, frame: bytes) -> bool:
        """Route ``frame`` to the connection's instance inbox: one script call."""
        envelope = encode_envelope({"t": "send", "c": connection_id}, frame)
        async with self._guard("send to connection"):
            sent = await self._scripts.run(
                "send_to_connection", [self._keys.conns], connection_id, envelope
            )
        return bool(sent)

    async def broadcast(
        self, frame: bytes, *, room: str | None = None, exclude: Iterable[str] = ()
    ) -> None:
        """One ``PUBLISH`` on the broadcast channel, resolved locally by every instance."""
        envelope = encode_envelope({"t": "bc", "r": room, "x": list(exclude)}, frame)
        await self.publish(self.namespace + BROADCAST, envelope)

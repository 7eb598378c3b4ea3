"""Memory implementation of :class:`~mesh_server.backends.interfaces.broker.Broker`."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from mesh_server.backends.interfaces.broker import Broker
from mesh_server.backends.memory.hub import Endpoint
from mesh_server.backends.memory.state import MemoryState
from mesh_server.backends.messages import BROADCAST, encode_envelope, inbox_channel

__all__ = ["MemoryBroker"]


class MemoryBroker(MemoryState, Broker):
    """Pub/sub through the hub: delivery from a later event-loop callback, in FIFO order."""

    # ------------------------------------------------------------------ pub/sub

    def _require_endpoint(self) -> Endpoint:
        if self._endpoint is None:
            raise RuntimeError("MemoryBackend used before start()")
        return self._endpoint

    async def subscribe(self, channel: str) -> None:
        """Subscribe this instance to ``channel`` (idempotent)."""
        self.hub._subscribe(channel, self._require_endpoint())

    async def unsubscribe(self, channel: str) -> None:
        """Drop this instance's subscription to ``channel`` (idempotent)."""
        self.hub._unsubscribe(channel, self._require_endpoint())

    async def publish(self, channel: str, data: bytes) -> None:
        """Publish raw ``data`` on ``channel``."""
        self.hub.publish(channel, bytes(data))

    # ------------------------------------------------------------------ application channels (§9)

    async def publish_channel(self, channel: str, message: str, history: int = 0) -> None:
        """Publish ``message`` verbatim; keep exactly the ``history`` most recent (§9.5)."""
        if history > 0:
            stored = self._s.history.setdefault(channel, deque())
            stored.appendleft(message)
            while len(stored) > history:
                stored.pop()
        self.hub.publish(channel, message.encode("utf-8"))

    async def channel_history(self, channel: str, limit: int) -> list[str]:
        """Return up to ``limit`` most recent messages, newest first."""
        stored = self._s.history.get(channel)
        if stored is None or limit <= 0:
            return []
        return [message for _, message in zip(range(limit), stored, strict=False)]

    # ------------------------------------------------------------------ connections (§13.2)

    async def send_to_connection(self, connection_id: str, frame: bytes) -> bool:
        """Publish ``frame`` to the inbox of the instance holding the connection."""
        instance_id = self._s.routes.get(connection_id)
        if instance_id is None:
            return False
        data = encode_envelope({"t": "send", "c": connection_id}, bytes(frame))
        self.hub.publish(inbox_channel(self.namespace, instance_id), data)
        return True

    async def broadcast(
        self, frame: bytes, *, room: str | None = None, exclude: Iterable[str] = ()
    ) -> None:
        """Publish one broadcast envelope that every instance resolves locally (§13.2)."""
        header = {"t": "bc", "r": room, "x": list(exclude)}
        self.hub.publish(self.namespace + BROADCAST, encode_envelope(header, bytes(frame)))

"""What every part of the Redis backend shares: client, scripts, keys and the error boundary.

Each interface has its own module (:mod:`.broker`, :mod:`.registry`, :mod:`.rooms`,
:mod:`.presence`, :mod:`.records`, :mod:`.metadata`); :class:`RedisState` is the base of each,
and :class:`~mesh_server.backends.redis.backend.RedisBackend` composes them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from mesh_server.backends.redis.errors import unavailable, unavailable_on_failure
from mesh_server.backends.redis.health import Health
from mesh_server.backends.redis.keys import Keys
from mesh_server.backends.redis.scripts import Scripts

if TYPE_CHECKING:
    from mesh_server.backends.redis.pubsub import Subscriber

__all__ = ["RedisState", "text"]


def text(value: bytes | str) -> str:
    """Decode a Redis reply (bytes) to ``str``."""
    return value.decode() if isinstance(value, bytes) else value


class RedisState:
    """The state of one Redis backend; the base of each interface's implementation."""

    namespace: str
    health: Health
    _client: aioredis.Redis
    _keys: Keys
    _scripts: Scripts
    _subscriber: Subscriber | None
    _instance_id: str
    _registration_lost: bool
    _timeout_s: float
    _instance_ttl_ms: int
    _claim_ttl_ms: int
    _sweep_batch: int

    @property
    def instance_id(self) -> str:
        """The id given to ``start`` (empty before)."""
        return self._instance_id

    def _guard(self, operation: str, *, deadline_is_failure: bool = True) -> Any:
        return unavailable_on_failure(
            self._timeout_s, operation, self.health, deadline_is_failure=deadline_is_failure
        )

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self._timeout_s

    @staticmethod
    def _check_deadline(deadline: float, operation: str) -> None:
        # Retry loops check the deadline themselves: redis-py may swallow the cancellation
        # that asyncio.timeout delivers while a command is in flight.
        if asyncio.get_running_loop().time() > deadline:
            raise unavailable(f"Redis backend: {operation} timed out (conflicts)")

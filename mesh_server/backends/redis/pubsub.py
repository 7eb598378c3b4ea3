"""The instance's single pub/sub connection: one reader task, confirmed (un)subscriptions.

All channels of an instance share one redis-py :class:`~redis.asyncio.client.PubSub` connection.
One reader task reads it and hands ``(channel, data)`` to the :data:`MessageHandler` in arrival
order. ``SUBSCRIBE``/``UNSUBSCRIBE`` are written from the caller's task and awaited until the
reader sees Redis's confirmation, so a message published after :meth:`Subscriber.subscribe`
returns is delivered.

When the connection breaks (Redis restart, network), the reader reconnects with exponential
backoff (capped at ``backoff_max_s``, so a long outage is noticed to have ended within that cap)
on a fresh connection, re-subscribes every channel it had and, once every re-subscription is
confirmed, calls ``on_reconnected`` in a separate task (so the callback may subscribe). Failed
attempts go to the shared :class:`~mesh_server.backends.redis.health.Health`, which logs the
outage once when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.client import PubSub

from mesh_server.backends.base import MessageHandler
from mesh_server.backends.redis.errors import unavailable, unavailable_on_failure
from mesh_server.backends.redis.health import Health

__all__ = ["Subscriber"]

logger = logging.getLogger(__name__)

_Confirmations = dict[str, deque[asyncio.Future[None]]]


class Subscriber:
    """Owns the pub/sub connection and its reader task for one backend."""

    def __init__(
        self,
        client: aioredis.Redis,
        handler: MessageHandler,
        *,
        timeout_s: float,
        backoff_min_s: float,
        backoff_max_s: float,
        on_reconnected: Callable[[], Awaitable[None]],
        health: Health | None = None,
    ) -> None:
        self._client = client
        self._handler = handler
        self._timeout_s = timeout_s
        self._backoff_min_s = backoff_min_s
        self._backoff_max_s = backoff_max_s
        self._on_reconnected = on_reconnected
        self._health = health if health is not None else Health()
        self._channels: set[str] = set()
        self._pubsub: PubSub | None = None
        self._ready = asyncio.Event()
        self._subscribed: _Confirmations = {}
        self._unsubscribed: _Confirmations = {}
        self._task: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()
        self.reconnects = 0
        """How many times the reader re-established the connection (for tests and metrics)."""

    @property
    def connected(self) -> bool:
        """Whether the reader is connected with every channel (re-)subscribed."""
        return self._ready.is_set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self, channels: set[str]) -> None:
        """Start the reader and return once ``channels`` are confirmed subscribed.

        Raises:
            UnavailableError: Redis did not confirm in time.
        """
        self._channels |= channels
        self._task = asyncio.create_task(self._run(), name="mesh-redis-pubsub")
        try:
            async with unavailable_on_failure(self._timeout_s, "pub/sub start"):
                await self._ready.wait()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop the reader and release the connection."""
        tasks = [t for t in (self._task, *self._side_tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        await self._drop_connection(unavailable("Redis backend: closed"))

    # ------------------------------------------------------------------ subscriptions

    async def subscribe(self, channel: str) -> None:
        """Subscribe ``channel`` and wait for Redis's confirmation.

        Raises:
            UnavailableError: Not confirmed within the operation deadline.
        """
        was_wanted = channel in self._channels
        self._channels.add(channel)
        try:
            await self._command("SUBSCRIBE", channel, self._subscribed)
        except BaseException:
            if not was_wanted:
                self._channels.discard(channel)
            raise

    async def unsubscribe(self, channel: str) -> None:
        """Unsubscribe ``channel`` (idempotent) and wait for Redis's confirmation.

        Raises:
            UnavailableError: Not confirmed within the operation deadline. The channel is
                forgotten anyway, so a reconnect will not subscribe it again.
        """
        if channel not in self._channels:
            return
        self._channels.discard(channel)
        await self._command("UNSUBSCRIBE", channel, self._unsubscribed)

    async def _command(self, command: str, channel: str, waiters: _Confirmations) -> None:
        async with unavailable_on_failure(self._timeout_s, command.lower(), self._health):
            await self._ready.wait()
            pubsub = self._pubsub
            if pubsub is None:  # pragma: no cover - ready implies a connection
                raise redis_errors.ConnectionError("pub/sub not connected")
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            queue = waiters.setdefault(channel, deque())
            queue.append(future)
            try:
                if command == "SUBSCRIBE":
                    await pubsub.subscribe(channel)
                else:
                    await pubsub.unsubscribe(channel)
                await future
            finally:
                if future in queue:
                    queue.remove(future)
                if not queue and waiters.get(channel) is queue:
                    del waiters[channel]

    # ------------------------------------------------------------------ reader

    async def _run(self) -> None:
        backoff = self._backoff_min_s
        connected_before = False
        while True:
            try:
                pubsub = self._client.pubsub()
                self._pubsub = pubsub
                pending = set(self._channels)
                if pending:
                    await pubsub.subscribe(*sorted(pending))
                while pending:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None:
                        if message["type"] == "subscribe":
                            pending.discard(_text(message["channel"]))
                        self._dispatch(message)
                self._ready.set()
                self._health.succeeded()
                backoff = self._backoff_min_s
                if connected_before:
                    self.reconnects += 1
                    self._spawn(self._on_reconnected())
                connected_before = True
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None:
                        self._dispatch(message)
            except (redis_errors.RedisError, OSError) as exc:
                detail = f"Redis backend: pub/sub connection lost ({type(exc).__name__}: {exc})"
                self._health.failed(detail)
                await self._drop_connection(unavailable(detail))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max_s)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = _text(message["channel"])
        if kind == "message":
            try:
                self._handler(channel, message["data"])
            except Exception:
                logger.exception("pub/sub message handler failed for %r", channel)
        elif kind == "subscribe":
            _resolve(self._subscribed, channel)
        elif kind == "unsubscribe":
            _resolve(self._unsubscribed, channel)

    async def _drop_connection(self, error: BaseException) -> None:
        self._ready.clear()
        pubsub, self._pubsub = self._pubsub, None
        for waiters in (self._subscribed, self._unsubscribed):
            for queue in waiters.values():
                for future in queue:
                    if not future.done():
                        future.set_exception(error)
        if pubsub is not None:
            try:
                # Through a typed name: redis-py < 8.2 leaves aclose() unannotated.
                aclose: Callable[[], Awaitable[None]] = pubsub.aclose
                await aclose()
            except (redis_errors.RedisError, OSError):  # pragma: no cover - best effort
                logger.debug("closing a broken pub/sub connection failed", exc_info=True)

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception:
                logger.exception("Redis recovery callback failed")

        task = asyncio.create_task(guarded(), name="mesh-redis-recovered")
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)


def _text(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def _resolve(waiters: _Confirmations, channel: str) -> None:
    queue = waiters.get(channel)
    while queue:
        future = queue.popleft()
        if not future.done():
            future.set_result(None)
            return

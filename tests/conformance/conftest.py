"""The backend conformance harness: one suite per interface, each run against every backend.

The modules follow :mod:`mesh_server.backends.interfaces`: ``test_broker``, ``test_registry``,
``test_rooms``, ``test_presence``, ``test_records`` (and ``test_record_cas`` for its
compare-and-set and read-modify-write), ``test_metadata``; each test checks a guarantee its
interface documents. Each test takes the ``cluster`` fixture, parametrized over the
memory backend and the Redis backend. ``await cluster.start(n)`` returns ``n`` started backends
that share one store (memory: one :class:`MemoryHub`; Redis: one server) with distinct instance
ids, each with a :class:`Recorder` as its message handler. Tests never sleep to synchronize: they
await messages (:meth:`Recorder.next`), use a sentinel published on the same channel to prove that
nothing else arrived (:meth:`Recorder.drain`), and let TTLs lapse with :meth:`Cluster.lapse`
(memory: the fake hub clock jumps; Redis: real time passes while
:func:`tests.support.timing.eventually` polls).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from mesh_sdk.protocol.codec import loads
from mesh_server.backends.base import Backend
from mesh_server.backends.memory import MemoryBackend, MemoryHub
from mesh_server.backends.messages import BROADCAST, inbox_channel
from tests.support.timing import TIMEOUT, eventually, wait_for

NAMESPACE = "mesh:"
SENTINEL_PREFIX = b"__conformance_sentinel__:"


class FakeClock:
    """A manual millisecond clock for the memory hub."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += ms


class Recorder:
    """A recording :data:`~mesh_server.backends.base.MessageHandler`.

    Keeps every ``(channel, data)`` in arrival order and lets a test await the next message of a
    channel it has not consumed yet.
    """

    def __init__(self) -> None:
        self.log: list[tuple[str, bytes]] = []
        self._queues: dict[str, asyncio.Queue[bytes]] = defaultdict(asyncio.Queue)

    def __call__(self, channel: str, data: bytes) -> None:
        assert isinstance(data, bytes), f"handler got {type(data).__name__}, not bytes"
        self.log.append((channel, data))
        self._queues[channel].put_nowait(data)

    async def next(self, channel: str, timeout: float = TIMEOUT) -> bytes:
        """Return the next not yet consumed message on ``channel``."""
        return await wait_for(self._queues[channel].get(), timeout)

    async def next_json(self, channel: str, timeout: float = TIMEOUT) -> Any:
        """Return the next message on ``channel`` decoded as JSON."""
        return loads(await self.next(channel, timeout))

    async def drain(self, backend: Backend, channel: str) -> list[bytes]:
        """Consume everything up to a sentinel published now on ``channel`` through ``backend``.

        Pub/sub keeps publication order per channel, so the result is exactly what arrived on
        ``channel`` before the sentinel: an empty list proves that nothing was published.
        """
        sentinel = SENTINEL_PREFIX + uuid.uuid4().hex.encode()
        await backend.publish(channel, sentinel)
        received: list[bytes] = []
        while True:
            data = await self.next(channel)
            if data == sentinel:
                return received
            if not data.startswith(SENTINEL_PREFIX):  # other recorders' sentinels
                received.append(data)

    async def drain_json(self, backend: Backend, channel: str) -> list[Any]:
        """:meth:`drain` and decode every message as JSON."""
        return [loads(data) for data in await self.drain(backend, channel)]


@dataclass
class Node:
    """One started backend of a cluster (one server instance)."""

    backend: Backend
    instance_id: str
    recorder: Recorder

    @property
    def inbox(self) -> str:
        return inbox_channel(NAMESPACE, self.instance_id)


@dataclass
class Cluster:
    """Starts backends sharing one store; closes them at teardown."""

    kind: str
    create: Callable[[], Backend]
    clock: FakeClock | None
    nodes: list[Node] = field(default_factory=list)

    @property
    def ns(self) -> str:
        return NAMESPACE

    @property
    def broadcast_channel(self) -> str:
        return NAMESPACE + BROADCAST

    @property
    def short_ttl(self) -> int:
        """A TTL (ms) that tests let lapse: real time on Redis, a clock jump on memory."""
        return 300 if self.clock is None else 1000

    long_ttl: int = 600_000
    """A TTL (ms) that never lapses during a test."""

    async def start(self, n: int = 1) -> list[Node]:
        """Start ``n`` more backends on the shared store, each with its own recorder."""
        started = []
        for _ in range(n):
            backend = self.create()
            recorder = Recorder()
            instance_id = f"inst-{self.kind}-{len(self.nodes)}-{uuid.uuid4().hex[:8]}"
            await backend.start(instance_id, recorder)
            node = Node(backend, instance_id, recorder)
            self.nodes.append(node)
            started.append(node)
        return started

    def lapse(self, ms: int) -> None:
        """Make ``ms`` elapse on the store clock (memory); Redis lets real time pass instead."""
        if self.clock is not None:
            self.clock.advance(ms + 1)

    async def until(
        self, step: Callable[[], Awaitable[Any]], done: Callable[[Any], bool]
    ) -> list[Any]:
        """Repeat ``step`` until ``done(result)``; return every result (for TTL lapses)."""
        results: list[Any] = []

        async def attempt() -> bool:
            results.append(await step())
            return done(results[-1])

        await eventually(attempt)
        return results

    async def close(self) -> None:
        for node in reversed(self.nodes):
            await node.backend.close()


def _redis_factory(url: str) -> Callable[[], Backend]:
    from mesh_server.backends.redis import RedisBackend

    # The operation deadline scales like every other test deadline (a loaded box is slower).
    return lambda: RedisBackend(url, namespace=NAMESPACE, operation_timeout=TIMEOUT)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    """A factory of started backends sharing one store, for each backend implementation."""
    if request.param == "memory":
        clock = FakeClock()
        hub = MemoryHub(clock)
        result = Cluster("memory", lambda: MemoryBackend(NAMESPACE, hub=hub), clock)
    else:
        url = request.getfixturevalue("redis_url")
        result = Cluster("redis", _redis_factory(url), None)
    try:
        yield result
    finally:
        await result.close()

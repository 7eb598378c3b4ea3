"""A small real :class:`~mesh_server.features.ServerCore` for testing the feature managers.

:class:`FakeCore` runs the built-in features on a real backend (usually the memory backend) and
mimics what the server core guarantees them: built-in payloads validated against the built-in
contract, the response queued synchronously right after the handler returns, backend messages
routed by longest prefix, inbox room controls and room-clear broadcasts applied. Connections are
:class:`FakeConnection` objects that record every frame in order.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from mesh_sdk.protocol.codec import loads
from mesh_sdk.protocol.contract import ContractIndex, to_wire
from mesh_sdk.protocol.errors import MeshError
from mesh_sdk.protocol.generated import CONTRACT
from mesh_server.backends.base import Backend
from mesh_server.backends.messages import BROADCAST, decode_envelope, inbox_channel
from mesh_server.builtin_features import FeatureSet, create_features
from mesh_server.features import Builtin, ConnectionLike, MessageRoute, PongListener
from mesh_server.limits import Limits
from mesh_server.metrics import NO_METRICS, Metrics
from tests.support.timing import TIMEOUT

_ids = itertools.count()


class FakeConnection:
    """A local connection that records every frame it is sent (decoded), in order."""

    def __init__(self, connection_id: str) -> None:
        self._id = connection_id
        self.closed = False
        self.frames: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    @property
    def id(self) -> str:
        return self._id

    def send(self, frame: bytes) -> None:
        if self.closed:
            return
        self.frames.append(loads(frame))
        self._changed.set()

    def after_response(self, callback: Callable[[], None]) -> None:
        # The fake core answers by returning from the handler; release on the next turn.
        asyncio.get_running_loop().call_soon(callback)

    def pushes(self, command: str) -> list[Any]:
        """Payloads of the pushes named ``command`` received so far."""
        return [f["payload"] for f in self.frames if "id" not in f and f["command"] == command]

    async def wait(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        """Wait until ``predicate()`` holds, re-checking after every frame."""

        async def loop() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(loop(), timeout)

    async def wait_pushes(self, command: str, count: int) -> list[Any]:
        """Wait for at least ``count`` pushes named ``command`` and return them all."""
        await self.wait(lambda: len(self.pushes(command)) >= count)
        return self.pushes(command)


class FakeCore:
    """The :class:`~mesh_server.features.ServerCore` of one fake instance."""

    def __init__(
        self,
        backend: Backend,
        *,
        limits: Limits | None = None,
        contract: ContractIndex | None = None,
        ping_interval: float = 1.0,
        max_missed_pongs: int = 1,
        presence_sweep_interval: float = 1.0,
    ) -> None:
        self._backend = backend
        self._limits = limits or Limits()
        self._contract = contract
        self._ping_interval = ping_interval
        self._max_missed_pongs = max_missed_pongs
        self.instance_id = f"inst-{uuid.uuid4().hex[:8]}"
        self.connections: dict[str, FakeConnection] = {}
        self.room_index: dict[str, set[str]] = {}
        self.features: FeatureSet = create_features(
            self, presence_sweep_interval=presence_sweep_interval
        )
        self._builtins: dict[str, Builtin[Any]] = {}
        self._routes: list[tuple[str, MessageRoute]] = []
        for feature in self.features.all:
            self._builtins.update(feature.builtin_commands())
            self._routes.extend(feature.message_routes().items())
        self._routes.sort(key=lambda item: len(item[0]), reverse=True)
        self.log_records: list[str] = []

    # ------------------------------------------------------------------ ServerCore

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def namespace(self) -> str:
        return self._backend.namespace

    @property
    def limits(self) -> Limits:
        return self._limits

    @property
    def contract(self) -> ContractIndex | None:
        return self._contract

    @property
    def log(self) -> logging.Logger:
        return logging.getLogger("tests.fake_core")

    @property
    def metrics(self) -> Metrics:
        return NO_METRICS

    @property
    def ping_interval(self) -> float:
        return self._ping_interval

    @property
    def max_missed_pongs(self) -> int:
        return self._max_missed_pongs

    def local_connection(self, connection_id: str) -> ConnectionLike | None:
        return self.connections.get(connection_id)

    def deliver(self, connection_ids: Iterable[str], frame: bytes) -> None:
        for cid in connection_ids:
            connection = self.connections.get(cid)
            if connection is not None:
                connection.send(frame)

    def index_join(self, room: str, connection_id: str) -> None:
        self.room_index.setdefault(room, set()).add(connection_id)

    def index_leave(self, room: str, connection_id: str) -> None:
        members = self.room_index.get(room)
        if members is not None:
            members.discard(connection_id)
            if not members:
                del self.room_index[room]

    def index_clear(self, room: str) -> None:
        self.room_index.pop(room, None)

    def local_room_members(self, room: str) -> set[str]:
        return set(self.room_index.get(room, ()))

    def resolve_connection(self, conn_or_id: ConnectionLike | str) -> str:
        return conn_or_id if isinstance(conn_or_id, str) else conn_or_id.id

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self._backend.start(self.instance_id, self.on_message)
        for feature in self.features.all:
            await feature.start()

    async def stop(self) -> None:
        for connection in list(self.connections.values()):
            await self.disconnect(connection)
        for feature in self.features.all:
            await feature.stop()
        await self._backend.close()

    def on_message(self, channel: str, data: bytes) -> None:
        if channel == inbox_channel(self.namespace, self.instance_id):
            header, _ = decode_envelope(data)
            if header.get("t") == "room":
                self.features.rooms.apply_control(header["op"], header["r"], header["c"])
            return
        if channel == self.namespace + BROADCAST:
            header, _ = decode_envelope(data)
            if header.get("t") == "clear":
                self.features.rooms.apply_clear(header["r"])
            return
        for prefix, route in self._routes:
            if channel.startswith(prefix):
                route(channel, data)
                return

    async def connect(self) -> FakeConnection:
        connection = FakeConnection(f"conn-{next(_ids)}-{uuid.uuid4().hex[:6]}")
        self.connections[connection.id] = connection
        await self._backend.register_connection(connection.id)
        return connection

    async def disconnect(self, connection: FakeConnection) -> None:
        """Close and clean up in the §5.3 order."""
        connection.closed = True
        rooms = await self._backend.connection_rooms(connection.id)
        tracked = self.features.presence.tracked_rooms_of(rooms)
        for feature in self.features.all:
            await feature.on_disconnect(connection)
        await self._backend.unregister_connection(connection.id, tracked)
        for room in rooms:
            self.index_leave(room, connection.id)
        del self.connections[connection.id]

    async def pong(self, connection: FakeConnection) -> None:
        for feature in self.features.all:
            if isinstance(feature, PongListener):
                await feature.on_pong(connection)

    # ------------------------------------------------------------------ commands

    async def request(self, connection: FakeConnection, command: str, payload: Any) -> Any:
        """Run a built-in like the core: validate, run, queue the response; return its payload.

        Raises:
            MeshError: The command failed (the error response is recorded too).
        """
        spec = CONTRACT.command(command)
        assert spec is not None, command
        request_id = uuid.uuid4().hex
        try:
            model = spec.validate_request(payload)
            result = to_wire(await self._builtins[command].handler(connection, model))
        except MeshError as exc:
            connection.frames.append(
                {"id": request_id, "command": command, "payload": exc.to_payload()}
            )
            raise
        connection.frames.append({"id": request_id, "command": command, "payload": result})
        return result

    def response_index(self, connection: FakeConnection, command: str) -> int:
        """Position of the last response to ``command`` among the connection's frames."""
        for index in range(len(connection.frames) - 1, -1, -1):
            frame = connection.frames[index]
            if "id" in frame and frame["command"] == command:
                return index
        raise AssertionError(f"no response to {command}")


class ManualClock:
    """A manual millisecond clock for the memory hub (deadlines move only when told)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += ms


class FakeCluster:
    """Fake instances sharing one memory hub (one "store"), closed together."""

    def __init__(self) -> None:
        from mesh_server.backends.memory import MemoryHub

        self.clock = ManualClock()
        self.hub = MemoryHub(self.clock)
        self.cores: list[FakeCore] = []

    async def start(
        self, n: int = 1, *, backend_factory: Callable[..., Backend] | None = None, **options: Any
    ) -> list[FakeCore]:
        from mesh_server.backends.memory import MemoryBackend

        factory = backend_factory or MemoryBackend
        started = []
        for _ in range(n):
            core = FakeCore(factory("mesh:", hub=self.hub), **options)
            await core.start()
            self.cores.append(core)
            started.append(core)
        return started

    async def close(self) -> None:
        for core in self.cores:
            await core.stop()

"""The state of one server instance and what the feature managers see of it (``ServerCore``).

:class:`Core` owns the local connection hub and room index, the command pipeline, the built-in
feature managers, the backend (created on first use) and the instance's run state; it delivers
feature frames to local connections (protocol.md §13.2). The sibling modules act on it:
:mod:`.connections` (open, liveness, cleanup), :mod:`.gate` (upgrades and plain HTTP) and
:mod:`.lifecycle` (start, close, fencing).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Any

from mesh_server.backends import create_backend
from mesh_server.builtin_features import create_features
from mesh_server.connection_manager import ConnectionManager
from mesh_server.features import ConnectionLike, PongListener
from mesh_server.hub import Hub
from mesh_server.pipeline import Pipeline
from mesh_server.timer_wheel import TimerWheel

if TYPE_CHECKING:
    from collections.abc import Callable

    from mesh_sdk.protocol.contract import ContractIndex
    from mesh_server.api import ServerAPI
    from mesh_server.backends.base import Backend
    from mesh_server.connection import Connection
    from mesh_server.instance import InstanceMonitor
    from mesh_server.limits import Limits
    from mesh_server.metrics import Metrics
    from mesh_server.options import ServerOptions
    from mesh_server.transport.base import Transport

__all__ = ["Core"]


class Core:
    """One server instance's state; implements :class:`mesh_server.features.ServerCore`.

    Args:
        options: The validated options (shared with the façade, which may change some before
            start).
        server: The façade handed to handlers as ``ctx.server``.
        metrics: The metrics facade.
        backend: A ready-made (unstarted) backend, or ``None`` to create one from the options.
        transport: A transport instance, or ``None`` for the built-in one named by the options.
        contract: The application contract, if any.
    """

    def __init__(
        self,
        options: ServerOptions,
        server: ServerAPI,
        *,
        metrics: Metrics,
        backend: Backend | None,
        transport: Transport | None,
        contract: ContractIndex | None,
    ) -> None:
        self.options = options
        self.metrics = metrics
        self.log = options.log
        self.instance_id = uuid.uuid4().hex
        self.backend_given = backend
        self.transport = transport
        self.hub = Hub(options.namespace, self.instance_id, self.log)
        self.pipeline = Pipeline(
            server,
            limits=options.limits,
            contract=contract,
            debug=options.debug,
            log=self.log,
            metrics=metrics,
        )
        self.connection_manager = ConnectionManager(
            self,
            self.hub.connections,
            client_metadata_writes=options.client_metadata_writes,
            metadata_write_guard=options.metadata_write_guard,
            metadata_read_guard=options.metadata_read_guard,
        )
        self.on_connection: list[Callable[[Connection], Any]] = []
        self.on_disconnection: list[Callable[[Connection], Any]] = []
        self.instance: InstanceMonitor | None = None
        self.started = False
        self.closing = False
        self.closed = asyncio.Event()
        self.cleanups: set[asyncio.Task[None]] = set()
        self.background: set[asyncio.Task[Any]] = set()
        self.conn_count = 0
        self._timer_wheel: TimerWheel | None = None
        self.feature_set = create_features(
            self, presence_sweep_interval=options.presence_sweep_interval
        )
        self.features = list(self.feature_set.all)
        # Remote membership changes must reach the room manager (presence refresh, quotas),
        # not only the local room index.
        rooms = self.feature_set.rooms
        self.hub.set_room_handlers(rooms.apply_control, rooms.apply_clear)
        # Only features that react to pongs are called: no task per pong when none does.
        self.pong_listeners = [f for f in self.features if isinstance(f, PongListener)]

    # ------------------------------------------------------------------ ServerCore

    @property
    def backend(self) -> Backend:
        """The coordination backend (created on first use, started by ``start``)."""
        if self.backend_given is None:
            options = self.options
            extra: dict[str, Any] = {"instance_ttl": options.instance_ttl}
            if options.redis_url is not None:
                extra["operation_timeout"] = options.limits.backend_timeout
            self.backend_given = create_backend(
                options.redis_url, namespace=options.namespace, **extra
            )
        return self.backend_given

    @property
    def namespace(self) -> str:
        """Internal key/channel prefix (protocol.md §9.2)."""
        return self.options.namespace

    @property
    def limits(self) -> Limits:
        """The configured limits (protocol.md §15)."""
        return self.options.limits

    @property
    def contract(self) -> ContractIndex | None:
        """The application contract, if any."""
        return self.pipeline.contract

    @property
    def ping_interval(self) -> float:
        """The liveness ping interval in seconds."""
        return self.options.ping_interval

    @property
    def max_missed_pongs(self) -> int:
        """Missed pongs tolerated before close 4000."""
        return self.options.max_missed_pongs

    def local_connection(self, connection_id: str) -> Connection | None:
        """Return the open local connection with this id, if any."""
        return self.hub.connections.get(connection_id)

    def deliver(self, connection_ids: Iterable[str], frame: bytes) -> None:
        """Write one encoded frame to each open local connection among ``connection_ids``."""
        self.hub.deliver(connection_ids, frame)

    def index_join(self, room: str, connection_id: str) -> None:
        """Record a local connection's room membership (local room index, §13.2)."""
        self.hub.index_join(room, connection_id)

    def index_leave(self, room: str, connection_id: str) -> None:
        """Drop a local connection's room membership from the local room index."""
        self.hub.index_leave(room, connection_id)

    def index_clear(self, room: str) -> None:
        """Drop a room from the local room index."""
        self.hub.index_clear(room)

    def local_room_members(self, room: str) -> set[str]:
        """Return the local connection ids that are members of ``room``."""
        return self.hub.local_room_members(room)

    def resolve_connection(self, conn_or_id: ConnectionLike | str) -> str:
        """Return the id of a connection object or id."""
        if isinstance(conn_or_id, str):
            return conn_or_id
        return conn_or_id.id

    # ------------------------------------------------------------------ shared helpers

    @property
    def timer_wheel(self) -> TimerWheel:
        """The liveness deadlines of this server's connections, on one loop timer."""
        if self._timer_wheel is None:
            self._timer_wheel = TimerWheel(asyncio.get_running_loop())
        return self._timer_wheel

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run ``coro`` in the background until it ends or ``close`` cancels it."""
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def tracked_rooms(self, rooms: list[str]) -> list[str]:
        """Return those of ``rooms`` whose presence is tracked (protocol.md §10.2)."""
        if not rooms:
            return []
        return list(self.feature_set.presence.tracked_rooms_of(rooms))

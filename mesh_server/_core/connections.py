"""Connection open, liveness and cleanup (protocol.md §5.2, §5.3, §6).

:class:`Connections` is the transport's ``on_connect`` hook and the
:class:`~mesh_server.connection.ConnectionHost` of every
:class:`~mesh_server.connection.Connection`: it registers a new connection, runs the connection
hooks, forwards pongs to the features that react to them, and runs the cleanup of a closing
connection exactly once, retrying the backend part in the background while the backend is
unreachable.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mesh_sdk.protocol.errors import UnavailableError
from mesh_server.connection import Connection
from mesh_server.logs import FIELD_CLOSE_CODE, FIELD_CONNECTION_ID, FIELD_INSTANCE_ID, FIELD_PEER
from mesh_server.session import CLOSE_INTERNAL_ERROR, ServerSession

if TYPE_CHECKING:
    from mesh_server._core.base import Core
    from mesh_server.limits import Limits
    from mesh_server.metrics import Metrics
    from mesh_server.pipeline import Pipeline
    from mesh_server.timer_wheel import TimerWheel
    from mesh_server.transport.base import TransportConnection

__all__ = ["Connections"]

_CLEANUP_RETRY_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


def _to_ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _new_connection_id() -> str:
    # §5.2: "conn-" + at least 96 random bits, [A-Za-z0-9_-], never reused.
    return "conn-" + secrets.token_urlsafe(16)


async def call_hook(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a sync or async hook and return its result."""
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


class Connections:
    """Opens and cleans up the connections of one core (their ``ConnectionHost``).

    Args:
        core: The server core.
    """

    def __init__(self, core: Core) -> None:
        self._core = core
        self._log = core.log

    # ------------------------------------------------------------------ ConnectionHost

    @property
    def pipeline(self) -> Pipeline:
        """The command pipeline."""
        return self._core.pipeline

    @property
    def limits(self) -> Limits:
        """The configured limits."""
        return self._core.limits

    @property
    def metrics(self) -> Metrics:
        """The metrics facade."""
        return self._core.metrics

    @property
    def timer_wheel(self) -> TimerWheel:
        """The shared liveness timer wheel."""
        return self._core.timer_wheel

    def track_cleanup(self, task: asyncio.Task[None]) -> None:
        """Keep a cleanup task until it finishes (``close`` waits for them)."""
        cleanups = self._core.cleanups
        cleanups.add(task)
        task.add_done_callback(cleanups.discard)

    def notify_pong(self, connection: Connection) -> None:
        """Forward a pong to the features that react to it (presence refresh, protocol.md §10.3)."""
        if self._core.pong_listeners:
            self._core.spawn(self._pong(connection))

    async def _pong(self, connection: Connection) -> None:
        for listener in self._core.pong_listeners:
            try:
                await listener.on_pong(connection)
            except Exception as exc:
                self._log.debug("pong hook failed for %s: %s", connection.id, exc)

    # ------------------------------------------------------------------ open (§5.2)

    async def on_connect(self, transport: TransportConnection) -> None:
        """Open an accepted connection (the transport's ``on_connect`` hook)."""
        # Counted until its cleanup ends (or until a failed opening ends). The task returns once
        # the connection is started: an idle connection keeps no task (issue 12: idle memory).
        core = self._core
        core.conn_count += 1
        opened = False
        try:
            opened = await self._open(transport)
        finally:
            if not opened:
                core.conn_count -= 1

    async def _open(self, transport: TransportConnection) -> bool:
        core = self._core
        options = core.options
        connection_id = _new_connection_id()
        session = ServerSession(
            connection_id,
            limits=options.limits,
            # The sans-I/O session runs on an integer-ms clock (mesh_server.limits).
            ping_interval=_to_ms(options.ping_interval),
            latency_interval=_to_ms(options.latency_interval),
            max_missed_pongs=options.max_missed_pongs,
        )
        connection = Connection(self, transport, connection_id, session)
        # §5.2 step 2: register (routing entry + metadata from §5.1), then hooks.
        try:
            await core.backend.register_connection(connection_id, transport.accepted)
        except UnavailableError:
            # The outage is logged once by the backend; a refused connection is no news. Later
            # upgrades are answered 503 until the monitor's probe reaches the backend again.
            self._log.debug("registering connection %s failed: backend unavailable", connection_id)
            if core.instance is not None:
                core.instance.report_unavailable()
            transport.start_close(CLOSE_INTERNAL_ERROR, "registration failed")
            await transport.wait_closed()
            return False
        except Exception:
            self._log.exception("registering connection %s failed", connection_id)
            transport.start_close(CLOSE_INTERNAL_ERROR, "registration failed")
            await transport.wait_closed()
            return False
        core.hub.add(connection)
        core.metrics.connection_opened()
        if self._log.isEnabledFor(logging.DEBUG):
            peer = transport.upgrade.peer
            self._log.debug(
                "connection %s opened from %s",
                connection_id,
                peer,
                extra={
                    FIELD_INSTANCE_ID: core.instance_id,
                    FIELD_CONNECTION_ID: connection_id,
                    FIELD_PEER: f"{peer[0]}:{peer[1]}" if peer else None,
                },
            )
        for hook in core.on_connection:
            try:
                await call_hook(hook, connection)
            except Exception:
                self._log.exception("on_connection hook failed for %s", connection_id)
        # §5.2 steps 3–5: assign-id first, then client frames, then liveness timers.
        connection.start()
        return True

    # ------------------------------------------------------------------ cleanup (§5.3)

    async def cleanup_connection(self, connection: Connection) -> None:
        """Run the §5.3 cleanup of a closing connection (called exactly once per connection)."""
        try:
            await self._cleanup(connection)
        finally:
            self._core.conn_count -= 1

    async def _cleanup(self, connection: Connection) -> None:
        core = self._core
        connection_id = connection.id
        core.hub.connections.pop(connection_id, None)
        self._log.debug(
            "connection %s closed (code %s)",
            connection_id,
            connection.close_code,
            extra={
                FIELD_INSTANCE_ID: core.instance_id,
                FIELD_CONNECTION_ID: connection_id,
                FIELD_CLOSE_CODE: connection.close_code,
            },
        )
        await connection.wait_builtins(core.limits.backend_timeout)
        # (2) channel, record and presence subscriptions of this connection.
        for feature in core.features:
            try:
                await feature.on_disconnect(connection)
            except Exception:
                self._log.exception("feature cleanup failed for %s", connection_id)
        # (3)-(5) presence (one leave each), memberships, metadata, routing entry.
        if not await self._unregister(connection_id):
            core.spawn(self._retry_unregister(connection_id))
        core.hub.remove(connection_id)
        core.metrics.connection_closed(connection.close_code)
        for hook in core.on_disconnection:
            try:
                await call_hook(hook, connection)
            except Exception:
                self._log.exception("on_disconnection hook failed for %s", connection_id)

    async def _unregister(self, connection_id: str) -> bool:
        core = self._core
        backend = core.backend
        try:
            rooms = await backend.connection_rooms(connection_id)
            tracked = core.tracked_rooms(rooms)
            await backend.unregister_connection(connection_id, tracked)
        except Exception as exc:
            # During an outage every cleanup fails; the outage is logged once by the backend.
            level = logging.DEBUG if isinstance(exc, UnavailableError) else logging.WARNING
            self._log.log(level, "cleanup of %s failed, will retry: %s", connection_id, exc)
            return False
        return True

    async def _retry_unregister(self, connection_id: str) -> None:
        # §5.3: if the backend is unreachable the instance MUST retry (if it dies first, §13).
        attempt = 0
        while not self._core.closing:
            await asyncio.sleep(_CLEANUP_RETRY_S[min(attempt, len(_CLEANUP_RETRY_S) - 1)])
            attempt += 1
            if await self._unregister(connection_id):
                return

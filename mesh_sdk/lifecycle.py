"""Connection lifecycle of :class:`~mesh_sdk.client.MeshClient` (protocol.md §5, §14).

:class:`ClientLifecycle` owns the sockets: :meth:`~ClientLifecycle.connect` and
:meth:`~ClientLifecycle.close`, and the supervisor task that serves one socket at a time and
reconnects with backoff after an unexpected close. It is the one boundary where websockets
errors become Mesh errors (:meth:`~ClientLifecycle._open`). What happens on a socket (requests,
events, the timer) is :class:`~mesh_sdk.commands.ClientCommands`'.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Self

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    WebSocketException,
)

from mesh_sdk.commands import ClientCommands
from mesh_sdk.errors import MeshAuthenticationError
from mesh_sdk.protocol.errors import MeshConnectionError, MeshError
from mesh_sdk.reconnect import UNAVAILABLE_STATUS, should_reconnect, should_reconnect_after_status

if TYPE_CHECKING:
    from types import TracebackType

    from websockets.typing import LoggerLike

__all__ = ["ClientLifecycle"]

logger = logging.getLogger("mesh_sdk")


class ClientLifecycle(ClientCommands):
    """Connect, close, serve a socket and reconnect; the socket layer of ``MeshClient``."""

    # Provided by MeshClient.
    _should_reconnect: bool
    _max_reconnect_attempts: int | None
    _unavailable_delay: float
    _upgrade_status: int | None
    _max_message_size: int | None
    _open_timeout: float
    _additional_headers: dict[str, str]
    _ws_logger: LoggerLike | None
    _supervisor: asyncio.Task[None] | None
    _closing: bool
    _close_event: asyncio.Event | None
    _finalized: bool
    close_code: int | None
    close_reason: str
    last_error: MeshError | None

    # ----------------------------------------------------------------------------------------
    # Connect and close

    async def connect(self) -> None:
        """Open the connection; return once ``mesh/assign-id`` arrived (§5.2).

        Raises:
            MeshAuthenticationError: The upgrade was answered 401/403.
            MeshConnectionError: The server cannot be reached, or closed before assigning an id.
                No background reconnect is attempted after a failed first connect.
        """
        if self._supervisor is not None and not self._supervisor.done():
            if self._ready is not None:
                await asyncio.shield(self._ready)
            return
        loop = asyncio.get_running_loop()
        self._closing = False
        self._finalized = False
        self._close_event = asyncio.Event()
        self._ready = loop.create_future()
        try:
            async with asyncio.timeout(self._open_timeout):
                ws = await self._open()
                self._supervisor = loop.create_task(self._supervise(ws), name="mesh-sdk-client")
                await asyncio.shield(self._ready)
        except BaseException as exc:
            await self._abort_connect()
            if isinstance(exc, TimeoutError) and not isinstance(exc, MeshError):
                raise MeshConnectionError(f"cannot connect to {self.url}: timed out") from None
            raise

    async def _abort_connect(self) -> None:
        self._closing = True
        if self._close_event is not None:
            self._close_event.set()
        supervisor = self._supervisor
        if supervisor is not None and not supervisor.done():
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        self._finalize()
        if self._ready is not None and self._ready.done() and not self._ready.cancelled():
            self._ready.exception()  # mark retrieved

    async def close(self) -> None:
        """Close the connection for good: no reconnect; pending commands fail with ``ECONNECTION``.

        Every subscription and room handle ends (iterators stop). The client may be connected
        again with :meth:`connect`, as a fresh connection without subscriptions. Safe to call
        several times and before :meth:`connect`.
        """
        self._closing = True
        if self._close_event is not None:
            self._close_event.set()
        ws = self._ws
        if ws is not None:
            await ws.close()
        supervisor = self._supervisor
        if supervisor is not None and not supervisor.done():
            if ws is None:
                supervisor.cancel()  # sleeping before, or opening, a reconnect attempt
            done, _ = await asyncio.wait({supervisor}, timeout=1.0)
            if not done:
                supervisor.cancel()
                await asyncio.gather(supervisor, return_exceptions=True)
        self._finalize()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._dispatcher.aclose(grace=1.0)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _open(self) -> ClientConnection:
        """Open one socket, translating websockets errors (STYLE: one boundary)."""
        try:
            return await ws_connect(
                self.url,
                # §2: liveness is application-level; never close for missing protocol pongs.
                ping_interval=None,
                ping_timeout=None,
                compression=None,
                max_size=self._max_message_size,
                open_timeout=self._open_timeout,
                close_timeout=1,
                proxy=None,
                additional_headers=self._additional_headers or None,
                logger=self._ws_logger,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            self._upgrade_status = status
            if not should_reconnect_after_status(status):
                raise MeshAuthenticationError(status=status) from exc
            raise MeshConnectionError(f"upgrade to {self.url} answered HTTP {status}") from exc
        except (OSError, InvalidHandshake, WebSocketException, TimeoutError, ValueError) as exc:
            raise MeshConnectionError(f"cannot connect to {self.url}: {exc}") from exc

    # ----------------------------------------------------------------------------------------
    # Supervisor: serve a socket, then reconnect with backoff (§14)

    async def _supervise(self, ws: ClientConnection) -> None:
        current: ClientConnection | None = ws
        try:
            while current is not None:
                reconnect = await self._serve(current)
                current = None
                if not reconnect:
                    break
                current = await self._reconnect()
        finally:
            if current is not None:
                current.transport.abort()
            self._finalize()

    async def _serve(self, ws: ClientConnection) -> bool:
        """Read ``ws`` until it closes; return whether to reconnect."""
        self._ws = ws
        self._local_abort = False
        self._session.connection_opened(self._now())
        self._reschedule_timer()
        try:
            async for message in ws:
                self._receive(message)
                await self._flush_outbox(ws)
        except ConnectionClosed:
            pass
        finally:
            self._connection_lost(ws)
        return self._decide_reconnect()

    def _connection_lost(self, ws: ClientConnection) -> None:
        self._ws = None
        if self._restore_task is not None:
            self._restore_task.cancel()
            self._restore_task = None
        self.close_code = ws.close_code
        self.close_reason = ws.close_reason or ""
        for failure in self._session.connection_lost(self._now()):
            self._handle_event(failure)
        self._reschedule_timer()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(
                MeshConnectionError(
                    f"connection closed before mesh/assign-id (code {self.close_code})"
                )
            )
        self._emitter.emit("disconnect", self.close_code, self.close_reason)

    def _decide_reconnect(self) -> bool:
        ready = self._ready
        if self._closing or ready is None or not ready.done() or ready.cancelled():
            return False
        if ready.exception() is not None:
            # The first connection never got an id: connect() raises, nothing runs in background.
            return False
        if self._local_abort:
            return True
        return self._should_reconnect and should_reconnect(self.close_code)

    async def _reconnect(self) -> ClientConnection | None:
        while not self._closing:
            attempts = self._session.reconnect_attempt
            if (
                self._max_reconnect_attempts is not None
                and attempts >= self._max_reconnect_attempts
            ):
                error = MeshConnectionError(f"gave up reconnecting after {attempts} attempts")
                self.last_error = error
                self._emitter.emit("reconnect_failed", error)
                return None
            unavailable = self._upgrade_status == UNAVAILABLE_STATUS
            delay = self._session.next_reconnect_delay(
                self._unavailable_delay if unavailable else None
            )
            self._upgrade_status = None
            if await self._wait_closing(delay):
                return None
            try:
                return await self._open()
            except MeshAuthenticationError as exc:
                # §14: 401/403 at upgrade ends reconnection with an authentication error.
                self.last_error = exc
                self._emitter.emit("reconnect_failed", exc)
                return None
            except MeshConnectionError as exc:
                self.last_error = exc
                logger.info("reconnect attempt %d failed: %s", attempts + 1, exc)
        return None

    async def _wait_closing(self, seconds: float) -> bool:
        event = self._close_event
        if event is None:
            return True
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            return self._closing
        return True

    def _finalize(self) -> None:
        """Close for good, exactly once per :meth:`connect`: fail everything, end subscriptions."""
        if self._finalized:
            return
        self._finalized = True
        self._ws = None
        for failure in self._session.close():
            self._handle_event(failure)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None
        if self._restore_task is not None:
            self._restore_task.cancel()
            self._restore_task = None
        self._end_subscriptions()
        self._emitter.emit("close", self.close_code, self.close_reason)
